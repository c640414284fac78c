"""MobileNetV1 (Howard et al. 2017) and MobileNetV2 (Sandler et al. 2018), with a width multiplier.

V1 stacks depthwise-separable convolutions; V2 stacks inverted residuals with linear bottlenecks.
``stem="imagenet"`` is the published 224x224 network (total stride 32). ``stem="cifar"`` keeps
stride 1 in the first conv and in the first stride-2 stage (total stride 8), so a 32x32 image ends
at 4x4 instead of 1x1; parameter counts are unchanged, only strides differ. ``"auto"`` (default)
picks by ``image_size``; these are registered with a 224x224 default input.

The MobileNetV2 trunk is a reusable :class:`MobileNetV2Encoder` returning the feature maps at
strides 2, 4, 8, 16, 32 (segmentation decoders take them as skip connections).
"""
from __future__ import annotations

from torch import Tensor, nn

from cnnlab.models.layers import ClassifierHead, ConvBNAct, DepthwiseSeparable, InvertedResidual, make_divisible, resolve_stem
from cnnlab.models.registry import register_model

# (out channels, stride) of each depthwise-separable layer, Table 1 of the V1 paper
V1_CFG = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


@register_model("mobilenet-v1", default_input=(3, 224, 224), tags=("mobilenet",))
def mobilenet_v1(num_classes: int = 10, in_chans: int = 3, width_mult: float = 1.0, stem: str = "auto",
                 image_size: int = 224, dropout: float = 0.0) -> nn.Module:
    """MobileNetV1: a 3x3 conv then 13 depthwise-separable layers (4.2M params at 1.0, 1000 classes)."""
    cifar = resolve_stem(stem, image_size) == "cifar"
    c_in = make_divisible(32 * width_mult)
    layers: list[nn.Module] = [ConvBNAct(in_chans, c_in, 3, 1 if cifar else 2)]
    first_stride2 = True
    for c, s in V1_CFG:
        if cifar and s == 2 and first_stride2:
            s, first_stride2 = 1, False
        c_out = make_divisible(c * width_mult)
        layers.append(DepthwiseSeparable(c_in, c_out, s))
        c_in = c_out
    return nn.Sequential(*layers, ClassifierHead(c_in, num_classes, dropout))


# (expansion t, out channels c, repeats n, first stride s), Table 2 of the V2 paper
V2_CFG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class MobileNetV2Encoder(nn.Module):
    """MobileNetV2 trunk as an encoder: ``forward`` returns 5 feature maps, finest first.

    Level ``i`` ends where the resolution halves for the ``i+1``-th time (strides 2, 4, 8, 16,
    32 with the ImageNet stem); ``out_channels`` lists their widths, (16, 24, 32, 96, 1280) at
    width 1.0 — the layout segmentation-models-pytorch uses for its mobilenet_v2 encoder. With the
    CIFAR stem there are 4 levels (strides 1, 2, 4, 8; widths 24, 32, 96, 1280).
    """

    def __init__(self, in_chans: int = 3, width_mult: float = 1.0, stem: str = "imagenet") -> None:
        super().__init__()
        cifar = stem == "cifar"
        c_in = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [ConvBNAct(in_chans, c_in, 3, 1 if cifar else 2, act="relu6")]
        strides = [1 if cifar else 2]
        for i, (t, c, n, s) in enumerate(V2_CFG):
            c_out = make_divisible(c * width_mult)
            for j in range(n):
                stride = s if j == 0 and not (cifar and i == 1) else 1
                layers.append(InvertedResidual(c_in, c_out, stride, t))
                strides.append(stride)
                c_in = c_out
        self.last_channels = make_divisible(1280 * max(1.0, width_mult))
        layers.append(ConvBNAct(c_in, self.last_channels, 1, act="relu6"))
        strides.append(1)
        self.levels = nn.ModuleList(nn.Sequential(*layers[a:b]) for a, b in _levels(strides))
        self.out_channels = tuple(_out_channels(level) for level in self.levels)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for level in self.levels:
            x = level(x)
            features.append(x)
        return features


def _levels(strides: list[int]) -> list[tuple[int, int]]:
    """Cut the layer list before each layer that halves the resolution (after the first)."""
    bounds = [0, *(i for i, s in enumerate(strides) if s == 2 and i > 0), len(strides)]
    return list(zip(bounds[:-1], bounds[1:]))


def _out_channels(level: nn.Sequential) -> int:
    convs = [m for m in level.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


class MobileNetV2(nn.Module):
    """Encoder + classifier on its last (stride-32) feature map."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width_mult: float = 1.0,
                 stem: str = "imagenet", dropout: float = 0.2) -> None:
        super().__init__()
        self.encoder = MobileNetV2Encoder(in_chans, width_mult, stem)
        self.head = ClassifierHead(self.encoder.last_channels, num_classes, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x)[-1])


@register_model("mobilenet-v2", default_input=(3, 224, 224), tags=("mobilenet",))
def mobilenet_v2(num_classes: int = 10, in_chans: int = 3, width_mult: float = 1.0, stem: str = "auto",
                 image_size: int = 224, dropout: float = 0.2) -> nn.Module:
    """MobileNetV2: inverted residuals with linear bottlenecks (3.50M params at 1.0, 1000 classes)."""
    return MobileNetV2(num_classes, in_chans, width_mult, resolve_stem(stem, image_size), dropout)


def mobilenet_v2_encoder(in_chans: int = 3, width_mult: float = 1.0, stem: str = "imagenet") -> MobileNetV2Encoder:
    """The MobileNetV2 trunk for use as a backbone (see :class:`MobileNetV2Encoder`); "auto" = ImageNet stem."""
    return MobileNetV2Encoder(in_chans, width_mult, resolve_stem(stem, 224))
