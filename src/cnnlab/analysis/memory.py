"""Memory of one step of a model, counted before it runs (issue 29's bound on batch options).

A batch option (``--batch-size``, ``fuse --batch``, ``summary --input``) is refused when one step
would not fit the memory free (:func:`cnnlab.core.bounds.need`): the estimate is the weights, with
their gradients and optimizer buffers for a training step, plus every layer's output kept for the
backward pass, counted by the same shape-only trace on the meta device that ``cnnlab summary`` uses,
so nothing is allocated to find out.
"""
from __future__ import annotations

import math

from torch import nn

from cnnlab.analysis.summary import _meta_copy, _trace
from cnnlab.core import bounds


def step_bytes(model: nn.Module, input_size: tuple[int, ...], batch: int, copies: int = 4) -> int | None:
    """Bytes one step of ``batch`` images holds at least: ``copies`` of the weights (with their
    gradients and two optimizer buffers: 4; a forward alone: 1), and every layer's output and the
    input, per image. None where the model cannot be traced without running it, and for a partly
    frozen model (a transfer model's first phase keeps no activations of its frozen trunk, so the
    sum would refuse runs that fit)."""
    import torch

    if copies > 1 and not all(p.requires_grad for p in model.parameters()):
        return None
    shadow = _meta_copy(model)
    if shadow is None:
        return None
    try:
        s = _trace(shadow, tuple(input_size), torch.device("meta"))
    except Exception:  # noqa: BLE001 - no meta kernel: the model's real forward says what fails
        return None
    return copies * s.param_bytes + batch * (s.activation_bytes + 4 * math.prod(input_size))


def check_step(model: nn.Module, input_size: tuple[int, ...], batch: int, *, option: str = "--batch-size",
               doing: str = "a forward needs", copies: int = 1, images: int | None = None,
               device: object = None) -> None:
    """Refuse ``option`` when one step of ``batch`` images (at most the split's ``images``: a batch
    above the split is the whole split) would not fit the memory of ``device``, naming the option,
    the image size and the bytes needed."""
    step = min(batch, images or batch)
    needed = step_bytes(model, input_size, step, copies)
    if needed is None:
        return
    size = "x".join(map(str, input_size))
    if option == "--input":
        shown = ",".join(map(str, input_size))
    elif option == "--batch":
        shown = f"{batch} of {size}"
    else:
        shown = f"{batch}{f' ({step} images here)' if step < batch else ''} of {size} images"
    bounds.need(option, shown, needed, doing, device)
