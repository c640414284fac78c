"""A convolutional network from the hand-written layers: conv blocks, then dense layers.

``CNN((1, 28, 28), channels=(32, 64))`` is ``[Conv3x3 -> ReLU -> MaxPool2] x 2 -> Flatten ->
Dense(128) -> ReLU -> Dense(10)``, the course's first CNN without BatchNorm, with softmax +
cross-entropy in the loss. Every derivative is in ``conv.py`` and ``layers.py``. Like the MLP it
takes rows of flattened (C, H, W) images; its first layer views them as channels-last images.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from cnnlab.core.errors import CnnlabError
from cnnlab.scratch.conv import AvgPool2D, Conv2D, Flatten, MaxPool2D, ToChannelsLast
from cnnlab.scratch.layers import Dense, Layer, ReLU
from cnnlab.scratch.network import Network

POOLS = {"max": MaxPool2D, "avg": AvgPool2D}


def check_cnn(image_shape: Sequence[int] | None, channels: Sequence[int], kernel: int, hidden: Sequence[int],
              pool: str) -> None:
    """Reject what would otherwise fail deep inside NumPy with a shape error."""
    if not channels or any(int(c) != c or c <= 0 for c in channels):
        raise CnnlabError(f"--channels must be positive integers, got {list(channels)}")
    if any(int(h) != h or h <= 0 for h in hidden):
        raise CnnlabError(f"--hidden sizes must be positive integers, got {list(hidden)}")
    if kernel < 1 or kernel % 2 == 0:
        raise CnnlabError(f"--kernel must be a positive odd number ('same' padding needs one), got {kernel}")
    if pool not in POOLS:
        raise CnnlabError(f"--pool must be one of {', '.join(POOLS)}, got {pool!r}")
    if image_shape is not None and min(image_shape[1:]) // 2 ** len(channels) < 1:
        raise CnnlabError(f"{len(channels)} conv blocks halve {image_shape[1]}x{image_shape[2]} images to nothing; "
                          "use fewer --channels")


class CNN(Network):
    """``len(channels)`` blocks of conv (``kernel``, 'same' padding) -> ReLU -> 2x2 pool, then dense layers."""

    def __init__(self, image_shape: Sequence[int] = (1, 28, 28), channels: Sequence[int] = (32, 64), kernel: int = 3,
                 hidden: Sequence[int] = (128,), classes: int = 10, pool: str = "max", seed: int = 0,
                 dtype=np.float32):
        check_cnn(image_shape, channels, kernel, hidden, pool)
        rng = np.random.default_rng(seed)
        c, h, w = image_shape
        self.image_shape, self.channels, self.kernel = tuple(image_shape), tuple(channels), kernel
        self.hidden, self.pool = tuple(hidden), pool
        layers: list[Layer] = [ToChannelsLast(self.image_shape)]
        for c_out in channels:
            layers += [Conv2D(c, c_out, kernel, padding=kernel // 2, rng=rng, dtype=dtype), ReLU(), POOLS[pool](2)]
            h, w, c = h // 2, w // 2, c_out
        layers.append(Flatten())
        n = h * w * c
        for n_out in hidden:
            layers += [Dense(n, n_out, "he", rng, dtype), ReLU()]
            n = n_out
        layers.append(Dense(n, classes, "he", rng, dtype))
        super().__init__(layers, dtype)
