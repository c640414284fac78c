"""Measuring explanations instead of looking at them: faithfulness and stability.

- Deletion (Petsiuk et al. 2018, RISE): remove pixels most-important-first and follow the target
  probability; a faithful map makes it fall fast, so a *lower* area under the curve is better.
- Insertion: start from a blurred image and put pixels back most-important-first; *higher* is better.
- Stability: how much a map changes when the input gets a little noise, as the Spearman rank
  correlation between the clean and noisy maps (1 = same ranking of pixels; higher is more stable).
"""
from __future__ import annotations

from typing import Callable

import torch
import torchvision.transforms.functional as TF
from torch import Tensor, nn
from torchmetrics.functional import spearman_corrcoef

from cnnlab.core.errors import CnnlabError

BASELINES = ("zero", "blur", "mean")


def baseline_image(images: Tensor, kind: str) -> Tensor:
    """What a removed pixel becomes: black, a heavy blur of the image (RISE), or the image's mean colour."""
    if kind == "zero":
        return torch.zeros_like(images)
    if kind == "blur":
        size = images.shape[-1]
        sigma = max(size / 45, 0.5)  # RISE: sigma 5 at 224 pixels
        kernel = 2 * int(2 * sigma) + 1
        return TF.gaussian_blur(images, [kernel, kernel], [sigma, sigma])
    if kind == "mean":
        return images.mean(dim=(-2, -1), keepdim=True).expand_as(images)
    raise CnnlabError(f"unknown baseline {kind!r}; expected one of {', '.join(BASELINES)}")


def perturbation_curve(model: nn.Module, images: Tensor, maps: Tensor, targets: Tensor, mode: str = "deletion",
                       steps: int = 20, baseline: str | None = None, batch_size: int = 64) -> Tensor:
    """``N x (steps + 1)`` target probabilities as pixels are deleted (or inserted) in map order.

    Step ``j`` changes the ``j/steps`` fraction of most important pixels; ties in the map keep
    their raster order, so a constant map deletes top-left first.
    """
    if mode not in ("deletion", "insertion"):
        raise CnnlabError(f"mode must be deletion or insertion, got {mode!r}")
    baseline = baseline or ("zero" if mode == "deletion" else "blur")
    device = next(model.parameters()).device
    images, maps, targets = images.to(device), maps.to(device), targets.to(device)
    n, hw = len(images), maps[0].numel()
    order = maps.flatten(1).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(hw, device=device).expand(n, hw))
    counts = torch.round(torch.linspace(0, hw, steps + 1, device=device)).long()
    base = baseline_image(images, baseline)
    probs = torch.empty(n, steps + 1, device=device)
    with torch.no_grad():
        for i in range(n):
            changed = (rank[i][None] < counts[:, None]).view(steps + 1, 1, *maps.shape[1:])
            first, second = (base[i], images[i]) if mode == "deletion" else (images[i], base[i])
            variants = torch.where(changed, first, second)
            logits = torch.cat([model(v) for v in variants.split(batch_size)])
            probs[i] = logits.softmax(1)[:, targets[i]]
    return probs


def auc(curve: Tensor) -> Tensor:
    """Area under ``N x (steps + 1)`` curves sampled evenly on [0, 1] (trapezoid rule)."""
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[1] - 1), dim=1)


def deletion_auc(model, images, maps, targets, steps: int = 20, baseline: str = "zero") -> Tensor:
    """Per-image area under the deletion curve: lower means the map found what the model uses."""
    return auc(perturbation_curve(model, images, maps, targets, "deletion", steps, baseline))


def insertion_auc(model, images, maps, targets, steps: int = 20, baseline: str = "blur") -> Tensor:
    """Per-image area under the insertion curve: higher means the map found what the model uses."""
    return auc(perturbation_curve(model, images, maps, targets, "insertion", steps, baseline))


def rank_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Spearman correlation between ``a[i]`` and ``b[i]`` for each i (ties get their average rank)."""
    return spearman_corrcoef(a.flatten(1).T.double().cpu(), b.flatten(1).T.double().cpu()).reshape(-1).float()


def noise_stability(explain: Callable[[Tensor, Tensor], Tensor], images: Tensor, targets: Tensor,
                    sigma: float = 0.03, repeats: int = 3, seed: int = 0, maps: Tensor | None = None) -> Tensor:
    """Per-image mean rank correlation between the map of each image and of ``repeats`` noisy copies.

    ``explain(images, targets) -> maps``; the target class is held fixed so the score measures how
    the explanation moves, not whether the prediction flips. Noise is Gaussian in [0, 1] pixel
    units (0.03 is about 8 grey levels), clipped to the valid range.
    """
    if sigma < 0:
        raise CnnlabError(f"noise sigma must be >= 0, got {sigma}")
    g = torch.Generator().manual_seed(seed)
    clean = explain(images, targets) if maps is None else maps
    scores = []
    for _ in range(repeats):
        noise = torch.randn(images.shape, generator=g).to(images.device)
        scores.append(rank_correlation(clean, explain((images + sigma * noise).clamp(0, 1), targets)))
    return torch.stack(scores).mean(0)
