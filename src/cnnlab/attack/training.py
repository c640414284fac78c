"""Adversarial training (Goodfellow et al. 2015; Madry et al. 2018): the loss sees attacked images.

``cnnlab train --adversarial fgsm:EPS`` replaces every training batch by its FGSM version (``pgd:EPS``
by a 10-step PGD one) crafted against the current weights, so the network learns to classify the
worst case inside the ``eps`` ball instead of the clean image. The attacks are the ones of
``cnnlab.attack.attacks``, in [0, 1] pixel space: the training loader hands out normalized images,
so :class:`AdversarialBatches` maps them back to pixels, attacks a ``Normalize``-wrapped model, and
normalizes the result again. ``eps`` means the same number of grey levels as in ``cnnlab attack``.
"""
from __future__ import annotations

import argparse
from typing import Sequence

import torch
from torch import Tensor, nn

from cnnlab.attack.attacks import ATTACKS, check_eps, run_attack
from cnnlab.core.errors import CnnlabError


def parse_adversarial(spec: str) -> tuple[str, float]:
    """``"fgsm:0.03"`` -> ``("fgsm", 0.03)``; the method must be one of the attack module's."""
    method, _, eps = str(spec).partition(":")
    try:
        value = float(eps)
    except ValueError:
        value = float("nan")
    if method not in ATTACKS or not 0 < value <= 1:
        raise CnnlabError(f"--adversarial {spec!r}: expected METHOD:EPS with METHOD one of {', '.join(ATTACKS)} "
                          f"and 0 < EPS <= 1 in [0, 1] pixel units, e.g. fgsm:0.03")
    return method, value


def adversarial_arg(text: str) -> str:
    """argparse ``type=`` for ``--adversarial``: one line naming the option on bad input."""
    try:
        parse_adversarial(text)
    except CnnlabError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None
    return text


class AdversarialBatches:
    """``perturb(model, x, y)`` for ``cnnlab.train.engine.fit``: normalized batch in, attacked normalized batch out.

    The attack runs with the model in eval mode (BatchNorm uses its running statistics, dropout is
    off, so the perturbation depends on the weights only); ``fit`` switches back to training mode.
    """

    def __init__(self, spec: str, mean: Sequence[float], std: Sequence[float], seed: int = 0) -> None:
        self.method, self.eps = parse_adversarial(spec)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        from cnnlab.models.pixel import pixel_wrap

        mean, std = self.mean.to(x.device), self.std.to(x.device)
        pixels = (x * std + mean).clamp(0, 1)
        wrapped = pixel_wrap(model, self.mean.flatten().tolist(), self.std.flatten().tolist()).to(x.device)
        kw = {"generator": self.generator} if self.method == "pgd" else {}
        adv = run_attack(self.method, wrapped, pixels, y, self.eps, **kw)
        return ((adv - mean) / std).detach()


def robust_accuracy(model: nn.Module, images: Tensor, labels: Tensor, spec: str, batch_size: int = 256,
                    seed: int = 0) -> float:
    """Accuracy of a pixel-space model on the ``spec`` attack of each image (the training attack, as tested)."""
    from cnnlab.attack.sweep import accuracy_vs_eps

    method, eps = parse_adversarial(spec)
    return accuracy_vs_eps(model, images, labels, [check_eps(eps)], method, batch_size, seed)[0]

