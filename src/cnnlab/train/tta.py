"""Test-time augmentation: average a classifier's logits over mirrored and shifted views.

Levels follow airbench94: 0 is the plain forward; 1 averages the image and its left-right
mirror; 2 also averages, with the same weight as the un-shifted pair, the mirror pairs of the
image shifted by one pixel up-left and down-right (reflect padding), six views in all. Only use
the mirror where a mirrored image keeps its class (not for digits or text).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

LEVELS = (0, 1, 2)


def shifted_views(x: Tensor, pixels: int = 1) -> tuple[Tensor, Tensor]:
    """``x`` shifted by ``pixels`` up-left and down-right, the uncovered border reflected."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (pixels,) * 4, mode="reflect")
    return padded[..., :h, :w], padded[..., 2 * pixels:2 * pixels + h, 2 * pixels:2 * pixels + w]


def tta_logits(model: nn.Module, x: Tensor, level: int) -> Tensor:
    """The model's logits for ``x`` averaged over the views of TTA ``level`` (0, 1 or 2)."""
    if level not in LEVELS:
        raise ValueError(f"TTA level must be 0, 1 or 2, got {level}")
    if level == 0:
        return model(x)

    def mirror_pair(v: Tensor) -> Tensor:
        return 0.5 * (model(v) + model(v.flip(-1)))

    logits = mirror_pair(x)
    if level == 2:
        up_left, down_right = shifted_views(x)
        logits = 0.5 * logits + 0.25 * (mirror_pair(up_left) + mirror_pair(down_right))
    return logits


class TTA(nn.Module):
    """``model`` evaluated with :func:`tta_logits` (a drop-in module for ``evaluate``)."""

    def __init__(self, model: nn.Module, level: int) -> None:
        super().__init__()
        if level not in LEVELS:
            raise ValueError(f"TTA level must be 0, 1 or 2, got {level}")
        self.model, self.level = model, level

    def forward(self, x: Tensor) -> Tensor:
        return tta_logits(self.model, x, self.level)
