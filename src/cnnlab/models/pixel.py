"""The one "normalise, then model" wrapper: a network trained on normalised inputs, taking [0, 1] pixels.

Explanations, attacks, export, the demo and adversarial training all need a model whose input is
the image itself: an attack's epsilon, a saliency map or an exported graph then mean the same thing
for every model, whatever normalisation it was trained with. They all wrap it here, so the wrapped
model has one layout everywhere: ``normalize`` (:class:`~cnnlab.models.layers.Normalize`), then
``net``, whose layer names stay those of the original model under ``net.``.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

from torch import nn

from cnnlab.models.layers import Normalize


def pixel_wrap(net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> nn.Sequential:
    """``normalize -> net`` in eval mode (what every pixel-space user runs; training code switches back)."""
    return nn.Sequential(OrderedDict(normalize=Normalize(tuple(mean), tuple(std)), net=net)).eval()
