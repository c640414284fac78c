"""BBS template matching: OpenCV's TM_CCOEFF_NORMED against cnnlab's scorers, in one run.

Per pair the template is the frame-1 box, the search image is frame 2, and the predicted box is the
best match (the template's size at the matched scale). Scores follow the BBS protocol
(``cnnlab.match.bbs``): success rate at IoU > 0.5 and the AUC of the success curve over IoU
thresholds 0..1 in steps of 0.01; the published-protocol AUC (thresholds 0..0.95 in steps of 0.05)
is given beside it for comparison with papers. Seconds per pair count the matching alone (decoding
the JPEGs is left out for every method, the peer included); they include feature extraction.

This is ``cnnlab match benchmark`` (:func:`cnnlab.match.api.run_benchmark`) with every method and
the defaults of ``MatchConfig`` (one setting for every pair), plus the split the settings were
chosen on: the "dev" third of the pairs (pair number % 3 == 1, one pair per sequence); the table
also reports the other 70 pairs ("held-out") on their own.

    timeout 720 flock /work/cpu.lock python benchmarks/match_bbs.py --data-dir $CNNLAB_DATA/template-matching/bbs

Writes ``benchmarks/results/match_bbs.json`` (rows, per-pair IoUs, boxes and seconds, machine) and
prints a markdown table; the CLI's own files (boxes.json per method, table.md) go to ``--runs``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import torch

from cnnlab.core.distributed import cpu_has_native_bf16
from cnnlab.match import bbs
from cnnlab.match.api import BENCHMARK_METHODS, PEER, run_benchmark
from cnnlab.match.matcher import MatchConfig


def table(rows: list[dict]) -> tuple[list[dict], str]:
    """Scores on all pairs, on the dev third and on the held-out rest; seconds and their ratio to OpenCV's."""
    names = list(rows[0]["per_pair"]["iou"])
    dev = [n for i, n in enumerate(names) if i % 3 == 0]
    held = [n for i, n in enumerate(names) if i % 3 != 0]
    peer = next((r["seconds_per_pair"] for r in rows if r["method"] == PEER), None)
    out = []
    for r in rows:
        ious = r["per_pair"]["iou"]
        out.append({k: v for k, v in r.items() if k not in ("per_pair", "setting")} | {
            "auc_dev": bbs.scores([ious[n] for n in dev])["auc"] if dev else None,
            "auc_held_out": bbs.scores([ious[n] for n in held])["auc"] if held else None,
            "time_vs_opencv": r["seconds_per_pair"] / peer if peer else None})
    lines = [f"| method | success rate (IoU > 0.5) | AUC | AUC dev {len(dev)} / held-out {len(held)} "
             "| AUC, published protocol | s/pair | time vs OpenCV |", "|---|---|---|---|---|---|---|"]
    for r in out:
        split = f"{r['auc_dev']:.3f} / {r['auc_held_out']:.3f}" if r["auc_held_out"] is not None else "-"
        ratio = f"{r['time_vs_opencv']:.0f}x" if r["time_vs_opencv"] else "-"
        lines.append(f"| {r['method']} | {r['success_rate']:.3f} | {r['auc']:.3f} | {split} | "
                     f"{r['auc_published']:.3f} | {r['seconds_per_pair']:.3f} | {ratio} |")
    return out, "\n".join(lines)


def main() -> None:
    default_data = Path(os.environ.get("CNNLAB_DATA", "data")) / "template-matching" / "bbs"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(default_data))
    parser.add_argument("--methods", default=",".join(BENCHMARK_METHODS))
    parser.add_argument("--limit", type=int, help="only the first N pairs (a smoke run)")
    parser.add_argument("--runs", default="runs/match_bbs", help="folder for the CLI's files (boxes.json, table.md)")
    parser.add_argument("--out", default="benchmarks/results/match_bbs.json")
    args = parser.parse_args()
    config = MatchConfig()
    load, start, cpu = os.getloadavg(), time.perf_counter(), time.process_time()
    rows = run_benchmark(args.data_dir, args.runs, args.methods.split(","), config, args.limit, progress=False)
    summary, text = table(rows)
    print(text)
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
               "native_bf16": cpu_has_native_bf16(),  # the network runs in bf16 where this is true (bf16=None)
               "load_average_at_start": load, "wall_seconds": time.perf_counter() - start,
               "cpu_seconds": time.process_time() - cpu}
    setting = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("method", "device")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": args.data_dir, "pairs": len(rows[0]["per_pair"]["iou"]), "setting": setting,
                               "rows": summary, "table": text, "machine": machine,
                               "per_pair": {r["method"]: r["per_pair"] for r in rows}}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
