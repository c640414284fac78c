"""Fashion-MNIST on the CPU: cnnlab's default recipe against PyTorch's own MNIST example, in one run.

The peer is the CNN of pytorch/examples ``mnist/main.py`` (two 3x3 convs, max-pool, dropout, two
dense layers; Adadelta lr 1.0, StepLR gamma 0.7, batch 64, 14 epochs, its CPU ``DataLoader``
without workers or shuffling) imported from an unmodified copy of that file (``--peer-script``,
kept in the ignored ``.peers/``) and driven through its own ``train()`` function, on
torchvision's ``FashionMNIST`` reading the same four IDX files (decompressed into a temporary
folder, as torchvision wants them), normalised with Fashion-MNIST's own mean and std.

cnnlab runs ``cnnlab train --dataset fashion-mnist``'s default recipe (model, optimiser, schedule,
epochs, augmentation from ``cnnlab.classify.recipes``) through its engine and loaders, on all
60,000 training images like the peer (no validation split, so nothing but training is timed).

Both train on the same 2 cores (``torch.get_num_threads()`` threads), one after the other, in
this one process, with the same glibc allocator settings as the ``cnnlab`` CLI
(``keep_freed_memory``, which helps both). After every epoch the test accuracy is measured on
the 10,000 test images; that evaluation is NOT on the training clock. "Seconds to 92%" is the
training time (sum of the epochs' seconds) at the end of the first epoch whose test accuracy
reaches 92%, or null if none does.

Usage: python benchmarks/fmnist_cpu_speed.py --data-dir DIR [--peer-script .peers/examples/mnist/main.py]
       [--out benchmarks/results/fmnist_cpu_speed.json]
"""
from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from cnnlab.cli.types import positive_int
from cnnlab.classify.api import make_loaders
from cnnlab.classify.recipes import RECIPES, resolve_options, train_config
from cnnlab.cli.main import keep_freed_memory
from cnnlab.data import load_dataset
from cnnlab.models import create_model
from cnnlab.core.seeding import seed_everything
from cnnlab.core.distributed import cpu_has_native_bf16
from cnnlab.train.engine import evaluate, fit
from cnnlab.train.tasks import ClassificationTask

TARGET = 0.92
FM_MEAN, FM_STD = 0.2860, 0.3530


def seconds_to(epochs: list[dict], target: float = TARGET) -> float | None:
    """Training seconds at the end of the first epoch whose test accuracy reaches ``target``."""
    return next((e["train_seconds"] for e in epochs if e["test_accuracy"] >= target), None)


def run_cnnlab(data_dir: str, overrides: dict | None = None, progress: bool = False) -> dict:
    """One complete run of the default Fashion-MNIST recipe (``overrides`` change it, for sweeps)."""
    started = time.perf_counter()
    _, opts = resolve_options("fashion-mnist", None, **(overrides or {}))
    splits = load_dataset("fashion-mnist", data_dir, val_fraction=0.0)
    cfg = train_config("fashion-mnist", **(overrides or {}))
    seed_everything(cfg.seed)
    model = create_model(opts["model"], num_classes=10, in_chans=1, **opts["model_kwargs"])
    train_loader, _, test_loader = make_loaders(splits, cfg, opts["augment"], opts["vflip"])
    task = ClassificationTask(10, cfg.label_smoothing)
    epochs: list[dict] = []
    clock = 0.0

    def test_after_epoch(row: dict, net: torch.nn.Module) -> None:
        nonlocal clock
        clock += row["seconds"]
        acc = evaluate(net, test_loader, task, cfg.resolved_device(), cfg.amp, tta=cfg.tta, cpu_amp=cfg.cpu_amp)
        epochs.append({"epoch": row["epoch"], "train_seconds": round(clock, 2), "test_accuracy": round(acc["accuracy"], 4)})
        print(f"  cnnlab epoch {row['epoch']}: {clock:7.1f} s of training, test accuracy {acc['accuracy']:.4f}", flush=True)

    history = fit(model, train_loader, None, task, cfg, progress=progress, on_epoch=test_after_epoch)
    options = {k: opts[k] for k in ("model", "model_kwargs", "augment")} | {
        k: getattr(cfg, k) for k in ("epochs", "batch_size", "optimizer", "lr", "schedule", "label_smoothing",
                                     "channels_last", "cpu_amp", "compile")}
    return {"options": options, "epochs": epochs, "final_test_accuracy": epochs[-1]["test_accuracy"],
            "train_seconds": epochs[-1]["train_seconds"], "seconds_to_92": seconds_to(epochs),
            "compile_seconds": history[0].get("compile_seconds"),
            "wall_seconds": round(time.perf_counter() - started, 2),
            "params": sum(p.numel() for p in model.parameters())}


def torchvision_root(data_dir: str | Path, folder: Path) -> Path:
    """torchvision's ``FashionMNIST`` layout (``FashionMNIST/raw/*-ubyte``) from the gzip'd IDX files."""
    raw = folder / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for gz in Path(data_dir).glob("*-ubyte.gz"):
        with gzip.open(gz, "rb") as src, open(raw / gz.stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return folder


def load_peer(script: str | Path):
    spec = importlib.util.spec_from_file_location("pytorch_mnist_example", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_peer(script: str | Path, data_dir: str, epochs: int) -> dict:
    """The example's network, optimiser, schedule, batch sizes and CPU data loading, via its ``train()``."""
    from torchvision import datasets, transforms

    started = time.perf_counter()
    example = load_peer(script)
    with tempfile.TemporaryDirectory() as tmp:
        root = torchvision_root(data_dir, Path(tmp))
        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((FM_MEAN,), (FM_STD,))])
        train_set = datasets.FashionMNIST(root, train=True, download=False, transform=transform)
        test_set = datasets.FashionMNIST(root, train=False, download=False, transform=transform)
        torch.manual_seed(1)  # the example's default --seed
        train_loader = torch.utils.data.DataLoader(train_set, batch_size=64)  # main()'s CPU kwargs
        test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000)
        model = example.Net()
        optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
        args = SimpleNamespace(log_interval=10 ** 9, dry_run=False)  # its progress line once per epoch
        clock, rows = 0.0, []
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            example.train(args, model, torch.device("cpu"), train_loader, optimizer, epoch)
            clock += time.perf_counter() - t0
            acc = peer_accuracy(model, test_loader)
            rows.append({"epoch": epoch, "train_seconds": round(clock, 2), "test_accuracy": round(acc, 4)})
            print(f"  peer epoch {epoch}: {clock:7.1f} s of training, test accuracy {acc:.4f}", flush=True)
            scheduler.step()
    return {"options": {"model": "pytorch/examples mnist Net", "optimizer": "adadelta", "lr": 1.0, "gamma": 0.7,
                        "batch_size": 64, "epochs": epochs, "normalize": [FM_MEAN, FM_STD]},
            "epochs": rows, "final_test_accuracy": rows[-1]["test_accuracy"], "train_seconds": rows[-1]["train_seconds"],
            "seconds_to_92": seconds_to(rows), "wall_seconds": round(time.perf_counter() - started, 2),
            "params": sum(p.numel() for p in model.parameters())}


@torch.no_grad()
def peer_accuracy(model: torch.nn.Module, loader) -> float:
    model.eval()
    correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    return correct / len(loader.dataset)


def host() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"cpu": cpu, "threads": torch.get_num_threads(), "native_bf16": cpu_has_native_bf16(),
            "amx": bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()),
            "torch": torch.__version__, "python": platform.python_version()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True, help="folder holding the four Fashion-MNIST IDX .gz files")
    ap.add_argument("--peer-script", default=".peers/examples/mnist/main.py",
                    help="unmodified pytorch/examples mnist/main.py")
    ap.add_argument("--peer-epochs", type=positive_int, default=14, help="the example's default: 14")
    ap.add_argument("--out", default="benchmarks/results/fmnist_cpu_speed.json")
    args = ap.parse_args()
    if not Path(args.peer_script).is_file():
        ap.error(f"--peer-script {args.peer_script} does not exist (fetch pytorch/examples into .peers/)")
    keep_freed_memory()
    print(f"cnnlab default recipe {RECIPES['fashion-mnist']}", flush=True)
    ours = run_cnnlab(args.data_dir)
    print("pytorch/examples mnist CNN", flush=True)
    peer = run_peer(args.peer_script, args.data_dir, args.peer_epochs)
    doc = {"host": host(), "target": TARGET,
           "clock": "training seconds only: the per-epoch test evaluation is excluded from both clocks",
           "cnnlab_seconds_to_92": ours["seconds_to_92"], "peer_seconds_to_92": peer["seconds_to_92"],
           "cnnlab_final_accuracy": ours["final_test_accuracy"], "peer_final_accuracy": peer["final_test_accuracy"],
           "cnnlab_train_seconds": ours["train_seconds"], "peer_train_seconds": peer["train_seconds"],
           "cnnlab_wall_seconds": ours["wall_seconds"], "peer_wall_seconds": peer["wall_seconds"],
           "cnnlab": ours, "peer": peer}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1))
    fmt = lambda v: "never" if v is None else f"{v:.1f} s"  # noqa: E731
    print(f"\n{'':28s} {'test acc':>9s} {'train s':>8s} {'wall s':>8s} {'s to 92%':>9s}")
    for name, r in (("cnnlab default recipe", ours), ("pytorch/examples mnist CNN", peer)):
        print(f"{name:28s} {r['final_test_accuracy']:9.4f} {r['train_seconds']:8.1f} {r['wall_seconds']:8.1f} "
              f"{fmt(r['seconds_to_92']):>9s}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
