"""The NumPy CNN against the same network in PyTorch: accuracy and seconds per epoch, one run.

Same architecture (``cnnlab scratch cnn`` defaults: conv3x3(32)-ReLU-maxpool, conv3x3(64)-ReLU-
maxpool, dense 128, dense 10), same initial weights, same batches, same thread count, trained to
the end on Fashion-MNIST. The two frameworks' epochs are interleaved (alternating which goes
first) so that load from other processes on a shared machine hits both alike. Every epoch is
timed in wall seconds and in process CPU seconds (one thread: CPU time is the work itself, what
other processes take from the wall clock is not in it).

The NumPy CNN always trains to the end (``--epochs``), so its total wall time (training plus the
test evaluation after every epoch) is the run of ``cnnlab scratch cnn``; ``--torch-epochs`` limits
the PyTorch twin to the first N epochs (same batches, interleaved), enough for the per-epoch ratio
when the lock budget does not hold both full runs. The JSON is rewritten after every epoch, so a run
stopped by ``timeout`` keeps what it measured.

    python benchmarks/scratch_cnn_speed.py [--data-dir DIR] [--epochs 8] [--torch-epochs N] [--threads 1] [--smoke]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from cnnlab.scratch.experiments import ArrayData, CNNConfig, load_arrays, make_runner, train_epoch
from cnnlab.cli.types import nonneg_int, positive_int
from cnnlab.core.threads import compute_threads


def timed_epoch(runner, data: ArrayData, cfg: CNNConfig, rng, epoch: int) -> dict:
    lr = cfg.lr * (cfg.epochs - epoch + 1) / cfg.epochs  # the linear schedule of `cnnlab scratch cnn`
    runner.set_lr(lr)
    cpu = time.process_time()
    loss, acc, wall = train_epoch(runner, data.x_train, data.y_train, cfg.batch_size, rng, epoch)
    cpu = time.process_time() - cpu
    eval_started = time.perf_counter()
    test_loss, test_acc = runner.evaluate(data.x_test, data.y_test)
    return {"epoch": epoch, "lr": lr, "train_loss": loss, "train_accuracy": acc, "test_loss": float(test_loss),
            "test_accuracy": float(test_acc), "wall_seconds": wall, "cpu_seconds": cpu,
            "eval_wall_seconds": time.perf_counter() - eval_started}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("CNNLAB_DATA"))
    ap.add_argument("--epochs", type=positive_int, default=8)
    ap.add_argument("--torch-epochs", type=nonneg_int, default=None,
                    help="time the PyTorch twin on the first N epochs only (default: all)")
    ap.add_argument("--threads", type=positive_int, default=1)
    ap.add_argument("--smoke", action="store_true", help="2,000 training images, 1 epoch: checks the script runs")
    ap.add_argument("--out", default="benchmarks/results/scratch_cnn_speed.json")
    args = ap.parse_args()
    started = time.perf_counter()
    data = load_arrays("fashion-mnist", args.data_dir)
    if args.smoke:
        data = ArrayData(data.x_train[:2000], data.y_train[:2000], data.x_test[:1000], data.y_test[:1000],
                         data.classes, data.image_shape)
        args.epochs = 1
    cfgs = {fw: CNNConfig(epochs=args.epochs, framework=fw) for fw in ("numpy", "torch")}
    torch_epochs = args.epochs if args.torch_epochs is None else min(args.torch_epochs, args.epochs)
    out = Path(args.out)
    rows: dict[str, list[dict]] = {"numpy": [], "torch": []}
    with compute_threads(args.threads):
        runners = {fw: make_runner(cfg, data) for fw, cfg in cfgs.items()}
        rngs = {fw: np.random.default_rng(cfgs[fw].seed) for fw in cfgs}
        for epoch in range(1, args.epochs + 1):
            for fw in (("numpy", "torch") if epoch % 2 else ("torch", "numpy")):
                if fw == "torch" and epoch > torch_epochs:
                    continue
                rows[fw].append(timed_epoch(runners[fw], data, cfgs[fw], rngs[fw], epoch))
                r = rows[fw][-1]
                print(f"epoch {epoch} {fw:5s}: train loss {r['train_loss']:.4f} test acc {r['test_accuracy']:.4f} "
                      f"| {r['wall_seconds']:.1f} s wall, {r['cpu_seconds']:.1f} s CPU", flush=True)
                report = write_report(out, args, cfgs["numpy"], rows, started)
    print("\n| framework | epochs | test acc | s/epoch (wall, median) | s/epoch (CPU, median) | training wall s "
          "| training CPU s | training + evaluation wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for fw, s in report["summary"].items():
        print(f"| {fw} | {s['epochs']} | {s['test_accuracy']:.4f} | {s['median_wall_s_per_epoch']:.1f} "
              f"| {s['median_cpu_s_per_epoch']:.1f} | {s['train_wall_seconds']:.0f} | {s['train_cpu_seconds']:.0f} "
              f"| {s['total_wall_seconds']:.0f} |")
    ratio = report["numpy_over_torch"]
    if ratio:
        print(f"NumPy / PyTorch time per epoch (epochs 1-{ratio['epochs']}): {ratio['wall']:.2f} (wall), "
              f"{ratio['cpu']:.2f} (CPU)")
    print(f"-> {out}")


def summarise(hist: list[dict]) -> dict:
    """Medians per epoch (robust to one disturbed epoch) and totals; total wall includes the evaluations."""
    return {"epochs": len(hist), "test_accuracy": hist[-1]["test_accuracy"],
            "median_wall_s_per_epoch": statistics.median(r["wall_seconds"] for r in hist),
            "median_cpu_s_per_epoch": statistics.median(r["cpu_seconds"] for r in hist),
            "train_wall_seconds": sum(r["wall_seconds"] for r in hist),
            "train_cpu_seconds": sum(r["cpu_seconds"] for r in hist),
            "total_wall_seconds": sum(r["wall_seconds"] + r["eval_wall_seconds"] for r in hist)}


def write_report(out: Path, args, cfg: CNNConfig, rows: dict[str, list[dict]], started: float) -> dict:
    """Rewrite the JSON with everything measured so far; the ratio uses the epochs both frameworks ran."""
    summary = {fw: summarise(hist) for fw, hist in rows.items() if hist}
    ratio = {}
    shared = min(len(rows["numpy"]), len(rows["torch"]))
    if shared:
        both = {fw: summarise(rows[fw][:shared]) for fw in rows}
        ratio = {"epochs": shared,
                 "wall": both["numpy"]["median_wall_s_per_epoch"] / both["torch"]["median_wall_s_per_epoch"],
                 "cpu": both["numpy"]["median_cpu_s_per_epoch"] / both["torch"]["median_cpu_s_per_epoch"]}
    import torch

    report = {
        "network": "conv3x3(32)-relu-maxpool2, conv3x3(64)-relu-maxpool2, dense 128, dense 10",
        "config": {k: v for k, v in vars(cfg).items() if k != "framework"}, "threads": args.threads,
        "torch_epochs": args.torch_epochs, "smoke": args.smoke, "numpy": np.__version__,
        "torch": torch.__version__, "cpu": platform.processor() or platform.machine(), "summary": summary,
        "numpy_over_torch": ratio, "epochs": rows, "script_wall_seconds": time.perf_counter() - started}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(out)
    return report


if __name__ == "__main__":
    main()
