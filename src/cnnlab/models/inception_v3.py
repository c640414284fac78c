"""Inception-v3 (Szegedy et al. 2016, "Rethinking the Inception Architecture").

What changed after GoogLeNet, each visible in one block here:

- **Factorised convolutions**: a 5x5 becomes two 3x3 (``InceptionA``), and an n x n becomes a 1 x n
  followed by an n x 1 (``InceptionC``, n = 7): 2n instead of n² weights per channel pair, with
  the same receptive field and one more non-linearity.
- **Grid-size reduction without a bottleneck** (``reduction_a``/``reduction_b``): a stride-2 conv
  branch and a stride-2 max-pool side by side, concatenated, so the grid halves while the width
  grows, instead of pooling first (which loses information) or convolving at full size first
  (which costs 3x).
- **Expanded filter banks** on the coarsest grid (``InceptionE``): the 3x3 branches end in a 1x3
  and a 3x1 side by side, widening the output for high-dimensional representations.
- **Auxiliary classifier as a regulariser** (``aux_logits=True``): a head on the 17x17 grid whose
  loss is added with weight ``aux_weight`` during training; "BN-auxiliary" (the paper's best
  variant) batch-normalises its fully connected layer too. Off by default, as in the published counts.

The layout and widths are torchvision's ``inception_v3`` (23,834,568 parameters for 1000 classes
without the auxiliary head; the tests copy torchvision's weights in and compare outputs).
BatchNorm uses eps 0.001 (TensorFlow's, as the published weights).

``stem="imagenet"``: 299x299 input, three 3x3 convs (the first stride 2), a pool, a 1x1 and a 3x3
conv, a pool: 299 -> 35 before the Inception blocks. ``stem="cifar"`` (``inception-v3-cifar``):
the same six convs at stride 1 with 'same' padding and no pools, so a 32x32 image reaches the
blocks at 32x32 (then 15 and 7 after the two reductions; 28 -> 13 -> 6 for Fashion-MNIST). Only
strides, padding and pools change: the parameter count is the ImageNet model's.
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from cnnlab.models.layers import AuxOutputs, ClassifierHead, Concat, ConvBNAct
from cnnlab.models.registry import register_model

TF_BN_EPS = 1e-3  # BatchNorm eps of the TensorFlow Inception models (and of torchvision's / timm's ports)


def conv(in_ch: int, out_ch: int, kernel: int | tuple[int, int], stride: int = 1,
         padding: int | tuple[int, int] | None = None) -> ConvBNAct:
    """conv-BN-ReLU with 'same' padding per axis by default (``(1, 7)`` pads ``(0, 3)``); ``padding=0`` for 'valid'."""
    if padding is None:
        padding = tuple(k // 2 for k in _pair(kernel))
    return ConvBNAct(in_ch, out_ch, kernel, stride, padding)  # type: ignore[arg-type]  (tuples work in Conv2d)


def factorized(in_ch: int, mid: int, out_ch: int, n: int, first: str = "1xn") -> nn.Sequential:
    """An n x n conv as a 1 x n then an n x 1 (or the reverse): ``2n`` weights per channel pair instead of ``n²``."""
    shapes = [(1, n), (n, 1)] if first == "1xn" else [(n, 1), (1, n)]
    return nn.Sequential(conv(in_ch, mid, shapes[0]), conv(mid, out_ch, shapes[1]))


def set_bn_eps(model: nn.Module, eps: float = TF_BN_EPS) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = eps
    return model


def inception_a(in_ch: int, pool_features: int) -> Concat:
    """35x35 block: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 (a factorised 5x5) | avg-pool-1x1."""
    return Concat(
        conv(in_ch, 64, 1),
        nn.Sequential(conv(in_ch, 48, 1), conv(48, 64, 5)),
        nn.Sequential(conv(in_ch, 64, 1), conv(64, 96, 3), conv(96, 96, 3)),
        nn.Sequential(nn.AvgPool2d(3, 1, 1), conv(in_ch, pool_features, 1)),
    )


def reduction_a(in_ch: int) -> Concat:
    """35 -> 17: stride-2 3x3 | 1x1-3x3-stride-2 3x3 | stride-2 max-pool, side by side."""
    return Concat(
        conv(in_ch, 384, 3, 2, padding=0),
        nn.Sequential(conv(in_ch, 64, 1), conv(64, 96, 3), conv(96, 96, 3, 2, padding=0)),
        nn.MaxPool2d(3, 2),
    )


def inception_c(in_ch: int, c7: int) -> Concat:
    """17x17 block with 7x7 convs factorised into 1x7 + 7x1 (once and twice)."""
    return Concat(
        conv(in_ch, 192, 1),
        nn.Sequential(conv(in_ch, c7, 1), *factorized(c7, c7, 192, 7)),
        nn.Sequential(conv(in_ch, c7, 1), *factorized(c7, c7, c7, 7, "nx1"), *factorized(c7, c7, 192, 7, "nx1")),
        nn.Sequential(nn.AvgPool2d(3, 1, 1), conv(in_ch, 192, 1)),
    )


def reduction_b(in_ch: int) -> Concat:
    """17 -> 8: 1x1-stride-2 3x3 | 1x1-1x7-7x1-stride-2 3x3 | stride-2 max-pool."""
    return Concat(
        nn.Sequential(conv(in_ch, 192, 1), conv(192, 320, 3, 2, padding=0)),
        nn.Sequential(conv(in_ch, 192, 1), *factorized(192, 192, 192, 7), conv(192, 192, 3, 2, padding=0)),
        nn.MaxPool2d(3, 2),
    )


def inception_e(in_ch: int) -> Concat:
    """8x8 block with expanded filter banks: each 3x3 path ends in a 1x3 and a 3x1 side by side."""
    return Concat(
        conv(in_ch, 320, 1),
        nn.Sequential(conv(in_ch, 384, 1), Concat(conv(384, 384, (1, 3)), conv(384, 384, (3, 1)))),
        nn.Sequential(conv(in_ch, 448, 1), conv(448, 384, 3), Concat(conv(384, 384, (1, 3)), conv(384, 384, (3, 1)))),
        nn.Sequential(nn.AvgPool2d(3, 1, 1), conv(in_ch, 192, 1)),
    )


class AuxHead(nn.Module):
    """The BN-auxiliary classifier on the 17x17 grid: pool to 5x5, 1x1 conv to 128, 5x5 conv to 768,
    BatchNorm on the 768 features, linear. ``stem="cifar"`` pools adaptively to 5x5 (its grid is 13-15)."""

    def __init__(self, in_ch: int, num_classes: int, stem: str) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, 3) if stem == "imagenet" else nn.AdaptiveAvgPool2d(5)
        self.convs = nn.Sequential(conv(in_ch, 128, 1), conv(128, 768, 5, padding=0))
        self.bn = nn.BatchNorm1d(768)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.bn(self.convs(self.pool(x)).mean((2, 3))))


def stem_v3(in_chans: int, stem: str, ch: Callable[[int], int] = int) -> nn.Sequential:
    """ImageNet: 3x3/2, 3x3, 3x3, pool, 1x1, 3x3, pool (299 -> 35); CIFAR: the same convs, stride 1, no pools.

    ``ch`` scales the widths (Inception-ResNet-v2 shares this stem and takes a width multiplier).
    """
    if stem == "imagenet":
        return nn.Sequential(conv(in_chans, ch(32), 3, 2, padding=0), conv(ch(32), ch(32), 3, padding=0),
                             conv(ch(32), ch(64), 3), nn.MaxPool2d(3, 2), conv(ch(64), ch(80), 1),
                             conv(ch(80), ch(192), 3, padding=0), nn.MaxPool2d(3, 2))
    return nn.Sequential(conv(in_chans, ch(32), 3), conv(ch(32), ch(32), 3), conv(ch(32), ch(64), 3),
                         conv(ch(64), ch(80), 1), conv(ch(80), ch(192), 3))


class InceptionV3(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, stem: str = "imagenet", aux_logits: bool = False,
                 aux_weight: float = 0.4, dropout: float = 0.5) -> None:
        super().__init__()
        self.stem = stem_v3(in_chans, stem)
        self.mixed_5 = nn.Sequential(inception_a(192, 32), inception_a(256, 64), inception_a(288, 64))
        self.mixed_6a = reduction_a(288)
        self.mixed_6 = nn.Sequential(*(inception_c(768, c7) for c7 in (128, 160, 160, 192)))
        self.aux = AuxHead(768, num_classes, stem) if aux_logits else None
        self.aux_weight = aux_weight
        self.mixed_7a = reduction_b(768)
        self.mixed_7 = nn.Sequential(inception_e(1280), inception_e(2048))
        self.head = ClassifierHead(2048, num_classes, dropout)
        set_bn_eps(self)

    def forward(self, x: Tensor) -> Tensor | AuxOutputs:
        x = self.mixed_6(self.mixed_6a(self.mixed_5(self.stem(x))))
        aux = self.aux(x) if self.aux is not None and self.training else None
        logits = self.head(self.mixed_7(self.mixed_7a(x)))
        return logits if aux is None else AuxOutputs(logits, aux, self.aux_weight)


@register_model("inception-v3", default_input=(3, 299, 299), tags=("inception", "imagenet-size"))
def inception_v3(num_classes: int = 10, in_chans: int = 3, aux_logits: bool = False, aux_weight: float = 0.4,
                 dropout: float = 0.5) -> nn.Module:
    """Inception-v3 for 299x299 input: factorised 7x7, grid reductions, optional BN-auxiliary head (23.83M, 1000 classes)."""
    return InceptionV3(num_classes, in_chans, "imagenet", aux_logits, aux_weight, dropout)


@register_model("inception-v3-cifar", default_input=(3, 32, 32), tags=("inception",))
def inception_v3_cifar(num_classes: int = 10, in_chans: int = 3, aux_logits: bool = False, aux_weight: float = 0.4,
                       dropout: float = 0.5) -> nn.Module:
    """Inception-v3 with a stride-1 stem for 32x32 / 28x28 images (blocks at 32, 15 and 7 pixels)."""
    return InceptionV3(num_classes, in_chans, "cifar", aux_logits, aux_weight, dropout)
