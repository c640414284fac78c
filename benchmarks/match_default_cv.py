"""Which `cnnlab match` scorer to make the default: chosen by cross-validation over BBS videos.

Reads the per-pair IoUs that `benchmarks/match_bbs.py` measured (one run, one setting, every method)
(and, with ``--settings``, the per-pair CSVs of `cnnlab match benchmark` runs of other settings) and
asks how well "take the method or setting with the best AUC" does on pairs it was not chosen on: 5 folds,
each BBS video's three pairs in one fold (``cnnlab.match.bbs.cross_validate``). Nothing is matched
again; the figure it reports is the held-out one, beside the AUC on the pairs the choice was made on.

    python benchmarks/match_default_cv.py --data-dir $CNNLAB_DATA/template-matching/bbs
    python benchmarks/match_default_cv.py --data-dir ... --settings runs/bbs_ts80 runs/bbs_scales3 --out cv.json

Writes ``benchmarks/results/match_default_cv.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from cnnlab.match import bbs
from cnnlab.match.matcher import MatchConfig

RESULTS = Path(__file__).parent / "results"


def setting_ious(folder: Path) -> tuple[dict[str, dict[str, float]], dict[str, dict]]:
    """Per-pair IoUs and how each setting differs from the defaults, from a `cnnlab match benchmark`
    run's results.json: ``{"<folder>/<method>": {pair: IoU}}`` and ``{"<folder>/<method>": {option: value}}``."""
    defaults = dataclasses.asdict(MatchConfig())
    ious, changed = {}, {}
    for row in json.loads((folder / "results.json").read_text())["rows"]:
        name = f"{folder.name}/{row['method']}"
        ious[name] = row["per_pair"]["iou"]
        changed[name] = {k: v for k, v in row["setting"].items() if k != "method" and v != defaults[k]
                         and not (isinstance(v, list) and tuple(v) == defaults[k])}
    return ious, changed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="the BBS folder the IoUs were measured on (for the videos)")
    ap.add_argument("--measured", default=str(RESULTS / "match_bbs.json"))
    ap.add_argument("--settings", nargs="*", default=[], help="`cnnlab match benchmark --out` folders (results.json) "
                    "of other settings, candidates beside the measured methods")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", default=str(RESULTS / "match_default_cv.json"))
    args = ap.parse_args()
    measured = json.loads(Path(args.measured).read_text())
    ious = {m: v["iou"] for m, v in measured["per_pair"].items() if m != "zncc-pixel"}  # = opencv's boxes
    settings: dict[str, dict] = {}
    for folder in args.settings:
        more, changed = setting_ious(Path(folder))
        ious |= more
        settings |= changed
    groups = {p.name: bbs.sequence(p) for p in bbs.read_pairs(args.data_dir)}
    result = bbs.cross_validate(ious, groups, args.folds)
    per_method = {m: bbs.scores([v[p] for p in sorted(groups)])["auc"] for m, v in ious.items()}
    print(f"| method or setting | AUC, all {len(groups)} pairs |\n|---|---|")
    for m, auc in per_method.items():
        print(f"| {m} | {auc:.3f} |")
    print(f"\nchosen per fold: {', '.join(f['chosen'] for f in result['folds'])}; on all pairs: {result['chosen']} "
          f"(AUC {result['tuned_auc']:.3f} on the pairs it was chosen on)")
    h = result["held_out"]
    print(f"held out ({args.folds} folds by video): AUC {h['auc']:.3f}, success rate {h['success_rate']:.3f}")
    out = {"measured": args.measured, "settings": settings, "folds": args.folds, "per_method_auc": per_method,
           **result, "setting_ious": {name: ious[name] for name in settings}}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
