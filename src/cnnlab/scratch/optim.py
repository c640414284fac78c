"""Mini-batch gradient descent, plain and with (Nesterov) momentum, updating arrays in place.

The momentum form is the velocity one from the course, ``v <- mu v - lr g; w <- w + v``.
PyTorch's ``torch.optim.SGD`` stores ``b = -v / lr`` instead (``b <- mu b + g; w <- w - lr b``);
for a constant learning rate both produce the same weights, which ``tests/test_scratch_twin.py``
checks step by step. Nesterov evaluates the gradient at the look-ahead point; rewritten in the
usual variables that is ``w <- w + mu v - lr g`` with the new ``v`` (Sutskever et al., 2013).
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
    """``v <- mu v - lr g``; then ``w <- w + v`` (heavy ball) or ``w <- w + mu v - lr g`` (Nesterov)."""

    def __init__(self, params: Params, lr: float, momentum: float = 0.9, nesterov: bool = False):
        super().__init__(params, lr)
        if not 0 <= momentum < 1:
            raise CnnlabError(f"--momentum must be in [0, 1), got {momentum}")
        self.mu, self.nesterov = momentum, nesterov
        self.velocity = [np.zeros_like(w) for w, _ in self.params]

    def step(self) -> None:
        for (w, g), v in zip(self.params, self.velocity):
            v *= self.mu
            v -= self.lr * g
            if self.nesterov:
                w += self.mu * v - self.lr * g
            else:
                w += v


def make_optimizer(name: str, params: Params, lr: float, momentum: float = 0.9) -> SGD:
    if name == "sgd":
        return SGD(params, lr)
    if name in ("momentum", "nesterov"):
        return Momentum(params, lr, momentum, nesterov=name == "nesterov")
    raise CnnlabError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
