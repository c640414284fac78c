"""The course's first networks: an MLP, the first CNN, a small VGG, ResNet-9, and the VGG built for speed.

``speed-vgg`` is airbench94's small VGG (Keller Jordan, 2024). What makes it quick to train: a
patch-whitening stem (:class:`~cnnlab.models.layers.PatchWhitening`: decorrelated, unit-scale inputs
for the first learned layer), pooling right after the first conv of each group (the second conv runs
at a quarter of the pixels), BatchNorm with a frozen scale and a high momentum, GELU, convs
initialised as partial identities (the signal passes through at initialisation), and a logit scale
below 1. With the ``cifar10-fast`` recipe it is airbench94's whole method inside cnnlab's engine.
"""
from __future__ import annotations

from torch import Tensor, nn

from cnnlab.models.layers import ConvBNAct, FrozenScaleBatchNorm2d, PatchWhitening, Residual, make_norm
from cnnlab.models.registry import register_model


@register_model("mlp", default_input=(1, 28, 28), tags=("classic",))
def mlp(
    num_classes: int = 10,
    in_chans: int = 1,
    image_size: int = 28,
    hidden: tuple[int, ...] = (256, 128),
    dropout: float = 0.2,
) -> nn.Module:
    """Fully connected network on flattened pixels (the baseline a CNN must beat)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_chans * image_size * image_size
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


@register_model("simple-cnn", default_input=(1, 28, 28), tags=("classic",))
def simple_cnn(num_classes: int = 10, in_chans: int = 1, width: int = 32, hidden: int = 128,
               dropout: float = 0.25, first_width: int | None = None,
               norm: str = "batch") -> nn.Module:
    """Two conv blocks (conv-BN-ReLU x2, maxpool) and a dense classifier: the course's first CNN.

    The classifier sees a 4x4 grid of features (adaptive pooling makes any input size work),
    not a global average: after only two blocks, where a pattern is still matters.
    ``first_width`` (default ``width``) narrows the first block only: it runs at full resolution,
    so it costs as much as the second block at a quarter of the pixels with twice the width.
    ``norm``: batch (default), group, layer or none (see ``layers.make_norm``).
    """
    w, w1 = width, first_width or width
    return nn.Sequential(
        ConvBNAct(in_chans, w1, norm=norm), ConvBNAct(w1, w1, norm=norm), nn.MaxPool2d(2), nn.Dropout(dropout),
        ConvBNAct(w1, 2 * w, norm=norm), ConvBNAct(2 * w, 2 * w, norm=norm), nn.MaxPool2d(2), nn.Dropout(dropout),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        nn.Linear(2 * w * 16, hidden), nn.ReLU(inplace=True), nn.Dropout(2 * dropout),
        nn.Linear(hidden, num_classes),
    )


@register_model("vgg-small", default_input=(3, 32, 32), tags=("classic",))
def vgg_small(num_classes: int = 10, in_chans: int = 3, width: int = 32, dropout: float = 0.3,
              norm: str = "batch") -> nn.Module:
    """Three blocks of conv-conv-maxpool-BN, then two dense layers (the course's VGG exercise).

    ``norm`` replaces the BatchNorm after each pool: group, layer or none (``layers.make_norm``).
    """
    blocks: list[nn.Module] = []
    c_in = in_chans
    for i in range(3):
        c_out = width * 2**i
        blocks += [
            ConvBNAct(c_in, c_out, bn=False), ConvBNAct(c_out, c_out, bn=False),
            nn.MaxPool2d(2), make_norm(norm, c_out),
        ]
        c_in = c_out
    return nn.Sequential(
        *blocks,
        nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(c_in * 4, 4 * width), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(4 * width, num_classes),
    )


class Mul(nn.Module):
    """Multiply by a constant (ResNet-9 scales its logits to sharpen the softmax early)."""

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = weight

    def forward(self, x: Tensor) -> Tensor:
        return x * self.weight


@register_model("resnet9", default_input=(3, 32, 32), tags=("classic", "resnet"))
def resnet9(num_classes: int = 10, in_chans: int = 3, width: int = 64, scale: float = 0.125,
            standardize: bool = False) -> nn.Module:
    """ResNet-9 (Page's DAWNBench design): prep, 3 pooled stages, residual blocks after stages 1 and 3.

    ``standardize`` first brings each channel of each image to zero mean and unit variance (an
    InstanceNorm without weights: TensorFlow's per-image standardisation, per channel), so an image's
    own colours and contrast are gone before the first convolution: for data whose colours carry no
    class information (003 Q5's random-colour digits).
    """
    w = width

    def stage(c_in: int, c_out: int, residual: bool) -> list[nn.Module]:
        layers: list[nn.Module] = [ConvBNAct(c_in, c_out), nn.MaxPool2d(2)]
        if residual:
            layers.append(Residual(nn.Sequential(ConvBNAct(c_out, c_out), ConvBNAct(c_out, c_out))))
        return layers

    return nn.Sequential(
        *([nn.InstanceNorm2d(in_chans)] if standardize else []),
        ConvBNAct(in_chans, w),
        *stage(w, 2 * w, True),
        *stage(2 * w, 4 * w, False),
        *stage(4 * w, 8 * w, True),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        nn.Linear(8 * w, num_classes, bias=False),
        Mul(scale),
    )


class DiracConv(nn.Conv2d):
    """3x3 'same' conv without bias whose first ``in_ch`` filters start as the identity."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(in_ch, out_ch, 3, padding="same", bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        w = self.weight.data
        nn.init.dirac_(w[: min(w.shape[0], w.shape[1])])


class ConvGroup(nn.Module):
    """conv -> 2x2 max-pool -> BN -> GELU -> conv -> BN -> GELU (pooling before the BN halves its cost)."""

    def __init__(self, in_ch: int, out_ch: int, bn_momentum: float) -> None:
        super().__init__()
        self.conv1 = DiracConv(in_ch, out_ch)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = FrozenScaleBatchNorm2d(out_ch, bn_momentum, eps=1e-12)
        self.conv2 = DiracConv(out_ch, out_ch)
        self.norm2 = FrozenScaleBatchNorm2d(out_ch, bn_momentum, eps=1e-12)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


@register_model("speed-vgg", default_input=(3, 32, 32), tags=("classic", "speed"))
def speed_vgg(num_classes: int = 10, in_chans: int = 3, widths: tuple[int, int, int] = (64, 256, 256),
              whiten_kernel: int = 2, whiten_eps: float = 5e-4, whiten_bias_epochs: int = 3,
              bn_momentum: float = 0.4, scale: float = 1 / 9) -> nn.Module:
    """airbench94's net: patch-whitening stem, 3 conv groups, global max-pool, scaled linear head."""
    stem_width = 2 * in_chans * whiten_kernel ** 2
    layers: list[nn.Module] = [PatchWhitening(in_chans, whiten_kernel, whiten_eps, whiten_bias_epochs), nn.GELU()]
    c_in = stem_width
    for width in widths:
        layers.append(ConvGroup(c_in, width, bn_momentum))
        c_in = width
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes, bias=False), Mul(scale)]
    return nn.Sequential(*layers)
