"""Adversarial examples in [0, 1] pixel space: FGSM, iterative FGSM and PGD.

The model takes pixels and normalizes inside (``cnnlab.models.layers.Normalize``), so ``eps`` is
an L-infinity budget in pixel units for every model: 8/255 means "each pixel moves by at most 8
grey levels", whatever mean/std the network was trained with.

- FGSM (Goodfellow et al. 2015): one step of size ``eps`` along the sign of the loss gradient.
- I-FGSM (Kurakin et al. 2017): ``steps`` small signed steps, projected back into the ``eps`` ball.
- PGD (Madry et al. 2018): I-FGSM from a random point of the ball, the standard strong attack.

Targeted variants step *down* the loss of the chosen class instead of up the loss of the true one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.core.errors import CnnlabError


def check_eps(eps: float, name: str = "--eps") -> float:
    if not eps >= 0:  # also rejects NaN
        raise CnnlabError(f"{name} must be >= 0 (an L-infinity budget in [0, 1] pixel units), got {eps}")
    return float(eps)


def loss_gradient(model: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
    """Gradient of the summed cross-entropy w.r.t. the images (each image gets its own gradient)."""
    x = images.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), labels, reduction="sum")
    return torch.autograd.grad(loss, x)[0]


def fgsm(model: nn.Module, images: Tensor, labels: Tensor, eps: float, targeted: bool = False) -> Tensor:
    """``clip(x + eps * sign(grad))``; with ``targeted``, ``labels`` are the wanted classes and the step goes down."""
    eps = check_eps(eps)
    direction = loss_gradient(model.eval(), images, labels).sign()
    return (images + (-eps if targeted else eps) * direction).clamp(0, 1).detach()


def pgd(model: nn.Module, images: Tensor, labels: Tensor, eps: float, steps: int = 10, alpha: float | None = None,
        random_start: bool = True, targeted: bool = False, generator: torch.Generator | None = None) -> Tensor:
    """Projected gradient descent in the L-infinity ball of radius ``eps`` around ``images``.

    ``alpha`` (step size) defaults to ``2.5 * eps / steps`` (Madry et al.), enough to cross the
    ball and back. Without ``random_start`` this is I-FGSM (the basic iterative method).
    """
    eps = check_eps(eps)
    if steps < 1:
        raise CnnlabError(f"--steps must be >= 1, got {steps}")
    alpha = 2.5 * eps / steps if alpha is None else check_eps(alpha, "--alpha")
    model.eval()
    x = images.detach()
    if random_start:
        noise = torch.rand(x.shape, generator=generator).to(x.device) * 2 - 1
        x = (x + eps * noise).clamp(0, 1)
    for _ in range(steps):
        step = alpha * loss_gradient(model, x, labels).sign()
        x = x - step if targeted else x + step
        x = (images + (x - images).clamp(-eps, eps)).clamp(0, 1)
    return x.detach()


def ifgsm(model: nn.Module, images: Tensor, labels: Tensor, eps: float, steps: int = 10,
          alpha: float | None = None, targeted: bool = False) -> Tensor:
    """Iterative FGSM: PGD without the random start."""
    return pgd(model, images, labels, eps, steps, alpha, random_start=False, targeted=targeted)


ATTACKS = {"fgsm": fgsm, "ifgsm": ifgsm, "pgd": pgd}


def run_attack(name: str, model: nn.Module, images: Tensor, labels: Tensor, eps: float, **kwargs) -> Tensor:
    """An attack by name; ``kwargs`` (steps, alpha, targeted, ...) go to it when it takes them."""
    if name not in ATTACKS:
        raise CnnlabError(f"unknown attack {name!r}; expected one of {', '.join(ATTACKS)}")
    if name == "fgsm":
        kwargs = {k: v for k, v in kwargs.items() if k == "targeted"}
    return ATTACKS[name](model, images, labels, eps, **kwargs)
