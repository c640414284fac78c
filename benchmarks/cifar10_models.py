"""Time cnnlab's quickest route to 90% CIFAR-10 test accuracy against the peer, airbench, in the same
run on the same GPU. (The architecture zoo moved to ``benchmarks/cifar10_zoo.py``.)

Two parts, each written to ``--out`` (JSON) as soon as a row is measured, so a run cut short
still reports what it finished:

1. ``airbench``: ``benchmarks/airbench_peer.py`` in a subprocess (its own CUDA context and
   compile caches), on the same decoded pixels. Its time is airbench's own timer.
2. ``fast``: complete cnnlab training runs (``cnnlab.train.engine.fit`` on cnnlab loaders and
   models) of increasing length; cnnlab's time to 90% is the training + test-evaluation seconds
   of the shortest run whose test accuracy (with flip TTA, as airbench's) reaches 90%. After the
   runs, and if ``--compile-deadline`` allows, that run is repeated under ``torch.compile`` (compile
   time excluded, as airbench excludes its own: one warm-up epoch and evaluation first, then the
   weights are re-initialised).

The training set is all of ``train/`` (``val_fraction=0``, like airbench); the test set is ``test/``.
``torch.backends.cudnn.benchmark`` is on for every run (airbench turns it on too).

Usage: CNNLAB_CACHE=/tmp/cache python benchmarks/cifar10_models.py --data-dir DIR/cifar10 \
       --airbench-script .peers/cifar10-airbench/airbench94_muon.py --out results.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

from cnnlab.data import load_dataset
from cnnlab.analysis.complexity import count_macs, count_params
from cnnlab.models.zoo import zoo_model
from cnnlab.classify.api import make_loaders
from cnnlab.classify.recipes import train_config
from cnnlab.train.engine import evaluate, fit
from cnnlab.train.tasks import ClassificationTask
from cnnlab.train.tta import TTA

# Complete runs of increasing length for the time-to-90% search: (model kwargs, training overrides).
FAST = [({"width": 64}, dict(epochs=e, batch_size=512, lr=0.4, label_smoothing=0.2)) for e in (8, 10, 12, 16)]
TARGET = 0.90


def _timed_eval(model: nn.Module, loader, task, device) -> tuple[float, float]:
    torch.cuda.synchronize(device) if device.type == "cuda" else None
    t0 = time.perf_counter()
    acc = evaluate(model, loader, task, device)["accuracy"]
    torch.cuda.synchronize(device) if device.type == "cuda" else None
    return acc, time.perf_counter() - t0


def reinitialise(model: nn.Module) -> None:
    """Fresh weights (and BatchNorm statistics) without building a new module (keeps compiled code)."""
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()


def train_and_test(name: str, splits, model_kwargs: dict, overrides: dict, tta: bool = False,
                   compile_model: bool = False) -> dict:
    """One complete run through cnnlab's engine; seconds are training plus test evaluation."""
    cfg = train_config("cifar10", **overrides)
    device = cfg.resolved_device()
    net = zoo_model(name, splits.num_classes, **model_kwargs)
    params, macs = count_params(net), count_macs(net, (splits.in_chans, *splits.image_size))
    train_loader, _, test_loader = make_loaders(splits, cfg)
    task = ClassificationTask(splits.num_classes, cfg.label_smoothing)
    compile_seconds = None
    if compile_model:
        t0 = time.perf_counter()
        net = torch.compile(net)
        warm = train_config("cifar10", **{**overrides, "epochs": 1})
        fit(net, train_loader, None, task, warm, progress=False)
        evaluate(net, test_loader, task, device, tta=int(tta))
        reinitialise(net)
        compile_seconds = time.perf_counter() - t0
    history = fit(net, train_loader, None, task, cfg, progress=False)
    train_seconds = sum(r["seconds"] for r in history)
    row = dict(model=name, model_kwargs=model_kwargs, **overrides, compiled=compile_model, params=params, macs=macs,
               train_seconds=round(train_seconds, 3), final_train_accuracy=round(history[-1]["train_accuracy"], 4))
    acc, eval_seconds = _timed_eval(net, test_loader, task, device)
    row.update(test_accuracy=round(acc, 4), eval_seconds=round(eval_seconds, 3))
    if tta:
        acc_tta, tta_seconds = _timed_eval(TTA(net, 1), test_loader, task, device)  # mirror TTA
        row.update(test_accuracy_tta=round(acc_tta, 4), tta_eval_seconds=round(tta_seconds, 3),
                   seconds=round(train_seconds + tta_seconds, 3))
    else:
        row["seconds"] = round(train_seconds + eval_seconds, 3)
    if compile_seconds is not None:
        row["compile_warmup_seconds"] = round(compile_seconds, 1)
    return row


class Results:
    """The JSON document, rewritten after every row (a run cut short keeps what it measured)."""

    def __init__(self, path: Path, meta: dict) -> None:
        self.path, self.doc = path, {**meta, "airbench": None, "fast": []}

    def add(self, part: str, value) -> None:
        if isinstance(self.doc[part], list):
            self.doc[part].append(value)
        else:
            self.doc[part] = value
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.doc, indent=1))
        tmp.replace(self.path)
        print(f"[{part}] {json.dumps(value)}", flush=True)


def run_airbench(args: argparse.Namespace, results: Results) -> None:
    out = Path(args.out).with_name("airbench.json")
    cmd = [sys.executable, str(Path(__file__).with_name("airbench_peer.py")), "--data-dir", args.data_dir,
           "--script", args.airbench_script, "--runs", str(args.airbench_runs), "--out", str(out)]
    proc = subprocess.run(cmd)
    results.add("airbench", json.loads(out.read_text()) if proc.returncode == 0 and out.exists()
                else {"error": f"exit status {proc.returncode}"})


def run_fast(splits, results: Results) -> None:
    """Runs of increasing length until one reaches the target (longer ones cannot be quicker)."""
    for model_kwargs, overrides in FAST:
        row = train_and_test("resnet9", splits, model_kwargs, overrides, tta=True)
        results.add("fast", row)
        if row["test_accuracy_tta"] >= TARGET:
            break


def run_fast_compiled(splits, results: Results) -> None:
    """The shortest run that reached the target, again under ``torch.compile``."""
    reached = [r for r in results.doc["fast"] if r["test_accuracy_tta"] >= TARGET]
    if reached:
        best = min(reached, key=lambda r: r["seconds"])
        overrides = {k: best[k] for k in FAST[0][1]}
        results.add("fast", train_and_test("resnet9", splits, best["model_kwargs"], overrides, tta=True,
                                           compile_model=True))


def summary(doc: dict) -> str:
    """The tables printed at the end (and written next to the JSON as Markdown)."""
    lines = []
    ab = doc.get("airbench") or {}
    fast = [r for r in doc["fast"] if r.get("test_accuracy_tta", 0) >= TARGET]
    if fast:
        best = min(fast, key=lambda r: r["seconds"])
        lines.append(f"cnnlab fast: {best['test_accuracy_tta']:.4f} test accuracy (flip TTA) in {best['seconds']:.2f} s "
                     f"(resnet9 {best['model_kwargs']}, {best['epochs']} epochs, batch {best['batch_size']}, "
                     f"lr {best['lr']}{', compiled' if best['compiled'] else ''})")
    if "mean_seconds" in ab:
        lines.append(f"airbench94_muon: {ab['mean_acc']:.4f} mean TTA accuracy in {ab['mean_seconds']:.2f} s "
                     f"(mean of {len(ab['runs'])} runs)")
        if fast:
            lines.append(f"ratio cnnlab time to {TARGET:.0%} / airbench time: {best['seconds'] / ab['mean_seconds']:.2f}")
    lines += ["", "| fast run | epochs | batch | lr | compiled | test acc | TTA acc | seconds |",
              "|---|---:|---:|---:|---|---:|---:|---:|"]
    for r in doc["fast"]:
        lines.append(f"| resnet9 {r['model_kwargs']} | {r['epochs']} | {r['batch_size']} | {r['lr']} | {r['compiled']} | "
                     f"{r['test_accuracy']:.4f} | {r['test_accuracy_tta']:.4f} | {r['seconds']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="CIFAR-10 image-folder tree (train/, test/)")
    ap.add_argument("--out", default="cifar10_models.json")
    ap.add_argument("--airbench-script", help="unmodified airbench94_muon.py (skip the peer when left out)")
    ap.add_argument("--airbench-runs", type=int, default=5)
    ap.add_argument("--parts", default="airbench,fast", help="comma-separated subset of airbench,fast")
    ap.add_argument("--compile-deadline", type=float, default=float("inf"),
                    help="repeat the fastest run compiled only if fewer seconds than this have passed")
    args = ap.parse_args()
    started = time.perf_counter()
    torch.backends.cudnn.benchmark = True
    parts = set(args.parts.split(","))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    results = Results(Path(args.out), {"device": device, "torch": torch.__version__, "target": TARGET})
    if "airbench" in parts and args.airbench_script:
        run_airbench(args, results)
    splits = load_dataset("cifar10", args.data_dir, val_fraction=0.0)
    if "fast" in parts:
        run_fast(splits, results)
    if "fast" in parts and time.perf_counter() - started < args.compile_deadline:
        run_fast_compiled(splits, results)
    text = summary(results.doc)
    Path(args.out).with_suffix(".md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
