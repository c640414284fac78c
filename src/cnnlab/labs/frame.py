"""The labs frame: each course claim is a function that measures, draws and concludes.

A lab is registered by name with :func:`register_lab` and receives a :class:`LabContext` (quick
or full, seeds, data folder, device). It returns a :class:`LabResult`: every number it measured,
one matplotlib figure, and conclusion sentences written with :meth:`LabResult.conclude`, whose
placeholders are filled from the measured numbers by their key path. A verdict is therefore never
pre-written: the lab chooses a sentence by comparing numbers, and the numbers it quotes are the
ones in ``result.json``. :func:`run_lab` writes ``result.json``, ``figure.png`` and ``summary.md``.

Below the frame are the pieces labs share: real images at a lab's size (Fashion-MNIST when its
files are found through ``--data-dir`` or ``$CNNLAB_DATA``, scikit-learn's embedded 8x8 digits
otherwise; the dataset used is recorded in the lab's settings), training on the shared engine,
repeated seeds, shifted images and CPU timings. Tables and the verdict wording are in
:mod:`cnnlab.core.text`.
"""
from __future__ import annotations

import importlib
import json
import math
import os
import pkgutil
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from cnnlab.core.names import Registry
from cnnlab.core import output
from cnnlab.core.fileio import write_json, write_text
from cnnlab.core.text import spread
from cnnlab.data import DatasetSplits, ImageSet, load_dataset
from cnnlab.data.augment import Augment
from cnnlab.data.base import has_files


@dataclass
class LabContext:
    """What a lab may vary: ``quick`` (seconds, for tests) or full (at most 3 minutes on 2 cores)."""

    out: Path
    quick: bool = False
    seed: int = 0
    data_dir: str | None = None
    device: str = "cpu"
    progress: bool = True
    options: dict = field(default_factory=dict)  # a lab's own options (its CLI sub-command's), e.g. checkpoints

    def pick(self, quick: Any, full: Any) -> Any:
        """``quick`` in a quick run, ``full`` otherwise (sizes, epochs, grids)."""
        return quick if self.quick else full

    @property
    def seeds(self) -> list[int]:
        """One seed in a quick run; three where noise could decide the answer."""
        return [self.seed] if self.quick else [self.seed, self.seed + 1, self.seed + 2]


@dataclass
class LabResult:
    numbers: dict                      # every measured number, JSON-able, nested by meaning
    figure: Any                        # one matplotlib Figure
    settings: dict = field(default_factory=dict)  # what was run: sizes, epochs, data, grids
    table: str = ""                    # optional markdown table of the headline numbers
    conclusions: list[str] = field(default_factory=list)
    quotes: list[dict] = field(default_factory=list)

    def value(self, path: str) -> Any:
        """The measured number at dotted ``path`` (``"largest_lr.bn"``; list items by index)."""
        node: Any = self.numbers
        for key in path.split("."):
            node = node[int(key)] if isinstance(node, list) else node[key]
        return node

    def conclude(self, template: str, **paths: str) -> str:
        """Add a conclusion sentence; each ``{name[:spec]}`` is the number at ``paths[name]``.

        ``r.conclude("without BatchNorm the largest learning rate that trained was {a:g}",
        a="largest_lr.none")``. The quoted values are kept with the sentence in ``result.json``.
        """
        values = {name: self.value(path) for name, path in paths.items()}
        text = template.format(**values)
        self.conclusions.append(text)
        self.quotes.append({"text": text, "numbers": {path: values[name] for name, path in paths.items()}})
        return text


@dataclass(frozen=True)
class LabEntry:
    name: str
    fn: Callable[[LabContext], LabResult]
    question: str   # course question ids, e.g. "000 Q1a" or "002 Q3c, 000 Q1c"
    title: str      # the course question in one line
    data: tuple[str, ...] = ()  # dataset folders the lab cannot run without (e.g. "isbi2012")


def _load_labs() -> None:
    """Import every module of ``labs/catalog``: a new lab is a new file there, registered on import."""
    import cnnlab.labs.catalog as catalog

    for module in pkgutil.iter_modules(catalog.__path__):
        importlib.import_module(f"cnnlab.labs.catalog.{module.name}")


LABS: Registry[LabEntry] = Registry("lab", _load_labs)


def register_lab(name: str, question: str, title: str, data: tuple[str, ...] = ()) -> Callable:
    """Register a lab. ``data`` names dataset folders it needs beyond the embedded ones (labs that
    prefer Fashion-MNIST fall back to the embedded digits and need not list it)."""
    def wrap(fn: Callable[[LabContext], LabResult]) -> Callable[[LabContext], LabResult]:
        LABS.register(name, LabEntry(name, fn, question, title, tuple(data)))
        return fn

    return wrap


def list_labs() -> list[LabEntry]:
    return LABS.entries()


def get_lab(name: str) -> LabEntry:
    return LABS.get(name)


def run_lab(name: str, out: str | Path | None = None, *, quick: bool = False, seed: int = 0,
            data_dir: str | None = None, device: str = "cpu", progress: bool = True, threads: int | None = 1,
            options: dict | None = None) -> dict:
    """Run lab ``name`` and write ``result.json``, ``figure.png`` and ``summary.md`` to ``out``.

    Returns the content of ``result.json``. ``out`` defaults to ``runs/lab-<name>``. ``options`` are
    the lab's own (``cnnlab lab cam-robustness --checkpoint ...``); most labs take none. ``threads``
    (NumPy's BLAS and PyTorch; None leaves them as they are) defaults to 1: the labs' networks and
    batches are small, and a second thread waiting at every tiny op costs more than it brings.
    """
    from cnnlab.core.threads import compute_threads
    from cnnlab.report.plots import save_figure
    from cnnlab.core.seeding import seed_everything

    entry = get_lab(name)
    out = Path(out) if out is not None else Path("runs") / f"lab-{name}"
    output.output_folder(out, ("result.json", "figure.png", "summary.md"))
    ctx = LabContext(out=out, quick=quick, seed=seed, data_dir=data_dir, device=device, progress=progress,
                     options=dict(options or {}))
    seed_everything(seed)
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    with compute_threads(threads):
        result = entry.fn(ctx)
    seconds, cpu_seconds = time.perf_counter() - started, _cpu_seconds() - cpu_started
    if not result.conclusions:
        raise RuntimeError(f"lab {name} concluded nothing")
    record = {
        "lab": name, "question": entry.question, "title": entry.title, "quick": quick, "seed": seed,
        "seconds": round(seconds, 2), "cpu_seconds": round(cpu_seconds, 2),  # CPU time: what a shared machine cannot inflate
        "machine": f"{platform.machine()}, {_cpu_count()} CPU(s)", "threads": threads,
        "settings": result.settings, "numbers": result.numbers, "conclusion": result.conclusions,
        "quotes": result.quotes,
    }
    save_figure(result.figure, out / "figure.png")
    write_json(out / "result.json", record)
    write_text(out / "summary.md", summary_markdown(record, result.table))
    return record


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (user + system, all threads).

    Wall seconds depend on what else runs on a shared machine; CPU seconds are the load-independent
    cost of a lab, so both go into ``result.json``.
    """
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def summary_markdown(record: dict, table: str = "") -> str:
    """``summary.md``: the question, the measured table, the generated conclusion, the settings."""
    # result.json files written before cpu_seconds was recorded (reports read old lab folders) have none
    lines = [f"# {record['lab']}: {record['title']}", "",
             f"Course question {record['question']}. {'Quick run' if record['quick'] else 'Full run'}, "
             f"seed {record['seed']}, {record['seconds']:.1f} s wall, {record.get('cpu_seconds', 0):.1f} CPU-s "
             f"on {record['machine']}.", ""]
    if table:
        lines += ["## Measured", "", table.strip(), ""]
    lines += ["## Conclusion (generated from the measured numbers)", ""]
    lines += [f"- {c}" for c in record["conclusion"]]
    lines += ["", "![figure](figure.png)", "", "## Settings", "", "```json",
              json.dumps(record["settings"], indent=1), "```", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- what labs share: data, training, timing

def lab_data(ctx: LabContext, n_train: int, n_test: int, n_val: int = 0,
             prefer: str = "fashion-mnist") -> DatasetSplits:
    """Seeded subsets of real images: ``n_train``/``n_val`` from the training split, ``n_test`` from test.

    ``prefer`` is used when its files are there, else the embedded digits (1,797 images, so the
    sizes are capped by what exists). Normalization statistics come from the training subset.
    """
    name = prefer if prefer == "digits" or has_files(prefer, ctx.data_dir) else "digits"
    full = load_dataset(name, ctx.data_dir, val_fraction=0, seed=42)
    g = torch.Generator().manual_seed(ctx.seed)
    order = torch.randperm(len(full.train), generator=g)
    n_train = min(n_train, len(order) - n_val)
    train = full.train.subset(order[:n_train])
    val = full.train.subset(order[n_train:n_train + n_val]) if n_val else None
    test = full.test.subset(torch.randperm(len(full.test), generator=g)[:n_test])
    return DatasetSplits(name, full.classes, train, test, val=val, augment=full.augment,
                         info={"source": name, "train": len(train), "val": len(val) if val else 0,
                               "test": len(test)})


def train_small(ctx: LabContext, model: nn.Module, data: DatasetSplits, *, epochs: int, lr: float,
                optimizer: str = "sgd", batch_size: int = 128, weight_decay: float = 0.0, momentum: float = 0.9,
                nesterov: bool = True, schedule: str = "onecycle", augment: str | Augment | None = "none",
                vflip: bool = False, label_smoothing: float = 0.0, seed: int | None = None,
                eval_train: bool = False) -> dict:
    """Train ``model`` with the shared engine; returns history, test accuracy/loss and seconds.

    A run whose loss becomes NaN/inf is not an error here but a result: ``diverged`` is True and
    the test accuracy is chance level (what such a model predicts). ``eval_train`` also measures
    the finished model on its training images in eval mode (``train_accuracy``, ``train_loss``):
    the honest side of a train-test gap (the history's train accuracy is measured during the
    epoch, with dropout, augmentation and batch statistics).
    """
    from cnnlab.classify.api import make_loaders
    from cnnlab.data.tensor_loader import TensorLoader
    from cnnlab.train.engine import Diverged, evaluate, fit
    from cnnlab.train.config import TrainConfig
    from cnnlab.train.tasks import ClassificationTask

    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, momentum=momentum,
                      nesterov=nesterov, weight_decay=weight_decay, schedule=schedule,
                      label_smoothing=label_smoothing, device=ctx.device, seed=ctx.seed if seed is None else seed,
                      channels_last=False)
    train, val, test = make_loaders(data, cfg, augment, vflip)
    task, plain = ClassificationTask(data.num_classes, label_smoothing), ClassificationTask(data.num_classes)
    device = cfg.resolved_device()
    started = time.perf_counter()
    try:
        history = fit(model, train, val, task, cfg, progress=False)
        res = evaluate(model, test, plain, device)
    except Diverged:
        history, res = [], {"loss": float("nan")}
    diverged, chance = not math.isfinite(res["loss"]), 1.0 / data.num_classes  # NaN weights: one class, chance
    out = {"history": history, "diverged": diverged, "test_loss": res["loss"],
           "test_accuracy": chance if diverged else res["accuracy"]}
    if eval_train:
        seen = ({"accuracy": chance, "loss": float("nan")} if diverged else
                evaluate(model, TensorLoader(data.train, 512, data.mean, data.std, device=device), plain, device))
        out.update(train_accuracy=seen["accuracy"], train_loss=seen["loss"])
    out["seconds"] = time.perf_counter() - started
    return out


def as_float(images: ImageSet, mean, std) -> torch.Tensor:
    """uint8 images as normalized float tensors (for labs that run their own forward passes)."""
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return (images.images.float() / 255 - m) / s


# ---------------------------------------------------------------- repeated runs, shifted images, CPU time

def train_seeds(ctx: LabContext, make_model, data: DatasetSplits, seeds=None, **train_kwargs) -> dict:
    """Train a fresh ``make_model()`` for every seed of ``seeds`` (default ``ctx.seeds``) with :func:`train_small`.

    Each seed sets the initial weights and the batch order. Returns the test accuracy and seconds
    as :func:`spread` dicts, every run's history, every run's full :func:`train_small` result
    (``runs``: per-seed divergence, ``train_accuracy`` with ``eval_train=True``), and the last
    seed's trained model (for labs that probe a trained network further).
    """
    from cnnlab.core.seeding import seed_everything

    runs, model = [], None
    for seed in ctx.seeds if seeds is None else seeds:
        seed_everything(seed)
        model = make_model()
        runs.append(train_small(ctx, model, data, seed=seed, **train_kwargs))
    return {"accuracy": spread(r["test_accuracy"] for r in runs), "seconds": spread(r["seconds"] for r in runs),
            "histories": [r["history"] for r in runs], "diverged": any(r["diverged"] for r in runs), "runs": runs,
            "model": model}


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Logits of ``model`` (eval mode) for normalized images ``x``, in batches."""
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def shift(x: torch.Tensor, dy: int, dx: int, fill: torch.Tensor) -> torch.Tensor:
    """Images moved ``dy`` rows down and ``dx`` columns right; uncovered pixels get ``fill`` (per channel).

    ``fill`` is the background after normalization (black is ``-mean/std``), so a shifted digit or
    garment sits on the same background as in training: nothing but its position changes.
    """
    out = fill.view(1, -1, 1, 1).expand_as(x).clone()
    h, w = x.shape[-2:]
    src = x[..., max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    out[..., max(0, dy):max(0, dy) + src.shape[-2], max(0, dx):max(0, dx) + src.shape[-1]] = src
    return out


def background(data: DatasetSplits) -> torch.Tensor:
    """The normalized value of a black pixel, per channel."""
    return -torch.tensor(data.mean) / torch.tensor(data.std)


def cpu_seconds(fn, repeats: int = 5) -> float:
    """Fastest of ``repeats`` calls of ``fn`` in process CPU seconds, on one thread, after a warm-up call.

    CPU time rather than wall time: on a shared machine other processes steal wall-clock time but
    not this process's CPU time; one thread keeps that CPU time the cost of the work itself.
    """
    from cnnlab.core.threads import compute_threads

    with compute_threads(1):
        fn()
        best = float("inf")
        for _ in range(repeats):
            start = time.process_time()
            fn()
            best = min(best, time.process_time() - start)
    return best


def train_step_seconds(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int = 5) -> float:
    """CPU seconds of one forward + backward pass of ``model`` on the batch ``(x, y)`` (see :func:`cpu_seconds`)."""
    model.train()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()

    return cpu_seconds(step, repeats)


def resized(data: DatasetSplits, size: int) -> DatasetSplits:
    """The same images at ``size x size`` (area averaging when shrinking, bilinear when growing).

    Labs shrink images to afford deep networks on a CPU, and grow them to scale resolution.
    """
    def resize(images: ImageSet | None) -> ImageSet | None:
        if images is None:
            return None
        x = images.images.float()
        mode = "area" if size <= x.shape[-1] else "bilinear"
        y = nn.functional.interpolate(x, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))
        return ImageSet(y.round().clamp(0, 255).to(torch.uint8), images.labels)

    train = resize(data.train)
    return DatasetSplits(data.name, data.classes, train, resize(data.test), val=resize(data.val),
                         augment=data.augment, info={**data.info, "image_size": size})


def trained_bar(best: float, chance: float) -> float:
    """The accuracy a run needs to count as 'trained': half of the best run's gain over chance."""
    return chance + 0.5 * (best - chance)


def lab_arrays(ctx: LabContext, n_train: int, n_test: int, prefer: str = "fashion-mnist"):
    """The subsets of :func:`lab_data` as the NumPy networks take them: flattened pixels in [0, 1]."""
    from cnnlab.scratch.experiments import ArrayData

    data = lab_data(ctx, n_train, n_test, prefer=prefer)

    def flat(images: ImageSet):
        return images.images.reshape(len(images), -1).numpy().astype("float32") / 255, images.labels.numpy()

    (x_train, y_train), (x_test, y_test) = flat(data.train), flat(data.test)
    return (ArrayData(x_train, y_train, x_test, y_test, list(data.classes), tuple(data.train.images.shape[1:]),
                      data.train.images), data.info)


def finish_axes(axes, xlabel: str | None = None, **legend) -> None:
    """The common finish of a lab figure's panels: an x label, a light grid, a small legend where there are labels."""
    import numpy as np

    for ax in np.ravel(axes):
        if xlabel:
            ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(**{"fontsize": 8, **legend})
