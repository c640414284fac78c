"""GPU figures for the classification foundation: Fashion-MNIST best recipe and time to 93%,
and CIFAR-10 (image-folder tree) with resnet9.

Each configuration is a complete training run (schedule included); "seconds to 93%" is the wall
time of the shortest complete run whose held-out test accuracy reaches 93%.
Usage: python benchmarks/gpu_classification.py --data-dir DIR --out results.json
"""
from __future__ import annotations

import argparse
import json
import time

from cnnlab.classify.api import train_classifier

RUNS = [
    ("fashion-mnist", "resnet9", dict(epochs=4, batch_size=256, lr=0.2, label_smoothing=0.1)),
    ("fashion-mnist", "resnet9", dict(epochs=8, batch_size=256, lr=0.2, label_smoothing=0.1)),
    ("fashion-mnist", "resnet9", dict(epochs=30, batch_size=256, lr=0.2, label_smoothing=0.1)),
    ("cifar10", "resnet9", dict()),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--out", default="gpu_classification.json")
    args = ap.parse_args()
    rows = []
    for dataset, model, kw in RUNS:
        t0 = time.perf_counter()
        m = train_classifier(dataset, data_dir=f"{args.data_dir}/{dataset}", model=model, out=f"runs/gpu-{dataset}-{kw.get('epochs', 'default')}",
                             progress=False, **kw)
        rows.append(dict(dataset=dataset, model=model, **kw, test_accuracy=m["test_accuracy"],
                         train_seconds=sum(r["seconds"] for r in m["history"]), wall_seconds=time.perf_counter() - t0,
                         device=m["device"]))
        print(json.dumps(rows[-1]), flush=True)
    fm = [r for r in rows if r["dataset"] == "fashion-mnist" and r["test_accuracy"] >= 0.93]
    summary = {"runs": rows, "fm_seconds_to_93": min((r["train_seconds"] for r in fm), default=None)}
    print(f"{'dataset':14s} {'model':8s} {'epochs':>6s} {'test acc':>9s} {'train s':>8s}")
    for r in rows:
        print(f"{r['dataset']:14s} {r['model']:8s} {str(r.get('epochs', '-')):>6s} {r['test_accuracy']:9.4f} {r['train_seconds']:8.1f}")
    print("Fashion-MNIST seconds to 93% (shortest complete run):", summary["fm_seconds_to_93"])
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
