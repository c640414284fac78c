"""Layered run options, for every task: defaults < dataset < device < named recipe < given.

Each training command fills the options a user leaves out from layers of recipes, later layers
winning. One rule needs care and is coded here once: a layer that chooses another model without
giving its ``model_kwargs`` drops the earlier layers' kwargs, since a recipe's U-Net width or CNN
depth belongs to the recipe's model, not to the one chosen instead.
"""
from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING, Iterable

from cnnlab.core.errors import CnnlabError
from cnnlab.train.config import TrainConfig

if TYPE_CHECKING:
    import torch

TRAIN_FIELDS = frozenset(f.name for f in fields(TrainConfig))  # the options the engine takes
PRESETS = ("cpu", "gpu")  # the device kinds a recipe can be sized for


def device_kind(device: torch.device) -> str:
    """Which preset a device gets: ``cpu``, or ``gpu`` for CUDA and Apple MPS."""
    return "cpu" if device.type == "cpu" else "gpu"


def layered(*layers: dict) -> dict:
    """The layers merged in order (later wins), with the ``model_kwargs`` rule above."""
    options: dict = {}
    for layer in layers:
        if "model" in layer and "model_kwargs" not in layer and layer["model"] != options.get("model"):
            options["model_kwargs"] = {}
        options.update(layer)
    return options


def given(options: dict) -> dict:
    """The options a caller gave: None stands for "left out" (the layers below decide)."""
    return {k: v for k, v in options.items() if v is not None}


def engine_config(options: dict, names: Iterable[str] = TRAIN_FIELDS) -> TrainConfig:
    """The engine's settings among ``options`` (only the ``names`` a task hands to the engine)."""
    names = set(names)
    return TrainConfig(**{k: v for k, v in options.items() if k in names})


def refuse_unknown(options: Iterable[str], known: Iterable[str], what: str) -> None:
    """A misspelt option fails before any data is loaded, naming every unknown one."""
    unknown = set(options) - set(known)
    if unknown:
        raise CnnlabError(f"unknown {what} option(s): {', '.join(sorted(unknown))}")
