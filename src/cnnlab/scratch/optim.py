"""Mini-batch gradient descent, plain and with (Nesterov) momentum, updating arrays in place.

Momentum keeps a running sum of gradients ``b <- mu b + g`` and steps ``w <- w - lr b``. The
course's velocity form ``v <- mu v - lr g; w <- w + v`` is the same thing with ``v = -lr b`` as
long as ``lr`` is constant; we store ``b`` (as ``torch.optim.SGD`` does) so that when a schedule
changes ``lr``, the new step size applies to the accumulated momentum too, exactly as in
PyTorch, and the two implementations stay comparable step by step. Nesterov takes the gradient
at the look-ahead point; in these variables that is ``w <- w - lr (g + mu b)`` with the new
``b`` (Sutskever et al., 2013).
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from cnnlab.errors import CnnlabError

OPTIMIZERS = ("sgd", "momentum", "nesterov")
Params = Iterable[tuple[str, np.ndarray, np.ndarray]]  # (name, value, gradient), e.g. MLP.named_parameters()


class SGD:
    """``w <- w - lr g`` for every parameter."""

    def __init__(self, params: Params, lr: float):
        if not lr > 0:
            raise CnnlabError(f"--lr must be positive, got {lr}")
        self.params = [(value, grad) for _, value, grad in params]
        self.lr = lr

    def step(self) -> None:
        for w, g in self.params:
            w -= self.lr * g


class Momentum(SGD):
    """``b <- mu b + g``; then ``w <- w - lr b`` (heavy ball) or ``w <- w - lr (g + mu b)`` (Nesterov)."""

    def __init__(self, params: Params, lr: float, momentum: float = 0.9, nesterov: bool = False):
        super().__init__(params, lr)
        if not 0 <= momentum < 1:
            raise CnnlabError(f"--momentum must be in [0, 1), got {momentum}")
        self.mu, self.nesterov = momentum, nesterov
        self.buffers = [np.zeros_like(w) for w, _ in self.params]

    def step(self) -> None:
        for (w, g), b in zip(self.params, self.buffers):
            b *= self.mu
            b += g
            w -= self.lr * (g + self.mu * b) if self.nesterov else self.lr * b


def make_optimizer(name: str, params: Params, lr: float, momentum: float = 0.9) -> SGD:
    if name == "sgd":
        return SGD(params, lr)
    if name in ("momentum", "nesterov"):
        return Momentum(params, lr, momentum, nesterov=name == "nesterov")
    raise CnnlabError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
