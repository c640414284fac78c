"""GoogLeNet / Inception v1 (Szegedy et al. 2015), without the auxiliary classifiers.

Nine Inception modules in three groups separated by stride-2 max-pools, then global average
pooling and one linear layer (no big dense layers: the reason it has 12x fewer parameters than
AlexNet). BatchNorm after each conv replaces the paper's local response normalization.

``stem="imagenet"``: 7x7/2 conv, pool, 1x1 and 3x3 convs, pool (224 -> 28 before module 3a).
``stem="cifar"``: one 3x3 conv to 192 channels at full resolution (32 -> 32, then 16 and 8 after the
two inner pools). ``googlenet`` is torchvision's architecture (ImageNet stem, what the name means to
a PyTorch user); ``googlenet-cifar`` carries the CIFAR stem.
"""
from __future__ import annotations

from torch import Tensor, nn

from cnnlab.models.layers import ClassifierHead, ConvBNAct, InceptionModule
from cnnlab.models.registry import register_model

# (c1, c3_reduce, c3, c5_reduce, c5, pool_proj) per module, Table 1 of the paper; "M" = 3x3/2 max-pool
GOOGLENET_CFG: list = [
    (64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64), "M",  # 3a, 3b
    (192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),  # 4a-4c
    (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128), "M",  # 4d, 4e
    (256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128),  # 5a, 5b
]


class GoogLeNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, stem: str = "cifar", dropout: float = 0.4) -> None:
        super().__init__()
        if stem == "cifar":
            self.stem = ConvBNAct(in_chans, 192, 3)
        else:
            self.stem = nn.Sequential(
                ConvBNAct(in_chans, 64, 7, 2), nn.MaxPool2d(3, 2, 1),
                ConvBNAct(64, 64, 1), ConvBNAct(64, 192, 3), nn.MaxPool2d(3, 2, 1),
            )
        layers: list[nn.Module] = []
        c_in = 192
        for item in GOOGLENET_CFG:
            if item == "M":
                layers.append(nn.MaxPool2d(3, 2, 1))
            else:
                layers.append(InceptionModule(c_in, *item))
                c_in = layers[-1].out_channels
        self.inception = nn.Sequential(*layers)
        self.head = ClassifierHead(c_in, num_classes, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.inception(self.stem(x)))


@register_model("googlenet", default_input=(3, 224, 224), tags=("inception", "imagenet-size"))
def googlenet(num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.4) -> nn.Module:
    """GoogLeNet (Inception v1, no auxiliary heads), torchvision's ImageNet stem and 1000 classes: 7.0M params."""
    return GoogLeNet(num_classes, in_chans, "imagenet", dropout)


@register_model("googlenet-cifar", default_input=(3, 32, 32), tags=("inception",))
def googlenet_cifar(num_classes: int = 10, in_chans: int = 3, dropout: float = 0.4) -> nn.Module:
    """GoogLeNet with the CIFAR stem (one 3x3 conv to 192 channels at full resolution)."""
    return GoogLeNet(num_classes, in_chans, "cifar", dropout)
