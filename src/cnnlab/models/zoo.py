"""The registry's classifiers built for small inputs (CIFAR's 32x32), for side-by-side comparisons.

Every registered model is a zoo member unless it segments (``segmentation`` tag) or carries
pretrained weights (``pretrained``: trained from ImageNet, not from scratch under a shared recipe).
Members with a CIFAR stem get it (``image_size`` = the input); EfficientNet-B1..B3 also keep their
compound-scaled resolution, ``round(size * gamma**phi)`` (37, 42, 49 px from 32), reached by resizing
inside the model, so the zoo's B0..B3 follow the compound rule in depth, width AND resolution.
"""
from __future__ import annotations

import inspect

from torch import nn

from cnnlab.models.efficientnet import B0_RESOLUTION
from cnnlab.models.layers import Resize
from cnnlab.models.registry import create_model, get_entry, list_models

NOT_IN_ZOO = ("segmentation", "pretrained", "imagenet-size")  # the last: stems that need ~299 px (their -cifar twins are in)


def zoo_models() -> list[str]:
    """Names of every registered classifier trained from scratch (sorted by name)."""
    return [e.name for e in list_models() if not set(e.tags) & set(NOT_IN_ZOO) and not e.name.endswith(":")]


def zoo_resolution(name: str, size: int = 32) -> int:
    """The input side a zoo member sees: ``size``, or EfficientNet's compound-scaled ``size * gamma**phi``."""
    entry, _ = get_entry(name)
    if "efficientnet" in entry.tags:
        return round(size * entry.default_input[1] / B0_RESOLUTION)
    return size


def zoo_model(name: str, num_classes: int = 10, in_chans: int = 3, size: int = 32, **kwargs) -> nn.Module:
    """``name`` for ``size x size`` inputs: its small-input stem, and a resize to its compound resolution."""
    entry, _ = get_entry(name)
    resolution = zoo_resolution(name, size)
    params = inspect.signature(entry.builder).parameters
    if "image_size" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kwargs.setdefault("image_size", resolution)
    net = create_model(name, num_classes=num_classes, in_chans=in_chans, **kwargs)
    return nn.Sequential(Resize(resolution), net) if resolution != size else net
