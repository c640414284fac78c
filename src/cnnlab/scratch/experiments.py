"""Training runs of the from-scratch MLP (and its PyTorch twin) on real images, with curves.

One epoch loop serves both frameworks: a *runner* supplies ``step(x, y) -> (loss, n_correct)``
and ``evaluate(x, y) -> (loss, accuracy)``, and the loop feeds both the same seeded batches. So
the suite's NumPy and PyTorch rows differ in the framework only, never in data order or init.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import ClassVar
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cnnlab.core.errors import CnnlabError, Diverged
from cnnlab.core import output
from cnnlab.core.fileio import write_json, write_text
from cnnlab.report.plots import save_figure
from cnnlab.scratch.cnn import CNN, check_cnn
from cnnlab.scratch.mlp import MLP, check_architecture
from cnnlab.scratch.network import Network
from cnnlab.scratch.optim import OPTIMIZERS, make_optimizer
from cnnlab.core.seeding import seed_everything

FRAMEWORKS = ("numpy", "torch")
SCHEDULES = ("linear", "constant")


@dataclass
class RunConfig:
    """How a network is trained, whatever its layers: optimizer, learning-rate schedule, batches, seed.

    ``lr=None`` picks the network's ``DEFAULT_LR`` for the optimizer. Subclasses add the
    architecture and ``build`` the NumPy network from it.
    """

    DEFAULT_LR: ClassVar[dict[str, float]] = {}

    optimizer: str = "momentum"
    lr: float | None = None
    momentum: float = 0.9
    batch_size: int = 64
    epochs: int = 10
    schedule: str = "linear"  # linear: epoch e of E uses lr·(E-e+1)/E; constant: lr throughout
    seed: int = 0
    framework: str = "numpy"
    l2: float = 0.0  # penalties (optim.SGD): (l2/2)|w|² and l1|w|₁ on the weights (and biases if decay_biases)
    l1: float = 0.0
    decay_biases: bool = False
    bias_correction: bool = True  # Adam's division of m and v by 1-β^t

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise CnnlabError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.framework not in FRAMEWORKS:
            raise CnnlabError(f"framework must be one of {', '.join(FRAMEWORKS)}, got {self.framework!r}")
        if self.schedule not in SCHEDULES:
            raise CnnlabError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.lr is None:
            self.lr = self.DEFAULT_LR[self.optimizer]
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise CnnlabError(f"--lr must be a positive number, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise CnnlabError(f"--momentum must be in [0, 1), got {self.momentum}")
        if not (self.l2 >= 0 and self.l1 >= 0):
            raise CnnlabError(f"--l2 and --l1 must be >= 0, got {self.l2} and {self.l1}")
        if self.framework == "torch" and (self.l1 or self.l2 or not self.bias_correction):
            raise CnnlabError("the PyTorch twin runs the plain optimizers: l1, l2 and bias_correction=False "
                              "are NumPy-only")
        if self.batch_size < 1 or self.epochs < 1:
            raise CnnlabError(f"--batch-size and --epochs must be >= 1, got {self.batch_size} and {self.epochs}")

    def build(self, image_shape: tuple[int, int, int], classes: int, dtype=np.float32) -> Network:
        """The NumPy network for flattened ``image_shape`` (C, H, W) inputs and ``classes`` outputs."""
        raise NotImplementedError

    def label(self) -> str:
        """A short description for progress bars and figure legends."""
        raise NotImplementedError


@dataclass
class MLPConfig(RunConfig):
    # learning rates that work for 784-128-64-10 on Fashion-MNIST with batch 64 (see docs/scratch.md)
    DEFAULT_LR: ClassVar[dict[str, float]] = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adam": 0.001}

    hidden: tuple[int, ...] = (128, 64)
    activation: str = "relu"
    init: str | None = None  # None: Xavier for sigmoid, He for ReLU

    def __post_init__(self) -> None:
        self.hidden = tuple(self.hidden)
        check_architecture(self.hidden, self.activation, self.init)
        super().__post_init__()

    def build(self, image_shape: tuple[int, int, int], classes: int, dtype=np.float32) -> MLP:
        return MLP([math.prod(image_shape), *self.hidden, classes], self.activation, self.init, self.seed, dtype)

    def label(self) -> str:
        return f"{self.activation} {self.optimizer}"


@dataclass
class CNNConfig(RunConfig):
    """The NumPy CNN (``cnn.CNN``): conv blocks of ``channels``, then ``hidden`` dense layers."""

    # momentum 0.9 and linear decay, as for the MLP (docs/scratch.md)
    DEFAULT_LR: ClassVar[dict[str, float]] = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adam": 0.001}

    channels: tuple[int, ...] = (32, 64)
    kernel: int = 3
    hidden: tuple[int, ...] = (128,)
    pool: str = "max"

    def __post_init__(self) -> None:
        self.channels, self.hidden = tuple(self.channels), tuple(self.hidden)
        check_cnn(None, self.channels, self.kernel, self.hidden, self.pool)  # image size: checked at build
        super().__post_init__()

    def build(self, image_shape: tuple[int, int, int], classes: int, dtype=np.float32) -> CNN:
        return CNN(image_shape, self.channels, self.kernel, self.hidden, classes, self.pool, self.seed, dtype)

    def label(self) -> str:
        return f"CNN {'-'.join(map(str, self.channels))} {self.optimizer}"


@dataclass
class ArrayData:
    """Flattened float32 pixels in [0, 1] and int64 labels; ``images`` keeps uint8 train images for display.

    Rows hold each image in (C, H, W) order, ``image_shape``; the MLP reads them as they are and
    the CNN's first layer views them as images.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]
    image_shape: tuple[int, int, int]
    images: object = field(repr=False, default=None)  # torch uint8 N x C x H x W


def load_arrays(dataset: str = "fashion-mnist", data_dir: str | None = None) -> ArrayData:
    """The official train/test split of ``dataset`` (no validation cut), as NumPy arrays."""
    from cnnlab.data import load_dataset

    splits = load_dataset(dataset, data_dir, val_fraction=0)

    def flat(images) -> np.ndarray:
        return images.reshape(len(images), -1).numpy().astype(np.float32) / np.float32(255)

    return ArrayData(flat(splits.train.images), splits.train.labels.numpy(), flat(splits.test.images),
                     splits.test.labels.numpy(), list(splits.classes), tuple(splits.train.images.shape[1:]),
                     splits.train.images)


EVAL_CHUNK = 1000  # images per forward pass when evaluating: a conv layer's im2col copy grows with it


class NumpyRunner:
    """The hand-written network and optimizer."""

    def __init__(self, cfg: RunConfig, image_shape: tuple[int, int, int], classes: int, dtype=np.float32):
        self.model = cfg.build(image_shape, classes, dtype)
        self.opt = make_optimizer(cfg.optimizer, self.model.named_parameters(), cfg.lr, cfg.momentum, l2=cfg.l2,
                                  l1=cfg.l1, decay_biases=cfg.decay_biases, bias_correction=cfg.bias_correction)

    def set_lr(self, lr: float) -> None:
        self.opt.lr = lr

    def step(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        loss, logits = self.model.loss_and_grads(x, y)
        self.opt.step()
        return loss, int((logits.argmax(axis=1) == y).sum())

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        loss_sum = correct = 0.0
        for i in range(0, len(y), EVAL_CHUNK):
            logits = self.model.forward(x[i:i + EVAL_CHUNK])
            loss_sum += self.model.loss_fn.forward(logits, y[i:i + EVAL_CHUNK]) * len(logits)
            correct += (logits.argmax(axis=1) == y[i:i + EVAL_CHUNK]).sum()
        return loss_sum / len(y), correct / len(y)


class TorchRunner:
    """The PyTorch twin, starting from exactly the weights the NumPy runner would start from."""

    def __init__(self, cfg: RunConfig, image_shape: tuple[int, int, int], classes: int, dtype=np.float32):
        import torch

        from cnnlab.scratch.twin import torch_optimizer, torch_twin

        self.torch = torch
        self.net = torch_twin(cfg.build(image_shape, classes, dtype))
        self.opt = torch_optimizer(cfg.optimizer, self.net, cfg.lr, cfg.momentum)
        self.loss_fn = torch.nn.CrossEntropyLoss()

    def set_lr(self, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr

    def step(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        x, y = self.torch.from_numpy(x), self.torch.from_numpy(y)
        self.opt.zero_grad(set_to_none=True)
        logits = self.net(x)
        loss = self.loss_fn(logits, y)
        loss.backward()
        self.opt.step()
        return loss.item(), int((logits.argmax(dim=1) == y).sum())

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        loss_sum = correct = 0.0
        with self.torch.no_grad():
            for i in range(0, len(y), EVAL_CHUNK):
                logits = self.net(self.torch.from_numpy(x[i:i + EVAL_CHUNK]))
                y_t = self.torch.from_numpy(y[i:i + EVAL_CHUNK])
                loss_sum += self.loss_fn(logits, y_t).item() * len(y_t)
                correct += (logits.argmax(dim=1) == y_t).sum().item()
        return loss_sum / len(y), correct / len(y)


def make_runner(cfg: RunConfig, data: ArrayData) -> NumpyRunner | TorchRunner:
    return (NumpyRunner if cfg.framework == "numpy" else TorchRunner)(cfg, data.image_shape, len(data.classes))


def train_epoch(runner, x: np.ndarray, y: np.ndarray, batch_size: int, rng: np.random.Generator,
                epoch: int = 1, max_loss: float = math.inf) -> tuple[float, float, float]:
    """One pass over a fresh seeded shuffle; returns mean train loss, train accuracy, seconds.

    The shuffled copy is made once per epoch so that every batch is a contiguous view (cheaper
    than gathering rows for each batch). Train metrics are running means over the epoch's batches.
    A non-finite loss, or one above ``max_loss``, stops the run right there: carrying on would
    only train on garbage.
    """
    perm = rng.permutation(len(y))
    xs, ys = x[perm], y[perm]
    start = time.perf_counter()
    loss_sum = correct = 0.0
    for step, i in enumerate(range(0, len(ys), batch_size), 1):
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is caught right below
            loss, n_right = runner.step(xs[i:i + batch_size], ys[i:i + batch_size])
        if not loss <= max_loss:  # also true for nan
            what = f"became {loss}" if not math.isfinite(loss) else f"diverged to {loss:.3g} (limit {max_loss:.3g})"
            raise Diverged(f"loss {what} at epoch {epoch}, step {step}: the learning rate is too large "
                              "for this network; lower --lr")
        loss_sum += loss * len(ys[i:i + batch_size])
        correct += n_right
    return loss_sum / len(ys), correct / len(ys), time.perf_counter() - start


def train(cfg: RunConfig, data: ArrayData, progress: bool = True, desc: str | None = None):
    """Train for ``cfg.epochs``; returns ``(runner, history)`` with one row per epoch.

    Why the default linear decay: at a constant step, mini-batch noise keeps the weights
    bouncing around a minimum (test accuracy swings by ~0.5% from epoch to epoch); shrinking
    the step towards the end averages that noise out, worth about half a point here.
    """
    seed_everything(cfg.seed)  # the torch twin and anything else drawing from global generators
    runner = make_runner(cfg, data)
    rng = np.random.default_rng(cfg.seed)
    # a guess at random costs log(C); a hundred times that is no longer a bad step but divergence
    max_loss = 100 * math.log(len(data.classes))
    history = []
    bar = tqdm(range(1, cfg.epochs + 1), desc=desc or f"{cfg.framework} {cfg.label()}",
               unit="epoch", disable=not progress)
    for epoch in bar:
        lr = cfg.lr * (cfg.epochs - epoch + 1) / cfg.epochs if cfg.schedule == "linear" else cfg.lr
        runner.set_lr(lr)
        train_loss, train_acc, seconds = train_epoch(runner, data.x_train, data.y_train, cfg.batch_size, rng, epoch,
                                                          max_loss)
        test_loss, test_acc = runner.evaluate(data.x_test, data.y_test)
        history.append({"epoch": epoch, "lr": lr, "train_loss": float(train_loss), "train_accuracy": float(train_acc),
                        "test_loss": float(test_loss), "test_accuracy": float(test_acc), "seconds": seconds})
        bar.set_postfix(loss=f"{train_loss:.3f}", test_acc=f"{test_acc:.4f}")
    return runner, history


# ---------------------------------------------------------------- files and figures

def plot_runs(runs: dict[str, list[dict]], path: Path) -> Path:
    """Loss (train solid, test dashed) and test accuracy per epoch, one colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for (label, hist), color in zip(runs.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3):
        epochs = [r["epoch"] for r in hist]
        ax_loss.plot(epochs, [r["train_loss"] for r in hist], "-o", color=color, ms=3, label=f"{label} train")
        ax_loss.plot(epochs, [r["test_loss"] for r in hist], "--s", color=color, ms=3, label=f"{label} test")
        ax_acc.plot(epochs, [r["test_accuracy"] for r in hist], "-o", color=color, ms=3, label=label)
    for ax, name in ((ax_loss, "cross-entropy loss"), (ax_acc, "test accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def run_training(cfg: RunConfig, data: ArrayData, out: str | Path, progress: bool = True) -> dict:
    """``cnnlab scratch mlp|cnn``: train one network, write ``metrics.json`` and ``curves.png``."""
    out = output.output_folder(out, ("metrics.json", "curves.png"))
    runner, history = train(cfg, data, progress)
    final = history[-1]
    result = {"config": asdict(cfg), "parameters": _num_parameters(runner), "history": history,
              "final": {k: v for k, v in final.items() if k != "epoch"},
              "train_seconds": sum(r["seconds"] for r in history)}
    write_json(out / "metrics.json", result)
    plot_runs({cfg.label(): history}, out / "curves.png")
    return result


def _num_parameters(runner) -> int:
    if isinstance(runner, NumpyRunner):
        return runner.model.num_parameters()
    return sum(p.numel() for p in runner.net.parameters())


# ---------------------------------------------------------------- the course's comparison

SUITE = {
    "b": ("128-64 sigmoid, SGD", dict(hidden=(128, 64), activation="sigmoid", optimizer="sgd")),
    "c": ("128-64 ReLU, SGD", dict(hidden=(128, 64), activation="relu", optimizer="sgd")),
    "d": ("128-64 ReLU, momentum", dict(hidden=(128, 64), activation="relu", optimizer="momentum")),
    "e": ("128-64-64 ReLU, momentum", dict(hidden=(128, 64, 64), activation="relu", optimizer="momentum")),
    "f": ("(d) in PyTorch", dict(hidden=(128, 64), activation="relu", optimizer="momentum", framework="torch")),
}


def run_suite(data: ArrayData, out: str | Path, epochs: int = 10, batch_size: int = 64, seed: int = 0,
              variants: str = "bcdef", progress: bool = True) -> list[dict]:
    """``cnnlab scratch suite``: variants (b)-(f), one table (JSON + markdown), one figure, ``grid.png``."""
    unknown = set(variants) - set(SUITE)
    if unknown or not variants:
        raise CnnlabError(f"--variants: unknown {''.join(sorted(unknown)) or '(none given)'}; known: {''.join(SUITE)}")
    out = output.output_folder(out, ("grid.png", "suite.json", "suite.md", "curves.png"))
    save_grid(data, out / "grid.png", seed)
    rows, runs = [], {}
    for key in variants:
        title, overrides = SUITE[key]
        cfg = MLPConfig(epochs=epochs, batch_size=batch_size, seed=seed, **overrides)
        _, history = train(cfg, data, progress, desc=f"({key}) {title}")
        runs[f"({key}) {title}"] = history
        last = history[-1]
        rows.append({"variant": key, "description": title, "lr": cfg.lr, "epochs": epochs,
                     "train_loss": last["train_loss"], "train_accuracy": last["train_accuracy"],
                     "test_loss": last["test_loss"], "test_accuracy": last["test_accuracy"],
                     "seconds": sum(r["seconds"] for r in history), "history": history})
    write_json(out / "suite.json", {"epochs": epochs, "batch_size": batch_size, "seed": seed, "rows": rows})
    table = suite_table(rows)
    write_text(out / "suite.md", table + "\n")
    plot_runs(runs, out / "curves.png")
    return rows


def suite_table(rows: list[dict]) -> str:
    """Markdown table of the final epoch of each variant (also what the CLI prints)."""
    lines = ["| variant | network | lr | train acc | train loss | test acc | test loss | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| ({r['variant']}) | {r['description']} | {r['lr']:g} | {r['train_accuracy']:.4f} | "
                     f"{r['train_loss']:.4f} | {r['test_accuracy']:.4f} | {r['test_loss']:.4f} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def save_grid(data: ArrayData, path: Path, seed: int = 0) -> Path:
    """Four random training images in a 2x2 grid, titled with their class."""
    import torch

    from cnnlab.report.plots import image_grid

    idx = np.random.default_rng(seed).choice(len(data.y_train), size=4, replace=False)
    titles = [data.classes[data.y_train[i]] for i in idx]
    return image_grid(data.images[torch.from_numpy(idx)], titles, path, cols=2)
