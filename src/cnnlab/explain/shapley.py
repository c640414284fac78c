"""Shapley values of a cooperative game whose players are switched on and off by boolean masks.

A game is a function ``value(masks) -> values``: ``masks`` is a ``B x n`` boolean tensor (row =
one coalition, True = player present) and the result the ``B`` coalition values. Evaluating many
coalitions in one call is what makes Shap-CAM affordable: the network scores them as one batch.

Player ``i``'s Shapley value is its marginal contribution ``v(S + i) - v(S)`` averaged over all
orders in which the players can join. Enumerating the ``2^n`` coalitions is exact but only feasible
for a handful of players; sampling random orders (permutations) is unbiased, and every sampled
order's contributions sum exactly to ``v(all) - v(none)`` (efficiency), whatever the sample size.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

Game = Callable[[Tensor], Tensor]


def exact_shapley(value: Game, n: int) -> Tensor:
    """Shapley values by enumerating all ``2^n`` coalitions (the reference for tests; n <= ~16)."""
    codes = torch.arange(2 ** n)
    bits = 1 << torch.arange(n)
    masks = (codes[:, None] & bits) != 0  # coalition k contains player i iff bit i of k is set
    v = value(masks).double()
    sizes = masks.sum(1)
    # weight of a coalition S not containing i: |S|! (n - |S| - 1)! / n!
    weight = torch.tensor([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)],
                          dtype=torch.float64)
    phi = torch.empty(n, dtype=torch.float64)
    for i in range(n):
        without = codes[~masks[:, i]]
        phi[i] = (weight[sizes[without]] * (v[without | (1 << i)] - v[without])).sum()
    return phi


def sample_shapley(value: Game, n: int, samples: int, generator: torch.Generator | None = None,
                   antithetic: bool = True) -> Tensor:
    """Monte-Carlo Shapley values from ``samples`` random player orders (``samples * (n + 1)`` evaluations).

    With ``antithetic`` each order is paired with its reverse: a player that joins early in one
    joins late in the other, which cancels much of the sampling noise at no extra cost.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    count = (samples + 1) // 2 if antithetic else samples
    perms = torch.stack([torch.randperm(n, generator=generator) for _ in range(count)])
    if antithetic:
        perms = torch.cat([perms, perms.flip(1)])[:samples]
    position = perms.argsort(1)  # position[p, i]: when player i joins in order p
    steps = torch.arange(n + 1)
    masks = position[:, None, :] < steps[None, :, None]  # P x (n+1) x n: the first j players of each order
    v = value(masks.reshape(-1, n)).double().view(len(perms), n + 1)
    gains = v[:, 1:] - v[:, :-1]  # gains[p, j]: contribution of the player joining at step j
    return torch.zeros(len(perms), n, dtype=torch.float64).scatter_(1, perms, gains).mean(0)
