"""Inception-v4 and Inception-ResNet-v2 (Szegedy et al. 2017).

**Inception-v4** drops the conservative choices of v3 (made for partitioned training) for a
uniform design: a deeper stem whose grid reductions are parallel conv/pool branches (Mixed 3a/5a),
4 Inception-A blocks at 35x35, Reduction-A, 7 Inception-B (factorised 1x7/7x1) at 17x17,
Reduction-B, 3 Inception-C (1x3 and 3x1 side by side) at 8x8. 42,679,816 parameters at 1000 classes.

**Inception-ResNet-v2** puts cheaper Inception blocks on the residual path of an identity
shortcut: each block concatenates its branches, projects them back to the stream width with a
*linear* 1x1 conv (bias, no BatchNorm), scales the result and adds it to its input
(:class:`~cnnlab.models.layers.ScaledResidual`). The streams are 320, 1088 and 2080 channels wide,
and nothing normalises the sums: the paper found such wide residual networks "die" early in
training unless the residuals are scaled by 0.1-0.3 (here 0.17, 0.10, 0.20 per stage, the
published values; ``residual_scale`` overrides them all). Its cost was chosen to match v4's. The
layout is the released TensorFlow model's (TF-slim, and timm's port): a v3-like stem and a
Mixed-5b block rather than the paper's v4 stem, 10 / 20 / 9 blocks and a last block without
scaling or ReLU, then a 1x1 conv to 1536. 55,843,464 parameters at 1000 classes.

Both take ``width`` (every channel count scaled, rounded to multiples of 8; 1.0 is the published
model) and ``blocks`` (blocks per stage), so a CPU-sized member of each family keeps its shape.
``stem="imagenet"`` is the published 299x299 stem (299 -> 35); ``stem="cifar"`` (the ``-cifar``
names) runs the same stem convs at stride 1 with 'same' padding and drops its pools, so 32x32
images reach the first blocks at 32x32 (then 15 and 7; 28 -> 13 -> 6). Parameter counts do not change.
BatchNorm eps is 0.001 and the branch average pools ignore padding, as in the released models.
"""
from __future__ import annotations

from typing import Callable, Sequence

from torch import Tensor, nn

from cnnlab.core.errors import CnnlabError
from cnnlab.models.inception_v3 import conv, factorized, set_bn_eps, stem_v3
from cnnlab.models.layers import ClassifierHead, Concat, ScaledResidual, make_divisible
from cnnlab.models.registry import register_model

Width = Callable[[int], int]


def avg_pool() -> nn.AvgPool2d:
    return nn.AvgPool2d(3, 1, 1, count_include_pad=False)


def _pool(stem: str) -> nn.MaxPool2d:
    """The stem's 3x3 max-pool: stride 2 on the ImageNet stem, a stride-1 'same' max filter on the CIFAR one."""
    return nn.MaxPool2d(3, 2) if stem == "imagenet" else nn.MaxPool2d(3, 1, 1)


def _stride(stem: str) -> dict:
    """Stride and padding of a stem conv that reduces the grid on ImageNet and keeps it on CIFAR."""
    return dict(stride=2, padding=0) if stem == "imagenet" else dict(stride=1)


def _valid(stem: str) -> dict:
    return dict(padding=0) if stem == "imagenet" else {}


# ----------------------------------------------------------------------------------------------
# Inception-v4
# ----------------------------------------------------------------------------------------------


def stem_v4(in_chans: int, stem: str, ch: Width) -> tuple[nn.Sequential, int]:
    """3 convs, then three grid reductions as parallel branches (pool | conv, two conv paths, conv | pool)."""
    c64, c96 = ch(64), ch(96)
    layers = nn.Sequential(
        conv(in_chans, ch(32), 3, **_stride(stem)), conv(ch(32), ch(32), 3, **_valid(stem)), conv(ch(32), c64, 3),
        Concat(_pool(stem), conv(c64, c96, 3, **_stride(stem))),  # Mixed 3a
        Concat(nn.Sequential(conv(c64 + c96, c64, 1), conv(c64, c96, 3, **_valid(stem))),  # Mixed 4a
               nn.Sequential(conv(c64 + c96, c64, 1), *factorized(c64, c64, c64, 7), conv(c64, c96, 3, **_valid(stem)))),
        Concat(conv(2 * c96, ch(192), 3, **_stride(stem)), _pool(stem)),  # Mixed 5a
    )
    return layers, ch(192) + 2 * c96


def v4_block_a(in_ch: int, ch: Width) -> tuple[Concat, int]:
    block = Concat(
        conv(in_ch, ch(96), 1),
        nn.Sequential(conv(in_ch, ch(64), 1), conv(ch(64), ch(96), 3)),
        nn.Sequential(conv(in_ch, ch(64), 1), conv(ch(64), ch(96), 3), conv(ch(96), ch(96), 3)),
        nn.Sequential(avg_pool(), conv(in_ch, ch(96), 1)),
    )
    return block, 4 * ch(96)


def v4_reduction_a(in_ch: int, ch: Width) -> tuple[Concat, int]:
    block = Concat(
        conv(in_ch, ch(384), 3, 2, padding=0),
        nn.Sequential(conv(in_ch, ch(192), 1), conv(ch(192), ch(224), 3), conv(ch(224), ch(256), 3, 2, padding=0)),
        nn.MaxPool2d(3, 2),
    )
    return block, ch(384) + ch(256) + in_ch


def v4_block_b(in_ch: int, ch: Width) -> tuple[Concat, int]:
    block = Concat(
        conv(in_ch, ch(384), 1),
        nn.Sequential(conv(in_ch, ch(192), 1), *factorized(ch(192), ch(224), ch(256), 7)),
        nn.Sequential(conv(in_ch, ch(192), 1), *factorized(ch(192), ch(192), ch(224), 7, "nx1"),
                      *factorized(ch(224), ch(224), ch(256), 7, "nx1")),
        nn.Sequential(avg_pool(), conv(in_ch, ch(128), 1)),
    )
    return block, ch(384) + 2 * ch(256) + ch(128)


def v4_reduction_b(in_ch: int, ch: Width) -> tuple[Concat, int]:
    block = Concat(
        nn.Sequential(conv(in_ch, ch(192), 1), conv(ch(192), ch(192), 3, 2, padding=0)),
        nn.Sequential(conv(in_ch, ch(256), 1), *factorized(ch(256), ch(256), ch(320), 7),
                      conv(ch(320), ch(320), 3, 2, padding=0)),
        nn.MaxPool2d(3, 2),
    )
    return block, ch(192) + ch(320) + in_ch


def _split_1x3_3x1(in_ch: int, out_ch: int) -> Concat:
    return Concat(conv(in_ch, out_ch, (1, 3)), conv(in_ch, out_ch, (3, 1)))


def v4_block_c(in_ch: int, ch: Width) -> tuple[Concat, int]:
    block = Concat(
        conv(in_ch, ch(256), 1),
        nn.Sequential(conv(in_ch, ch(384), 1), _split_1x3_3x1(ch(384), ch(256))),
        nn.Sequential(conv(in_ch, ch(384), 1), *factorized(ch(384), ch(448), ch(512), 3, "nx1"),
                      _split_1x3_3x1(ch(512), ch(256))),
        nn.Sequential(avg_pool(), conv(in_ch, ch(256), 1)),
    )
    return block, 6 * ch(256)


def width_fn(width: float) -> Width:
    if not width > 0:
        raise CnnlabError(f"width={width}: expected a positive channel multiplier (1.0 = the published model)")
    return lambda c: make_divisible(c * width)


def _check_blocks(blocks: Sequence[int]) -> tuple[int, int, int]:
    if len(blocks) != 3 or any(int(b) != b or b < 0 for b in blocks):
        raise CnnlabError(f"blocks={list(blocks)}: expected three block counts >= 0, one per stage")
    return tuple(int(b) for b in blocks)  # type: ignore[return-value]


def _stage(make: Callable[[int, Width], tuple[nn.Module, int]], count: int, in_ch: int, ch: Width) -> tuple[nn.Sequential, int]:
    layers = []
    for _ in range(count):
        block, in_ch = make(in_ch, ch)
        layers.append(block)
    return nn.Sequential(*layers), in_ch


class InceptionV4(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, stem: str = "imagenet", width: float = 1.0,
                 blocks: Sequence[int] = (4, 7, 3), dropout: float = 0.2) -> None:
        super().__init__()
        ch, (na, nb, nc) = width_fn(width), _check_blocks(blocks)
        self.stem, c = stem_v4(in_chans, stem, ch)
        self.stage_a, c = _stage(v4_block_a, na, c, ch)
        self.reduction_a, c = v4_reduction_a(c, ch)
        self.stage_b, c = _stage(v4_block_b, nb, c, ch)
        self.reduction_b, c = v4_reduction_b(c, ch)
        self.stage_c, c = _stage(v4_block_c, nc, c, ch)
        self.head = ClassifierHead(c, num_classes, dropout)
        set_bn_eps(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.reduction_a(self.stage_a(self.stem(x)))
        return self.head(self.stage_c(self.reduction_b(self.stage_b(x))))


# ----------------------------------------------------------------------------------------------
# Inception-ResNet-v2
# ----------------------------------------------------------------------------------------------

PUBLISHED_SCALES = (0.17, 0.10, 0.20)  # per stage, TF-slim's inception_resnet_v2


def stem_irv2(in_chans: int, stem: str, ch: Width) -> tuple[nn.Sequential, int]:
    """v3's stem (3x3/2, 3x3, 3x3, pool, 1x1, 3x3, pool), then Mixed 5b, an Inception-A-like block to 320."""
    mixed_5b = Concat(conv(ch(192), ch(96), 1),
                      nn.Sequential(conv(ch(192), ch(48), 1), conv(ch(48), ch(64), 5)),
                      nn.Sequential(conv(ch(192), ch(64), 1), conv(ch(64), ch(96), 3), conv(ch(96), ch(96), 3)),
                      nn.Sequential(avg_pool(), conv(ch(192), ch(64), 1)))
    return nn.Sequential(*stem_v3(in_chans, stem, ch), mixed_5b), 2 * ch(96) + 2 * ch(64)


def _residual(branches: Concat, branch_ch: int, stream: int, scale: float, act: str | None = "relu") -> ScaledResidual:
    """Branches -> linear 1x1 back to the stream width (bias, no BN) -> x scale -> + input -> ReLU."""
    return ScaledResidual(nn.Sequential(branches, nn.Conv2d(branch_ch, stream, 1)), scale, act)


def block35(stream: int, ch: Width, scale: float, act: str | None = "relu") -> ScaledResidual:
    """35x35 residual block (Inception-ResNet-A): 1x1 | 1x1-3x3 | 1x1-3x3-3x3."""
    branches = Concat(conv(stream, ch(32), 1),
                      nn.Sequential(conv(stream, ch(32), 1), conv(ch(32), ch(32), 3)),
                      nn.Sequential(conv(stream, ch(32), 1), conv(ch(32), ch(48), 3), conv(ch(48), ch(64), 3)))
    return _residual(branches, 2 * ch(32) + ch(64), stream, scale, act)


def block17(stream: int, ch: Width, scale: float, act: str | None = "relu") -> ScaledResidual:
    """17x17 residual block (Inception-ResNet-B): 1x1 | 1x1-1x7-7x1."""
    branches = Concat(conv(stream, ch(192), 1),
                      nn.Sequential(conv(stream, ch(128), 1), *factorized(ch(128), ch(160), ch(192), 7)))
    return _residual(branches, 2 * ch(192), stream, scale, act)


def block8(stream: int, ch: Width, scale: float, act: str | None = "relu") -> ScaledResidual:
    """8x8 residual block (Inception-ResNet-C): 1x1 | 1x1-1x3-3x1."""
    branches = Concat(conv(stream, ch(192), 1),
                      nn.Sequential(conv(stream, ch(192), 1), *factorized(ch(192), ch(224), ch(256), 3)))
    return _residual(branches, ch(192) + ch(256), stream, scale, act)


def irv2_reduction_a(in_ch: int, ch: Width) -> tuple[Concat, int]:
    """Mixed 6a: 35 -> 17."""
    block = Concat(conv(in_ch, ch(384), 3, 2, padding=0),
                   nn.Sequential(conv(in_ch, ch(256), 1), conv(ch(256), ch(256), 3), conv(ch(256), ch(384), 3, 2, padding=0)),
                   nn.MaxPool2d(3, 2))
    return block, 2 * ch(384) + in_ch


def irv2_reduction_b(in_ch: int, ch: Width) -> tuple[Concat, int]:
    """Mixed 7a: 17 -> 8."""
    block = Concat(nn.Sequential(conv(in_ch, ch(256), 1), conv(ch(256), ch(384), 3, 2, padding=0)),
                   nn.Sequential(conv(in_ch, ch(256), 1), conv(ch(256), ch(288), 3, 2, padding=0)),
                   nn.Sequential(conv(in_ch, ch(256), 1), conv(ch(256), ch(288), 3), conv(ch(288), ch(320), 3, 2, padding=0)),
                   nn.MaxPool2d(3, 2))
    return block, ch(384) + ch(288) + ch(320) + in_ch


class InceptionResNetV2(nn.Module):
    """``residual_scale=None``: the published scales (0.17 / 0.10 / 0.20, last block 1.0 without ReLU);
    a number: that scale for every residual block, the last one included."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, stem: str = "imagenet", width: float = 1.0,
                 blocks: Sequence[int] = (10, 20, 9), residual_scale: float | None = None, dropout: float = 0.2) -> None:
        super().__init__()
        ch, (na, nb, nc) = width_fn(width), _check_blocks(blocks)
        scales = PUBLISHED_SCALES + (1.0,) if residual_scale is None else (float(residual_scale),) * 4
        self.stem, c = stem_irv2(in_chans, stem, ch)
        self.stage_a = nn.Sequential(*(block35(c, ch, scales[0]) for _ in range(na)))
        self.reduction_a, c = irv2_reduction_a(c, ch)
        self.stage_b = nn.Sequential(*(block17(c, ch, scales[1]) for _ in range(nb)))
        self.reduction_b, c = irv2_reduction_b(c, ch)
        self.stage_c = nn.Sequential(*(block8(c, ch, scales[2]) for _ in range(nc)), block8(c, ch, scales[3], act=None))
        self.conv_head = conv(c, ch(1536), 1)
        self.head = ClassifierHead(ch(1536), num_classes, dropout)
        set_bn_eps(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.reduction_a(self.stage_a(self.stem(x)))
        x = self.stage_c(self.reduction_b(self.stage_b(x)))
        return self.head(self.conv_head(x))


@register_model("inception-v4", default_input=(3, 299, 299), tags=("inception", "imagenet-size"))
def inception_v4(num_classes: int = 10, in_chans: int = 3, width: float = 1.0, blocks: Sequence[int] = (4, 7, 3),
                 dropout: float = 0.2) -> nn.Module:
    """Inception-v4 for 299x299: stem, 4 x A, Reduction-A, 7 x B, Reduction-B, 3 x C (42.68M, 1000 classes)."""
    return InceptionV4(num_classes, in_chans, "imagenet", width, blocks, dropout)


@register_model("inception-v4-cifar", default_input=(3, 32, 32), tags=("inception",))
def inception_v4_cifar(num_classes: int = 10, in_chans: int = 3, width: float = 1.0, blocks: Sequence[int] = (4, 7, 3),
                       dropout: float = 0.2) -> nn.Module:
    """Inception-v4 with a stride-1 stem for 32x32 / 28x28 images; ``width``, ``blocks`` shrink it."""
    return InceptionV4(num_classes, in_chans, "cifar", width, blocks, dropout)


@register_model("inception-resnet-v2", default_input=(3, 299, 299), tags=("inception", "resnet", "imagenet-size"))
def inception_resnet_v2(num_classes: int = 10, in_chans: int = 3, width: float = 1.0,
                        blocks: Sequence[int] = (10, 20, 9), residual_scale: float | None = None,
                        dropout: float = 0.2) -> nn.Module:
    """Inception-ResNet-v2 for 299x299: scaled Inception residual blocks, 10 / 20 / 9 + 1 (55.84M, 1000 classes)."""
    return InceptionResNetV2(num_classes, in_chans, "imagenet", width, blocks, residual_scale, dropout)


@register_model("inception-resnet-v2-cifar", default_input=(3, 32, 32), tags=("inception", "resnet"))
def inception_resnet_v2_cifar(num_classes: int = 10, in_chans: int = 3, width: float = 1.0,
                              blocks: Sequence[int] = (10, 20, 9), residual_scale: float | None = None,
                              dropout: float = 0.2) -> nn.Module:
    """Inception-ResNet-v2 with a stride-1 stem for 32x32 / 28x28 images; ``width``, ``blocks``, ``residual_scale``."""
    return InceptionResNetV2(num_classes, in_chans, "cifar", width, blocks, residual_scale, dropout)
