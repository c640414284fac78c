"""Two AUC ideas of issue 28 probed on BBS before building them into `cnnlab match`: what each could add.

1. **Scale at the found peak**: keep `dim`'s centre, and pick the template scale ``s`` (13 scales,
   0.59-1.68, geometric) whose deep ZNCC with the search windows within one cell of that centre is
   highest after a prior on scale 1: ``zncc(s) - lam * |log2 s|``; optionally re-centred on that scale's
   best window. Beside it: the same with colour-pixel ZNCC, and the oracle (the true size at dim's centre).
2. **Forward-backward re-ranking of distractors** (the consistency check of TLD, Kalal et al. 2010):
   each of `dim`'s top 5 boxes, cut from the search features, is matched back over the template
   image's features; a true match should find the template's own box again. Candidates within
   ``rho`` of the top score are re-ranked by ``score / top + beta * (back_own - back_else)``.

Every variant's per-pair IoUs go through the same 5-fold cross-validation over BBS videos as the
default's choice (``cnnlab.match.bbs.cross_validate``), so the held-out figure is the one to quote.
The probes read the matcher's internals (features, template cells), which is why they are a
benchmark and not an option.

    python benchmarks/match_probes.py --data-dir $CNNLAB_DATA/template-matching/bbs

Writes ``benchmarks/results/match_probes.json``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from cnnlab.match import bbs, scoring
from cnnlab.match.images import load_image
from cnnlab.match.matcher import Matcher, MatchConfig, _cells, _resize, iou

RESULTS = Path(__file__).parent / "results"
SCALES = [2 ** (k / 8) for k in range(-6, 7)]  # 0.59 .. 1.68: BBS's measured changes lie in 0.53-1.59
LAMBDAS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
PIXEL_SIDE = 32  # colour ZNCC at a resolution where the template is about this many pixels a side


def local_best(grid: Tensor, cells: Tensor, centre_cell: tuple[float, float], reach: int = 1) -> tuple[float, int, int]:
    """Best ZNCC of ``cells`` (C x h x w) over the windows whose top-left lies within ``reach`` cells of
    ``centre_cell`` (fractional top-left of the window centred on the peak); its score and top-left."""
    h, w = cells.shape[-2:]
    r, c = centre_cell
    r0, c0 = max(0, math.floor(r) - reach), max(0, math.floor(c) - reach)
    r1 = min(grid.shape[1] - h + 1, math.ceil(r) + reach + 1)
    c1 = min(grid.shape[2] - w + 1, math.ceil(c) + reach + 1)
    if r1 <= r0 or c1 <= c0:
        return -math.inf, r0, c0
    zmap = scoring.zncc(grid[:, r0:r1 + h - 1, c0:c1 + w - 1], cells[None])[0]
    k = int(zmap.argmax())
    return float(zmap.max()), r0 + k // zmap.shape[1], c0 + k % zmap.shape[1]


def scale_scores(m: Matcher, pair: bbs.Pair, found: tuple) -> dict[str, dict[float, tuple]]:
    """Per scale: (score, centre x, centre y) of the deep and the colour-pixel ZNCC near ``found``'s centre."""
    T, S = load_image(pair.template_image), load_image(pair.search_image)
    box = pair.template_box
    cx, cy = found[0] + found[2] / 2, found[1] + found[3] / 2
    factor = min(4.0, max(1 / 8, m.config.template_size / math.sqrt(box[2] * box[3])))
    grid, space, stride, yx = m._search_features(S, factor)
    pf = min(1.0, PIXEL_SIDE / math.sqrt(box[2] * box[3]))
    small, (fy, fx) = _resize(S.float(), pf)
    x0, y0 = round(box[0]), round(box[1])
    crop = T[:, y0:max(y0 + 1, round(box[1] + box[3])), x0:max(x0 + 1, round(box[0] + box[2]))].float()
    out: dict[str, dict[float, tuple]] = {"deep": {}, "pixels": {}}
    for s in SCALES:
        if box[2] * s > S.shape[2] or box[3] * s > S.shape[1]:
            continue
        t = m._template(T, box, factor, s, space, True)
        oy, ox = t.offset[0] + t.size[0] / 2, t.offset[1] + t.size[1] / 2
        if t.cells.shape[-2] <= grid.shape[1] and t.cells.shape[-1] <= grid.shape[2]:
            score, r, c = local_best(grid, t.cells[0], ((cy * yx[0] - oy) / stride, (cx * yx[1] - ox) / stride))
            out["deep"][s] = (score, (c * stride + ox) / yx[1], (r * stride + oy) / yx[0])
        tc, _ = _resize(crop, pf * s)
        th, tw = tc.shape[1:]
        reach = (round(0.25 * th) + 1, round(0.25 * tw) + 1)  # a quarter of the template each way
        ty, tx = round(cy * fy - th / 2), round(cx * fx - tw / 2)
        a0, b0 = max(0, ty - reach[0]), max(0, tx - reach[1])
        a1, b1 = min(small.shape[1], ty + th + reach[0]), min(small.shape[2], tx + tw + reach[1])
        if a1 - a0 >= th and b1 - b0 >= tw:
            pm = scoring.zncc(small[:, a0:a1, b0:b1], tc[None])[0]
            k = int(pm.argmax())
            out["pixels"][s] = (float(pm.max()), (b0 + k % pm.shape[1] + tw / 2) / fx, (a0 + k // pm.shape[1] + th / 2) / fy)
    return out


def rescaled(found: tuple, template_box: tuple, per_scale: dict[float, tuple], lam: float, recentre: bool) -> tuple:
    """``found`` resized to the template's size times the scale the prior-weighted score picks."""
    if not per_scale:
        return found
    s = max(per_scale, key=lambda s: per_scale[s][0] - lam * abs(math.log2(s)))
    cx, cy = per_scale[s][1:] if recentre else (found[0] + found[2] / 2, found[1] + found[3] / 2)
    w, h = template_box[2] * s, template_box[3] * s
    return (cx - w / 2, cy - h / 2, w, h)


def backward_checks(m: Matcher, pair: bbs.Pair) -> list[dict]:
    """`dim`'s top 5 boxes, each with its score, IoU, and how well it finds the template's box again."""
    T, S = load_image(pair.template_image), load_image(pair.search_image)
    box = pair.template_box
    result = m.match(T, S, box)
    grid, space, stride, yx = m._search_features(S, result.info["factor"])
    scaled, (fy, fx) = _resize(T, result.info["factor"])
    feats = space.apply(m._extract(scaled))
    r0, r1 = _cells(box[1] * fy, box[3] * fy, stride, feats.shape[1], odd=False)
    c0, c1 = _cells(box[0] * fx, box[2] * fx, stride, feats.shape[2], odd=False)
    h, w = r1 - r0, c1 - c0
    out = []
    for match in result.matches:
        x, y, bw, bh = match.box
        a0 = _cells(y * yx[0], bh * yx[0], stride, grid.shape[1], odd=False)[0]
        b0 = _cells(x * yx[1], bw * yx[1], stride, grid.shape[2], odd=False)[0]
        a0, b0 = max(0, min(a0, grid.shape[1] - h)), max(0, min(b0, grid.shape[2] - w))
        row = {"box": match.box, "score": match.score, "iou": iou(match.box, pair.true_box)}
        cells = grid[:, a0:a0 + h, b0:b0 + w]
        if cells.shape[1:] == (h, w) and h <= feats.shape[1] and w <= feats.shape[2]:
            back = scoring.zncc(feats, cells[None])[0]
            elsewhere = torch.ones_like(back, dtype=torch.bool)  # windows that do not overlap the template's
            elsewhere[max(0, r0 - h + 1):r0 + h, max(0, c0 - w + 1):c0 + w] = False
            row["back_own"] = float(back[max(0, r0 - 1):r0 + 2, max(0, c0 - 1):c0 + 2].max())
            row["back_else"] = float(back[elsewhere].max()) if elsewhere.any() else -1.0
        out.append(row)
    return out


def reranked(candidates: list[dict], rho: float, beta: float) -> float:
    """IoU of the candidate that ``score / top + beta * backward margin`` prefers among those within ``rho`` of the top."""
    top = candidates[0]["score"]
    scored = [(c["score"] / top + beta * (c["back_own"] - c["back_else"]), i) for i, c in enumerate(candidates)
              if "back_own" in c and c["score"] >= rho * top]
    return candidates[max(scored)[1] if scored else 0]["iou"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="a BBS-layout folder")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", default=str(RESULTS / "match_probes.json"))
    args = ap.parse_args()
    torch.manual_seed(0)
    pairs = bbs.read_pairs(args.data_dir)
    groups = {p.name: bbs.sequence(p) for p in pairs}
    m = Matcher(MatchConfig(method="dim", top_k=5))
    checks = {p.name: backward_checks(m, p) for p in tqdm(pairs, desc="forward-backward", file=sys.stderr)}
    found = {n: c[0]["box"] for n, c in checks.items()}
    per_scale = {p.name: scale_scores(m, p, found[p.name]) for p in tqdm(pairs, desc="scales", file=sys.stderr)}
    truth = {p.name: p.true_box for p in pairs}
    ious = {"dim": {n: c[0]["iou"] for n, c in checks.items()}}
    for kind in ("deep", "pixels"):
        for lam in LAMBDAS:
            for recentre in (False, True):
                key = f"scale {kind} lam={lam}" + (" recentred" if recentre else "")
                ious[key] = {p.name: iou(rescaled(found[p.name], p.template_box, per_scale[p.name][kind], lam, recentre),
                                         truth[p.name]) for p in pairs}
    for rho in (0.5, 0.7, 0.9):
        for beta in (0.5, 1.0, 2.0, 4.0):
            ious[f"rerank rho={rho} beta={beta}"] = {n: reranked(c, rho, beta) for n, c in checks.items()}
    bounds = {"true size at dim's centre": {}, "best of dim's top 5": {n: max(x["iou"] for x in c) for n, c in checks.items()}}
    for p in pairs:
        x, y, w, h = found[p.name]
        s = math.sqrt(truth[p.name][2] * truth[p.name][3] / (p.template_box[2] * p.template_box[3]))
        tw, th = p.template_box[2] * s, p.template_box[3] * s
        bounds["true size at dim's centre"][p.name] = iou((x + w / 2 - tw / 2, y + h / 2 - th / 2, tw, th), truth[p.name])
    margins = {ok: [c[0]["back_own"] - c[0]["back_else"] for c in checks.values()
                    if "back_own" in c[0] and (c[0]["iou"] > 0.5) == ok] for ok in (True, False)}
    rank = [next((i for i, x in enumerate(c) if x["iou"] > 0.5), None) for c in checks.values()]
    rows = {k: bbs.scores(list(v.values())) for k, v in ious.items()}
    cv = bbs.cross_validate(ious, groups, args.folds)
    print("| variant | success | AUC |\n|---|---|---|")
    for k, s in rows.items():
        print(f"| {k} | {s['success_rate']:.3f} | {s['auc']:.3f} |")
    for k, v in bounds.items():
        print(f"| upper bound: {k} | {bbs.scores(list(v.values()))['success_rate']:.3f} | {bbs.scores(list(v.values()))['auc']:.3f} |")
    print(f"held out over {args.folds} folds: AUC {cv['held_out']['auc']:.3f} (chosen on all pairs: {cv['chosen']}, "
          f"per fold: {', '.join(f['chosen'] for f in cv['folds'])})")
    result = {"data": args.data_dir, "pairs": len(pairs), "rows": rows, "cross_validation": cv,
              "upper_bounds": {k: bbs.scores(list(v.values())) for k, v in bounds.items()},
              "true_box_rank_in_dim_top5": {str(k): rank.count(k) for k in (0, 1, 2, 3, 4, None)},
              "backward_margin_of_dim_top": {"right (IoU > 0.5)": margins[True], "wrong": margins[False]},
              "per_pair": {"iou": ious, "backward": checks}}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
