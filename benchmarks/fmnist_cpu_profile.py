"""Where a Fashion-MNIST epoch's time goes on the CPU, what cuts it, and which recipe stays >= 92%.

Three parts, each added to ``--out`` (JSON; parts run later replace their own entry only):

1. ``profile``: ``torch.profiler`` over one epoch of the main-branch default recipe (simple-cnn
   width 32, batch 128, fp32, channels-last, uint8 batches normalised per step) on an
   ``--images`` subset after a warm-up epoch: the operators with the most self CPU time, and
   their share grouped by kind (convolutions, BatchNorm, dense layers, optimizer, data, ...).
2. ``steps``: seconds per 60,000-image epoch of the engine (``fit``, the same loop ``cnnlab
   train`` runs) for one change at a time: threads, channels-last, data normalised up front,
   batch size, bf16 autocast (oneDNN on AMX), narrower first layers, ``torch.compile``. Each is
   the second of two epochs over the subset (the first warms the allocator and oneDNN caches).
3. ``sweep``: complete runs of candidate recipes (``--sweep``: a JSON list of option overrides
   of the default recipe) on all 60,000 training images, test accuracy after every epoch
   (not on the clock), as ``benchmarks/fmnist_cpu_speed.py`` measures the default recipe.

Usage: python benchmarks/fmnist_cpu_profile.py --data-dir DIR --parts profile,steps [--images 8192]
       python benchmarks/fmnist_cpu_profile.py --data-dir DIR --parts sweep --sweep '[{"batch_size": 512}]'
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from cnnlab.cli.types import positive_int
from cnnlab.cli.main import keep_freed_memory
from cnnlab.data import load_dataset
from cnnlab.data.tensor_loader import TensorLoader
from cnnlab.models import create_model
from cnnlab.core.seeding import seed_everything
from cnnlab.train.engine import fit
from cnnlab.train.config import TrainConfig
from cnnlab.train.tasks import ClassificationTask
from fmnist_cpu_speed import host, run_cnnlab

# The Fashion-MNIST default recipe before this study (main at issue 16's start).
BASE_MODEL = {"width": 32}
BASE = dict(epochs=2, batch_size=128, lr=0.1, label_smoothing=0.1)
# One change at a time: (name, model kwargs, TrainConfig overrides, loader options, threads)
VARIANTS = [
    ("baseline", {}, {}, {}, None),
    ("1 thread", {}, {}, {}, 1),
    ("no channels-last (NCHW)", {}, {"channels_last": False}, {}, None),
    ("data normalised once in memory", {}, {}, {"prenormalize": True}, None),
    ("batch 256", {}, {"batch_size": 256}, {}, None),
    ("batch 512", {}, {"batch_size": 512}, {}, None),
    ("bf16 autocast (AMX)", {}, {"cpu_amp": True}, {}, None),
    ("width 24", {"width": 24}, {}, {}, None),
    ("first block width 16", {"first_width": 16}, {}, {}, None),
    ("torch.compile", {}, {"compile": True}, {}, None),
    ("bf16 + batch 512", {}, {"cpu_amp": True, "batch_size": 512}, {}, None),
    ("bf16 + batch 512 + first width 16 + prenormalised", {"first_width": 16}, {"cpu_amp": True, "batch_size": 512},
     {"prenormalize": True}, None),
]
KINDS = [("convolution", "convolution"), ("batch_norm", "batchnorm"), ("addmm", "dense"), ("mm", "dense"),
         ("linear", "dense"), ("relu", "relu"), ("threshold", "relu"), ("max_pool", "max-pool"),
         ("dropout", "dropout"), ("bernoulli", "dropout"), ("foreach", "optimizer"), ("sgd", "optimizer"),
         ("cross_entropy", "loss"), ("log_softmax", "loss"), ("nll", "loss"), ("index", "data"),
         ("randperm", "data"), ("copy_", "copies/casts"), ("to_copy", "copies/casts"), ("reorder", "copies/casts")]


def kind_of(op: str) -> str:
    return next((kind for key, kind in KINDS if key in op.lower()), "other")


def self_cpu_by_kind(events) -> dict[str, float]:
    """Percent of the profiler events' self CPU time by kind of op (``kind_of``), largest first."""
    total = sum(e.self_cpu_time_total for e in events)
    by_kind: dict[str, float] = defaultdict(float)
    for e in events:
        by_kind[kind_of(e.key)] += e.self_cpu_time_total
    return {k: round(100 * v / total, 1) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])}


def loaders(splits, n: int, batch_size: int, prenormalize: bool = False) -> TensorLoader:
    sub = splits.train.subset(torch.arange(n))
    return TensorLoader(sub, batch_size, splits.mean, splits.std, shuffle=True, seed=0, prenormalize=prenormalize)


def epoch_seconds(splits, n: int, model_kwargs: dict, overrides: dict, loader_opts: dict,
                  threads: int | None) -> dict:
    """Seconds of the second of two epochs over ``n`` images, scaled to 60,000 images."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        cfg = TrainConfig(**{**BASE, **overrides})
        seed_everything(0)
        model = create_model("simple-cnn", num_classes=10, in_chans=1, **{**BASE_MODEL, **model_kwargs})
        history = fit(model, loaders(splits, n, cfg.batch_size, **loader_opts), None, ClassificationTask(10, 0.1), cfg,
                      progress=False)
    finally:
        torch.set_num_threads(before)
    row = {"epoch_seconds_60k": round(history[1]["seconds"] * 60000 / n, 1)}
    if "compile_seconds" in history[0]:
        row["compile_seconds"] = round(history[0]["compile_seconds"], 1)
    return row


def profile_epoch(splits, n: int, top: int = 20) -> dict:
    cfg = TrainConfig(**{**BASE, "epochs": 1})
    seed_everything(0)
    model = create_model("simple-cnn", num_classes=10, in_chans=1, **BASE_MODEL)
    fit(model, loaders(splits, n, cfg.batch_size), None, ClassificationTask(10, 0.1), cfg, progress=False)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fit(model, loaders(splits, n, cfg.batch_size), None, ClassificationTask(10, 0.1), cfg, progress=False)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    return {"images": n, "self_cpu_seconds": round(total / 1e6, 2), "by_kind_percent": self_cpu_by_kind(events),
            "top_ops": [{"op": e.key, "self_cpu_percent": round(100 * e.self_cpu_time_total / total, 1),
                         "calls": e.count} for e in events[:top]]}


def sweep_list(text: str) -> list[dict]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON list of objects, got {text!r} ({exc.msg})") from None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise argparse.ArgumentTypeError(f"expected a JSON list of objects like '[{{\"batch_size\": 512}}]', got {text!r}")
    return value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="folder holding the four Fashion-MNIST IDX .gz files")
    ap.add_argument("--parts", default="profile,steps", help="comma-separated subset of profile,steps,sweep")
    ap.add_argument("--images", type=positive_int, default=8192, help="training images per timed epoch")
    ap.add_argument("--sweep", type=sweep_list, default=[], help="JSON list of recipe overrides to run fully")
    ap.add_argument("--out", default="benchmarks/results/fmnist_cpu_profile.json")
    args = ap.parse_args()
    keep_freed_memory()
    out = Path(args.out)
    doc = json.loads(out.read_text()) if out.exists() else {}
    doc["host"] = host()
    parts = set(args.parts.split(","))
    splits = load_dataset("fashion-mnist", args.data_dir, val_fraction=0.0)

    def save() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=1))

    if "profile" in parts:
        doc["profile"] = profile_epoch(splits, args.images)
        save()
        print(json.dumps(doc["profile"], indent=1), flush=True)
    if "steps" in parts:
        doc["steps"] = []
        for name, model_kwargs, overrides, loader_opts, threads in VARIANTS:
            row = {"variant": name, **epoch_seconds(splits, args.images, model_kwargs, overrides, loader_opts, threads)}
            doc["steps"].append(row)
            save()
            print(json.dumps(row), flush=True)
    if "sweep" in parts:
        runs = doc.setdefault("sweep", [])
        for overrides in args.sweep:
            result = run_cnnlab(args.data_dir, overrides)
            runs.append({"overrides": overrides, **{k: result[k] for k in (
                "final_test_accuracy", "train_seconds", "seconds_to_92", "epochs", "compile_seconds", "params")}})
            save()
            print(json.dumps(runs[-1]), flush=True)


if __name__ == "__main__":
    main()
