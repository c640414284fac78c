"""BatchNorm folding: merge each Conv->BN (and Linear->BN) pair into the convolution for inference.

At inference a BatchNorm is a fixed per-channel affine map of its input z (running statistics
mu, sigma^2, learned gamma, beta)::

    y = gamma * (z - mu) / sqrt(sigma^2 + eps) + beta  =  a * z + (beta - a * mu),   a = gamma / sqrt(sigma^2 + eps)

and z = W * x + b is the conv (or linear) output, linear in W and b, so with

    W' = a * W          (output channel c's filter scaled by a_c)
    b' = a * (b - mu) + beta

the single layer ``W' * x + b'`` computes y exactly (up to float rounding). The BN layer becomes
``nn.Identity``: one pass over the feature map less per pair, and no extra memory traffic.
Pairs are found on the ``torch.fx`` graph: a BN whose input is the output of a conv/linear that
nothing else uses (each module called once). Subclasses of the conv and linear layers count too
(EfficientNet's and timm's same-padding convolutions pad, then convolve with ``self.weight``), but
a subclass may transform its weight first (weight standardisation renormalises ``a W`` back to ``W``),
so each subclass's fold is checked on a random input and undone where it does not reproduce
``BN(layer(x))``.
"""
from __future__ import annotations

import copy
import statistics
import time
from collections import Counter
from typing import Sequence

import torch
from torch import Tensor, fx, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd

from cnnlab.core.errors import CnnlabError


class _LayerTracer(fx.Tracer):
    """fx's tracer, stopping at every conv and linear layer, subclasses from other packages included
    (fx would otherwise trace into them and the BN would follow a function call, not the layer)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (_ConvNd, nn.Linear)) or super().is_leaf_module(m, qualname)


def batchnorm_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """``(layer name, BN name)`` for every candidate pair, in graph order (a subclass's fold is
    still checked by :func:`fold_batchnorm`)."""
    try:
        graph = _LayerTracer().trace(model)
    except Exception as exc:  # noqa: BLE001 - fx fails on value-dependent control flow
        first = (str(exc).strip().splitlines() or [""])[0]
        raise CnnlabError(f"cannot fold BatchNorm: torch.fx could not trace the model ({type(exc).__name__}: {first})") from exc
    modules = dict(model.named_modules())
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module")
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], _BatchNorm) or not node.args:
            continue
        src = node.args[0]
        if (isinstance(src, fx.Node) and src.op == "call_module" and len(src.users) == 1
                and calls[src.target] == calls[node.target] == 1
                and _foldable(modules[src.target], modules[node.target])):
            pairs.append((src.target, node.target))
    return pairs


def _foldable(layer: nn.Module, bn: _BatchNorm) -> bool:
    if bn.running_mean is None or bn.running_var is None:  # uses batch statistics even in eval mode
        return False
    if isinstance(layer, _ConvTransposeNd):
        return layer.out_channels == bn.num_features
    if isinstance(layer, _ConvNd):
        return layer.out_channels == bn.num_features
    return isinstance(layer, nn.Linear) and layer.out_features == bn.num_features


@torch.no_grad()
def _fold(layer: nn.Module, bn: _BatchNorm) -> None:
    """``W' = a W``, ``b' = a (b - mu) + beta`` with ``a = gamma / sqrt(var + eps)`` (in float64)."""
    var, mean = bn.running_var.double(), bn.running_mean.double()
    a = (bn.weight.double() if bn.affine else torch.ones_like(var)) / torch.sqrt(var + bn.eps)
    beta = bn.bias.double() if bn.affine else torch.zeros_like(var)
    w = layer.weight.double()
    if isinstance(layer, _ConvTransposeNd):  # weight (in, out/groups, k...): output channels on dim 1
        g = layer.groups
        grouped = w.reshape(g, w.shape[0] // g, *w.shape[1:])
        w = (grouped * a.reshape(g, 1, -1, *[1] * (w.dim() - 2))).reshape(w.shape)
    else:  # weight (out, in/groups, k...) or (out, in)
        w = w * a.reshape(-1, *[1] * (w.dim() - 1))
    b = layer.bias.double() if layer.bias is not None else torch.zeros_like(mean)
    layer.weight.copy_(w.to(layer.weight.dtype))
    layer.bias = nn.Parameter((a * (b - mean) + beta).to(layer.weight.dtype), requires_grad=layer.weight.requires_grad)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every Conv->BN and Linear->BN pair folded (see the module doc).

    The original model is left untouched. BN layers that do not follow a foldable layer stay, and so
    do those after a subclass whose folded output differs from ``BN(layer(x))``.
    """
    folded = copy.deepcopy(model).eval()
    for layer_name, bn_name in batchnorm_pairs(folded):
        layer, bn = folded.get_submodule(layer_name), folded.get_submodule(bn_name)
        original = None if type(layer).__module__.startswith("torch.nn") else copy.deepcopy(layer)
        _fold(layer, bn)
        if original is not None and not _same_map(original, bn, layer):
            _replace(folded, layer_name, original)  # not linear in its weight: leave the pair as it was
            continue
        _replace(folded, bn_name, nn.Identity())
    return folded


@torch.no_grad()
def _same_map(original: nn.Module, bn: _BatchNorm, folded: nn.Module) -> bool:
    """Whether ``folded(x)`` equals ``bn(original(x))`` on a random input the layer accepts."""
    w = folded.weight
    if isinstance(folded, _ConvNd):
        side = max(8, max((k - 1) * d + 1 for k, d in zip(folded.kernel_size, folded.dilation)) + 4)
        shape = (2, folded.in_channels, *[side] * len(folded.kernel_size))
    else:
        shape = (2, folded.in_features)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(w.device, w.dtype)
    expected = bn(original(x))
    return torch.allclose(folded(x), expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()) + 1e-6)


@torch.no_grad()
def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BN trained-looking statistics and affine parameters (in place), so a folding check on
    an untrained model exercises every term of the equations (fresh BNs are the identity map)."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, _BatchNorm) and m.running_mean is not None:
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
            if m.affine:
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))
    return model


def _first_tensor(out) -> Tensor:
    return out if isinstance(out, Tensor) else next(t for t in out if isinstance(t, Tensor))


@torch.no_grad()
def fuse_report(model: nn.Module, input_size: Sequence[int], batch: int = 8, repeats: int = 10,
                seed: int = 0) -> dict:
    """Fold ``model`` and measure it: max |output difference| and CPU forward time before/after.

    The two models are timed alternately (median of ``repeats``), so load on a shared machine hits both.
    """
    model = model.eval()
    folded = fold_batchnorm(model)
    left = sum(isinstance(m, _BatchNorm) for m in folded.modules())
    x = torch.randn(batch, *input_size, generator=torch.Generator().manual_seed(seed))
    y0, y1 = _first_tensor(model(x)), _first_tensor(folded(x))
    times: dict[str, list[float]] = {"original": [], "folded": []}
    for _ in range(repeats):
        for key, net in (("original", model), ("folded", folded)):
            start = time.perf_counter()
            net(x)
            times[key].append(time.perf_counter() - start)
    before, after = statistics.median(times["original"]), statistics.median(times["folded"])
    return {
        "pairs": sum(isinstance(m, _BatchNorm) for m in model.modules()) - left,
        "batchnorm_left": left,
        "max_abs_diff": (y0 - y1).abs().max().item(),
        "max_abs_output": y0.abs().max().item(),
        "input": [batch, *input_size],
        "ms_original": 1000 * before,
        "ms_folded": 1000 * after,
        "speedup": before / after,
        "folded": folded,
    }
