"""Locally connected layers: a convolution whose filters are NOT shared across positions.

Each output position has its own ``out x in x kh x kw`` filter, so the layer has the same
multiply-adds as the matching convolution but ``H_out * W_out`` times its weights: the course uses
it to show what weight sharing buys (and what translation equivariance costs to learn).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from cnnlab.models.registry import register_model


class LocallyConnected2d(nn.Module):
    """Conv2d-like layer with unshared weights; ``input_size`` (H, W) fixes the number of positions.

    ``weight`` has shape ``(H_out*W_out, out_channels, in_channels*kh*kw)``; ``bias`` (one per
    output unit) has shape ``(out_channels, H_out, W_out)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 input_size: int | tuple[int, int], stride: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] = 0, dilation: int | tuple[int, int] = 1, bias: bool = True) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.dilation, self.input_size = _pair(padding), _pair(dilation), _pair(input_size)
        self.output_size = tuple(
            (n + 2 * p - d * (k - 1) - 1) // s + 1
            for n, k, s, p, d in zip(self.input_size, self.kernel_size, self.stride, self.padding, self.dilation)
        )
        if min(self.output_size) < 1:
            raise ValueError(f"LocallyConnected2d: input {self.input_size} is smaller than the kernel {self.kernel_size}")
        positions, fan_in = math.prod(self.output_size), in_channels * math.prod(self.kernel_size)
        self.weight = nn.Parameter(torch.empty(positions, out_channels, fan_in))
        self.bias = nn.Parameter(torch.empty(out_channels, *self.output_size)) if bias else None
        bound = 1 / math.sqrt(fan_in)  # the Conv2d default init, position by position
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != self.input_size:
            raise ValueError(f"LocallyConnected2d expects {self.input_size[0]}x{self.input_size[1]} inputs, "
                             f"got {x.shape[-2]}x{x.shape[-1]}")
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)  # N, in*kh*kw, L
        out = torch.einsum("nkl,lok->nol", cols, self.weight).reshape(x.shape[0], self.out_channels, *self.output_size)
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, input_size={self.input_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, bias={self.bias is not None}")


@register_model("locally-connected", default_input=(1, 28, 28), tags=("classic",))
def locally_connected(num_classes: int = 10, in_chans: int = 1, image_size: int = 28, width: int = 8) -> nn.Module:
    """Two locally connected layers (unshared 5x5 and 3x3 filters, stride 2) and a linear classifier."""
    first = LocallyConnected2d(in_chans, width, 5, image_size, stride=2, padding=2)
    second = LocallyConnected2d(width, 2 * width, 3, first.output_size, stride=2, padding=1)
    return nn.Sequential(first, nn.ReLU(inplace=True), second, nn.ReLU(inplace=True), nn.Flatten(),
                         nn.Linear(2 * width * math.prod(second.output_size), num_classes))
