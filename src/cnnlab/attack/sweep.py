"""How robust is a classifier? Accuracy as the budget grows, and the smallest budget that flips each image."""
from __future__ import annotations

from typing import Callable, Sequence

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


def smallest_eps(model: nn.Module, x: Tensor, direction: Tensor, success: Callable[[Tensor], Tensor],
                 eps_max: float, grid: int = 50, refine: int = 8, batch_size: int = 256) -> Tensor:
    """Per image, the smallest budget ``e`` for which ``success(predictions of x + e * direction)`` holds.

    The direction of a one-step attack does not depend on ``eps``, so forward passes suffice: scan
    ``grid`` budgets up to ``eps_max``, then bisect ``refine`` times between the last budget that
    failed and the first that succeeded (resolution ``eps_max / grid / 2**refine``). 0 where the
    clean image already succeeds, ``inf`` where no budget does.
    """
    def works(e: Tensor) -> Tensor:  # e: one budget per image
        adv = (x + e.view(-1, 1, 1, 1) * direction).clamp(0, 1)
        return success(predict(model, adv, batch_size).argmax(1))

    budgets = torch.linspace(0, eps_max, grid + 1, device=x.device)
    hits = torch.stack([works(torch.full((len(x),), float(e), device=x.device)) for e in budgets], 1)
    first = torch.where(hits.any(1), hits.float().argmax(1), torch.full((len(x),), grid + 1, device=x.device))
    hi = budgets[first.clamp(max=grid)]
    lo = budgets[(first - 1).clamp(min=0, max=grid)]
    for _ in range(refine):
        mid = (lo + hi) / 2
        f = works(mid)
        hi, lo = torch.where(f, mid, hi), torch.where(f, lo, mid)
    hi = torch.where(first == 0, torch.zeros_like(hi), hi)
    return torch.where(first > grid, torch.full_like(hi, float("inf")), hi)


def min_flip_eps(model: nn.Module, images: Tensor, labels: Tensor, eps_max: float = 0.5, grid: int = 50,
                 refine: int = 8, batch_size: int = 256) -> Tensor:
    """Per image, the smallest FGSM budget that changes the prediction away from ``labels``
    (:func:`smallest_eps` along FGSM's direction): 0 for images already misclassified, ``inf`` if none flips."""
    eps_max = check_eps(eps_max, "--eps-max")
    model.eval()
    out = []
    for x, y in zip(images.split(batch_size), labels.split(batch_size)):
        direction = loss_gradient(model, x, y).sign()
        out.append(smallest_eps(model, x, direction, lambda pred, y=y: pred != y, eps_max, grid, refine, batch_size))
    return torch.cat(out)


def min_targeted_eps(model: nn.Module, images: Tensor, targets: Tensor, eps_max: float = 0.5, grid: int = 50,
                     refine: int = 8) -> Tensor:
    """Per image, the smallest *targeted* FGSM budget whose image the model classifies as ``targets``:
    one step down the target's loss, ``x - eps * sign(grad CE(x, target))``; ``inf`` if none up to ``eps_max``."""
    eps_max = check_eps(eps_max, "--eps-max")
    model.eval()
    direction = -loss_gradient(model, images, targets).sign()
    return smallest_eps(model, images, direction, lambda pred: pred == targets, eps_max, grid, refine)


def iterative_targeted(model: nn.Module, image: Tensor, target: int, eps_max: float = 0.5, alpha: float = 1 / 255,
                       max_steps: int = 200) -> tuple[Tensor, int]:
    """Targeted iterative FGSM on one image (``1 x C x H x W``), stopped at the first step the model says
    ``target``: steps of ``alpha`` kept inside the ``eps_max`` ball. Returns the image and the steps
    taken (``-1`` if the target was not reached)."""
    model.eval()
    goal = torch.tensor([target], device=image.device)
    x = image.detach()
    for step in range(1, max_steps + 1):
        x = x - alpha * loss_gradient(model, x, goal).sign()
        x = (image + (x - image).clamp(-eps_max, eps_max)).clamp(0, 1).detach()
        if int(predict(model, x).argmax(1)) == target:
            return x, step
    return x, -1
