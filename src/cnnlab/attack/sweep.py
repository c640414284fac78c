"""How robust is a classifier? Accuracy as the budget grows, and the smallest budget that flips each image."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from cnnlab.attack.attacks import check_eps, loss_gradient, run_attack


def predict(model: nn.Module, images: Tensor, batch_size: int = 256) -> Tensor:
    """``N x K`` softmax probabilities, batched, without gradients."""
    with torch.no_grad():
        return torch.cat([model(x).softmax(1) for x in images.split(batch_size)])


def accuracy_vs_eps(model: nn.Module, images: Tensor, labels: Tensor, eps: Sequence[float], attack: str = "fgsm",
                    batch_size: int = 256, seed: int = 0, **kwargs) -> list[float]:
    """Accuracy on adversarial images for each budget (``eps = 0`` is the clean accuracy)."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    if attack == "pgd":
        kwargs["generator"] = g
    accs = []
    for e in (check_eps(e) for e in eps):
        correct = 0
        for x, y in zip(images.split(batch_size), labels.split(batch_size)):
            adv = x if e == 0 else run_attack(attack, model, x, y, e, **kwargs)
            correct += int((predict(model, adv, batch_size).argmax(1) == y).sum())
        accs.append(correct / max(len(labels), 1))
    return accs


def min_flip_eps(model: nn.Module, images: Tensor, labels: Tensor, eps_max: float = 0.5, grid: int = 50,
                 refine: int = 8, batch_size: int = 256) -> Tensor:
    """Per image, the smallest FGSM budget that changes the prediction away from ``labels``.

    The FGSM direction ``sign(grad)`` does not depend on ``eps``, so one gradient per image and
    forward passes suffice: scan ``grid`` budgets up to ``eps_max``, then bisect ``refine`` times
    between the last budget that held and the first that flipped (resolution
    ``eps_max / grid / 2**refine``). 0 for images already misclassified, ``inf`` if none flips.
    """
    eps_max = check_eps(eps_max, "--eps-max")
    model.eval()
    out = []
    for x, y in zip(images.split(batch_size), labels.split(batch_size)):
        direction = loss_gradient(model, x, y).sign()

        def flipped(e: Tensor) -> Tensor:  # e: one budget per image
            adv = (x + e.view(-1, 1, 1, 1) * direction).clamp(0, 1)
            return predict(model, adv, batch_size).argmax(1) != y

        budgets = torch.linspace(0, eps_max, grid + 1, device=x.device)
        flips = torch.stack([flipped(torch.full((len(x),), float(e), device=x.device)) for e in budgets], 1)
        first = torch.where(flips.any(1), flips.float().argmax(1), torch.full_like(y, grid + 1))
        hi = budgets[first.clamp(max=grid)]
        lo = budgets[(first - 1).clamp(min=0, max=grid)]
        for _ in range(refine):
            mid = (lo + hi) / 2
            f = flipped(mid)
            hi, lo = torch.where(f, mid, hi), torch.where(f, lo, mid)
        hi = torch.where(first == 0, torch.zeros_like(hi), hi)
        out.append(torch.where(first > grid, torch.full_like(hi, float("inf")), hi))
    return torch.cat(out)
