"""EfficientNet (Tan & Le 2019): MBConv blocks with SE, scaled by one compound coefficient phi.

The base network B0 was found by architecture search; bigger ones scale it uniformly:
depth (blocks per stage) by ``alpha**phi``, width (channels) by ``beta**phi`` and input resolution
by ``gamma**phi``. Cost grows as depth x width^2 x resolution^2, i.e. by ``(alpha beta^2 gamma^2)**phi``
(about 2**phi with the paper's alpha=1.2, beta=1.1, gamma=1.15). ``efficientnet-b1..b3`` here are
phi = 1..3 of that rule; the official B1-B3 used hand-picked coefficients and resolutions
(240/260/300), so only B0 matches a published model exactly (5.29M params, 0.39 GMACs).

``stem="cifar"`` keeps stride 1 in the stem and in the first stride-2 stage (total stride 8 instead
of 32) for 32x32 input; ``"auto"`` picks by ``image_size`` (default: the scaled resolution).
"""
from __future__ import annotations

import math

from torch import Tensor, nn

from cnnlab.models.layers import ClassifierHead, ConvBNAct, MBConv, make_divisible, resolve_stem
from cnnlab.models.registry import register_model

# (expansion, kernel, first stride, out channels, repeats) of the 7 stages of B0
B0_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
             (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
B0_RESOLUTION = 224
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15


def compound_scale(phi: float, alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA) -> tuple[float, float, int]:
    """``(depth multiplier, width multiplier, resolution)`` for compound coefficient ``phi``."""
    return alpha**phi, beta**phi, round(B0_RESOLUTION * gamma**phi)


def scale_repeats(repeats: int, depth_mult: float) -> int:
    """Blocks in a scaled stage: ``repeats * depth_mult`` rounded to the nearest integer.

    The reference code rounds up, which turns every 1-block stage into 2 blocks at phi=1 (+100%
    instead of +20%) and makes B1 cost 1.34x what the compound rule predicts; rounding to the
    nearest integer keeps every phi=0..3 within 7% of ``(alpha beta^2 gamma^2)**phi``.
    """
    return max(1, math.floor(repeats * depth_mult + 0.5))


class EfficientNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, depth_mult: float = 1.0, width_mult: float = 1.0,
                 stem: str = "imagenet", dropout: float = 0.2, drop_path: float = 0.2) -> None:
        super().__init__()
        cifar = stem == "cifar"
        c_in = make_divisible(32 * width_mult)
        self.stem = ConvBNAct(in_chans, c_in, 3, 1 if cifar else 2, act="silu")
        repeats = [scale_repeats(n, depth_mult) for *_, n in B0_STAGES]
        total, index, blocks = sum(repeats), 0, []
        for i, ((expand, kernel, stride, c, _), n) in enumerate(zip(B0_STAGES, repeats)):
            c_out = make_divisible(c * width_mult)
            for j in range(n):
                s = stride if j == 0 and not (cifar and i == 1) else 1
                # stochastic depth grows linearly with depth: early blocks are almost always kept
                blocks.append(MBConv(c_in, c_out, kernel, s, expand, 0.25, drop_path * index / total))
                c_in, index = c_out, index + 1
        self.blocks = nn.Sequential(*blocks)
        c_head = make_divisible(1280 * width_mult)
        self.conv_head = ConvBNAct(c_in, c_head, 1, act="silu")
        self.head = ClassifierHead(c_head, num_classes, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.conv_head(self.blocks(self.stem(x))))


def efficientnet(num_classes: int = 10, in_chans: int = 3, phi: float = 0, alpha: float = ALPHA, beta: float = BETA,
                 gamma: float = GAMMA, stem: str = "auto", image_size: int | None = None, dropout: float = 0.2,
                 drop_path: float = 0.2) -> EfficientNet:
    """EfficientNet scaled from B0 by ``phi``; ``image_size`` defaults to the scaled resolution."""
    depth, width, resolution = compound_scale(phi, alpha, beta, gamma)
    return EfficientNet(num_classes, in_chans, depth, width, resolve_stem(stem, image_size or resolution),
                        dropout, drop_path)


def _register(phi: int) -> None:
    resolution = compound_scale(phi)[2]

    def builder(num_classes: int = 10, in_chans: int = 3, **kwargs) -> nn.Module:
        kwargs.setdefault("phi", phi)
        return efficientnet(num_classes, in_chans, **kwargs)

    builder.__doc__ = (f"EfficientNet-B{phi}: B0 compound-scaled with phi={phi} (alpha, beta, gamma, phi are "
                       f"kwargs), {resolution}x{resolution} input")
    register_model(f"efficientnet-b{phi}", default_input=(3, resolution, resolution), tags=("efficientnet",))(builder)


for _phi in range(4):
    _register(_phi)
