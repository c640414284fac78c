"""``TrainConfig``, every setting of the training loop, and what each setting may be.

The rules are checked when a ``TrainConfig`` is made, so a bad value (from the API, a recipe or a
resumed config.json) stops before a run folder exists, not epochs later. The module is torch-free:
the CLI builds its training options from these fields without loading torch.

The CLI's training flags (:mod:`cnnlab.cli.options`) check each value with its rule here, so the
command line refuses the same values, in the same words, one option at a time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from cnnlab.core.errors import CnnlabError

if TYPE_CHECKING:
    import torch


def _holds(rule: Callable[[Any], bool], value: Any) -> bool:
    try:
        return bool(rule(value))
    except (TypeError, ValueError):
        return False


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "step", "plateau", "none")
AVERAGES = ("none", "lookahead", "ema")  # cnnlab.train.averaging
LR_SCALINGS = ("linear", "sqrt", "none")  # how lr grows with torchrun's world size (scaled_lr)

RULES: tuple[tuple[str, str, Callable[[Any], bool]], ...] = (
    ("epochs", "an integer >= 1", lambda v: _is_int(v) and v >= 1),
    ("batch_size", "an integer >= 1", lambda v: _is_int(v) and v >= 1),
    ("optimizer", "sgd, adam or adamw", lambda v: str(v).lower() in OPTIMIZERS),
    ("lr", "a number > 0", lambda v: _finite(v) and v > 0),
    ("momentum", "a number in [0, 1)", lambda v: _finite(v) and 0 <= v < 1),
    ("weight_decay", "a number >= 0", lambda v: _finite(v) and v >= 0),
    ("schedule", "onecycle, cosine, step, plateau or none", lambda v: str(v).lower() in SCHEDULES),
    ("step_size", "an integer >= 1", lambda v: _is_int(v) and v >= 1),
    ("gamma", "a number in (0, 1]", lambda v: _finite(v) and 0 < v <= 1),
    ("warmup", "a number in [0, 1]", lambda v: _finite(v) and 0 <= v <= 1),
    ("label_smoothing", "a number in [0, 1)", lambda v: _finite(v) and 0 <= v < 1),
    ("patience", "an integer >= 0", lambda v: _is_int(v) and v >= 0),
    ("seed", "an integer >= 0", lambda v: _is_int(v) and v >= 0),
    ("bn_lr_scale", "a number > 0", lambda v: _finite(v) and v > 0),
    ("average", "none, lookahead or ema", lambda v: v in AVERAGES),
    ("tta", "an integer in [0, 2]", lambda v: _is_int(v) and 0 <= v <= 2),
    ("grad_clip", "a number >= 0 (0: off)", lambda v: _finite(v) and v >= 0),
    ("accumulate", "an integer in [1, 1024]", lambda v: _is_int(v) and 1 <= v <= 1024),
    ("keep_top", "an integer in [0, 100]", lambda v: _is_int(v) and 0 <= v <= 100),
    ("mixup", "a number in [0, 10] (0: off)", lambda v: _finite(v) and 0 <= v <= 10),
    ("cutmix", "a number in [0, 10] (0: off)", lambda v: _finite(v) and 0 <= v <= 10),
    ("lr_scaling", "linear, sqrt or none", lambda v: v in LR_SCALINGS),
)


def check_settings(cfg: Any) -> None:
    """Raise one :class:`CnnlabError` listing every setting of ``cfg`` outside its rule."""
    bad = [f"{name}={getattr(cfg, name)!r} (expected {rule})" for name, rule, ok in RULES
           if hasattr(cfg, name) and not _holds(ok, getattr(cfg, name))]
    if bad:
        raise CnnlabError(f"invalid training settings: {'; '.join(bad)}")


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "onecycle"  # onecycle | cosine | step | plateau | none
    step_size: int = 10  # epochs between decays for "step"
    gamma: float = 0.1  # decay factor for "step" and "plateau"
    warmup: float = 0.25  # fraction of steps rising to the peak lr for "onecycle"
    lr_start_factor: float = 0.1  # "onecycle" starts at this fraction of the peak lr ...
    lr_end_factor: float = 0.001  # ... and ends at this one
    bn_lr_scale: float = 1.0  # lr multiplier for normalisation-layer parameters (airbench: 64)
    decay_all: bool = False  # weight decay on biases and norm parameters too (default: weights only)
    average: str = "none"  # none | lookahead | ema (cnnlab.train.averaging)
    average_every: int = 5  # optimizer steps between weight-averaging updates
    average_decay: float = 0.95 ** 5  # final decay of the average (ramped up as (step/total)^3)
    tta: int = 0  # test-time augmentation for validation/test: 0 none, 1 mirror, 2 mirror + 1-px shifts
    compile: bool = False  # torch.compile the model (compile time reported apart, as compile_seconds)
    cpu_amp: bool = False  # bf16 autocast on the CPU too (fast with AMX / AVX512-BF16, slow without)
    label_smoothing: float = 0.0
    patience: int = 0  # early stopping after this many epochs without improvement (0: off)
    amp: bool = True  # bf16 autocast, on CUDA only
    channels_last: bool = True  # NHWC: faster convs on CUDA and with oneDNN on CPU (~15% for simple-cnn)
    device: str = "auto"
    seed: int = 42
    grad_clip: float = 0.0  # clip the gradients' global L2 norm to this (0: off); the norm goes into history
    accumulate: int = 1  # micro-batches per optimizer step: the step sees accumulate x batch_size images
    keep_top: int = 0  # keep the K best epochs' checkpoints as epochNNN.ckpt beside best.ckpt (0: none)
    mixup: float = 0.0  # Beta(a, a) of torchvision's MixUp (0: off); with cutmix > 0 too, one of them per batch
    cutmix: float = 0.0  # Beta(a, a) of torchvision's CutMix (0: off)
    lr_scaling: str = "linear"  # under torchrun: lr x world_size (linear), x sqrt(world_size), or as given (none)
    adversarial: str = ""  # "fgsm:EPS" / "pgd:EPS": train on attacked batches (cnnlab.attack.training)

    def __post_init__(self) -> None:
        check_settings(self)  # bad values stop here, before a run folder exists

    def scaled_lr(self, world_size: int) -> float:
        """The peak LR for ``world_size`` processes, each with ``batch_size`` images per step: ``lr`` is
        the LR of one process's batch, and the global batch is ``world_size`` times larger. Linear
        scaling (Goyal et al. 2017, the torchvision references' rule) keeps the per-image step; sqrt
        keeps the gradient noise (Krizhevsky 2014, often better for Adam)."""
        factor = {"linear": world_size, "sqrt": math.sqrt(world_size), "none": 1}[self.lr_scaling]
        return self.lr * factor

    def data_parallel(self, world_size: int) -> dict:
        """What config.json, metrics.json and the report say about the processes that trained."""
        return {"world_size": world_size, "batch_size_per_process": self.batch_size,
                "global_batch_size": self.batch_size * world_size * self.accumulate,
                "lr_scaling": self.lr_scaling, "lr": self.lr, "scaled_lr": self.scaled_lr(world_size)}

    def resolved_device(self) -> torch.device:
        """``auto`` is this process's GPU when there is one (its local rank under torchrun), else the CPU."""
        import torch

        from cnnlab.core.distributed import resolve_device

        return torch.device(resolve_device(self.device))
