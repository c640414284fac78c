"""The course's named recipes, each on ALL its data with its CPU preset, run one after another.

Each recipe runs as a user runs it on a laptop: ``cnnlab train --recipe NAME --preset cpu``, every
training image, the whole test split, the recipe's own epochs, default threads, in its own process
and alone on the machine (two runs sharing two cores corrupt both figures: run nothing beside
this). Before the recipes it measures the host's fp32 and bf16 matmul FLOP/s, so each row's
achieved training FLOP/s (6 x forward MACs per training image: the backward costs about twice the
forward) is a fraction of what this CPU allows, measured in the same run.

``run`` trains and writes ``cpu.json`` beside each run folder's files; ``table`` copies each run's
``config.json``, ``metrics.json``, ``curves.png`` and ``cpu.json`` to ``benchmarks/results/recipes_cpu/NAME/``,
writes ``benchmarks/results/course_recipes_cpu.json`` (one row per recipe) and prints the table
that docs/course.md quotes.

    python benchmarks/course_recipes.py run [NAME ...] [--runs runs/recipes_cpu]
    python benchmarks/course_recipes.py table [--runs runs/recipes_cpu]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from fmnist_cpu_speed import host  # a sibling script: the CPU, threads and versions a table ran with

RESULTS = Path(__file__).parent / "results"
DATA = os.environ.get("CNNLAB_DATA", "../shared/data")
# the recipes measured, in the order they run; cifar10-transfer-resnet50 is left out: its weights
# download from torchvision, and this machine has no network
RECIPES = ["cifar10-cnn", "cifar10-cnn-augment", "cifar10-cnn-flipcrop", "defect-bce", "cifar10-transfer",
           "resnet9-onecycle", "cifar10-fast", "resnext29"]
FLOORS = {"cifar10-cnn": 0.80, "cifar10-transfer": 0.88, "resnet9-onecycle": 0.89, "resnext29": 0.85,
          "cifar10-fast": 0.92}  # issue 25's floors on the full test set


def command(name: str, out: Path) -> list[str]:
    from cnnlab.classify.recipes import get_recipe

    dataset = get_recipe(name).dataset
    data = ["--data-dir", os.path.join(DATA, dataset)] if dataset in ("cifar10", "fashion-mnist") else []
    return ["cnnlab", "train", "--recipe", name, "--preset", "cpu", "--device", "cpu", *data, "--out", str(out),
            "--no-progress"]


def roofline(runs: Path) -> dict:
    """This host's matmul FLOP/s (fp32, bf16), measured once before the recipes."""
    sys.path.insert(0, str(Path(__file__).parent))
    import torch
    from cpu_roofline import matmul_flops

    record = {"fp32": matmul_flops(torch.float32, 8.0), "bf16": matmul_flops(torch.bfloat16, 8.0),
              "threads": torch.get_num_threads()}
    runs.mkdir(parents=True, exist_ok=True)
    (runs / "roofline.json").write_text(json.dumps(record, indent=1))
    return record


def run(name: str, runs: Path) -> dict:
    """Train one recipe in a child process; its CPU and wall seconds go to ``runs/NAME/cpu.json``."""
    out = runs / name
    cmd = command(name, out)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([*cmd, "--overwrite"] if out.exists() else cmd, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    record = {"cpu_seconds": round(cpu, 1), "wall_seconds": round(wall, 1), "command": shlex.join(cmd)}
    (out / "cpu.json").write_text(json.dumps(record, indent=1))
    return record


def row(name: str, runs: Path, roof: dict | None) -> dict:
    """One table row from a finished run folder (its metrics, config and cpu.json)."""
    from cnnlab.analysis.complexity import count_macs
    from cnnlab.models import create_model
    from cnnlab.train.checkpoint import load_checkpoint

    folder = runs / name
    metrics = json.loads((folder / "metrics.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    cpu = json.loads((folder / "cpu.json").read_text())
    history = metrics["history"]
    train_seconds = sum(r["seconds"] for r in history)
    rate = metrics["train_size"] * len(history) / train_seconds
    result = {"recipe": name, "model": config["model"], "model_kwargs": config["model_kwargs"],
              "train_images": metrics["train_size"], "test_images": metrics["test_size"], "epochs": len(history),
              "test_accuracy": round(metrics["test_accuracy"], 4), "floor": FLOORS.get(name),
              "train_seconds": round(train_seconds, 1), "images_per_second": round(rate, 1),
              "bf16": config["train"]["cpu_amp"], **cpu}
    if "compile_seconds" in metrics:  # torch.compile's time, apart from the epochs' (inside the wall seconds)
        result["compile_seconds"] = round(metrics["compile_seconds"], 1)
        result["compiled"] = metrics.get("compiled", True)  # False: eager stepped faster; older runs always compiled
    if "binary" in metrics and "test_recall" in metrics["binary"]:
        result.update(test_recall=round(metrics["binary"]["test_recall"], 4),
                      test_precision=round(metrics["binary"]["test_precision"], 4))
    if config.get("cache_features"):  # the frozen part ran once; the epochs trained the rest on its output
        last = config["model_kwargs"].get("train_last")
        result["note"] = (f"frozen blocks' maps computed once; epochs train the last {last} blocks and the head" if last
                          else "frozen trunk's features computed once; epochs train the head")
    elif roof is not None:
        meta = load_checkpoint(folder / "best.ckpt")
        size = tuple(meta["input_size"])
        net = create_model(config["model"], num_classes=meta["outputs"], in_chans=size[0], **config["model_kwargs"])
        flops = rate * 6 * count_macs(net, size)
        result.update(training_gflops=round(flops / 1e9, 1),
                      roofline_fraction=round(flops / roof["bf16" if result["bf16"] else "fp32"], 3))
    return result


def span(runs: Path) -> str:
    """When the sequence ran (UTC): from the roofline's file to the last recipe's cpu.json."""
    stamps = [p.stat().st_mtime for p in [runs / "roofline.json", *runs.glob("*/cpu.json")] if p.exists()]
    day = time.strftime("%Y-%m-%d %H:%M", time.gmtime(min(stamps)))
    return f"{day}-{time.strftime('%H:%M', time.gmtime(max(stamps)))} UTC"


def slim_config(path: Path) -> dict:
    """A run's config.json with its lists of image files (1.6 MB for CIFAR-10) replaced by their counts."""
    config = json.loads(path.read_text())
    files = config.get("data_files")
    if isinstance(files, dict):
        config["data_files"] = {k: {"images": len(v)} if isinstance(v, list) and v and isinstance(v[0], str)
                               else v for k, v in files.items()}
    return config


def table(runs: Path, results: Path = RESULTS) -> list[dict]:
    """The rows of every recipe with a finished run in ``runs``, kept under ``results``.

    The table docs/course.md quotes is one sequential run of every recipe: a queue that misses
    one writes its table under ``runs`` instead, so it never replaces that table in part."""
    roof_file = runs / "roofline.json"
    roof = json.loads(roof_file.read_text()) if roof_file.exists() else None
    missing = [name for name in RECIPES if not (runs / name / "cpu.json").exists()]
    if missing:
        print(f"not run: {', '.join(missing)} (no cpu.json in {runs}); this partial table goes to {runs}, "
              f"not {results}", file=sys.stderr)
        results = runs
    rows = []
    for name in RECIPES:
        if name in missing:
            continue
        rows.append(row(name, runs, roof))
        keep = results / "recipes_cpu" / name
        keep.mkdir(parents=True, exist_ok=True)
        for file in ("metrics.json", "curves.png", "cpu.json"):
            shutil.copy2(runs / name / file, keep / file)
        (keep / "config.json").write_text(json.dumps(slim_config(runs / name / "config.json"), indent=1))
    (results / "course_recipes_cpu.json").write_text(json.dumps(
        {"machine": "each run alone on the machine, default threads", "host": host(),
         "run": f"one sequential run of `python benchmarks/course_recipes.py run`, {span(runs)}",
         "matmul_flops": roof, "rows": rows},
        indent=1))
    print("| recipe | model | train / test images | epochs | test acc | floor | wall s | CPU s | images/s "
          "| of matmul roofline |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        acc = f"{r['test_accuracy']:.4f}" + (f" (recall {r['test_recall']:.3f}, precision {r['test_precision']:.3f})"
                                              if "test_recall" in r else "")
        roofline_cell = f"{r['roofline_fraction']:.0%}" if "roofline_fraction" in r else r.get("note", "")
        print(f"| `{r['recipe']}` | {r['model']} | {r['train_images']} / {r['test_images']} | {r['epochs']} | {acc} "
              f"| {r['floor'] or ''} | {r['wall_seconds']:.0f} | {r['cpu_seconds']:.0f} | {r['images_per_second']:.0f} "
              f"| {roofline_cell} |")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["run", "table"])
    parser.add_argument("recipes", nargs="*", help="recipes to run (default: every one in RECIPES)")
    parser.add_argument("--runs", type=Path, default=Path("runs/recipes_cpu"), help="where the run folders go")
    args = parser.parse_args(argv)
    unknown = set(args.recipes) - set(RECIPES)
    if unknown:
        parser.error(f"not measured here: {', '.join(sorted(unknown))}; measured: {', '.join(RECIPES)}")
    if args.action == "run":
        if not (args.runs / "roofline.json").exists():
            print("matmul roofline", roofline(args.runs))
        for name in args.recipes or RECIPES:
            print(name, run(name, args.runs), flush=True)
    table(args.runs)


if __name__ == "__main__":
    main()
