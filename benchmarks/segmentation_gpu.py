"""Segmentation on a GPU, one command within one wall-clock budget: the GPU recipes of DC1000 (caries
Dice on test and train), CamVid (val mIoU, per-class IoU) and ISBI 2012 (pixel error), then the
ablation table on DC1000 (skips, plain BCE, pretrained encoder) and noisy labels — all through
``cnnlab.segment.api.train_segmenter``.

Every dataset is first trained for two epochs of its GPU recipe to time an epoch on this machine
(the second epoch, after cuDNN autotuning). A default recipe runs as a user gets it when its
predicted time fits its share of the budget, else with as many epochs as fit (``epochs_scaled``
says so); the ablation and noisy-label runs get what is left. Results are written to
``results.json`` after every experiment, so a run cut short still reports what it finished.

Reproduce (data folders camvid/, dc1000/, isbi2012/ under DATA, e.g. /work/shared/data):
    PYTHONPATH=src python3 benchmarks/segmentation_gpu.py --data DATA --out runs/seg-bench --budget 420
A CPU smoke run of the whole script on tiny data (what the tests do): add ``--smoke``.
Anchors: CamVid val mIoU 0.7195 (OpenVINO's from-scratch U-Net; SegNet 0.556 and ENet 0.513 on
test); DC1000 caries Dice 0.40 (course requirement) and 0.55 (goal with 70 images; DoubleU-Net
0.73 on the full DC1000); ISBI 2012: the U-Net paper's figure was measured on the challenge's
hidden-label test stack, ours on a held-out fold of the 30 labelled slices.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
import traceback
from pathlib import Path

import torch

from cnnlab.cli.types import positive_float
from cnnlab.segment.api import train_segmenter
from cnnlab.segment.recipes import recipe

# share of the budget (after calibration) for each default recipe; the rest is for the ablation
SHARES = {"dc1000": 0.22, "camvid": 0.42, "isbi2012": 0.08}
ABLATION = (("no skips", {"skips": False}), ("plain BCE", {"loss": "bce"}),
            ("random-init encoder", {"model_kwargs": {"pretrained": False}}))
NOISY = dict(corrupt_fraction=0.4, corrupt_mode="shift", noisy_drop=0.25)
# --smoke: the whole script in seconds on a CPU and tiny data (every code path, no meaningful figure)
SMOKE = dict(epochs=2, samples=4, batch_size=2, crop=(16, 16), eval_batch_size=2, device="cpu")


class Budget:
    def __init__(self, seconds: float) -> None:
        self.start, self.seconds = time.perf_counter(), seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()


def summary(m: dict) -> dict:
    """The figures worth keeping from a run's metrics.json."""
    hist = m["history"]
    monitor = "dice" if "dice" in m else "miou"
    out = {"split": m["split"], "checkpoint": m["checkpoint"], "epochs": len(hist), "images": m["images"],
           "miou": m["miou"], "pixel_accuracy": m["pixel_accuracy"], "pixel_error": m["pixel_error"],
           f"best_val_{monitor}": max((r.get(f"val_{monitor}", float("nan")) for r in hist), default=None),
           "inference": m["inference"], "threshold_choice": m.get("threshold_choice"), "plain": m["plain"],
           "train": {k: m["train"][k] for k in ("images", "miou", "pixel_error", "dice", "iou") if k in m["train"]},
           "train_seconds": m["train_seconds"], "wall_seconds": m["wall_seconds"], "params": m["params"],
           "model": m["model"], "loss": m["loss_name"], "recipe": m["recipe"],
           "per_class_iou": {c: round(v["iou"], 4) for c, v in m["per_class"].items()}}
    if "dice" in m:
        out.update(dice=m["dice"], iou=m["iou"])
    if m["noisy"]["corrupt_fraction"] or m["noisy"]["drop"]:
        out["noisy"] = m["noisy"]
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder holding camvid/, dc1000/, isbi2012/")
    ap.add_argument("--out", type=Path, required=True, help="results.json and the figures go here")
    ap.add_argument("--runs", type=Path, default=Path("runs/seg-bench"), help="run folders (checkpoints)")
    ap.add_argument("--budget", type=positive_float, default=420,
                    help="wall-clock seconds for everything (420: an 8-minute slot less start-up and margin)")
    ap.add_argument("--smoke", action="store_true", help="tiny settings on any device: checks the script runs")
    args = ap.parse_args(argv)
    budget = Budget(args.budget)
    args.out.mkdir(parents=True, exist_ok=True)
    smoke = SMOKE if args.smoke else {}
    results: dict = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() and not args.smoke else "cpu",
                     "torch": torch.__version__, "budget_s": args.budget, "smoke": args.smoke,
                     "calibration_s_per_epoch": {}}

    def save() -> None:
        results["elapsed_s"] = round(budget.elapsed(), 1)
        (args.out / "results.json").write_text(json.dumps(results, indent=1))

    def train(dataset: str, run: str, **options) -> dict:
        return train_segmenter(dataset, data_dir=args.data / dataset, out=args.runs / run, progress=False,
                               **{**smoke, **options})

    def keep(run: str, name: str, as_name: str) -> None:
        src = args.runs / run / name
        if src.exists():
            shutil.copyfile(src, args.out / as_name)

    def attempt(name: str, fn) -> None:
        """Run one experiment group; a failure is recorded and the next group still runs."""
        t0 = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # a one-shot GPU call must bring back what did work
            results.setdefault("errors", {})[name] = "".join(traceback.format_exception(exc))[-3000:]
        print(f"[{budget.elapsed():6.1f} s] {name} done in {time.perf_counter() - t0:.1f} s", flush=True)
        save()

    cal = results["calibration_s_per_epoch"]
    kind = "cpu" if args.smoke or not torch.cuda.is_available() else "gpu"

    def calibrate() -> None:
        for dataset in SHARES:
            m = train(dataset, f"calibrate-{dataset}", epochs=2)
            cal[dataset] = m["history"][-1]["seconds"]

    attempt("calibration", calibrate)
    spend = budget.left() * 0.95

    def epochs_for(dataset: str, share: float) -> tuple[int, bool]:
        """The recipe's epochs when they fit ``share`` seconds, else as many as fit (at least 2)."""
        wanted = smoke.get("epochs") or recipe(dataset, kind)["epochs"]
        fit = int(share / max(cal.get(dataset, 1.0), 1e-3))
        return (wanted, False) if fit >= wanted else (max(2, fit), True)

    def default(dataset: str) -> None:
        epochs, scaled = epochs_for(dataset, spend * SHARES[dataset] - 20)
        m = train(dataset, f"{dataset}-default", epochs=epochs)
        results[dataset] = {**summary(m), "epochs_scaled": scaled}
        for name in ("predictions.png", "curves.png"):
            keep(f"{dataset}-default", name, f"{dataset}_{name}")

    def ablation() -> None:
        """One change at a time from DC1000's recipe, every row with the same (shorter) epochs."""
        base = results["dc1000"]
        per_run = (budget.left() * 0.6) / (len(ABLATION) + 1)
        fit = int((per_run - 20) / cal["dc1000"])  # 20 s: a run's final evaluation
        if fit < 2:
            results["ablation"] = f"skipped: out of budget ({budget.left():.0f} s left)"
            return
        epochs = smoke.get("epochs") or min(base["epochs"], fit)
        rows = {"default": base if epochs == base["epochs"] else summary(train("dc1000", "ablation-default",
                                                                              epochs=epochs))}
        table = results["ablation"] = {"dataset": "dc1000", "epochs": epochs, "rows": rows}
        for name, options in ABLATION:
            rows[name] = summary(train("dc1000", f"ablation-{name.replace(' ', '-')}", epochs=epochs, **options))
            save()
        table["rows"] = rows

    def noisy_labels() -> None:
        """40% of the training masks shifted: without and with small-loss selection (same epochs)."""
        if not isinstance(results.get("ablation"), dict):
            results["noisy"] = "skipped: no ablation run to compare with"
            return
        epochs = results["ablation"]["epochs"]
        noisy = results["noisy"] = {"epochs": epochs, **NOISY,
                                    "clean_test_dice": results["ablation"]["rows"]["default"]["dice"]}
        for drop in (0.0, NOISY["noisy_drop"]):
            if budget.left() < epochs * cal["dc1000"] * 1.3 + 30:
                noisy[f"drop_{drop}"] = "skipped: out of budget"
                continue
            m = train("dc1000", f"noisy-{drop}", epochs=epochs, corrupt_fraction=NOISY["corrupt_fraction"],
                      corrupt_mode=NOISY["corrupt_mode"], noisy_drop=drop)
            noisy[f"drop_{drop}"] = summary(m)
            save()

    for name, fn in (("dc1000", lambda: default("dc1000")), ("camvid", lambda: default("camvid")),
                     ("isbi2012", lambda: default("isbi2012")), ("ablation", ablation), ("noisy labels", noisy_labels)):
        attempt(name, fn)
    print_table(results)
    return results


def print_table(r: dict) -> None:
    print(f"\n{r['device']}, torch {r['torch']}, {r['elapsed_s']} s in all" + (" (smoke settings)" if r["smoke"] else ""))
    cam, dc, isbi = r.get("camvid"), r.get("dc1000"), r.get("isbi2012")
    if dc:
        print(f"DC1000 caries Dice: test {dc['dice']:.4f}, train {dc['train']['dice']:.4f} ({dc['epochs']} epochs, "
              f"threshold {dc['inference']['threshold']:g}; course >= 0.40, goal >= 0.55)")
    if cam:
        print(f"CamVid val mIoU {cam['miou']:.4f} ({cam['epochs']} epochs) vs OpenVINO U-Net 0.7195: "
              f"ratio {cam['miou'] / 0.7195:.3f}")
        print("  " + "  ".join(f"{c} {v:.3f}" for c, v in cam["per_class_iou"].items()))
    if isbi:
        print(f"ISBI 2012 pixel error {isbi['pixel_error']:.4f} on {isbi['images']} held-out slices")
    table = r.get("ablation")
    for name, row in (table.get("rows", {}) if isinstance(table, dict) else {}).items():
        print(f"  DC1000 {name:22s} test Dice {row['dice']:.4f}  train Dice {row['train']['dice']:.4f}")
    for key, v in (r["noisy"] if isinstance(r.get("noisy"), dict) else {}).items():
        if key.startswith("drop_"):
            print(f"  noisy labels {key}: " + (f"test Dice {v['dice']:.4f}" if isinstance(v, dict) else str(v)))
    for name in r.get("errors", {}):
        print(f"  {name}: FAILED (see results.json)")


if __name__ == "__main__":
    main()
