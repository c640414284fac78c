"""Per-layer DIM on BBS (issue 28): does explaining away layer by layer beat it on the layers stacked?

The default ``dim`` stacks Lite0's three layers (``_blocks.2,_blocks.4,_blocks.10``, strides 4, 8, 16)
into one feature space, picks the look-alikes there and runs DIM once. Here each layer is its own
matcher: its own standardisation and PCA, its own look-alikes (the windows that look like the template
*at that depth*: edges at stride 4, object shape at stride 16) and its own DIM on the whole map. The
per-layer centre maps (the score of the box centred at each search-image pixel) are then fused:

- ``geo``: geometric mean of the maps, each divided by its own maximum (``scoring.fuse``: a window
  must be explained as the target at every depth);
- ``mean``: arithmetic mean of the max-normalised maps (one depth may outvote the others).

The fused box is the template-sized box centred at the fused map's best pixel. The row ``dim
_blocks.2, argmax of its pixel map`` against ``dim _blocks.2`` (the matcher's own box, refined between
cells) checks that reading a box off a pixel map loses nothing. The stacked layers are the default
``dim`` (its cascade scores the same boxes as its whole map on BBS: AUC 0.700 against 0.699, docs/match.md).
Every variant's per-pair IoUs go through the same 5-fold cross-validation over BBS videos as
the default's choice (``cnnlab.match.bbs.cross_validate``), so the held-out figure is the one to quote.

    python benchmarks/match_per_layer.py --data-dir $CNNLAB_DATA/template-matching/bbs

Writes ``benchmarks/results/match_per_layer.json``.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from cnnlab.match import bbs, scoring
from cnnlab.match.images import load_image
from cnnlab.match.matcher import Box, Matcher, MatchConfig, iou

RESULTS = Path(__file__).parent / "results"
LAYERS = ("_blocks.2", "_blocks.4", "_blocks.10")  # the default's layers


def map_box(score_map: Tensor, size: tuple[float, float]) -> Box:
    """The ``size`` (w, h) box centred at the best pixel of a centre map (NaN: no window there)."""
    flat = torch.nan_to_num(score_map, nan=-torch.inf).flatten()
    r, c = divmod(int(flat.argmax()), score_map.shape[1])
    return (c + 0.5 - size[0] / 2, r + 0.5 - size[1] / 2, size[0], size[1])


def fused(maps: list[Tensor], how: str) -> Tensor:
    """Max-normalised centre maps fused by geometric (``geo``) or arithmetic (``mean``) mean; NaN stays NaN."""
    normed = [m / torch.nan_to_num(m, nan=-torch.inf).max().clamp_min(1e-12) for m in maps]
    if how == "geo":
        out = scoring.fuse([torch.nan_to_num(m, nan=-torch.inf) for m in normed])
        return torch.where(torch.isneginf(out), torch.nan, out)
    return torch.stack(normed).mean(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="a BBS-layout folder")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--limit", type=int, default=0, help="only the first N pairs (0: all)")
    ap.add_argument("--out", default=str(RESULTS / "match_per_layer.json"))
    args = ap.parse_args()
    torch.manual_seed(0)
    pairs = bbs.read_pairs(args.data_dir)[: args.limit or None]
    matchers = {"dim": Matcher(MatchConfig(method="dim"))}
    matchers |= {f"dim {layer}": Matcher(MatchConfig(method="dim", candidates=0, layers=[layer])) for layer in LAYERS}
    ious: dict[str, dict[str, float]] = {}
    seconds = {k: 0.0 for k in matchers}
    for p in tqdm(pairs, desc="per-layer DIM", file=sys.stderr):
        T, S = load_image(p.template_image), load_image(p.search_image)
        size = (p.template_box[2], p.template_box[3])
        maps = {}
        for name, m in matchers.items():
            start = time.perf_counter()
            result = m.match(T, S, box=p.template_box)
            seconds[name] += time.perf_counter() - start
            ious.setdefault(name, {})[p.name] = iou(result.matches[0].box, p.true_box)
            maps[name] = result.score_map
        ious.setdefault(f"dim {LAYERS[0]}, argmax of its pixel map", {})[p.name] = iou(
            map_box(maps[f"dim {LAYERS[0]}"], size), p.true_box)
        per_layer = [maps[f"dim {layer}"] for layer in LAYERS]
        for how in ("geo", "mean"):
            for k in (2, 3):
                for chosen in itertools.combinations(range(len(LAYERS)), k):
                    key = f"per-layer {how} {'+'.join(LAYERS[i] for i in chosen)}"
                    box = map_box(fused([per_layer[i] for i in chosen], how), size)
                    ious.setdefault(key, {})[p.name] = iou(box, p.true_box)
    groups = {p.name: bbs.sequence(p) for p in pairs}
    rows = {k: bbs.scores(list(v.values())) for k, v in ious.items()}
    base = ious["dim"]
    print("| variant | success | AUC | published | mean IoU vs dim (SE) | better / worse pairs (> 0.01) |")
    print("|---|---|---|---|---|---|")
    for k, s in rows.items():
        d = torch.tensor([ious[k][n] - base[n] for n in base], dtype=torch.float64)
        se = float(d.std() / len(d) ** 0.5) if len(d) > 1 else float("nan")
        print(f"| {k} | {s['success_rate']:.3f} | {s['auc']:.3f} | {s['auc_published']:.3f} | "
              f"{float(d.mean()):+.4f} ({se:.4f}) | {int((d > 0.01).sum())} / {int((d < -0.01).sum())} |")
    per_pair_s = {k: v / len(pairs) for k, v in seconds.items()}
    print("s/pair: " + ", ".join(f"{k} {v:.2f}" for k, v in per_pair_s.items()))
    result = {"data": args.data_dir, "pairs": len(pairs), "rows": rows, "seconds_per_pair": per_pair_s,
              "per_pair_iou": ious}
    if len(set(groups.values())) >= args.folds:
        cv = bbs.cross_validate(ious, groups, args.folds)
        result["cross_validation"] = cv
        print(f"held out over {args.folds} folds: AUC {cv['held_out']['auc']:.3f}, success "
              f"{cv['held_out']['success_rate']:.3f} (chosen on all pairs: {cv['chosen']}, "
              f"per fold: {', '.join(f['chosen'] for f in cv['folds'])})")
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
