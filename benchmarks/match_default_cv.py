"""Which `cnnlab match` scorer to make the default: chosen by cross-validation over BBS videos.

Reads the per-pair IoUs that `benchmarks/match_bbs.py` measured (one run, one setting, every method)
and asks how well "take the method with the best AUC" does on pairs it was not chosen on: 5 folds,
each BBS video's three pairs in one fold (``cnnlab.match.bbs.cross_validate``). Nothing is matched
again; the figure it reports is the held-out one, beside the AUC on the pairs the choice was made on.

    python benchmarks/match_default_cv.py --data-dir $CNNLAB_DATA/template-matching/bbs

Writes ``benchmarks/results/match_default_cv.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from cnnlab.match import bbs

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="the BBS folder the IoUs were measured on (for the videos)")
    ap.add_argument("--measured", default=str(RESULTS / "match_bbs.json"))
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    measured = json.loads(Path(args.measured).read_text())
    ious = {m: v["iou"] for m, v in measured["per_pair"].items() if m != "zncc-pixel"}  # = opencv's boxes
    groups = {p.name: bbs.sequence(p) for p in bbs.read_pairs(args.data_dir)}
    result = bbs.cross_validate(ious, groups, args.folds)
    per_method = {m: bbs.scores([v[p] for p in sorted(groups)])["auc"] for m, v in ious.items()}
    print("| method | AUC, all 105 pairs |\n|---|---|")
    for m, auc in per_method.items():
        print(f"| {m} | {auc:.3f} |")
    print(f"\nchosen per fold: {', '.join(f['chosen'] for f in result['folds'])}; on all pairs: {result['chosen']} "
          f"(AUC {result['tuned_auc']:.3f} on the pairs it was chosen on)")
    h = result["held_out"]
    print(f"held out ({args.folds} folds by video): AUC {h['auc']:.3f}, success rate {h['success_rate']:.3f}")
    out = {"measured": args.measured, "folds": args.folds, "per_method_auc": per_method, **result}
    (RESULTS / "match_default_cv.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
