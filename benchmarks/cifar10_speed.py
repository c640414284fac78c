"""CIFAR-10 on one GPU: cnnlab's ``cifar10-fast`` recipe against the unmodified legacy airbench94, one run.

Both sides train on the same decoded pixels: the JPEG image-folder tree is decoded once by
cnnlab, and airbench gets those pixels as its ``cifar10/{train,test}.pt`` (see
``benchmarks/airbench_peer.py``). The peer is ``legacy/airbench94.py`` from
github.com/KellerJordan/cifar10-airbench, unmodified and uncompiled (``--airbench-script``;
keep it in the ignored ``.peers/``): one warm-up run on random labels, then ``--runs`` timed
runs; its seconds are its own CUDA-event timer (whitening init + training + TTA evaluation).

cnnlab runs its ``cifar10-fast`` named recipe (``cnnlab train --recipe cifar10-fast``: speed-vgg,
whitening stem, lookahead, alternating flips, TTA level 2) through its engine: one 1-epoch warm-up
run (it meets every batch shape), then ``--runs`` timed runs per epoch count of ``--epochs-list``, timed like airbench (CUDA
synchronised around ``fit`` — whitening init and training — plus the TTA test evaluation; the
loaders, i.e. the upload and one-time normalisation of the images, are built before the clock,
as airbench loads its tensors before its clock). Epoch counts are tried in order until cnnlab's
mean TTA accuracy reaches airbench's own mean accuracy; the ratio is that setting's mean
seconds over airbench's mean seconds (null if no setting reaches it within ``--deadline``). A
setting starts only if its runs, predicted from the seconds per epoch measured so far (the
warm-up's at first) plus 20%, end before the deadline, so the script stays inside its budget.

``--compile`` runs cnnlab under ``torch.compile``; its compile time is reported apart
(``compile_seconds``) and is not in the seconds. ``--smoke`` checks the script on the CPU:
512 training and 256 test images, 1 epoch, 1 run, no peer (airbench needs CUDA).

Usage: python benchmarks/cifar10_speed.py --data-dir /path/cifar10 \\
         --airbench-script .peers/cifar10-airbench/legacy/airbench94.py [--runs 3] [--epochs-list 10,11,12]
       python benchmarks/cifar10_speed.py --data-dir /path/cifar10 --smoke
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from airbench_peer import run_legacy_airbench94, write_airbench_data
from cnnlab.cli import types as argtypes
from cnnlab.classify.api import make_loaders
from cnnlab.classify.recipes import resolve_options, train_config
from cnnlab.data import load_dataset
from cnnlab.data.tensor_loader import TensorLoader
from cnnlab.models import create_model
from cnnlab.core.seeding import seed_everything
from cnnlab.train.engine import evaluate, fit
from cnnlab.train.tasks import ClassificationTask

RECIPE = "cifar10-fast"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cnnlab_run(splits, epochs: int, seed: int, compile_model: bool, device: str) -> dict:
    """One complete cifar10-fast run; seconds = fit (whitening init + training) + TTA test evaluation."""
    _, opts = resolve_options("cifar10", RECIPE)
    cfg = train_config("cifar10", RECIPE, epochs=epochs, seed=seed, compile=compile_model, device=device)
    dev = cfg.resolved_device()
    seed_everything(seed)
    model = create_model(opts["model"], num_classes=splits.num_classes, in_chans=splits.in_chans,
                         **opts["model_kwargs"])
    train_loader, _, _ = make_loaders(splits, cfg, opts["augment"], opts["vflip"])
    test_loader = TensorLoader(splits.test, 2000, splits.mean, splits.std, device=dev, dtype=train_loader.dtype,
                               prenormalize=True)
    task = ClassificationTask(splits.num_classes, cfg.label_smoothing)
    _sync(dev)
    t0 = time.perf_counter()
    history = fit(model, train_loader, None, task, cfg, progress=False)
    acc = evaluate(model, test_loader, task, dev, cfg.amp, tta=cfg.tta, cpu_amp=cfg.cpu_amp)["accuracy"]
    _sync(dev)
    compile_seconds = history[0].get("compile_seconds") or 0.0
    return {"epochs": epochs, "seed": seed, "tta_accuracy": round(acc, 4),
            "seconds": round(time.perf_counter() - t0 - compile_seconds, 3),
            "compile_seconds": round(compile_seconds, 1) if compile_model else None}


def cnnlab_setting(splits, epochs: int, runs: int, compile_model: bool, device: str) -> dict:
    rows = [cnnlab_run(splits, epochs, seed, compile_model, device) for seed in range(runs)]
    for r in rows:
        print(f"  cnnlab {epochs} epochs, seed {r['seed']}: {r['tta_accuracy']:.4f} in {r['seconds']:.2f} s", flush=True)
    return {"epochs": epochs, "runs": rows, "mean_acc": statistics.mean(r["tta_accuracy"] for r in rows),
            "mean_seconds": statistics.mean(r["seconds"] for r in rows)}


def subset(splits, train_images: int | None, test_images: int | None):
    """A seeded random subset of each split (the tree is read class by class, so not the first N)."""
    g = torch.Generator().manual_seed(0)
    if train_images:
        splits.train = splits.train.subset(torch.randperm(len(splits.train), generator=g)[:train_images])
    if test_images:
        splits.test = splits.test.subset(torch.randperm(len(splits.test), generator=g)[:test_images])
    return splits


def epochs_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated epoch counts like 10,11,12, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"epoch counts must be >= 1, got {text!r}")
    return values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="CIFAR-10 image-folder tree (train/, test/)")
    ap.add_argument("--airbench-script", help="unmodified legacy/airbench94.py (the peer is skipped without it)")
    ap.add_argument("--workdir", default="/tmp/airbench94", help="where airbench's cifar10/{train,test}.pt go")
    ap.add_argument("--runs", type=argtypes.positive_int, default=3, help="timed runs of each side, after one warm-up")
    ap.add_argument("--epochs-list", type=epochs_list, default=[10, 11, 12],
                    help="cnnlab epoch counts tried in order until airbench's mean accuracy is reached")
    ap.add_argument("--compile", action="store_true", help="torch.compile cnnlab's model (compile time apart)")
    ap.add_argument("--deadline", type=argtypes.positive_float, default=330.0,
                    help="seconds for the whole script: a cnnlab setting starts only if its time, predicted "
                         "from the seconds per epoch measured so far, fits before it")
    ap.add_argument("--device", type=argtypes.device, default="auto", help="cnnlab's device (auto: the GPU when there is one)")
    ap.add_argument("--train-images", type=argtypes.positive_int, help="use only the first N training images")
    ap.add_argument("--test-images", type=argtypes.positive_int, help="use only the first N test images")
    ap.add_argument("--smoke", action="store_true", help="CPU check: 512/256 images, 1 epoch, 1 run, no peer")
    ap.add_argument("--out", help="JSON result (default benchmarks/results/cifar10_speed.json; "
                                  "cifar10_speed_smoke.json in the working folder with --smoke)")
    args = ap.parse_args()
    if args.smoke:
        args.train_images, args.test_images, args.epochs_list, args.runs = 512, 256, [1], 1
        args.airbench_script, args.device = None, "cpu"
    out = Path(args.out or ("cifar10_speed_smoke.json" if args.smoke else "benchmarks/results/cifar10_speed.json"))
    started = time.perf_counter()
    torch.backends.cudnn.benchmark = True
    gpu = torch.cuda.is_available() and args.device != "cpu"
    splits = subset(load_dataset("cifar10", args.data_dir, val_fraction=0.0), args.train_images, args.test_images)
    doc: dict = {"device": torch.cuda.get_device_name() if gpu else "cpu", "torch": torch.__version__,
                 "recipe": RECIPE, "train_images": len(splits.train), "test_images": len(splits.test),
                 "smoke": args.smoke, "compile": args.compile, "airbench": None, "cnnlab": []}
    if args.airbench_script:
        if not gpu:
            ap.error("the airbench peer needs a CUDA GPU (leave out --airbench-script to time cnnlab alone)")
        write_airbench_data(args.data_dir, args.workdir)
        doc["airbench"] = run_legacy_airbench94(Path(args.airbench_script).resolve(), args.workdir, args.runs)
        print(f"airbench94 (legacy, eager): {doc['airbench']['mean_acc']:.4f} in {doc['airbench']['mean_seconds']:.2f} s",
              flush=True)
    target = doc["airbench"]["mean_acc"] if doc["airbench"] else None
    warm = cnnlab_run(splits, 1, 1000, args.compile, args.device)  # warm-up: cuDNN autotuning, allocator; every shape
    epoch_seconds = warm["seconds"]  # an upper bound: the 1-epoch run also pays the TTA evaluation
    for epochs in args.epochs_list:
        predicted = 1.2 * args.runs * epochs * epoch_seconds
        if time.perf_counter() - started + predicted > args.deadline:
            doc["cnnlab"].append({"epochs": epochs, "skipped": f"{predicted:.0f} s predicted would pass the "
                                                                f"deadline of {args.deadline:.0f} s"})
            break
        setting = cnnlab_setting(splits, epochs, args.runs, args.compile, args.device)
        epoch_seconds = setting["mean_seconds"] / epochs
        doc["cnnlab"].append(setting)
        if target is None or setting["mean_acc"] >= target:
            break
    measured = [s for s in doc["cnnlab"] if "mean_acc" in s]
    reached = [s for s in measured if target is not None and s["mean_acc"] >= target]
    best = reached[0] if reached else max(measured, key=lambda s: s["mean_acc"], default=None)
    doc.update(cnnlab_accuracy=best and best["mean_acc"], cnnlab_seconds=best and best["mean_seconds"],
               cnnlab_epochs=best and best["epochs"], airbench_accuracy=target,
               airbench_seconds=doc["airbench"]["mean_seconds"] if target else None,
               ratio=best["mean_seconds"] / doc["airbench"]["mean_seconds"] if reached else None,
               script_seconds=round(time.perf_counter() - started, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    if best is None:
        print(f"cnnlab {RECIPE}: no setting fitted in the deadline of {args.deadline:.0f} s")
    else:
        print(f"cnnlab {RECIPE}: {best['mean_acc']:.4f} mean TTA accuracy in {best['mean_seconds']:.2f} s "
              f"({best['epochs']} epochs, {len(best['runs'])} runs, {doc['device']})")
    if target is not None:
        ratio = "not reached" if doc["ratio"] is None else f"{doc['ratio']:.2f}"
        print(f"airbench94: {target:.4f} in {doc['airbench_seconds']:.2f} s; ratio at airbench's accuracy: {ratio}")
    print(f"wrote {out} ({doc['script_seconds']:.0f} s in all)")


if __name__ == "__main__":
    main()
