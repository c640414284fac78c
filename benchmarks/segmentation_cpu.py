"""Segmentation on a CPU: the default recipes as a user runs them, and the ablation table.

Groups (``--group``), each one command short enough to hold the machine alone:

- ``dc1000``: ``cnnlab segment train --dataset dc1000`` with nothing else (the course's bar: caries
  Dice >= 0.40 on the seeded test split and on the training images, within 30 minutes);
- ``caries-resunet``: ``cnnlab segment train --recipe caries-resunet`` (003 Q8 as asked: a ResU-Net
  built here, the same bar);
- ``caries-resunet-change``: that recipe with the options of ``--change`` (one string), a row of
  ``benchmarks/results/caries_resunet_ablation.json`` (the ResU-Net ablation and the noisy-label table:
  ``--change "--corrupt-fraction 0.3 --corrupt-mode drop --loss gce+dice"``); one seed a row;
- ``camvid``: ``cnnlab segment train --dataset camvid`` (val mIoU and per-class IoU);
- ``camvid-mobilenetv2-unet``, ``camvid-unet``: the same recipe with ``--model`` changed (001 Sec.5; the
  plain U-Net at width 16: at the default width 32 a step costs 3 times the Lite0 U-Net's, 50 minutes);
- ``camvid-encoders``: the three CamVid runs side by side (val mIoU, wall time) with each model's
  parameters, multiply-adds and CPU inference images/s on a whole 360 x 480 image: what the light
  encoder buys;
- ``isbi2012``: ``cnnlab segment train --dataset isbi2012`` (pixel error on the held-out slices);
- ``isbi2012-no-skips``: the same with ``--no-skips`` (what the skip connections add, 000 Q8);
- ``ablation``: one dataset's CPU recipe (``--dataset``: ISBI 2012 by default, where the course asks
  what the skips add; or DC1000) with a shorter budget (``ABLATION_BUDGET``, or ``--epochs``,
  ``--samples``), then one change at a time: no skip connections, plain BCE instead of BCE + Dice, a
  randomly initialised encoder. Its key in ``--results`` is ``ablation-DATASET``.

Each default run is the CLI itself in a subprocess, timed from start to exit (imports, data
loading, training, threshold choice, evaluation: what a user waits for). Results are merged into
``--results`` (one key per group), so groups can run one after another.

Reproduce (data folders under DATA, e.g. /work/shared/data; on a CPU shared with other work, set
OMP_NUM_THREADS=1: two threads that wait on each other waste most of their CPU time there):
    PYTHONPATH=src python benchmarks/segmentation_cpu.py --data DATA --group dc1000
    PYTHONPATH=src python benchmarks/segmentation_cpu.py --data DATA --group ablation   # ISBI 2012, ~11 CPU-min
    PYTHONPATH=src python benchmarks/segmentation_cpu.py --data DATA --group caries-resunet-change \
        --change "--corrupt-fraction 0.3 --corrupt-mode drop --lesion-weight 10"         # ~21 min on 2 cores
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from cnnlab.cli.types import positive_int

# one change at a time from the default recipe: (row name, options)
ABLATION = (
    ("default (skips, bce+dice, pretrained)", {}),
    ("no skips", {"skips": False}),
    ("plain BCE", {"loss": "bce"}),
    ("random-init encoder", {"model_kwargs": {"pretrained": False}}),
)
# The ablation's shorter budget, so the four rows fit a shared 2-core CPU in well under half an hour
# of CPU time: ISBI's 3 x 128 crops (a sixth of the default recipe's 12 x 192) and the evaluations
# took 146-181 CPU-seconds a row on one thread; DC1000's rows score 14 of the training images
# (each a 768 x 1536 X-ray).
ABLATION_BUDGET = {"isbi2012": dict(epochs=3, samples=128),
                   "dc1000": dict(epochs=3, samples=192, train_eval_images=14)}
KEEP = ("split", "checkpoint", "images", "miou", "pixel_accuracy", "pixel_error", "dice", "iou", "inference",
        "plain", "pretrained_loaded", "threshold_choice", "model", "params", "loss_name", "recipe", "train_seconds", "wall_seconds",
        "cpu_seconds", "threads", "device", "sizes")


def summary(m: dict) -> dict:
    """The figures worth keeping from a run's metrics.json (per-class IoU and the train scores too)."""
    out = {k: m[k] for k in KEEP if k in m}
    out["epochs"] = len(m["history"])
    out["per_class_iou"] = {c: round(v["iou"], 4) for c, v in m["per_class"].items()}
    out["train"] = {k: m["train"][k] for k in ("images", "miou", "pixel_error", "dice", "iou") if k in m["train"]}
    return out


def default_run(dataset: str, data: Path, runs: Path, *extra: str, recipe: str | None = None,
                name: str | None = None) -> dict:
    """``cnnlab segment train --dataset NAME`` (or ``--recipe RECIPE``) with nothing else but where its
    data and run folder (``runs/name``) are (and ``extra`` arguments, for a one-change variant)."""
    out = runs / (name or (recipe or f"{dataset}-default") + "".join(extra).replace("--", "-"))
    env = {**os.environ, "CNNLAB_DATA": str(data)}
    chosen = ["--recipe", recipe] if recipe else ["--dataset", dataset]
    cmd = [sys.executable, "-m", "cnnlab.cli.main", "segment", "train", *chosen, *extra, "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = summary(json.loads((out / "metrics.json").read_text()))
    result.update(command=" ".join(["cnnlab", *cmd[3:]]), command_wall_seconds=round(wall, 1),
                  command_cpu_seconds=round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1))
    return result


# the CamVid recipe with another model: 001 Sec.5's MobileNetV2 U-Net and a plain U-Net (width 16: a
# 256 x 320 bf16 training step of 8 crops costs 0.68 s, Lite0's 0.75, width 32's 2.24 on 2 cores)
CAMVID_MODELS = {"camvid-mobilenetv2-unet": ("--model", "mobilenetv2-unet"),
                 "camvid-unet": ("--model", "unet", "--model-kwargs", '{"width": 16}')}
ENCODERS = {"efficientnet-lite0-unet": ("camvid", {}), "mobilenetv2-unet": ("camvid-mobilenetv2-unet", {}),
            "unet": ("camvid-unet", {"width": 16})}


def change_row(m: dict, change: str, wall: float) -> dict:
    """One row of the caries-resunet table: held-out and training Dice (the latter against the masks it
    trained on, corrupted ones included), the best validation epoch, the noise and its handling."""
    best = max(m["history"], key=lambda h: h.get("val_dice", -1))
    row = {"change": change, "test_dice": round(m["dice"], 4), "train_dice": round(m["train"]["dice"], 4),
           "test_dice_plain": round(m["plain"]["dice"], 4), "threshold": m["threshold_choice"]["threshold"],
           "best_val_dice_at_05": round(best["val_dice"], 4), "best_epoch": best["epoch"],
           "train_seconds": round(m["train_seconds"], 1), "wall_seconds": round(wall), "loss": m["loss_name"],
           "noisy": m["noisy"]}
    if m["noisy"]["corrupt_fraction"] > 0:
        row["train_dice_against"] = "the corrupted training masks"
    return row


def add_change_row(path: Path, row: dict) -> None:
    """``row`` into the table at ``path`` (read again just before writing), replacing one of the same change."""
    table = read_results(path)
    table["rows"] = [r for r in table.get("rows", []) if r["change"] != row["change"]] + [row]
    path.write_text(json.dumps(table, indent=1) + "\n")


def inference_cost(model: str, kwargs: dict, classes: int = 11, size: tuple[int, int] = (360, 480),
                   batch: int = 4) -> dict:
    """Parameters, multiply-adds and CPU forward images/s (float32, as ``segment evaluate`` runs, channels-
    last, the median of 5 batches after one warm-up) of ``model`` on whole ``size`` RGB images."""
    from cnnlab.analysis.complexity import count_macs
    from cnnlab.runs.restore import build_model
    sys.path.insert(0, str(Path(__file__).parent))
    from export_speed import timed  # the median of repeated calls

    net = build_model(model, classes, 3, **kwargs).eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, *size).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        net(x)  # warm-up
        seconds = timed(lambda: net(x), 5)
    return {"params": sum(p.numel() for p in net.parameters()), "macs": count_macs(net, (3, *size)),
            "images_per_second": round(batch / seconds, 2)}


def encoders(results: dict) -> dict:
    """One row per CamVid model: its run's val mIoU and wall time (from ``results``) and its cost."""
    rows = {}
    for model, (key, kwargs) in ENCODERS.items():
        run = results.get(key, {})
        rows[model] = {**inference_cost(model, kwargs), "model_kwargs": kwargs, "miou": run.get("miou"),
                       "per_class_iou": run.get("per_class_iou"), "wall_seconds": run.get("command_wall_seconds"),
                       "pretrained_loaded": run.get("pretrained_loaded"), "run": key if run else None}
        print(f"{model:24s} {rows[model]}", flush=True)
    return {"rows": rows}


def ablation(dataset: str, data: Path, runs: Path, **budget) -> dict:
    """``dataset``'s CPU recipe with the ``budget`` options (epochs, samples, ...) and one change per
    row; the table with the budget it was measured with."""
    from cnnlab.segment.api import train_segmenter

    rows = {}
    for name, options in ABLATION:
        slug = name.split(" (")[0].replace(" ", "-")
        m = train_segmenter(dataset, data_dir=data / dataset, out=runs / f"{dataset}-ablation-{slug}",
                            progress=False, **{**budget, **options})
        rows[name] = summary(m)
        print(f"{name:40s} pixel error {m['pixel_error']:.4f}  test Dice {m['dice']:.4f}  IoU {m['iou']:.4f}  "
              f"train Dice {m['train']['dice']:.4f}  {m['cpu_seconds']:.0f} CPU-s", flush=True)
    return {"dataset": dataset, "budget": budget, "rows": rows}


def ablation_budget(args: argparse.Namespace) -> dict:
    """The dataset's ``ABLATION_BUDGET`` with ``--epochs``, ``--samples``, ``--train-images`` over it."""
    given = {"epochs": args.epochs, "samples": args.samples, "train_eval_images": args.train_images}
    return {**ABLATION_BUDGET[args.dataset], **{k: v for k, v in given.items() if v is not None}}


def read_results(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder holding camvid/, dc1000/, isbi2012/")
    ap.add_argument("--group", required=True, choices=["dc1000", "caries-resunet", "caries-resunet-change", "camvid",
                                                       *CAMVID_MODELS, "camvid-encoders", "isbi2012",
                                                       "isbi2012-no-skips", "ablation"])
    ap.add_argument("--change", help="caries-resunet-change: the options that differ from the recipe, one string")
    ap.add_argument("--table", type=Path, default=Path("benchmarks/results/caries_resunet_ablation.json"),
                    help="caries-resunet-change: the table its row goes to")
    ap.add_argument("--dataset", choices=sorted(ABLATION_BUDGET), default="isbi2012", help="ablation: the dataset")
    ap.add_argument("--epochs", type=positive_int, help="ablation: epochs of every run (default: ABLATION_BUDGET)")
    ap.add_argument("--samples", type=positive_int, help="ablation: crops per epoch (default: ABLATION_BUDGET)")
    ap.add_argument("--train-images", type=positive_int, help="ablation: training images scored")
    ap.add_argument("--runs", type=Path, default=Path("runs/seg-cpu"), help="run folders (checkpoints)")
    ap.add_argument("--results", type=Path, default=Path("benchmarks/results/segmentation_cpu.json"))
    return ap


def main(argv: list[str] | None = None) -> None:
    ap = parser()
    args = ap.parse_args(argv)
    key = args.group
    if args.group == "caries-resunet-change":
        if not args.change:
            ap.error("--group caries-resunet-change needs --change \"OPTIONS\" (what differs from the recipe)")
        slug = "".join(c if c.isalnum() or c in ".-" else "-" for c in args.change).strip("-")
        result = default_run("dc1000", args.data, args.runs, *shlex.split(args.change), recipe="caries-resunet",
                             name=f"caries-resunet-{slug}")
        m = json.loads((args.runs / f"caries-resunet-{slug}" / "metrics.json").read_text())
        row = {**change_row(m, args.change, result["command_wall_seconds"]), "command": result["command"],
               "measured": f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
                           f"{os.cpu_count()} cores"}
        add_change_row(args.table, row)
        print(json.dumps(row, indent=1))
        return
    if args.group == "ablation":
        key = f"ablation-{args.dataset}"
        result = ablation(args.dataset, args.data, args.runs, **ablation_budget(args))
    elif args.group == "caries-resunet":
        result = default_run("dc1000", args.data, args.runs, recipe="caries-resunet")
    elif args.group in CAMVID_MODELS:
        result = default_run("camvid", args.data, args.runs, *CAMVID_MODELS[args.group], name=args.group)
    elif args.group == "camvid-encoders":
        result = encoders(read_results(args.results))
    elif args.group == "isbi2012-no-skips":
        result = default_run("isbi2012", args.data, args.runs, "--no-skips")
    else:
        result = default_run(args.group, args.data, args.runs)
    result["machine"] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                         "torch": torch.__version__, "threads": torch.get_num_threads(),
                         "load_average_after": os.getloadavg()}
    results = read_results(args.results)  # read again: another group may have written since this one started
    results[key] = result
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k not in ("per_class_iou", "rows")}, indent=1))


if __name__ == "__main__":
    main()
