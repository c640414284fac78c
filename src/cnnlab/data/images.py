"""Single images for the tools that run on one model and a few pictures (predict, explain, attack,
match, export, demo): image files, ``skimage:<name>`` photos, and the way back to a displayable array.

Every capability reads its images here, so an image given on any command line means the same pixels:
files are decoded by :func:`cnnlab.data.imagefolder.read_image` (16-bit and float files scaled, never
clipped), and ``skimage:chelsea``, ``skimage:coffee``, ... are the photos shipped with scikit-image,
so examples and tests work without a file at hand.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from cnnlab.data.decode import SKIMAGE, read_image, skimage_photo  # noqa: F401  (skimage_photo: this module's API too)


def load_image(spec: str | Path, channels: int, size: Sequence[int] | None = None) -> Tensor:
    """An image file or ``skimage:<name>`` photo as uint8 ``C x H x W`` with ``channels`` (1 or 3),
    resized to ``size`` (H, W) when given."""
    hw = (int(size[0]), int(size[1])) if size is not None else None
    text = str(spec)
    arr = skimage_photo(text[len(SKIMAGE):], channels, hw) if text.startswith(SKIMAGE) else read_image(spec, channels, hw)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


def load_images(specs: Sequence[str | Path], input_size: Sequence[int]) -> Tensor:
    """Files or ``skimage:<name>`` photos as float ``N x C x H x W`` in [0, 1], resized to ``input_size``
    (C, H, W): the batch a pixel-space classifier (:mod:`cnnlab.models.pixel`) takes."""
    c, h, w = input_size
    return torch.stack([load_image(s, c, (h, w)) for s in specs]).float() / 255


def to_rgb(image: Tensor) -> np.ndarray:
    """C x H x W float image in [0, 1] -> H x W x 3 array (grey images repeated), what matplotlib and PNG writers show."""
    arr = image.detach().cpu().float().clamp(0, 1).numpy().transpose(1, 2, 0)
    return np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr
