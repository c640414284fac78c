"""Convolution, pooling and flatten layers with hand-derived backward passes (course 000 Q3).

Images are ``B x H x W x C`` arrays (channels last): a convolution then becomes one matrix
product whose rows are the output pixels and whose columns are the output channels, so its result
is already in the same layout and nothing needs transposing. A conv weight ``W`` has shape
``k x k x C_in x C_out``.

Forward, with ``x`` zero-padded by ``p``, stride ``s`` and dilation ``d``::

    z[n, u, v, o] = b[o] + sum_{i, j, c} x[n, s·u + d·i, s·v + d·j, c] · W[i, j, c, o]

im2col gathers, for each output pixel ``(n, u, v)``, the ``k·k·C_in`` input values it reads into
one row of ``cols`` (a strided *view* of the input from ``sliding_window_view``, copied once), so
``z = cols · W`` (``W`` read as a ``k²C_in x C_out`` matrix). Backward, with ``g = dL/dz``:

* ``dL/dW = colsᵀ · g`` (each weight meets every input value it multiplied) and
  ``dL/db = sum of g over n, u, v``;
* ``dL/dcols = g · Wᵀ``, and col2im adds each column back to the input pixel it was copied from:
  ``dL/dx[n, s·u + d·i, s·v + d·j, c] += dL/dcols[n, u, v, i, j, c]`` for every tap ``(i, j)``.
  Done one tap at a time (``g · W[i, j]ᵀ``, then one strided slice addition), the columns of a
  tap are contiguous, which makes the additions several times faster than from the full
  ``dL/dcols``. With stride 1 this is the convolution of ``g`` (padded by ``k - 1 - p``) with
  the kernel rotated by 180 degrees.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnlab.scratch.layers import Layer, init_weights


def conv_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution or pooling along one axis: ``floor((n + 2p - d(k-1) - 1) / s) + 1``.

    A dilated kernel spans ``d(k-1) + 1`` input pixels; the window fits ``n + 2p - span`` times
    over, plus the first position.
    """
    return (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _taps(kernel: int, stride: int, dilation: int, out_h: int, out_w: int):
    """For each kernel tap ``(i, j)``: the strided input slice it reads for every output pixel."""
    for i in range(kernel):
        for j in range(kernel):
            yield i, j, (slice(None), slice(dilation * i, dilation * i + stride * (out_h - 1) + 1, stride),
                         slice(dilation * j, dilation * j + stride * (out_w - 1) + 1, stride))


class _Buffers:
    """Arrays reused from step to step while the batch shape stays the same (no large allocations)."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype, zero: bool = False) -> np.ndarray:
        a = self._arrays.get(name)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = self._arrays[name] = np.zeros(shape, dtype)
        elif zero:
            a.fill(0)
        return a


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as in every framework) by im2col and one matrix product."""

    kind = "conv"

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
                 init: str = "he", rng: np.random.Generator | None = None, dtype=np.float32):
        rng = rng if rng is not None else np.random.default_rng(0)
        # fan-in k²·C_in: He's N(0, 2/fan_in) keeps the activation variance steady through ReLUs
        w = init_weights(kernel * kernel * c_in, c_out, init, rng, dtype).reshape(kernel, kernel, c_in, c_out)
        self.params = {"W": w, "b": np.zeros(c_out, dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.kernel, self.stride, self.padding, self.dilation = kernel, stride, padding, dilation
        self.need_input_grad = True
        self._buf = _Buffers()

    def output_shape(self, h: int, w: int) -> tuple[int, int]:
        k, s, p, d = self.kernel, self.stride, self.padding, self.dilation
        return conv_output_size(h, k, s, p, d), conv_output_size(w, k, s, p, d)

    def forward(self, x: np.ndarray) -> np.ndarray:
        n, h, w, c = x.shape
        k, s, p, d = self.kernel, self.stride, self.padding, self.dilation
        out_h, out_w = self.output_shape(h, w)
        if p:  # the border of this buffer is never written: it stays zero
            xp = self._buf.get("padded", (n, h + 2 * p, w + 2 * p, c), x.dtype)
            xp[:, p:p + h, p:p + w] = x
        else:
            xp = x
        span = d * (k - 1) + 1
        windows = sliding_window_view(xp, (span, span), axis=(1, 2))[:, :s * (out_h - 1) + 1:s, :s * (out_w - 1) + 1:s,
                                                                      :, ::d, ::d]  # n, u, v, c, i, j
        cols = self._buf.get("cols", (n * out_h * out_w, k * k * c), x.dtype)
        np.copyto(cols.reshape(n, out_h, out_w, k, k, c), windows.transpose(0, 1, 2, 4, 5, 3))
        z = cols @ self.params["W"].reshape(k * k * c, -1)
        z += self.params["b"]
        self.cols, self.x_shape = cols, x.shape
        return z.reshape(n, out_h, out_w, -1)

    def backward(self, g: np.ndarray) -> np.ndarray | None:
        n, h, w, c = self.x_shape
        k, s, p, d = self.kernel, self.stride, self.padding, self.dilation
        c_out = g.shape[-1]
        g2 = g.reshape(-1, c_out)
        np.matmul(self.cols.T, g2, out=self.grads["W"].reshape(k * k * c, c_out))
        np.sum(g2, axis=0, out=self.grads["b"])
        if not self.need_input_grad:
            return None
        w4 = self.params["W"]
        dxp = self._buf.get("dpadded", (n, h + 2 * p, w + 2 * p, c), g.dtype, zero=True)
        dtap = self._buf.get("dtap", (len(g2), c), g.dtype)
        for i, j, where in _taps(k, s, d, g.shape[1], g.shape[2]):  # col2im, one tap at a time
            np.matmul(g2, w4[i, j].T, out=dtap)  # this tap's columns of dL/dcols = g Wᵀ
            dxp[where] += dtap.reshape(g.shape[:3] + (c,))
        return dxp[:, p:p + h, p:p + w]


class MaxPool2D(Layer):
    """Maximum over ``k x k`` windows moved by ``stride`` (default ``k``).

    Backward: the gradient of a window goes to the one input that was its maximum (the first one
    on ties, as in PyTorch), all the others get zero. The forward pass remembers which tap won.
    """

    def __init__(self, kernel: int = 2, stride: int | None = None):
        self.kernel, self.stride = kernel, stride or kernel

    def forward(self, x: np.ndarray) -> np.ndarray:
        n, h, w, c = x.shape
        out_h, out_w = conv_output_size(h, self.kernel, self.stride), conv_output_size(w, self.kernel, self.stride)
        out = arg = None
        for tap, (_, _, where) in enumerate(_taps(self.kernel, self.stride, 1, out_h, out_w)):
            v = x[where]
            if out is None:
                out, arg = v.copy(), np.zeros(v.shape, np.uint8)
            else:
                better = v > out  # strictly: on ties the earlier tap keeps the gradient
                np.maximum(out, v, out=out)
                np.multiply(arg, ~better, out=arg)  # arg = tap where better (arithmetic: 20x faster
                arg += better.view(np.uint8) * np.uint8(tap)  # than boolean-mask assignment)
        self.arg, self.x_shape = arg, x.shape
        return out

    def backward(self, g: np.ndarray) -> np.ndarray:
        dx = np.zeros(self.x_shape, g.dtype)
        disjoint = self.stride >= self.kernel  # every input in at most one window: assign, no sum
        for tap, (_, _, where) in enumerate(_taps(self.kernel, self.stride, 1, g.shape[1], g.shape[2])):
            if disjoint:
                np.multiply(g, self.arg == tap, out=dx[where])
            else:
                dx[where] += g * (self.arg == tap)
        return dx


class AvgPool2D(Layer):
    """Mean over ``k x k`` windows moved by ``stride`` (default ``k``); backward spreads ``g / k²`` evenly."""

    def __init__(self, kernel: int = 2, stride: int | None = None):
        self.kernel, self.stride = kernel, stride or kernel

    def forward(self, x: np.ndarray) -> np.ndarray:
        n, h, w, c = x.shape
        out_h, out_w = conv_output_size(h, self.kernel, self.stride), conv_output_size(w, self.kernel, self.stride)
        out = np.zeros((n, out_h, out_w, c), x.dtype)
        for _, _, where in _taps(self.kernel, self.stride, 1, out_h, out_w):
            out += x[where]
        out *= 1.0 / self.kernel ** 2
        self.x_shape = x.shape
        return out

    def backward(self, g: np.ndarray) -> np.ndarray:
        dx = np.zeros(self.x_shape, g.dtype)
        share = g * (1.0 / self.kernel ** 2)
        for _, _, where in _taps(self.kernel, self.stride, 1, g.shape[1], g.shape[2]):
            dx[where] += share
        return dx


class ToChannelsLast(Layer):
    """Rows of flattened (C, H, W) images, as datasets store them, viewed as ``B x H x W x C`` images.

    A view, not a copy: the CNN takes the same rows as the MLP, and its PyTorch twin starts with
    ``nn.Unflatten`` to the same (C, H, W).
    """

    def __init__(self, image_shape: tuple[int, int, int]):
        self.image_shape = tuple(image_shape)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), *self.image_shape).transpose(0, 2, 3, 1)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g.transpose(0, 3, 1, 2).reshape(len(g), -1)


class Flatten(Layer):
    """``B x H x W x C`` feature maps to ``B x (C·H·W)`` rows, channel-major as PyTorch's ``flatten``.

    The order only renames the next dense layer's weight rows; PyTorch's keeps both frameworks'
    dense weights identical, so the twin is a plain copy. Backward is the inverse reshape.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x_shape = x.shape
        return x.transpose(0, 3, 1, 2).reshape(len(x), -1)

    def backward(self, g: np.ndarray) -> np.ndarray:
        n, h, w, c = self.x_shape
        return g.reshape(n, c, h, w).transpose(0, 2, 3, 1)
