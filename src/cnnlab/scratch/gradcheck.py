"""Finite differences against backpropagation: proof that every backward formula is right.

For each parameter entry ``w`` the central difference ``(L(w + h) - L(w - h)) / 2h`` has a
truncation error ``O(h²)`` and a rounding error ``O(eps/h)``; in float64 (``eps ~ 1e-16``)
``h = 1e-5`` balances the two near 1e-10, far below the ``1e-6`` bar, while a wrong formula
(a missing transpose, a forgotten ``1/B``) gives relative errors of order 1.
"""
from __future__ import annotations

import numpy as np

from cnnlab.scratch.network import Network


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """``|a - b| / (|a| + |b|)``: scale-free, so small and large gradients are judged alike."""
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / denom) if denom > 0 else 0.0


def numerical_gradient(model: Network, x: np.ndarray, y: np.ndarray, value: np.ndarray,
                       h: float = 1e-5) -> np.ndarray:
    """Central differences of the loss with respect to every entry of ``value`` (changed in place, restored)."""
    grad = np.zeros_like(value)
    flat, gflat = value.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = model.loss(x, y)
        flat[i] = old - h
        down = model.loss(x, y)
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return grad


def gradient_check(model: Network, x: np.ndarray, y: np.ndarray, h: float = 1e-5) -> dict[str, float]:
    """Relative error between the analytic and the numerical gradient, per parameter tensor.

    Use a float64 model: in float32 the rounding of the loss alone (~1e-7) swamps ``h``.
    """
    model.loss_and_grads(x, y)
    analytic = {name: grad.copy() for name, _, grad in model.named_parameters()}
    return {name: relative_error(analytic[name], numerical_gradient(model, x, y, value, h))
            for name, value, _ in model.named_parameters()}
