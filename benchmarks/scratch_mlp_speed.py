"""Seconds per training epoch: the hand-written NumPy MLP against its PyTorch twin, same process.

Same network, same initial weights, same batches, same thread count; the two frameworks'
epochs are interleaved (alternating which goes first) so that load from other processes on a
shared machine hits both alike, and the median over repeats is compared as a ratio.

    .venv/bin/python benchmarks/scratch_mlp_speed.py [--data-dir DIR] [--repeats 3] [--threads 1]

Uses Fashion-MNIST's 60,000 training images when found (``--data-dir`` or ``$CNNLAB_DATA``),
else random images of the same shape (a dense MLP's speed does not depend on pixel values).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from pathlib import Path

import numpy as np

from cnnlab.scratch.experiments import ArrayData, MLPConfig, load_arrays, make_runner, train_epoch
from cnnlab.core.threads import compute_threads

CASES = [  # (hidden, activation, optimizer, batch size)
    ((128, 64), "relu", "momentum", 64),
    ((128, 64), "sigmoid", "sgd", 64),
    ((128, 64, 64), "relu", "momentum", 64),
    ((128, 64), "relu", "momentum", 32),
    ((128, 64), "relu", "momentum", 256),
]


def get_data(data_dir: str | None) -> tuple[ArrayData, str]:
    try:
        return load_arrays("fashion-mnist", data_dir), "fashion-mnist"
    except Exception as exc:  # no dataset here: the timing does not depend on the pixel values
        print(f"(Fashion-MNIST not found: {exc}; using random images)")
        rng = np.random.default_rng(0)
        x = rng.random((60000, 784), dtype=np.float32)
        return ArrayData(x, rng.integers(0, 10, 60000), x[:1000], np.zeros(1000, np.int64),
                         [str(i) for i in range(10)], (1, 28, 28)), "random"


def time_case(data: ArrayData, hidden, activation, optimizer, batch_size, repeats: int) -> dict:
    runners, rngs, seconds = {}, {}, {"numpy": [], "torch": []}
    for fw in seconds:
        cfg = MLPConfig(hidden=hidden, activation=activation, optimizer=optimizer, batch_size=batch_size, framework=fw)
        runners[fw], rngs[fw] = make_runner(cfg, data), np.random.default_rng(0)
    for rep in range(repeats):
        for fw in (("numpy", "torch") if rep % 2 == 0 else ("torch", "numpy")):
            seconds[fw].append(train_epoch(runners[fw], data.x_train, data.y_train, batch_size, rngs[fw])[2])
    np_s, pt_s = statistics.median(seconds["numpy"]), statistics.median(seconds["torch"])
    return {"network": "784-" + "-".join(map(str, hidden)) + "-10", "activation": activation, "optimizer": optimizer,
            "batch_size": batch_size, "numpy_s_per_epoch": np_s, "torch_s_per_epoch": pt_s, "ratio": np_s / pt_s,
            "numpy_all": seconds["numpy"], "torch_all": seconds["torch"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("CNNLAB_DATA"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/bench/scratch_mlp_speed.json")
    args = ap.parse_args()
    import torch

    data, source = get_data(args.data_dir)
    rows = []
    with compute_threads(args.threads):
        for case in CASES:
            rows.append(time_case(data, *case, repeats=args.repeats))
            r = rows[-1]
            print(f"{r['network']:16s} {r['activation']:8s} {r['optimizer']:9s} batch {r['batch_size']:4d}: "
                  f"NumPy {r['numpy_s_per_epoch']:.3f} s/epoch  PyTorch {r['torch_s_per_epoch']:.3f} s/epoch  "
                  f"ratio {r['ratio']:.2f}", flush=True)
    print("\n| network | activation | optimizer | batch | NumPy s/epoch | PyTorch s/epoch | NumPy / PyTorch |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['network']} | {r['activation']} | {r['optimizer']} | {r['batch_size']} | "
              f"{r['numpy_s_per_epoch']:.3f} | {r['torch_s_per_epoch']:.3f} | {r['ratio']:.2f} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": source, "threads": args.threads, "repeats": args.repeats,
                               "numpy": np.__version__, "torch": torch.__version__,
                               "cpu": platform.processor() or platform.machine(), "rows": rows}, indent=2))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
