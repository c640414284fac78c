"""Bounds of the size-like options, from the machine or the data (issue 29, mechanism 5).

A size-like option (an image side, a layer width, a batch, a thread or image count) is checked
before anything is written, and before the data load unless the bound depends on the data (a batch
of images of the size the data have), in one of three ways:

- a fixed bound on the command line: an image side is at most ``MAX_SIDE`` pixels, a grid at most
  ``MAX_GRID`` images (:func:`side`, :func:`grid`, argparse types);
- a bound from the machine: ``--threads`` at most the CPUs it has (:func:`threads`), and an option
  whose memory grows with its value refused when an estimate of the bytes it needs exceeds the
  memory free now, or ``$CNNLAB_MEMORY_LIMIT`` (:func:`need`, with the estimators below: each
  counts the arrays the code really allocates, so a test can check it against a hand count; a
  model's by a shape-only trace, :func:`cnnlab.analysis.memory.step_bytes`);
- a bound from the data: a count above what the data holds (``--subset`` 10**9) means all of it,
  with a warning naming the option and the count used (:func:`at_most`), as slicing
  ``dataset[:n]`` does.

Torch-free when imported: the parser imports it (torch and psutil load when memory is asked).
"""
from __future__ import annotations

import argparse
import math
import os
import re
import warnings
from typing import Callable, Iterable, Sequence

from cnnlab.core.errors import CnnlabError

MAX_SIDE = 4096  # pixels per image side: a 4096 x 4096 RGB float image is 200 MB, a batch of them far more
MAX_GRID = 1024  # images in one figure grid (32 x 32 tiles)
FLOAT32 = 4
FLOAT64 = 8


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def side(text: str) -> int:
    """An image side in pixels: 1 to ``MAX_SIDE``."""
    value = _int(text)
    if not 1 <= value <= MAX_SIDE:
        raise argparse.ArgumentTypeError(f"expected an image side in [1, {MAX_SIDE}] pixels, got {text!r}")
    return value


def tile_side(text: str) -> int:
    """A network tile side (``match --tile``): 64 to ``MAX_SIDE`` pixels."""
    value = _int(text)
    if not 64 <= value <= MAX_SIDE:
        raise argparse.ArgumentTypeError(f"expected a tile side in [64, {MAX_SIDE}] pixels, got {text!r}")
    return value


def grid(text: str) -> int:
    """A number of images drawn in one figure: 1 to ``MAX_GRID``."""
    value = _int(text)
    if not 1 <= value <= MAX_GRID:
        raise argparse.ArgumentTypeError(f"expected a number of images in [1, {MAX_GRID}] (one figure), "
                                         f"got {text!r}")
    return value


def cpu_count() -> int:
    return os.cpu_count() or 1


def threads(text: str) -> int:
    """A thread count: 1 to the CPUs of this machine (more only queue behind each other)."""
    value = _int(text)
    if not 1 <= value <= cpu_count():
        raise argparse.ArgumentTypeError(f"expected a thread count in [1, {cpu_count()}] (this machine has "
                                         f"{cpu_count()} CPUs), got {text!r}")
    return value


# -- memory

LIMIT_ENV = "CNNLAB_MEMORY_LIMIT"  # e.g. 8G: the memory the estimates are held against, instead of what is free
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def env_size(name: str) -> int | None:
    """Bytes given by environment variable ``name`` (``123``, ``512M``, ``8G``), None when unset: one
    reader for ``$CNNLAB_MEMORY_LIMIT`` here and the dataset budget of :mod:`cnnlab.data.streaming`."""
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", text, re.IGNORECASE)
    if not match:
        raise CnnlabError(f"${name}={text!r}: expected a size such as 512M, 8G or a number of bytes")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def free_memory(device: object = None) -> tuple[int, str]:
    """Bytes free now and how to say where the figure comes from: ``$CNNLAB_MEMORY_LIMIT`` when set
    (read like the dataset budget ``$CNNLAB_MEMORY_BUDGET`` of :mod:`cnnlab.data.streaming`, which
    is another figure: how much a decoded dataset may take), else on a CUDA ``device`` the GPU's
    free memory (``torch.cuda.mem_get_info``), else the memory the system reports available (psutil)."""
    limit = env_size(LIMIT_ENV)
    if limit is not None:
        return limit, f"${LIMIT_ENV}"
    if device is not None and getattr(device, "type", str(device).split(":")[0]) == "cuda":
        import torch

        index = torch.device(device).index
        return torch.cuda.mem_get_info(index)[0], f"GPU {index or 0} has free"
    import psutil

    return psutil.virtual_memory().available, "this machine has free"


def human(n: float) -> str:
    """``300 GB``, ``6.1 GB``, ``512 MB`` (decimal units, as ``free -h`` users read them, 2-3 digits)."""
    for unit, size in (("EB", 1e18), ("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v >= 10 else f"{v:.1f} {unit}"
    return f"{int(n)} bytes"


def need(option: str, value: object, nbytes: float, what: str, device: object = None) -> None:
    """Refuse ``option value`` when ``nbytes`` exceed the memory free; ``what`` says what needs them,
    with its verb: ``--hidden 100000000: the weights alone need 314 GB, more than the 6.1 GB this
    machine has free``."""
    limit = over(nbytes, device)
    if limit:
        shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
        raise CnnlabError(f"{option} {shown}: {what} {human(nbytes)}, {limit}")


def over(nbytes: float, device: object = None) -> str | None:
    """``more than the 6.1 GB this machine has free`` when ``nbytes`` exceed the memory free (of
    ``device``, see :func:`free_memory`), else None."""
    free, where = free_memory(device)
    if nbytes <= free:
        return None
    return f"more than {where} ({human(free)})" if where.startswith("$") else f"more than the {human(free)} {where}"


def at_most(option: str, value: int, available: int, what: str, unit: str = "images") -> int:
    """A count asked of the data, at most what it holds: above it, all of it, with a warning
    (``--subset 5000: the training split of digits holds only 1437 images; using all 1437``)."""
    if value > available:
        warnings.warn(f"{option} {value}: {what} holds only {available} {unit}; using all {available}",
                      stacklevel=2)
        return available
    return value


def culprit(estimate: Callable[[dict], float], given: dict, defaults: dict) -> str:
    """Of the options in ``given`` (name -> value), the one whose default (``defaults``) would lower
    ``estimate(options)`` the most: the option a message about the estimate names."""
    total = estimate(given)
    return max(given, key=lambda name: total - estimate({**given, name: defaults[name]}))


def check(estimate: Callable[[dict], float], given: dict, defaults: dict, what: str) -> None:
    """:func:`need` for an estimate of several options: refused, the message names the one
    (:func:`culprit`) most to blame, as ``--name value``."""
    nbytes = estimate(given)
    if over(nbytes):
        name = culprit(estimate, given, defaults)
        need("--" + name.replace("_", "-"), given[name], nbytes, what)


# -- estimators: bytes each structure allocates (what ``need`` compares with the memory free)

def dense_params(sizes: Sequence[int]) -> int:
    """Weights and biases of dense layers ``sizes[0] -> sizes[1] -> ...``."""
    return sum((a + 1) * b for a, b in zip(sizes, sizes[1:]))


def scratch_mlp_bytes(sizes: Sequence[int], batch: int, optimizer: str = "momentum",
                      itemsize: int = FLOAT32) -> tuple[int, int]:
    """(weights, training) bytes of ``scratch mlp``: the weights; then weights, gradients and the
    optimizer's state (momentum: one copy, adam: two, sgd: none), and each layer's input and output
    kept for the backward pass and their gradients, for one batch; and the float64 draw that
    initialises the largest layer."""
    params = dense_params(sizes)
    state = {"sgd": 0, "adam": 2}.get(optimizer, 1)
    activations = 2 * batch * sum(sizes)
    draw = FLOAT64 * max(a * b for a, b in zip(sizes, sizes[1:]))
    return params * itemsize, ((2 + state) * params + activations) * itemsize + draw


def scratch_cnn_bytes(image: Sequence[int], channels: Sequence[int], kernel: int, hidden: Sequence[int],
                      classes: int, batch: int, optimizer: str = "momentum", itemsize: int = FLOAT32) -> tuple[int, int]:
    """(weights, training) bytes of ``scratch cnn`` (``image`` is C, H, W; 'same' convs, 2x2 pools):
    per conv block the padded input, its im2col matrix (``k*k*c_in`` columns per output pixel) and
    the output, each twice (forward and backward), for one batch; then the dense layers; and the
    float64 draw that initialises the largest layer."""
    c, h, w = image
    params, per_image, largest = 0, 0, 0
    for c_out in channels:
        params += (kernel * kernel * c + 1) * c_out
        largest = max(largest, kernel * kernel * c * c_out)
        padded = (h + 2 * (kernel // 2)) * (w + 2 * (kernel // 2)) * c
        per_image += 2 * (padded + h * w * kernel * kernel * c + h * w * c_out)
        c, h, w = c_out, max(h // 2, 1), max(w // 2, 1)
    dense = [c * h * w, *hidden, classes]
    params += dense_params(dense)
    per_image += 2 * sum(dense)
    largest = max(largest, *(a * b for a, b in zip(dense, dense[1:])))
    state = {"sgd": 0, "adam": 2}.get(optimizer, 1)
    return params * itemsize, ((2 + state) * params + batch * per_image) * itemsize + FLOAT64 * largest


def linreg_bytes(n: int, d: int) -> int:
    """``scratch linreg`` at ``n`` samples and ``d`` features (float64): X, X with its bias column, a
    prediction-sized copy in each fit, and the closed form's (d+1) x (d+1) normal matrix twice."""
    return FLOAT64 * (n * d + 2 * n * (d + 1) + 4 * n + 2 * (d + 1) ** 2)


def image_batch_bytes(batch: int, shape: Iterable[int], itemsize: int = FLOAT32) -> int:
    """One float batch of images of ``shape`` (C, H, W)."""
    return batch * math.prod(shape) * itemsize


def blur_kernel(sigma: float) -> int:
    """The side of the Gaussian kernel ``visualize`` blurs with (3 sigma each way)."""
    return 2 * int(3 * sigma) + 1
