"""The same network in PyTorch, built from a NumPy network's weights, as the reference to agree with.

Given the same initial weights and the same batches, plain SGD / momentum / Nesterov in NumPy
and ``torch.optim.SGD`` must produce the same losses and weights step after step (in float64,
to ~1e-12); any disagreement points at a wrong backward formula or update rule.
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from cnnlab.scratch.conv import AvgPool2D, Conv2D, Flatten, MaxPool2D, ToChannelsLast
from cnnlab.scratch.layers import Dense, Identity, Layer, ReLU, Sigmoid, Tanh
from cnnlab.scratch.network import Network
from cnnlab.scratch.optim import make_optimizer
from cnnlab.core.threads import compute_threads

# each NumPy layer's PyTorch counterpart (weights are copied separately, see load_numpy_weights)
_TORCH_LAYER: dict[type, Callable[[Layer], nn.Module]] = {
    Dense: lambda layer: nn.Linear(*layer.params["W"].shape),
    Conv2D: lambda layer: nn.Conv2d(layer.params["W"].shape[2], layer.params["W"].shape[3], layer.kernel,
                                    layer.stride, layer.padding, layer.dilation),
    ReLU: lambda layer: nn.ReLU(),
    Sigmoid: lambda layer: nn.Sigmoid(),
    Tanh: lambda layer: nn.Tanh(),
    Identity: lambda layer: nn.Identity(),
    MaxPool2D: lambda layer: nn.MaxPool2d(layer.kernel, layer.stride),
    AvgPool2D: lambda layer: nn.AvgPool2d(layer.kernel, layer.stride),
    Flatten: lambda layer: nn.Flatten(),
    ToChannelsLast: lambda layer: nn.Unflatten(1, layer.image_shape),
}
_KIND = {nn.Linear: "dense", nn.Conv2d: "conv"}


def _to_torch(name: str, w: np.ndarray) -> torch.Tensor:
    """A NumPy weight in PyTorch's layout: ``nn.Linear`` stores ``out x in`` (it computes ``x Wᵀ + b``),
    ``nn.Conv2d`` ``C_out x C_in x k x k`` where the NumPy conv keeps ``k x k x C_in x C_out``."""
    if name.endswith(".W"):
        w = w.T if w.ndim == 2 else w.transpose(3, 2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(w))


def torch_twin(model: Network) -> nn.Sequential:
    """``nn.Sequential`` of the PyTorch counterpart of every layer, with a copy of ``model``'s weights and dtype."""
    dtype = torch.float64 if model.dtype == np.float64 else torch.float32
    net = nn.Sequential(*(_TORCH_LAYER[type(layer)](layer) for layer in model.layers)).to(dtype)
    load_numpy_weights(net, model)
    return net


def _torch_named_parameters(net: nn.Sequential):
    """``(NumPy name, tensor)`` for the twin's parameters: layers numbered per kind, as ``Network`` does."""
    counts: dict[str, int] = {}
    for module in net:
        kind = _KIND.get(type(module))
        if kind is not None:
            i = counts[kind] = counts.get(kind, -1) + 1
            yield f"{kind}{i}.W", module.weight
            yield f"{kind}{i}.b", module.bias


def load_numpy_weights(net: nn.Sequential, model: Network) -> None:
    mine = model.state()
    with torch.no_grad():
        for name, tensor in _torch_named_parameters(net):
            tensor.copy_(_to_torch(name, mine[name]))


def twin_state(net: nn.Sequential) -> dict[str, np.ndarray]:
    """The twin's weights under the NumPy names and layouts (``dense0.W`` is ``in x out``)."""
    state = {}
    for name, tensor in _torch_named_parameters(net):
        w = tensor.detach().numpy()
        if name.endswith(".W"):
            w = w.T if w.ndim == 2 else w.transpose(2, 3, 1, 0)
        state[name] = w.copy()
    return state


def torch_optimizer(name: str, net: nn.Module, lr: float, momentum: float = 0.9) -> torch.optim.Optimizer:
    """The PyTorch counterpart of ``optim.make_optimizer`` (no dampening, no weight decay)."""
    if name == "adam":
        return torch.optim.Adam(net.parameters(), lr=lr)
    mu = 0.0 if name == "sgd" else momentum
    return torch.optim.SGD(net.parameters(), lr=lr, momentum=mu, nesterov=name == "nesterov")


def compare_steps(model: Network, batches: Iterable[tuple[np.ndarray, np.ndarray]], optimizer: str = "sgd",
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
