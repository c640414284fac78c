"""Label noise on purpose: corrupt a known fraction of training masks to test noise handling.

``shift`` moves a mask's labels by a random offset of up to a quarter of the image (annotations
in the wrong place: every shifted lesion is at once a missed and a false one); ``erase`` sets a
mask to background (missed annotations); ``dilate`` grows foreground by a few pixels (sloppy
outlines). Which masks were corrupted is returned, so an experiment knows the truth.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cnnlab.core.errors import CnnlabError
from cnnlab.data.segmentation import IGNORE

CORRUPTIONS = ("shift", "erase", "dilate")


def corrupt_masks(masks: Tensor, fraction: float, mode: str = "shift", seed: int = 0) -> tuple[Tensor, list[int]]:
    """A copy of ``masks`` (N x H x W) with ``round(fraction * N)`` of them corrupted; and their indices."""
    if mode not in CORRUPTIONS:
        raise CnnlabError(f"unknown corruption {mode!r}; expected one of {', '.join(CORRUPTIONS)}")
    if not 0 <= fraction <= 1:
        raise CnnlabError(f"corrupt fraction must be in [0, 1], got {fraction}")
    g = torch.Generator().manual_seed(seed)
    n, h, w = masks.shape
    chosen = sorted(torch.randperm(n, generator=g)[:round(fraction * n)].tolist())
    out = masks.clone()
    for i in chosen:
        m = masks[i]
        if mode == "erase":
            out[i] = torch.where(m == IGNORE, m, torch.zeros_like(m))
        elif mode == "dilate":
            fg = ((m != 0) & (m != IGNORE)).float()[None, None]
            grown = F.max_pool2d(fg, 7, stride=1, padding=3)[0, 0] > 0
            # a grown pixel takes the class of the nearest labelled neighbour; binary: class 1
            neighbour = F.max_pool2d(torch.where(m == IGNORE, 0, m).float()[None, None], 7, 1, 3)[0, 0]
            out[i] = torch.where(grown & (fg[0, 0] == 0) & (m != IGNORE), neighbour.to(m.dtype), m)
        else:
            dy = int(torch.randint(-h // 4, h // 4 + 1, (1,), generator=g))
            dx = int(torch.randint(-w // 4, w // 4 + 1, (1,), generator=g))
            out[i] = torch.roll(m, (dy, dx), dims=(0, 1))
    return out, chosen
