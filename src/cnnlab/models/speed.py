"""A network built for training speed: airbench94's small VGG (Keller Jordan, 2024).

What makes it quick to train: a patch-whitening stem (:class:`PatchWhitening`: decorrelated,
unit-scale inputs for the first learned layer), pooling right after the first conv of each
group (the second conv runs at a quarter of the pixels), BatchNorm with a frozen scale and a
high momentum, GELU, convs initialised as partial identities (the signal passes through at
initialisation), and a logit scale below 1. With the ``cifar10-fast`` recipe it is airbench94's
whole method inside cnnlab's engine.
"""
from __future__ import annotations

from torch import Tensor, nn

from cnnlab.models.classic import Mul
from cnnlab.models.layers import FrozenScaleBatchNorm2d, PatchWhitening
from cnnlab.models.registry import register_model


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
