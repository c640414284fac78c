"""The course's named recipes measured on the CPU: test accuracy, epochs, data used, CPU seconds, wall.

Each recipe runs as a user runs it, ``cnnlab train --recipe NAME`` plus the stated budget options in
``PLAN`` (a training subset, fewer epochs, a test subset: the full recipes need hours on 2 cores),
single-threaded in its own process. CPU seconds are the process's user + system time (what a shared
machine cannot inflate); wall seconds are only meaningful on an idle machine. Accuracy is seeded and
does not depend on load. ``run`` trains and writes ``cpu.json`` beside each run folder's files;
``table`` copies each run's ``config.json``, ``metrics.json`` and ``curves.png`` to
``benchmarks/results/recipes/NAME/`` and writes ``summary.json`` there and prints the table.

    python benchmarks/course_recipes.py run cifar10-cnn resnext29 [--runs runs/recipes]
    python benchmarks/course_recipes.py table [--runs runs/recipes]
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

RESULTS = Path(__file__).parent / "results" / "recipes"
CIFAR = ["--data-dir", os.path.join(os.environ.get("CNNLAB_DATA", "../shared/data"), "cifar10")]
# the budget of each measured run (about 40 CPU-minutes for the five CIFAR-10 recipes together),
# sized from measured CPU seconds per training image: vgg-small 2.2 ms, resnet9 22 ms,
# resnext29-4x16d 46 ms, EfficientNet-Lite0 at 224 px 40 ms frozen / 115 ms fine-tuned
PLAN: dict[str, list[str]] = {
    "colour-digits": [],  # the whole recipe: all its data, its own epochs and early stopping
    "cifar10-cnn": CIFAR + ["--subset", "5000"],
    "cifar10-cnn-augment": CIFAR + ["--subset", "5000"],
    "resnet9-onecycle": CIFAR + ["--subset", "2500", "--epochs", "10", "--test-subset", "2000"],
    "resnext29": CIFAR + ["--subset", "2500", "--epochs", "5", "--test-subset", "2000"],
    "cifar10-transfer": CIFAR + ["--subset", "1500", "--epochs", "2", "--finetune-epochs", "1",
                                 "--test-subset", "1000"],
}


def command(name: str, out: Path) -> list[str]:
    return ["cnnlab", "train", "--recipe", name, *PLAN[name], "--out", str(out), "--device", "cpu"]


def run(name: str, runs: Path) -> dict:
    """Train one recipe in a child process; its CPU and wall seconds go to ``runs/NAME/cpu.json``."""
    out = runs / name
    cmd = command(name, out)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    record = {"cpu_seconds": round(cpu, 1), "wall_seconds": round(wall, 1), "threads": 1,
              "command": shlex.join(["cnnlab", *cmd[1:]])}
    (out / "cpu.json").write_text(json.dumps(record, indent=1))
    return record


def row(name: str, runs: Path) -> dict:
    """One table row from a finished run folder (its metrics, config and cpu.json)."""
    folder = runs / name
    metrics = json.loads((folder / "metrics.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    cpu = json.loads((folder / "cpu.json").read_text())
    epochs = len(metrics["history"])
    if "frozen" in metrics:  # two phases: the frozen-trunk run, then fine-tuning
        epochs = f"{metrics['frozen']['epochs']} frozen + {epochs} fine-tuned"
    return {"recipe": name, "assignment": _assignment(name), "model": config["model"],
            "train_images": metrics["train_size"], "subset": config.get("subset"),
            "test_images": metrics["test_size"], "epochs": epochs,
            "recipe_epochs": config["train"]["epochs"], "best_epoch": metrics["best_epoch"],
            "test_accuracy": round(metrics["test_accuracy"], 4),
            "frozen_test_accuracy": round(metrics["frozen"]["test_accuracy"], 4) if "frozen" in metrics else None,
            **cpu}


def _assignment(name: str) -> str:
    from cnnlab.classify.recipes import get_recipe

    return get_recipe(name).assignment


def table(runs: Path, results: Path = RESULTS) -> list[dict]:
    """The summary of every planned recipe that has a finished run in ``runs``, kept under ``results``."""
    rows = []
    for name in PLAN:
        if not (runs / name / "cpu.json").exists():
            print(f"{name}: not run (no {runs / name / 'cpu.json'})", file=sys.stderr)
            continue
        rows.append(row(name, runs))
        keep = results / name
        keep.mkdir(parents=True, exist_ok=True)
        for file in ("config.json", "metrics.json", "curves.png", "cpu.json"):
            shutil.copy2(runs / name / file, keep / file)
    results.mkdir(parents=True, exist_ok=True)
    (results / "summary.json").write_text(json.dumps(
        {"machine": "2-core CPU shared with other jobs; 1 thread per run; wall under shared load", "runs": rows},
        indent=1))
    print("| recipe | assignment | train / test images | epochs | test acc | CPU s | wall s | command |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| `{r['recipe']}` | {r['assignment']} | {r['train_images']} / {r['test_images']} | {r['epochs']} "
              f"| {r['test_accuracy']:.4f} | {r['cpu_seconds']:.0f} | {r['wall_seconds']:.0f} | `{r['command']}` |")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["run", "table"])
    parser.add_argument("recipes", nargs="*", help="recipes to run (default: every one in PLAN)")
    parser.add_argument("--runs", type=Path, default=Path("runs/recipes"), help="where the run folders go")
    args = parser.parse_args(argv)
    unknown = set(args.recipes) - set(PLAN)
    if unknown:
        parser.error(f"no plan for {', '.join(sorted(unknown))}; planned: {', '.join(PLAN)}")
    if args.action == "run":
        for name in args.recipes or list(PLAN):
            print(name, run(name, args.runs))
    else:
        table(args.runs)


if __name__ == "__main__":
    main()
