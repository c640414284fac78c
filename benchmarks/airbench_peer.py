"""Run the peer, airbench (github.com/KellerJordan/cifar10-airbench: ``airbench94_muon.py``, or
the eager ``legacy/airbench94.py`` via :func:`run_legacy_airbench94`), on the same JPEG-encoded
CIFAR-10 tree that cnnlab trains on.

airbench reads ``cifar10/train.pt`` and ``cifar10/test.pt`` from its working directory: dicts of
``images`` (uint8, N x 32 x 32 x 3), ``labels`` (int64) and ``classes``; when they are missing
it downloads the binary release instead. This adapter writes those two files from cnnlab's own
decode of the image-folder tree (same pixels, same class order), so both sides see identical
data. The airbench script itself is NOT part of this repository: pass the path of an unmodified
copy (``--script``; keep it in the ignored ``.peers/`` folder). It is imported as a module and
driven like its ``__main__`` block (compile, one warm-up run on random labels, then ``--runs``
timed runs); each run's figures are read from airbench's own logging call, so the seconds are
airbench's CUDA-event timer (training + whitening init + TTA evaluation, compile excluded).

Usage: python benchmarks/airbench_peer.py --data-dir CIFAR10_TREE --script .peers/.../airbench94_muon.py
       --workdir /tmp/airbench --runs 5 --out airbench.json
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import time
from pathlib import Path

import torch


def write_airbench_data(data_dir: str, folder: str | Path) -> Path:
    """Decode the ``train/<class>/*.jpg`` + ``test/<class>/*.jpg`` tree into airbench's two .pt files."""
    from cnnlab.data import load_dataset

    splits = load_dataset("cifar10", data_dir, val_fraction=0.0)
    target = Path(folder) / "cifar10"
    target.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", splits.train), ("test", splits.test)):
        torch.save({"images": part.images.permute(0, 2, 3, 1).contiguous(), "labels": part.labels,
                    "classes": list(splits.classes)}, target / f"{name}.pt")
    return target


def load_script(script: str | Path, name: str):
    """Import an unmodified airbench script as a module (its ``__main__`` block does not run)."""
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def capture_finals(ab, seconds_key: str) -> list[dict]:
    """Record each run's final TTA accuracy and seconds from airbench's own logging call.

    ``main()`` looks ``print_training_details`` up in its module's globals, so replacing it there
    sees every row; the final one carries ``tta_val_acc`` and airbench's CUDA-event timer
    (``time_seconds`` in airbench94_muon, ``total_time_seconds`` in the legacy airbench94).
    """
    finals: list[dict] = []
    original = ab.print_training_details

    def capture(variables: dict, is_final_entry: bool) -> None:
        if is_final_entry:
            finals.append({"tta_val_acc": variables["tta_val_acc"], "seconds": variables[seconds_key]})
        original(variables, is_final_entry)

    ab.print_training_details = capture
    return finals


def summarise(finals: list[dict], warmup_seconds: float) -> dict:
    accs = [f["tta_val_acc"] for f in finals]
    secs = [f["seconds"] for f in finals]
    return {"runs": finals, "mean_acc": statistics.mean(accs), "std_acc": statistics.pstdev(accs),
            "mean_seconds": statistics.mean(secs), "warmup_compile_seconds": warmup_seconds,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", "torch": torch.__version__}


def run_airbench(script: str | Path, workdir: str | Path, runs: int) -> dict:
    """Import the unmodified airbench94_muon script and run it ``runs`` times (after its compile warm-up)."""
    ab = load_script(script, "airbench94_muon")
    finals = capture_finals(ab, "time_seconds")
    os.chdir(workdir)
    t0 = time.perf_counter()
    model = ab.CifarNet().cuda().to(memory_format=torch.channels_last)
    model.compile(mode="max-autotune")
    ab.print_columns(ab.logging_columns_list, is_head=True)
    ab.main("warmup", model)
    warmup_seconds = time.perf_counter() - t0
    finals.clear()
    for run in range(runs):
        ab.main(run, model)
    return summarise(finals, warmup_seconds)


def run_legacy_airbench94(script: str | Path, workdir: str | Path, runs: int) -> dict:
    """The unmodified legacy ``airbench94.py`` (eager PyTorch, no compile): one warm-up run on
    random labels, as its commented-out ``main('warmup')`` would do, then ``runs`` timed runs."""
    ab = load_script(script, "airbench94")
    finals = capture_finals(ab, "total_time_seconds")
    cwd = os.getcwd()
    os.chdir(workdir)  # it reads cifar10/{train,test}.pt relative to the working directory
    try:
        ab.print_columns(ab.logging_columns_list, is_head=True)
        t0 = time.perf_counter()
        ab.main("warmup")
        warmup_seconds = time.perf_counter() - t0
        finals.clear()
        for run in range(runs):
            ab.main(run)
    finally:
        os.chdir(cwd)
    return summarise(finals, warmup_seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="CIFAR-10 image-folder tree (train/, test/)")
    ap.add_argument("--script", required=True, help="path of an unmodified airbench94_muon.py")
    ap.add_argument("--workdir", default="/tmp/airbench", help="where cifar10/{train,test}.pt are written")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", default="airbench.json")
    args = ap.parse_args()
    script, out = Path(args.script).resolve(), Path(args.out).resolve()
    write_airbench_data(args.data_dir, args.workdir)
    result = run_airbench(script, args.workdir, args.runs)
    out.write_text(json.dumps(result, indent=1))
    print(f"airbench: {result['mean_acc']:.4f} mean TTA accuracy in {result['mean_seconds']:.2f} s "
          f"(mean of {args.runs} runs; compile + warm-up {result['warmup_compile_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
