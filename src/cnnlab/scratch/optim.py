"""Mini-batch gradient descent, plain, with (Nesterov) momentum, and Adam, updating arrays in place.

Momentum keeps a running sum of gradients ``b <- mu b + g`` and steps ``w <- w - lr b``. The
course's velocity form ``v <- mu v - lr g; w <- w + v`` is the same thing with ``v = -lr b`` as
long as ``lr`` is constant; we store ``b`` (as ``torch.optim.SGD`` does) so that when a schedule
changes ``lr``, the new step size applies to the accumulated momentum too, exactly as in
PyTorch, and the two implementations stay comparable step by step. Nesterov takes the gradient
at the look-ahead point; in these variables that is ``w <- w - lr (g + mu b)`` with the new
``b`` (Sutskever et al., 2013).

Every optimizer can add a penalty's gradient to the data gradient: ``l2·w`` for ``(l2/2)|w|²``
(weight decay, as ``torch.optim.SGD(weight_decay=)``) and ``l1·sign(w)`` for ``l1·|w|₁`` (its
subgradient). Biases (1-D arrays) are left alone unless ``decay_biases``: they set offsets, not
how strongly the output follows an input, so shrinking them fights the data without simplifying
the function.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from cnnlab.core.errors import CnnlabError

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
Params = Iterable[tuple[str, np.ndarray, np.ndarray]]  # (name, value, gradient), e.g. MLP.named_parameters()


class SGD:
    """``w <- w - lr g`` for every parameter (``g`` including the penalty's gradient)."""

    def __init__(self, params: Params, lr: float, l2: float = 0.0, l1: float = 0.0, decay_biases: bool = False):
        if not lr > 0:
            raise CnnlabError(f"--lr must be positive, got {lr}")
        if not (l2 >= 0 and l1 >= 0):
            raise CnnlabError(f"penalties must be >= 0, got l2={l2}, l1={l1}")
        self.params = [(value, grad) for _, value, grad in params]
        self.lr, self.l2, self.l1 = lr, l2, l1
        self.penalized = [decay_biases or value.ndim > 1 for value, _ in self.params]

    def gradient(self, i: int) -> np.ndarray:
        """Parameter ``i``'s gradient plus its penalty's (the stored gradient itself when there is none)."""
        w, g = self.params[i]
        if not self.penalized[i] or not (self.l2 or self.l1):
            return g
        g = g + self.l2 * w if self.l2 else g.copy()
        if self.l1:
            g += self.l1 * np.sign(w)
        return g

    def step(self) -> None:
        for i, (w, _) in enumerate(self.params):
            w -= self.lr * self.gradient(i)


class Momentum(SGD):
    """``b <- mu b + g``; then ``w <- w - lr b`` (heavy ball) or ``w <- w - lr (g + mu b)`` (Nesterov)."""

    def __init__(self, params: Params, lr: float, momentum: float = 0.9, nesterov: bool = False, **penalties):
        super().__init__(params, lr, **penalties)
        if not 0 <= momentum < 1:
            raise CnnlabError(f"--momentum must be in [0, 1), got {momentum}")
        self.mu, self.nesterov = momentum, nesterov
        self.buffers = [np.zeros_like(w) for w, _ in self.params]

    def step(self) -> None:
        for i, ((w, _), b) in enumerate(zip(self.params, self.buffers)):
            g = self.gradient(i)
            b *= self.mu
            b += g
            w -= self.lr * (g + self.mu * b) if self.nesterov else self.lr * b


class Adam(SGD):
    """Adam (Kingma & Ba 2015): running means of ``g`` and ``g²``, and a step ``lr·m̂/(√v̂ + eps)``.

    ``m <- β1 m + (1-β1) g`` and ``v <- β2 v + (1-β2) g²`` start at 0, so after ``t`` steps of a
    steady gradient ``m = (1-β1^t) g``: an estimate biased towards 0 (10% of ``g`` at ``t = 1``).
    Dividing by ``1-β1^t`` (and ``v`` by ``1-β2^t``) removes that bias exactly; with
    ``bias_correction=False`` the raw ``m``, ``v`` are used (the lab ``adam-bias-correction``).
    """

    def __init__(self, params: Params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 bias_correction: bool = True, **penalties):
        super().__init__(params, lr, **penalties)
        if not all(0 <= b < 1 for b in betas):
            raise CnnlabError(f"Adam betas must be in [0, 1), got {betas}")
        self.beta1, self.beta2 = betas
        self.eps, self.bias_correction, self.t = eps, bias_correction, 0
        self.m = [np.zeros_like(w) for w, _ in self.params]
        self.v = [np.zeros_like(w) for w, _ in self.params]

    def corrections(self) -> tuple[float, float]:
        """The divisors ``(1-β1^t, 1-β2^t)`` of the current step (``(1, 1)`` without correction)."""
        if not self.bias_correction:
            return 1.0, 1.0
        return 1.0 - self.beta1 ** self.t, 1.0 - self.beta2 ** self.t

    def step(self) -> None:
        self.t += 1
        c1, c2 = self.corrections()
        for i, ((w, _), m, v) in enumerate(zip(self.params, self.m, self.v)):
            g = self.gradient(i)
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            v *= self.beta2
            v += (1.0 - self.beta2) * g * g
            w -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


def make_optimizer(name: str, params: Params, lr: float, momentum: float = 0.9, *, l2: float = 0.0,
                   l1: float = 0.0, decay_biases: bool = False, bias_correction: bool = True) -> SGD:
    penalties = dict(l2=l2, l1=l1, decay_biases=decay_biases)
    if name == "sgd":
        return SGD(params, lr, **penalties)
    if name in ("momentum", "nesterov"):
        return Momentum(params, lr, momentum, nesterov=name == "nesterov", **penalties)
    if name == "adam":
        return Adam(params, lr, bias_correction=bias_correction, **penalties)
    raise CnnlabError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
