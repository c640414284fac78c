"""Label noise on purpose: corrupt training masks at a known rate to test noise handling.

Two kinds of rate. Per mask (``fraction`` of the masks is corrupted): ``shift`` moves a mask's
labels by a random offset of up to a quarter of the image (annotations in the wrong place: every
shifted lesion is at once a missed and a false one); ``erase`` sets a mask to background (missed
annotations); ``dilate:K`` / ``erode:K`` grow or shrink the foreground by K pixels (sloppy outlines;
K = 3 when left out). Per lesion (a lesion: a connected region of one foreground class, 8-connected):
``drop`` erases ``fraction`` of all the set's lesions (missed lesions); ``spurious`` adds
``fraction`` times as many false lesions, each a copy of a random real lesion placed apart from every
labelled pixel (one that finds no free place in 50 tries is left out). The indices of the masks that changed are returned, so an experiment knows the truth.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from cnnlab.core.errors import CnnlabError
from cnnlab.data.segmentation import IGNORE

CORRUPTIONS = ("shift", "erase", "dilate", "erode", "drop", "spurious")
BOUNDARY_PIXELS = 3  # dilate/erode width when the mode names none


def parse_mode(mode: str) -> tuple[str, int]:
    """``"dilate:2"`` -> ("dilate", 2); ``"shift"`` -> ("shift", 0); one clear error otherwise."""
    name, _, width = mode.partition(":")
    if name not in CORRUPTIONS or (width and name not in ("dilate", "erode")):
        raise CnnlabError(f"unknown corruption {mode!r}; expected one of {', '.join(CORRUPTIONS)} "
                          f"(dilate and erode take a width in pixels: dilate:2)")
    if not width:
        return name, BOUNDARY_PIXELS if name in ("dilate", "erode") else 0
    if not width.isdigit() or not 1 <= int(width) <= 64:
        raise CnnlabError(f"corruption {mode!r}: the width must be a whole number of pixels from 1 to 64")
    return name, int(width)


def _boundary(m: Tensor, k: int, grow: bool) -> Tensor:
    """``m`` with its foreground grown (each new pixel takes the largest neighbouring class) or
    shrunk (a pixel within ``k`` of another label becomes background) by ``k`` pixels (a square window)."""
    labelled = torch.where(m == IGNORE, 0, m).float()[None, None]
    window = dict(kernel_size=2 * k + 1, stride=1, padding=k)
    if grow:
        grown = F.max_pool2d(labelled, **window)[0, 0].to(m.dtype)
        return torch.where((m == 0) & (grown > 0), grown, m)
    low = -F.max_pool2d(-labelled, **window)[0, 0]  # a pixel keeps its class only if its whole window has it
    high = F.max_pool2d(labelled, **window)[0, 0]
    inside = (low == labelled[0, 0]) & (high == labelled[0, 0])
    return torch.where((m != 0) & (m != IGNORE) & ~inside, torch.zeros_like(m), m)


def lesions(m: Tensor) -> list[tuple[int, np.ndarray]]:
    """Each lesion of a mask: (class, bool array of its pixels), 8-connected, class by class."""
    arr = m.numpy()
    out = []
    for c in np.unique(arr):
        if c in (0, IGNORE):
            continue
        labels, n = ndimage.label(arr == c, structure=np.ones((3, 3)))
        out += [(int(c), labels == i) for i in range(1, n + 1)]
    return out


def _drop(masks: Tensor, fraction: float, g: torch.Generator) -> tuple[Tensor, list[int]]:
    found = [(i, c, px) for i in range(len(masks)) for c, px in lesions(masks[i])]
    chosen = torch.randperm(len(found), generator=g)[:round(fraction * len(found))].tolist()
    out = masks.clone()
    for j in chosen:
        i, _, px = found[j]
        out[i][torch.from_numpy(px)] = 0
    return out, sorted({found[j][0] for j in chosen})


def _spurious(masks: Tensor, fraction: float, g: torch.Generator) -> tuple[Tensor, list[int]]:
    found = [(c, px) for i in range(len(masks)) for c, px in lesions(masks[i])]
    out, changed = masks.clone(), set()
    n, h, w = masks.shape
    for _ in range(round(fraction * len(found))):
        c, px = found[int(torch.randint(len(found), (1,), generator=g))]
        ys, xs = np.nonzero(px)
        shape = px[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        for _attempt in range(50):  # a free place: nothing labelled in the copy's box or a pixel around it
            i = int(torch.randint(n, (1,), generator=g))
            y = int(torch.randint(h - shape.shape[0] + 1, (1,), generator=g))
            x = int(torch.randint(w - shape.shape[1] + 1, (1,), generator=g))
            if not out[i, max(y - 1, 0):y + shape.shape[0] + 1, max(x - 1, 0):x + shape.shape[1] + 1].any():
                out[i, y:y + shape.shape[0], x:x + shape.shape[1]][torch.from_numpy(shape)] = c
                changed.add(i)
                break
    return out, sorted(changed)


def corrupt_masks(masks: Tensor, fraction: float, mode: str = "shift", seed: int = 0) -> tuple[Tensor, list[int]]:
    """A copy of ``masks`` (N x H x W) corrupted by ``mode`` at rate ``fraction``; and the indices of
    the masks that changed (see the module docstring for what the rate counts)."""
    name, k = parse_mode(mode)
    if not 0 <= fraction <= 1:
        raise CnnlabError(f"corrupt fraction must be in [0, 1], got {fraction}")
    g = torch.Generator().manual_seed(seed)
    if name == "drop":
        return _drop(masks, fraction, g)
    if name == "spurious":
        return _spurious(masks, fraction, g)
    n, h, w = masks.shape
    chosen = sorted(torch.randperm(n, generator=g)[:round(fraction * n)].tolist())
    out = masks.clone()
    for i in chosen:
        m = masks[i]
        if name == "erase":
            out[i] = torch.where(m == IGNORE, m, torch.zeros_like(m))
        elif name in ("dilate", "erode"):
            out[i] = _boundary(m, k, grow=name == "dilate")
        else:
            dy = int(torch.randint(-h // 4, h // 4 + 1, (1,), generator=g))
            dx = int(torch.randint(-w // 4, w // 4 + 1, (1,), generator=g))
            out[i] = torch.roll(m, (dy, dx), dims=(0, 1))
    return out, chosen
