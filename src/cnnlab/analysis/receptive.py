"""Receptive-field arithmetic, one spatial axis at a time.

Every feature map carries, per spatial axis, three numbers about its first unit (index 0):

- ``size`` r: how many input pixels along the axis can influence the unit;
- ``jump`` j: the distance, in input pixels, between two neighbouring units (effective stride);
- ``start`` s: the input coordinate of the centre of the unit's field. Input pixel i sits at i, so
  the field covers ``[s - (r-1)/2, s + (r-1)/2]`` and unit n is centred at ``s + n*j``; a negative
  start means the field reaches into the padding.

The input image is ``(r, j, s) = (1, 1, 0)``. A sliding window (convolution or pooling) with kernel
k, stride t, left padding p and dilation d spans ``e = d(k-1)`` positions of its input, so::

    r' = r + e*j        j' = j*t        s' = s + (e/2 - p)*j

Transposed convolutions and resampling (upsampling, adaptive pooling) are windows with a fractional
stride. When branches meet (element-wise add/multiply, concatenation) the result depends on every
input, so its field is the smallest interval covering all the input fields; when the fields are
nested (ResNet, Inception: all centred on the same pixel) that is simply the largest one.

After a flatten or a global pooling every output depends on the whole image: the state is
:data:`WHOLE` rather than numbers. ``None`` means the field could not be derived (an unknown layer).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence, Union


@dataclass(frozen=True)
class Field:
    """Receptive field of a feature map's first unit: per-axis size, jump and start."""

    size: tuple[float, ...]
    jump: tuple[float, ...]
    start: tuple[float, ...]

    @property
    def axes(self) -> int:
        return len(self.size)


WHOLE = "whole input"
State = Union[Field, str, None]  # a Field, WHOLE, or None (unknown)


def image(axes: int) -> Field:
    """The input itself: every pixel sees one pixel."""
    return Field((1.0,) * axes, (1.0,) * axes, (0.0,) * axes)


def window(f: Field, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int],
           dilation: Sequence[int]) -> Field:
    """Convolution or pooling window: ``r' = r + d(k-1)j, j' = jt, s' = s + (d(k-1)/2 - p)j``."""
    span = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return Field(
        tuple(r + e * j for r, e, j in zip(f.size, span, f.jump)),
        tuple(j * t for j, t in zip(f.jump, stride)),
        tuple(s + (e / 2 - p) * j for s, e, p, j in zip(f.start, span, padding, f.jump)),
    )


def transposed(f: Field, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int],
               dilation: Sequence[int]) -> Field:
    """Transposed convolution: output o gets input i when ``o = i*t - p + k*d`` for a kernel tap k.

    Output units of different phases (o mod t) see different numbers of inputs; the size is the
    widest, and the start is the centre of the inputs feeding output 0.
    """
    size, jump, start = [], [], []
    for r, j, s, k, t, p, d in zip(f.size, f.jump, f.start, kernel, stride, padding, dilation):
        widest = 1
        for phase in range(t):
            taps = [q for q in range(k) if (phase + p - q * d) % t == 0]
            if taps:
                widest = max(widest, (max(taps) - min(taps)) * d // t + 1)
        first = [(p - q * d) / t for q in range(k) if (p - q * d) % t == 0]
        centre = (min(first) + max(first)) / 2 if first else (p - d * (k - 1) / 2) / t
        size.append(r + (widest - 1) * j)
        jump.append(j / t)
        start.append(s + centre * j)
    return Field(tuple(size), tuple(jump), tuple(start))


def adaptive(f: Field, in_size: Sequence[int], out_size: Sequence[int]) -> State:
    """Adaptive pooling: window n covers ``[floor(nI/O), ceil((n+1)I/O))``; global pooling -> WHOLE."""
    if all(o == 1 for o in out_size):
        return WHOLE
    size, jump, start = [], [], []
    for r, j, s, i, o in zip(f.size, f.jump, f.start, in_size, out_size):
        widest = max(math.ceil((n + 1) * i / o) - (n * i) // o for n in range(o))
        size.append(r + (widest - 1) * j)
        jump.append(j * i / o)
        start.append(s + (math.ceil(i / o) - 1) / 2 * j)
    return Field(tuple(size), tuple(jump), tuple(start))


def resample(f: Field, in_size: Sequence[int], out_size: Sequence[int], mode: str,
             align_corners: bool | None) -> Field:
    """Upsampling/interpolation: nearest reads 1 input per axis, (bi/tri)linear 2, bicubic 4.

    The jump is scaled by ``in/out``; the start is the centre of the taps read by output 0.
    """
    taps = {"nearest": 1, "nearest-exact": 1, "linear": 2, "bilinear": 2, "trilinear": 2, "bicubic": 4}.get(mode, 2)
    size, jump, start = [], [], []
    for r, j, s, i, o in zip(f.size, f.jump, f.start, in_size, out_size):
        ratio = i / o
        if taps == 1:
            centre = float(math.floor(0.5 * ratio)) if mode == "nearest-exact" else 0.0
        else:
            src = 0.0 if align_corners else max(0.0, 0.5 * ratio - 0.5)
            centre = math.floor(src) + 0.5
        if align_corners and o > 1:
            ratio = (i - 1) / (o - 1)
        size.append(r + (taps - 1) * j)
        jump.append(j * ratio)
        start.append(s + centre * j)
    return Field(tuple(size), tuple(jump), tuple(start))


def union(states: Iterable[State]) -> State:
    """Branches meeting: the smallest interval covering every input field (WHOLE wins, then unknown)."""
    states = list(states)
    if any(st == WHOLE for st in states):
        return WHOLE
    if not states or any(st is None for st in states) or len({st.axes for st in states}) > 1:
        return None
    if len(states) == 1:
        return states[0]
    size, jump, start = [], [], []
    for a in range(states[0].axes):
        lo = min(st.start[a] - (st.size[a] - 1) / 2 for st in states)
        hi = max(st.start[a] + (st.size[a] - 1) / 2 for st in states)
        size.append(hi - lo + 1)
        jump.append(max(st.jump[a] for st in states))
        start.append((lo + hi) / 2)
    return Field(tuple(size), tuple(jump), tuple(start))
