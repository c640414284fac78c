"""The same MLP in PyTorch, built from a NumPy ``MLP``'s weights, as the reference to agree with.

Given the same initial weights and the same batches, plain SGD / momentum / Nesterov in NumPy
and ``torch.optim.SGD`` must produce the same losses and weights step after step (in float64,
to ~1e-12); any disagreement points at a wrong backward formula or update rule.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from torch import nn

from cnnlab.scratch.mlp import MLP
from cnnlab.scratch.optim import make_optimizer
from cnnlab.scratch.threads import compute_threads

_TORCH_ACT = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}


def torch_twin(model: MLP) -> nn.Sequential:
    """``nn.Sequential`` of ``Linear`` + activation with a copy of ``model``'s weights and dtype.

    ``nn.Linear`` stores ``W`` as ``out x in`` (it computes ``x Wᵀ + b``), hence the transpose.
    """
    dtype = torch.float64 if model.dtype == np.float64 else torch.float32
    layers: list[nn.Module] = []
    for n_in, n_out in zip(model.sizes[:-1], model.sizes[1:]):
        layers += [nn.Linear(n_in, n_out), _TORCH_ACT[model.activation]()]
    net = nn.Sequential(*layers[:-1]).to(dtype)
    load_numpy_weights(net, model)
    return net


def load_numpy_weights(net: nn.Sequential, model: MLP) -> None:
    linears = [m for m in net if isinstance(m, nn.Linear)]
    dense = [layer for layer in model.layers if layer.params]
    with torch.no_grad():
        for lin, layer in zip(linears, dense):
            lin.weight.copy_(torch.from_numpy(layer.params["W"].T.copy()))
            lin.bias.copy_(torch.from_numpy(layer.params["b"]))


def twin_state(net: nn.Sequential) -> dict[str, np.ndarray]:
    """The twin's weights under the NumPy names and layout (``dense0.W`` is ``in x out``)."""
    linears = [m for m in net if isinstance(m, nn.Linear)]
    state = {}
    for i, lin in enumerate(linears):
        state[f"dense{i}.W"] = lin.weight.detach().numpy().T.copy()
        state[f"dense{i}.b"] = lin.bias.detach().numpy().copy()
    return state


def torch_optimizer(name: str, net: nn.Module, lr: float, momentum: float = 0.9) -> torch.optim.Optimizer:
    """The PyTorch counterpart of ``optim.make_optimizer`` (no dampening, no weight decay)."""
    if name == "adam":
        return torch.optim.Adam(net.parameters(), lr=lr)
    mu = 0.0 if name == "sgd" else momentum
    return torch.optim.SGD(net.parameters(), lr=lr, momentum=mu, nesterov=name == "nesterov")


def compare_steps(model: MLP, batches: Iterable[tuple[np.ndarray, np.ndarray]], optimizer: str = "sgd",
                  lr: float = 0.1, momentum: float = 0.9) -> list[dict[str, float]]:
    """Train ``model`` and its twin side by side; per step, the loss gap and the largest weight gap.

    The twin is built from ``model`` before the first step, so both start from the same weights.
    One thread: these matrices are tiny, and on a busy machine extra threads make it 100x slower.
    """
    net = torch_twin(model)
    opt_np = make_optimizer(optimizer, model.named_parameters(), lr, momentum)
    opt_t = torch_optimizer(optimizer, net, lr, momentum)
    loss_fn = nn.CrossEntropyLoss()
    rows = []
    with compute_threads(1):
        for step, (x, y) in enumerate(batches, 1):
            loss_np, _ = model.loss_and_grads(x, y)
            opt_np.step()
            opt_t.zero_grad()
            loss_t = loss_fn(net(torch.from_numpy(x)), torch.from_numpy(y).long())
            loss_t.backward()
            opt_t.step()
            mine, theirs = model.state(), twin_state(net)
            rows.append({"step": step, "loss_numpy": loss_np, "loss_torch": loss_t.item(),
                         "loss_diff": abs(loss_np - loss_t.item()),
                         "max_weight_diff": max(float(np.abs(mine[k] - theirs[k]).max()) for k in mine)})
    return rows
