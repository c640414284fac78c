"""Every architecture in the registry trained on CIFAR-10 under ONE recipe and ONE time budget.

The zoo is ``cnnlab.models.zoo.zoo_models()``: every registered classifier trained from scratch
(segmentation and pretrained models excluded), each with its 32x32 stem; EfficientNet-B0..B3 keep
their compound-scaled resolution (32, 37, 42, 49 px, resized inside the model), so the plot shows
what compound scaling buys. Each model gets the same share of the wall-clock budget: a short
calibration times its training step, the number of steps that fit the share (after its test pass)
is trained with the shared recipe (``cnnlab train --dataset cifar10``'s: SGD + Nesterov, one-cycle,
label smoothing 0.2, flips and shifts; the LR scaled linearly with the batch from 0.2 at 256), then
the test accuracy is measured at the end of that budget (no model selection on the test split).
When fewer steps than one epoch fit, the model trains one epoch on a seeded part of the training
set (its ``epochs`` column is then a fraction). Models run cheapest first; time a model does not
use goes to the ones after it.

Output (``--out``, default ``benchmarks/results/cifar10_zoo_{gpu,cpu}``): ``.json`` rewritten after every
model, ``.md`` (the table) and ``.png`` (test accuracy vs MACs, the Pareto front marked, EfficientNet-B0..B3
joined). Columns: test accuracy, parameters, MACs per image, training seconds, epochs, inference images/s
(test-set evaluation, batch 512, bf16 autocast on a GPU).

GPU (the whole zoo in one run of at most 8 minutes on an H100: the 400 s budget includes decoding the data,
which leaves 80 s for starting Python and CUDA, the last model's overrun and the plot):
    PYTHONPATH=src python benchmarks/cifar10_zoo.py --data-dir DATA/cifar10 --budget 400
CPU ranking on a subset (2 cores, within 30 minutes; the table says it is a subset):
    PYTHONPATH=src python benchmarks/cifar10_zoo.py --data-dir DATA/cifar10 --device cpu --subset 5000 \\
        --test-subset 1000 --budget 1500
Smoke test (seconds): add ``--smoke`` (200 training / 100 test images, 3 models, each trained on one
batch after its calibration, whatever the budget: it checks the pipeline, not the speed).
"""
from __future__ import annotations

import argparse
import json
import math
import textwrap
import time
from pathlib import Path

import torch
from torch import nn

from cnnlab.cli.types import device as device_arg
from cnnlab.cli.types import positive_float, positive_int
from cnnlab.classify.api import make_loaders
from cnnlab.classify.recipes import train_config
from cnnlab.data import DatasetSplits, load_dataset, seeded_split
from cnnlab.analysis.complexity import count_macs, count_params
from cnnlab.models.zoo import zoo_models, zoo_model, zoo_resolution
from cnnlab.report.plots import plt, save_figure
from cnnlab.core.seeding import seed_everything
from cnnlab.train.engine import autocast, build_optimizer, evaluate, fit
from cnnlab.train.config import TrainConfig
from cnnlab.train.tasks import ClassificationTask

RESULTS = Path(__file__).parent / "results"
BASE_LR, BASE_BATCH = 0.2, 256  # the cifar10 recipe's peak LR at its batch size
SMOKE_MODELS = ["simple-cnn", "efficientnet-b0", "efficientnet-b1"]


def recipe(batch_size: int, device: str, **overrides) -> TrainConfig:
    """The shared recipe: ``cnnlab train --dataset cifar10``'s, LR scaled with the batch size."""
    return train_config("cifar10", batch_size=batch_size, lr=BASE_LR * batch_size / BASE_BATCH, device=device,
                        **overrides)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_image(net: nn.Module, splits: DatasetSplits, cfg: TrainConfig, min_seconds: float) -> float:
    """Training seconds per image at ``cfg.batch_size`` on real augmented batches: two untimed steps
    (one when a step is slow) for allocator warm-up and cuDNN autotuning, then timed steps until
    ``min_seconds`` have passed (at least two). The model is thrown away afterwards."""
    device = cfg.resolved_device()
    net = net.to(device, memory_format=torch.channels_last).train()
    opt = build_optimizer(net, cfg)
    task = ClassificationTask(splits.num_classes, cfg.label_smoothing)
    batches = iter(make_loaders(splits, cfg)[0])

    def step() -> float:
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(make_loaders(splits, cfg)[0])
            x, y = next(batches)
        t0 = time.perf_counter()
        with autocast(device, cfg.amp):
            loss = task.loss(net(x.contiguous(memory_format=torch.channels_last)).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync(device)
        return time.perf_counter() - t0

    if step() < 2.0:
        step()
    times = [step(), step()]
    while sum(times) < min_seconds and len(times) < 50:
        times.append(step())
    return sum(times) / (len(times) * cfg.batch_size)


def plan(seconds: float, per_image: float, batch: int, train_size: int, max_epochs: int) -> tuple[int, int]:
    """``(epochs, images per epoch)`` that fit ``seconds``: whole epochs when one fits, else one
    epoch on the images that fit (0 when not even one batch does)."""
    images = int(seconds / per_image)
    if images >= train_size:
        return min(max_epochs, images // train_size), train_size
    return (1, images // batch * batch) if images >= batch else (0, 0)


def run_model(name: str, splits: DatasetSplits, share: float, args: argparse.Namespace) -> dict:
    """Calibrate, train within ``share`` seconds, test: one row of the table."""
    started = time.perf_counter()
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    cfg = recipe(args.batch_size, str(device))
    with torch.device("meta"):
        probe = zoo_model(name, splits.num_classes)
    row = dict(model=name, resolution=zoo_resolution(name), params=count_params(probe),
               macs=count_macs(probe, (3, 32, 32)))
    per_image = seconds_per_image(zoo_model(name, splits.num_classes), splits, cfg, min_seconds=max(1.0, 0.04 * share))
    test_estimate = len(splits.test) * per_image / 3  # a forward pass is about a third of a training step
    left = share - (time.perf_counter() - started) - test_estimate
    epochs, images = plan(left, per_image, args.batch_size, len(splits.train), args.max_epochs)
    if args.smoke:  # a check of the pipeline, not of speed: one batch per model whatever the machine's load
        epochs, images = 1, min(args.batch_size, len(splits.train))
    row.update(calibration_seconds=round(time.perf_counter() - started, 2),
               train_seconds_per_epoch_estimate=round(per_image * len(splits.train), 2))
    if epochs == 0:
        row["skipped"] = (f"not one batch fits: {per_image * args.batch_size:.1f} s per step and about "
                          f"{test_estimate:.0f} s of testing against a share of {share:.0f} s")
        return row
    train = splits
    if images < len(splits.train):  # part of one epoch: a seeded, class-balanced part of the training set
        part = seeded_split(splits.train, images / len(splits.train), args.seed)[1]
        train = DatasetSplits(splits.name, splits.classes, part, splits.test, None, splits.mean, splits.std,
                              splits.augment)
    cfg = recipe(args.batch_size, str(device), epochs=epochs, seed=args.seed)
    seed_everything(cfg.seed)
    net = zoo_model(name, splits.num_classes)
    train_loader, _, test_loader = make_loaders(train, cfg)
    task = ClassificationTask(splits.num_classes, cfg.label_smoothing)
    history = fit(net, train_loader, None, task, cfg, progress=False)
    if device.type == "cuda":  # cuDNN picks its kernels for both test batch shapes outside the timing
        batches = list(test_loader)
        evaluate(net, [batches[0], batches[-1]], task, device)
    sync(device)
    t0 = time.perf_counter()
    acc = evaluate(net, test_loader, task, device)["accuracy"]
    sync(device)
    infer = time.perf_counter() - t0
    row.update(epochs=round(epochs * len(train.train) / len(splits.train), 3), train_images=len(train.train),
               train_seconds=round(sum(r["seconds"] for r in history), 2),
               final_train_accuracy=round(history[-1]["train_accuracy"], 4), test_accuracy=round(acc, 4),
               inference_images_per_s=round(len(splits.test) / infer, 1),
               total_seconds=round(time.perf_counter() - started, 2))
    return row


def pareto(rows: list[dict]) -> list[dict]:
    """Rows no other row beats on both accuracy (higher) and MACs (lower), by increasing MACs."""
    front, best = [], -math.inf
    for r in sorted(rows, key=lambda r: (r["macs"], -r["test_accuracy"])):
        if r["test_accuracy"] > best:
            front.append(r)
            best = r["test_accuracy"]
    return front


def plot(doc: dict, path: Path) -> Path:
    """Test accuracy against MACs (log scale), the Pareto front as a step line, EfficientNet-B0..B3 joined."""
    rows = [r for r in doc["models"] if "test_accuracy" in r]
    fig, ax = plt.subplots(figsize=(9, 6.5))
    ax.scatter([r["macs"] for r in rows], [r["test_accuracy"] for r in rows], color="tab:blue", zorder=3)
    for r in rows:
        ax.annotate(r["model"], (r["macs"], r["test_accuracy"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = pareto(rows)
    ax.step([r["macs"] for r in front], [r["test_accuracy"] for r in front], where="post", color="tab:red",
            label="Pareto front (no model is both cheaper and more accurate)")
    eff = sorted((r for r in rows if r["model"].startswith("efficientnet-b")), key=lambda r: r["macs"])
    if eff:
        ax.plot([r["macs"] for r in eff], [r["test_accuracy"] for r in eff], "s--", color="tab:green",
                label="EfficientNet-B0..B3 (compound scaling: depth, width, resolution)")
    ax.set_xscale("log")
    ax.set_xlabel("MACs per 32x32 image")
    ax.set_ylabel("test accuracy")
    ax.set_title(textwrap.fill(f"CIFAR-10 zoo on {doc['device']}: {doc['setting']}", 110), fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    return save_figure(fig, path)


def table(doc: dict) -> str:
    """The Markdown table (most accurate first; skipped models last, with the reason)."""
    done = sorted((r for r in doc["models"] if "test_accuracy" in r), key=lambda r: -r["test_accuracy"])
    front = {r["model"] for r in pareto(done)}
    lines = [f"CIFAR-10 zoo on {doc['device']}: {doc['setting']}", "",
             "| model | test acc | params | MACs | input | epochs | train s | inference img/s | Pareto |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in done:
        lines.append(f"| {r['model']} | {r['test_accuracy']:.4f} | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e6:.1f}M | "
                     f"{r['resolution']} | {r['epochs']:g} | {r['train_seconds']:.1f} | "
                     f"{r['inference_images_per_s']:.0f} | {'yes' if r['model'] in front else ''} |")
    for r in doc["models"]:
        if "skipped" in r:
            lines.append(f"| {r['model']} | not trained | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e6:.1f}M | "
                         f"{r['resolution']} | 0 | | | {r['skipped']} |")
    lines += ["", f"whole run: {doc.get('wall_seconds', 0):.0f} s of a {doc['budget']:.0f} s budget"]
    return "\n".join(lines)


def load(args: argparse.Namespace) -> DatasetSplits:
    """CIFAR-10 (all of train, no validation split), optionally seeded, stratified subsets of train and test."""
    splits = load_dataset("cifar10", args.data_dir, val_fraction=0.0, seed=args.seed, subset=args.subset)
    if args.test_subset and args.test_subset < len(splits.test):
        splits.test = seeded_split(splits.test, args.test_subset / len(splits.test), args.seed)[1]
    return splits


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="CIFAR-10 (image-folder tree or pickle release)")
    ap.add_argument("--device", type=device_arg, default="auto")
    ap.add_argument("--budget", type=positive_float, help="wall seconds for the whole run (default: 400 on a GPU, "
                                                          "1500 on a CPU)")
    ap.add_argument("--subset", type=positive_int, help="train on this many training images (stratified, seeded)")
    ap.add_argument("--test-subset", type=positive_int, help="test on this many test images (default: all 10,000)")
    ap.add_argument("--batch-size", type=positive_int, help="default: 256 on a GPU, 64 on a CPU")
    ap.add_argument("--max-epochs", type=positive_int, default=60)
    ap.add_argument("--models", help="comma-separated subset of the zoo (default: all of it)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="results path without suffix")
    ap.add_argument("--smoke", action="store_true", help="a seconds-long check of the whole pipeline (3 models, "
                                                          "one training batch each)")
    ap.add_argument("--replot", type=Path, help="only rewrite the .md table and .png plot of this results .json")
    args = ap.parse_args(argv)
    if args.replot:
        doc = json.loads(args.replot.read_text())
        args.replot.with_suffix(".md").write_text(table(doc) + "\n")
        plot(doc, args.replot.with_suffix(".png"))
        return
    started = time.perf_counter()
    cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    if args.smoke:
        args.subset, args.test_subset, args.budget = args.subset or 200, args.test_subset or 100, args.budget or 20
        args.models = args.models or ",".join(SMOKE_MODELS)
    args.budget = args.budget or (400.0 if cuda else 1500.0)
    args.batch_size = args.batch_size or (256 if cuda else 64)
    out = args.out or RESULTS / f"cifar10_zoo_{'gpu' if cuda else 'cpu'}{'_smoke' if args.smoke else ''}"
    torch.backends.cudnn.benchmark = True
    splits = load(args)
    names = args.models.split(",") if args.models else zoo_models()
    with torch.device("meta"):  # cheapest first: a budget overrun then costs the most expensive rows
        names.sort(key=lambda n: count_macs(zoo_model(n), (3, 32, 32)))
    cfg = recipe(args.batch_size, "cpu")
    sub = f"SUBSET of {len(splits.train)} training / {len(splits.test)} test images" \
        if args.subset or args.test_subset else "all 50,000 training / 10,000 test images"
    doc = {"device": torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads)",
           "torch": torch.__version__, "budget": args.budget, "batch_size": args.batch_size,
           "recipe": {k: getattr(cfg, k) for k in ("optimizer", "lr", "momentum", "weight_decay", "schedule",
                                                    "label_smoothing")} | {"augment": splits.augment},
           "setting": f"{sub}; equal time share per model of a {args.budget:.0f} s budget, batch {args.batch_size}, "
                      f"SGD+Nesterov one-cycle peak lr {cfg.lr:g}, label smoothing {cfg.label_smoothing}",
           "data_seconds": round(time.perf_counter() - started, 1), "models": []}
    for i, name in enumerate(names):
        share = (args.budget - (time.perf_counter() - started)) / (len(names) - i)
        row = run_model(name, splits, share, args)
        doc["models"].append(row)
        doc["wall_seconds"] = round(time.perf_counter() - started, 1)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(doc, indent=1))
        print(json.dumps(row), flush=True)
    out.with_suffix(".md").write_text(table(doc) + "\n")
    plot(doc, out.with_suffix(".png"))
    print(table(doc))


if __name__ == "__main__":
    main()
