"""Seconds for a full layer summary of ResNet-50 at 3x224x224 on CPU, and BatchNorm folding on ResNet-18.

1. Summary: ``cnnlab.analysis.summary.summarize`` (shape-only forward on the meta device, the
   default), the same with a real forward (``execute=True``), and the peers fvcore
   (``FlopCountAnalysis(...).total()``, a TorchScript trace) and torchscan (``crawl_module``), each
   timed alternately, median of ``--repeats``. Total MACs are printed next to the times so the
   speed is for the same count (fvcore's MACs = ours). The issue's target: cnnlab < 2 s.
2. Folding: torchvision ResNet-18 in eval mode with trained-looking BatchNorm statistics
   (``randomize_batchnorm``), folded by ``fold_batchnorm``: the max absolute logit difference on
   a random batch and the CPU forward time before/after (alternating, median).

    .venv/bin/python benchmarks/summary_speed.py [--repeats 5] [--batch 8] [--threads 2] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import time
from pathlib import Path

import torch
import torchvision


def time_summaries(repeats: int) -> dict:
    from fvcore.nn import FlopCountAnalysis
    from torchscan import crawl_module

    from cnnlab.analysis.summary import summarize

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    start = time.perf_counter()
    model = torchvision.models.resnet50(weights=None).eval()
    build = time.perf_counter() - start
    size = (3, 224, 224)

    def fvcore_run():
        counter = FlopCountAnalysis(model, torch.randn(1, *size))
        counter.unsupported_ops_warnings(False)
        counter.uncalled_modules_warnings(False)
        return counter.total()

    run = {
        "cnnlab (meta)": lambda: summarize(model, size).macs,
        "cnnlab (real forward)": lambda: summarize(model, size, execute=True).macs,
        "fvcore": fvcore_run,
        "torchscan": lambda: crawl_module(model, size)["totals"]["macs"]["value"],
    }
    macs = {k: fn() for k, fn in run.items()}  # warm-up, and the counts
    seconds: dict[str, list[float]] = {k: [] for k in run}
    for rep in range(repeats):
        for key in (list(run) if rep % 2 == 0 else list(run)[::-1]):
            start = time.perf_counter()
            run[key]()
            seconds[key].append(time.perf_counter() - start)
    return {"model": "torchvision resnet50", "input": list(size), "build_s": build,
            "results": {k: {"median_s": statistics.median(v), "runs_s": v, "macs": macs[k]} for k, v in seconds.items()}}


def time_folding(batch: int, repeats: int) -> dict:
    from cnnlab.analysis.fold import fuse_report, randomize_batchnorm

    model = randomize_batchnorm(torchvision.models.resnet18(weights=None)).eval()
    report = fuse_report(model, (3, 224, 224), batch=batch, repeats=repeats)
    report.pop("folded")
    return {"model": "torchvision resnet18 (eval, random BN statistics)", **report}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/summary_speed.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    summary = time_summaries(args.repeats)
    folding = time_folding(args.batch, args.repeats)

    print(f"Summary of {summary['model']} at 3x224x224 (median of {args.repeats}, {args.threads} threads; "
          f"model built in {summary['build_s']:.2f} s)")
    ours = summary["results"]["cnnlab (meta)"]["median_s"]
    print(f"{'tool':24s} {'seconds':>8s} {'vs cnnlab':>9s} {'MACs':>15s}")
    for key, r in summary["results"].items():
        print(f"{key:24s} {r['median_s']:8.3f} {r['median_s'] / ours:8.1f}x {r['macs']:15,.0f}")
    print(f"\nBatchNorm folding, {folding['model']}, input {'x'.join(map(str, folding['input']))}:")
    print(f"  {folding['pairs']} pairs folded, {folding['batchnorm_left']} BN left; max |logit difference| "
          f"{folding['max_abs_diff']:.2e} (logits up to {folding['max_abs_output']:.2f})")
    print(f"  forward {folding['ms_original']:.1f} ms -> {folding['ms_folded']:.1f} ms: {folding['speedup']:.2f}x")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "threads": args.threads,
                               "torch": torch.__version__, "summary": summary, "folding": folding}, indent=2))
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
