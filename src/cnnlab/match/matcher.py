"""Template matching on pixels or CNN features: scales, score maps, boxes, non-maximum suppression.

The pipeline of :meth:`Matcher.match` for a deep method:

1. Both images are resized by one factor ``f`` that brings the template to about
   ``template_size`` pixels a side (``sqrt(w * h)``), so the template covers the same number of
   feature cells whatever its size in the file: the chosen layers' receptive fields then fit a
   tiny template as well as a large one.
2. Search features are extracted (in tiles on large images) and fixed a :class:`FeatureSpace`.
3. For every scale ``s`` of the pyramid the template's source is resized by ``f * s`` and its
   features are extracted *in context*: with ``--box`` the whole image the box was cut from (cells
   at the template's border then describe the same surroundings as in the search image), else the
   template file padded by reflection. The box's cells are cut out; DIM also cuts the most similar
   look-alike windows elsewhere in that image to explain away.
4. The scorer gives a map per scale; its local maxima become boxes (the template's box at that
   scale, centred where the window was), kept greedily by score with non-maximum suppression.

``zncc-pixel`` skips the network: the colour pixels are the features at full resolution, which is
OpenCV's ``TM_CCOEFF_NORMED``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from cnnlab.core.distributed import cpu_has_native_bf16
from cnnlab.core.errors import CnnlabError
from cnnlab.match.catalog import DEFAULT_METHOD
from cnnlab.match import scoring
from cnnlab.match.features import FeatureNet, FeatureSpace, load_feature_net

# name -> what it scores (the README and `cnnlab match --help` list these)
METHODS = {
    "zncc-pixel": "zero-mean normalised cross-correlation on colour pixels (OpenCV TM_CCOEFF_NORMED)",
    "zncc": "zero-mean normalised cross-correlation on CNN features",
    "qatm": "QATM soft mutual nearest neighbour on CNN features (Cheng et al. 2019)",
    "dim": "divisive input modulation on CNN features, look-alikes explained away (Deep-DIM, Gao & Spratling 2021)",
    "dim-qatm": "product fusion of the dim and qatm maps (their geometric mean) on the same features",
}
DIM_METHODS = ("dim", "dim-qatm")  # the methods that cut odd-sized templates with look-alikes and run DIM
Box = tuple[float, float, float, float]


@dataclass
class MatchConfig:
    """One setting for every pair: what the CLI options fill in."""

    method: str = DEFAULT_METHOD
    backbone: str | None = None
    checkpoint: str | None = None
    layers: list[str] | None = None
    scales: tuple[float, ...] = (1.0,)
    template_size: float = 64.0  # deep methods: template side after resizing (0: keep the size)
    pca: int = 64  # principal components of the search image's features kept (0: all channels)
    whiten: bool = False
    top_k: int = 1
    min_score: float | None = None  # boxes scoring below this are dropped (None: keep the top_k)
    nms_iou: float = 0.5
    tile: int = 1024  # pixels per tile side for the network; the scorers use tile / stride cells
    alpha: float = 25.0  # QATM softmax sharpness (cosine similarities)
    # DIM: the fewest rounds whose AUC on BBS's dev third is not below 10 rounds' (6: 0.703, 10: 0.700);
    # the map is still moving by more than 10% of its peak per round at 10, so no tolerance stops it earlier
    iterations: int = 6
    lookalikes: int = 5  # DIM: extra templates cut from the template's own image
    # DIM cascade: explain away only around the ``candidates`` best ZNCC windows (0: the whole map), each
    # with ``context`` template sides of features around it; the cost no longer grows with the image.
    # 3 and 0.5 on all 105 BBS pairs: AUC 0.700 (whole map 0.699), 0.67 s per pair instead of 0.96-1.44
    candidates: int = 3
    context: float = 0.5
    # deep methods on a CPU: the network in bfloat16 autocast (scoring stays float32); None: where the
    # CPU has native bf16 (AVX512-BF16 host: the network 2x faster with channels-last, same BBS AUC)
    bf16: bool | None = None
    refine: bool = True  # deep methods: locate the peak between cells (parabola through neighbours)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise CnnlabError(f"--method {self.method!r}: expected one of {', '.join(METHODS)}")
        if not self.scales or any(not (0 < s < math.inf) for s in self.scales):
            raise CnnlabError(f"--scales {self.scales}: expected positive finite numbers")
        if self.candidates < 0 or not (0 <= self.context < math.inf):
            raise CnnlabError(f"--candidates {self.candidates} / --context {self.context}: expected numbers >= 0")


@dataclass
class Match:
    box: Box  # x, y, w, h in search-image pixels
    score: float
    scale: float

    def to_dict(self) -> dict:
        return {"box": [round(v, 2) for v in self.box], "score": round(self.score, 5), "scale": self.scale}


@dataclass
class MatchResult:
    matches: list[Match]
    score_map: Tensor  # H x W: best score over scales of the box centred at each pixel (NaN: no window)
    seconds: float
    info: dict = field(default_factory=dict)


@dataclass
class _Template:
    """A template's cells at one scale, and where its box sits relative to them (scaled pixels)."""

    cells: Tensor  # K x C x h x w (K > 1: target first, then look-alikes)
    offset: tuple[float, float]  # box top-left minus the first cell's top-left, y then x
    size: tuple[float, float]  # box height and width in scaled pixels
    scale: float


def _resize(image: Tensor, factor: float) -> tuple[Tensor, tuple[float, float]]:
    """Bilinear (antialiased when shrinking) resize; returns the image and the exact y/x factors."""
    h, w = image.shape[-2:]
    nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
    if (nh, nw) == (h, w):
        return image, (1.0, 1.0)
    out = F.interpolate(image[None], size=(nh, nw), mode="bilinear", align_corners=False,
                        antialias=factor < 1)[0]
    return out.clamp(0, 1), (nh / h, nw / w)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``x, y, w, h`` boxes (continuous coordinates)."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def check_box(box: Box, shape: tuple[int, int], what: str) -> None:
    """A box must have a positive size and lie inside its image; one line naming both otherwise."""
    x, y, w, h = box
    height, width = shape
    if w <= 0 or h <= 0:
        raise CnnlabError(f"--box {_fmt(box)}: width and height must be positive ({what})")
    if x < 0 or y < 0 or x + w > width + 1e-6 or y + h > height + 1e-6:
        raise CnnlabError(f"--box {_fmt(box)} lies outside {what} ({width}x{height} pixels)")


def _fmt(box: Box) -> str:
    return ",".join(f"{v:g}" for v in box)


class Matcher:
    """Finds a template in search images; the backbone is loaded once and reused."""

    def __init__(self, config: MatchConfig, net: FeatureNet | None = None) -> None:
        """``net``: a :class:`FeatureNet` to share between matchers (else loaded from the config)."""
        self.config = config
        self.net: FeatureNet | None = None
        if config.method != "zncc-pixel":
            self.net = net or load_feature_net(config.backbone, config.checkpoint, config.layers, config.device)

    def match(self, template: Tensor, search: Tensor, box: Box | None = None,
              names: tuple[str, str] = ("the template", "the search image")) -> MatchResult:
        """Boxes of ``template`` (``C x h x w`` in [0, 1]; or the ``box`` of it) in ``search``."""
        cfg = self.config
        start = time.perf_counter()
        tmpl_shape, search_shape = tuple(template.shape[-2:]), tuple(search.shape[-2:])
        in_context = box is not None  # features of the box cut from its whole image
        if box is not None:
            check_box(box, tmpl_shape, names[0])
        else:
            box = (0.0, 0.0, float(tmpl_shape[1]), float(tmpl_shape[0]))
        scales = [s for s in cfg.scales if box[2] * s <= search_shape[1] and box[3] * s <= search_shape[0]]
        if not scales:
            raise CnnlabError(f"{names[0]} ({box[2]:g}x{box[3]:g} pixels at the smallest scale "
                              f"{min(cfg.scales):g}) is larger than {names[1]} "
                              f"({search_shape[1]}x{search_shape[0]})")
        template, search = template.to(cfg.device), search.to(cfg.device)
        factor = 1.0
        if self.net is not None and cfg.template_size > 0:
            factor = min(4.0, max(1 / 8, cfg.template_size / math.sqrt(box[2] * box[3])))
        grid, space, stride, yx = self._search_features(search, factor)
        candidates: list[Match] = []
        maps = []
        for s in scales:
            t = self._template(template, box, factor, s, space, in_context)
            h, w = t.cells.shape[-2:]
            if h > grid.shape[1] or w > grid.shape[2]:
                continue
            scores = self._score(grid, t, stride)
            maps.append((scores, t))
            candidates += self._peaks(scores, t, stride, yx)
        if not maps:
            raise CnnlabError(f"{names[0]} is larger than {names[1]} at every scale in {cfg.scales}")
        matches = _nms(candidates, cfg.top_k, cfg.nms_iou, cfg.min_score)
        score_map = _centre_map([(m, t) for m, t in maps], stride, yx, search_shape)
        score_map = torch.where(torch.isfinite(score_map), score_map, math.nan)  # -inf: not scored (cascade)
        info = {"factor": factor, "grid": list(grid.shape), "stride": stride,
                "layers": self.net.layers if self.net else ["pixels"],
                "scales": [t.scale for _, t in maps], "template_cells": [list(t.cells.shape[-2:]) for _, t in maps]}
        return MatchResult(matches, score_map.cpu(), time.perf_counter() - start, info)

    # --- features ------------------------------------------------------------------------------

    def _search_features(self, search: Tensor, factor: float):
        cfg = self.config
        if self.net is None:
            return search.float(), None, 1, (1.0, 1.0)
        scaled, yx = _resize(search, factor)
        maps = self._extract(scaled)
        space = FeatureSpace.fit(maps, cfg.pca, cfg.whiten)
        return space.apply(maps), space, self.net.stride, yx

    def _extract(self, image: Tensor) -> list[Tensor]:
        """The network's maps of ``image``; in bf16 autocast on a CPU when asked (by default where it is native)."""
        cfg = self.config
        bf16 = cpu_has_native_bf16() if cfg.bf16 is None else cfg.bf16
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16 and cfg.device == "cpu"):
            return self.net.extract(image, cfg.tile)

    def _template(self, image: Tensor, box: Box, factor: float, scale: float, space: FeatureSpace | None,
                  in_context: bool) -> _Template:
        """The box's cells (and DIM's look-alikes) at one scale of the pyramid."""
        cfg = self.config
        factor *= scale
        if self.net is None:  # pixels: crop, then resize the crop
            x0, y0 = round(box[0]), round(box[1])
            x1, y1 = max(x0 + 1, round(box[0] + box[2])), max(y0 + 1, round(box[1] + box[3]))
            crop, _ = _resize(image[:, y0:y1, x0:x1].float(), factor)
            return _Template(crop[None], (0.0, 0.0), (crop.shape[1], crop.shape[2]), scale)
        halo = self.net.halo
        if not in_context:  # a template file: reflect-pad so border cells see plausible context
            margin = min(halo, image.shape[1] - 1, image.shape[2] - 1, 64)
            image = F.pad(image[None], (margin,) * 4, mode="reflect")[0]
            box = (box[0] + margin, box[1] + margin, box[2], box[3])
        elif max(image.shape[1:]) * factor > cfg.tile + 2 * halo:
            # a large image around a small box: keep the box, the network's halo and one box of room
            m = math.ceil(halo / factor) + max(box[2], box[3])
            x0, y0 = max(0, math.floor(box[0] - m)), max(0, math.floor(box[1] - m))
            x1 = min(image.shape[2], math.ceil(box[0] + box[2] + m))
            y1 = min(image.shape[1], math.ceil(box[1] + box[3] + m))
            image, box = image[:, y0:y1, x0:x1], (box[0] - x0, box[1] - y0, box[2], box[3])
        scaled, (fy, fx) = _resize(image, factor)
        feats = space.apply(self._extract(scaled))
        g = self.net.stride
        by, bx, bh, bw = box[1] * fy, box[0] * fx, box[3] * fy, box[2] * fx
        is_dim = cfg.method in DIM_METHODS
        r0, r1 = _cells(by, bh, g, feats.shape[1], odd=is_dim)
        c0, c1 = _cells(bx, bw, g, feats.shape[2], odd=is_dim)
        cells = feats[None, :, r0:r1, c0:c1]
        if is_dim and in_context and cfg.lookalikes:
            cells = torch.cat([cells, _lookalikes(feats, cells[0], (r0, c0), cfg.lookalikes)])
        return _Template(cells, (by - r0 * g, bx - c0 * g), (bh, bw), scale)

    # --- scores and boxes ----------------------------------------------------------------------

    def _score(self, grid: Tensor, t: _Template, stride: int) -> Tensor:
        """Score of every window of the grid (top-left indexed, ``H - h + 1 x W - w + 1``), in tiles.

        ZNCC tiles overlap by the window, so they are exact; DIM tiles also carry two windows of
        context each side (its explaining away reaches that far in practice); QATM's softmax over the
        whole image needs no tiles: it runs in chunks of cells (see :func:`scoring.qatm`).
        """
        cfg = self.config
        if cfg.method == "qatm":
            return scoring.qatm(grid, t.cells[0], cfg.alpha)[0]
        if cfg.method == "dim-qatm":
            return scoring.fuse([self._dim_map(grid, t, stride), scoring.qatm(grid, t.cells[0], cfg.alpha)[0]])
        if cfg.method == "dim":
            return self._dim_map(grid, t, stride)
        return self._in_tiles(grid, t, stride, self._score_window, 0)

    def _dim_map(self, grid: Tensor, t: _Template, stride: int) -> Tensor:
        """DIM's window map: around the ZNCC candidates (the cascade) or on the whole grid in tiles."""
        if self.config.candidates:
            return self._score_candidates(grid, t, stride)
        h, w = t.cells.shape[-2:]
        return self._in_tiles(grid, t, stride, self._score_window, 2 * max(h, w))

    def _in_tiles(self, grid: Tensor, t: _Template, stride: int, score, halo: int) -> Tensor:
        """``score(grid, t)``, a window map, on tiles of ``tile / stride`` output cells with ``halo`` cells of context."""
        h, w = t.cells.shape[-2:]
        rows, cols = grid.shape[1] - h + 1, grid.shape[2] - w + 1
        side = max(self.config.tile // stride, 2 * max(h, w))  # output cells per tile side
        if rows <= side and cols <= side:
            return score(grid, t)
        out = grid.new_empty(rows, cols)
        for r0 in range(0, rows, side):
            for c0 in range(0, cols, side):
                r1, c1 = min(rows, r0 + side), min(cols, c0 + side)
                a0, b0 = max(0, r0 - halo), max(0, c0 - halo)
                a1, b1 = min(grid.shape[1], r1 + h - 1 + halo), min(grid.shape[2], c1 + w - 1 + halo)
                part = score(grid[:, a0:a1, b0:b1], t)
                out[r0:r1, c0:c1] = part[r0 - a0:r1 - a0, c0 - b0:c1 - b0]
        return out

    def _score_candidates(self, grid: Tensor, t: _Template, stride: int) -> Tensor:
        """DIM around the ``candidates`` best ZNCC windows of the target template; -inf elsewhere.

        ZNCC ranks the windows that look like the target, distractors included; DIM's explaining
        away is what tells the target from the distractors, and it only needs their neighbourhood.
        Each candidate's windows within half a template side are scored on a crop that keeps
        ``context`` template sides of features beyond them, so a crop costs the same whatever the
        size of the image.
        """
        cfg = self.config
        h, w = t.cells.shape[-2:]
        coarse = self._in_tiles(grid, t, stride, _zncc_map, 0)  # in tiles: memory stays bounded on large images
        out = torch.full_like(coarse, -math.inf)
        halo_r, halo_c = math.ceil(cfg.context * h), math.ceil(cfg.context * w)
        scored, crops = [], []
        for r, c in _best_windows(coarse, cfg.candidates, (h, w)):
            r0, r1 = max(0, r - h // 2), min(coarse.shape[0], r + h // 2 + 1)  # windows scored
            c0, c1 = max(0, c - w // 2), min(coarse.shape[1], c + w // 2 + 1)
            a0, b0 = max(0, r0 - halo_r), max(0, c0 - halo_c)  # features they see
            a1, b1 = min(grid.shape[1], r1 + h - 1 + halo_r), min(grid.shape[2], c1 + w - 1 + halo_c)
            scored.append((r0, r1, c0, c1, a0, b0))
            crops.append(grid[:, a0:a1, b0:b1])
        # all crops in one DIM batch: they share the templates' spectra
        for (r0, r1, c0, c1, a0, b0), part in zip(scored, self._dim_windows(crops, t)):
            out[r0:r1, c0:c1] = torch.fmax(out[r0:r1, c0:c1], part[r0 - a0:r1 - a0, c0 - b0:c1 - b0])
        return out

    def _score_window(self, grid: Tensor, t: _Template) -> Tensor:
        if self.config.method in ("zncc", "zncc-pixel"):
            return _zncc_map(grid, t)
        return self._dim_windows([grid], t)[0]

    def _dim_windows(self, grids: list[Tensor], t: _Template) -> list[Tensor]:
        """DIM's window maps (top-left indexed) of several feature crops, run as one zero-padded batch.

        Each crop is reflect-padded by a template so windows at its border see plausible input, then
        zero-padded to the batch's size with no activation allowed there: each crop's maps are the
        ones it would get alone.
        """
        h, w = t.cells.shape[-2:]
        padded, pads = [], []
        for grid in grids:
            x = scoring.on_off(grid)
            ph, pw = min(h, x.shape[1] - 1), min(w, x.shape[2] - 1)
            padded.append(F.pad(x[None], (pw, pw, ph, ph), mode="reflect")[0])
            pads.append((ph, pw))
        rows, cols = max(x.shape[1] for x in padded), max(x.shape[2] for x in padded)
        batch, support = padded[0].new_zeros(len(padded), padded[0].shape[0], rows, cols), None
        for i, x in enumerate(padded):
            batch[i, :, :x.shape[1], :x.shape[2]] = x
        if any(x.shape[1:] != (rows, cols) for x in padded):  # some crops carry padding: mask it
            support = batch.new_zeros(len(padded), 1, rows, cols)
            for i, x in enumerate(padded):
                support[i, :, :x.shape[1], :x.shape[2]] = 1
        templates = scoring.on_off(t.cells.transpose(0, 1)).transpose(0, 1)
        y = scoring.dim(batch, templates, self.config.iterations, support=support)[:, 0]
        a, b = (h - 1) // 2, (w - 1) // 2  # centre cell -> top-left cell of the window
        return [y[i, ph + a: ph + a + g.shape[1] - h + 1, pw + b: pw + b + g.shape[2] - w + 1]
                for i, (g, (ph, pw)) in enumerate(zip(grids, pads))]

    def _peaks(self, scores: Tensor, t: _Template, stride: int, yx: tuple[float, float]) -> list[Match]:
        """Local maxima of one scale's map as boxes in search-image pixels (best first)."""
        k = max(1, self.config.top_k)
        s = scores[None, None]
        is_peak = (F.max_pool2d(s, 3, 1, 1, ceil_mode=False) == s)[0, 0] & torch.isfinite(scores)
        values = scores[is_peak]
        where = is_peak.nonzero()
        order = values.argsort(descending=True)[: 20 * k]
        out = []
        for i in order.tolist():
            r, c = where[i].tolist()
            dr, dc = _subcell(scores, r, c) if stride > 1 and self.config.refine else (0.0, 0.0)
            cy = ((r + dr) * stride + t.offset[0] + t.size[0] / 2) / yx[0]
            cx = ((c + dc) * stride + t.offset[1] + t.size[1] / 2) / yx[1]
            bh, bw = t.size[0] / yx[0], t.size[1] / yx[1]
            out.append(Match((cx - bw / 2, cy - bh / 2, bw, bh), float(values[i]), t.scale))
        return out


def _zncc_map(grid: Tensor, t: _Template) -> Tensor:
    """ZNCC of the target template (not its look-alikes) with every window of ``grid``."""
    return scoring.zncc(grid, t.cells[:1])[0]


def _subcell(scores: Tensor, r: int, c: int) -> tuple[float, float]:
    """The peak between cells: vertex of the parabola through the peak and its two neighbours, per axis."""
    def vertex(before: float, peak: float, after: float) -> float:
        curvature = before - 2 * peak + after
        return 0.0 if curvature >= 0 else max(-0.5, min(0.5, 0.5 * (before - after) / curvature))

    h, w = scores.shape
    s = scores.double()
    dr = vertex(float(s[r - 1, c]), float(s[r, c]), float(s[r + 1, c])) if 0 < r < h - 1 else 0.0
    dc = vertex(float(s[r, c - 1]), float(s[r, c]), float(s[r, c + 1])) if 0 < c < w - 1 else 0.0
    return dr, dc


def _cells(start: float, length: float, g: int, limit: int, odd: bool) -> tuple[int, int]:
    """Cells ``[c0, c1)`` that best cover ``[start, start + length)`` pixels on a grid of ``g`` (odd count if asked)."""
    c0 = min(max(0, round(start / g)), limit - 1)
    c1 = min(limit, max(c0 + 1, round((start + length) / g)))
    if odd and (c1 - c0) % 2 == 0:
        if c1 < limit:
            c1 += 1
        elif c0 > 0:
            c0 -= 1
        else:
            c1 -= 1
    return c0, c1


def _best_windows(scores: Tensor, n: int, size: tuple[int, int],
                  taken: tuple[tuple[int, int], ...] = ()) -> list[tuple[int, int]]:
    """Top-left cells of the ``n`` best-scoring windows of ``size`` that overlap neither each other nor ``taken``."""
    h, w = size
    kept, picked = list(taken), []
    for i in scores.flatten().argsort(descending=True).tolist():
        if len(picked) == n:
            break
        r, c = divmod(i, scores.shape[1])
        if all(abs(r - kr) >= h or abs(c - kc) >= w for kr, kc in kept):
            kept.append((r, c))
            picked.append((r, c))
    return picked


def _lookalikes(feats: Tensor, target: Tensor, at: tuple[int, int], n: int) -> Tensor:
    """The ``n`` windows of ``feats`` most like ``target`` (ZNCC) that overlap neither it nor each other."""
    h, w = target.shape[-2:]
    windows = _best_windows(scoring.zncc(feats, target[None])[0], n, (h, w), taken=(at,))
    picked = [feats[:, r:r + h, c:c + w] for r, c in windows]
    return torch.stack(picked) if picked else target.new_zeros(0, *target.shape)


def _nms(candidates: list[Match], k: int, threshold: float, min_score: float | None) -> list[Match]:
    """Greedy non-maximum suppression: best first, skip boxes overlapping a kept one by more than ``threshold``."""
    kept: list[Match] = []
    for m in sorted(candidates, key=lambda m: -m.score):
        if len(kept) == k or (min_score is not None and m.score < min_score):
            break
        if all(iou(m.box, other.box) <= threshold for other in kept):
            kept.append(m)
    return kept


def _centre_map(maps: list[tuple[Tensor, _Template]], stride: int, yx: tuple[float, float],
                shape: tuple[int, int]) -> Tensor:
    """Every scale's map resampled onto the search image at the box centres; the best scale per pixel."""
    h, w = shape
    best = torch.full((h, w), math.nan, device=maps[0][0].device)
    for scores, t in maps:
        # cell (r, c) holds the window whose box centre is at (r * stride + oy) / fy
        oy, ox = t.offset[0] + t.size[0] / 2, t.offset[1] + t.size[1] / 2
        rows = ((torch.arange(h, device=best.device) + 0.5) * yx[0] - oy) / stride
        cols = ((torch.arange(w, device=best.device) + 0.5) * yx[1] - ox) / stride
        sampled = _bilinear(scores.float(), rows, cols)
        best = torch.fmax(best, sampled)
    return best


def _bilinear(grid: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """``grid`` sampled at fractional ``rows x cols`` (outer product); NaN outside the grid."""
    gh, gw = grid.shape
    r = rows.clamp(0, gh - 1)
    c = cols.clamp(0, gw - 1)
    r0, c0 = r.floor().long(), c.floor().long()
    r1, c1 = (r0 + 1).clamp(max=gh - 1), (c0 + 1).clamp(max=gw - 1)
    fr, fc = (r - r0)[:, None], (c - c0)[None, :]
    top = grid[r0][:, c0] * (1 - fc) + grid[r0][:, c1] * fc
    bottom = grid[r1][:, c0] * (1 - fc) + grid[r1][:, c1] * fc
    out = top * (1 - fr) + bottom * fr
    inside = ((rows >= -0.5) & (rows <= gh - 0.5))[:, None] & ((cols >= -0.5) & (cols <= gw - 0.5))[None, :]
    return torch.where(inside, out, torch.full_like(out, math.nan))
