"""Parameters and multiply-accumulates (MACs) of a model, for ``cnnlab models``, the labs and benchmarks.

cnnlab counts MACs once, in :mod:`cnnlab.analysis.summary` (one traced forward, a rule per layer);
this module only totals it. The MACs here are the papers' convention: convolutions
(``HW_out * C_out * C_in/groups * k_h * k_w``) and linear layers (``out * in``), one image at the
given input size, BatchNorm, activations, pooling and additions left out (the FLOP columns of the
papers, fvcore's conv + linear counts). ``cnnlab summary`` reports the same layers and adds the rest
(:attr:`~cnnlab.analysis.summary.Summary.macs` vs :attr:`~cnnlab.analysis.summary.Summary.weight_macs`).
The forward runs on PyTorch's "meta" device, which propagates shapes without allocating or
computing anything, so even a 224x224 EfficientNet is counted in milliseconds.
"""
from __future__ import annotations

import inspect
import warnings

import torch
from torch import nn

from cnnlab.analysis.summary import summarize
from cnnlab.core.errors import CnnlabError


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """Conv + linear MACs of one forward pass on a single ``input_size`` (C, H, W) image."""
    return summarize(model, input_size).weight_macs


def model_complexity(name: str, input_size: tuple[int, int, int] | None = None, **kwargs) -> dict:
    """``{name, input, classes, params, macs}`` of a registry model at its default (or the given) input.

    ``num_classes`` defaults to the builder's own default (10 for most, 1000 for ImageNet heads).

    The model is built on the meta device (no memory, no weights); models that cannot be (for
    example ones that load pretrained files) are built on the CPU instead.
    """
    from cnnlab.models.registry import create_model, get_entry

    entry, _ = get_entry(name)
    size = tuple(input_size or entry.default_input)
    kwargs.setdefault("in_chans", size[0])
    params = inspect.signature(entry.builder).parameters
    kwargs.setdefault("num_classes", params["num_classes"].default if "num_classes" in params else 10)
    if "pretrained" in params:
        kwargs.setdefault("pretrained", False)  # weights change no count; never download for a listing
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # loading pretrained weights into meta tensors is a no-op
            model = create_model(name, **kwargs)
            macs = count_macs(model, size)
    except (NotImplementedError, RuntimeError, CnnlabError):  # summarize reports a failed forward as CnnlabError
        model = create_model(name, **kwargs)
        macs = count_macs(model, size)
    return {"name": name, "input": list(size), "classes": kwargs["num_classes"], "params": count_params(model),
            "macs": macs}


def registry_complexity() -> list[dict]:
    """One row per registered model (``prefix:`` families, which need an argument, have no counts)."""
    from cnnlab.models.registry import list_models

    rows = []
    for entry in list_models():
        if entry.name.endswith(":"):
            rows.append({"name": entry.name + "<arg>", "input": list(entry.default_input), "classes": None,
                         "params": None, "macs": None})
        else:
            rows.append(model_complexity(entry.name))
        rows[-1]["description"] = entry.description
    return rows


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e9:.2f}G" if n >= 1e9 else f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


def format_table(rows: list[dict]) -> str:
    """Fixed-width table: name, input, classes, params, MACs (conv + linear, the papers' convention), description."""
    width = max(len(r["name"]) for r in rows)
    lines = [f"{'model':{width}s}  {'input':>11s}  {'classes':>7s}  {'params':>8s}  {'MACs':>8s}  description"]
    for r in rows:
        size = "x".join(map(str, r["input"]))
        lines.append(f"{r['name']:{width}s}  {size:>11s}  {str(r['classes'] or '-'):>7s}  {_human(r['params']):>8s}  "
                     f"{_human(r['macs']):>8s}  {r['description']}")
    lines.append("MACs: convolutions and linear layers (the papers' convention); `cnnlab summary MODEL` counts "
                 "every layer the same way and adds norms and pooling.")
    return "\n".join(lines)
