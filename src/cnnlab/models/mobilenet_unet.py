"""MobileNetV2 U-Net: torchvision's MobileNetV2 ``features`` as the encoder, a U-Net decoder.

The encoder's inverted-residual stages end at strides 2, 4, 8, 16 and 32; the last block of each
stage feeds a skip connection (16, 24, 32, 96 and 320 channels), the 1x1 conv to 1280 channels
(ImageNet classification only) is dropped. ImageNet weights are used when torchvision has them
(downloaded or in the torch hub cache); offline they cannot be fetched and the encoder starts
from random weights: ``model.pretrained_loaded`` says which, and a warning is printed.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn

from cnnlab.models.layers import ConvBNAct, adapt_first_conv
from cnnlab.models.registry import register_model
from cnnlab.models.unet import EncoderUNet

# (end index in features, channels) of the stages at strides 2, 4, 8, 16, 32
STAGES = ((2, 16), (4, 24), (7, 32), (14, 96), (18, 320))


def _imagenet_state() -> dict | None:
    """MobileNetV2 ImageNet weights from torchvision, or None when they cannot be had offline."""
    from torchvision.models import MobileNet_V2_Weights

    try:
        return MobileNet_V2_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
    except Exception as exc:  # no network, no cached file: many error types
        warnings.warn(f"MobileNetV2 ImageNet weights unavailable ({type(exc).__name__}: {exc}); "
                      f"the encoder starts from random weights. Put mobilenet_v2-b0353104.pth in "
                      f"{torch.hub.get_dir()}/checkpoints/ to use them.", stacklevel=3)
        return None


class MobileNetV2UNet(EncoderUNet):
    def __init__(self, num_classes: int, in_chans: int = 3, pretrained: bool = True, up: str = "transpose",
                 decoder_channels: tuple[int, ...] = (96, 32, 24, 16), skips: bool = True) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v2

        net = mobilenet_v2()
        state = _imagenet_state() if pretrained else None
        if state is not None:
            net.load_state_dict(state)
        self.pretrained_loaded = state is not None
        features = net.features
        # grey (or other) inputs: the RGB filters summed, so pretrained filters stay useful
        features[0][0] = adapt_first_conv(features[0][0], in_chans)
        bounds = [0] + [end for end, _ in STAGES]
        self.stages = nn.ModuleList([features[a:b] for a, b in zip(bounds, bounds[1:])])
        self.build_decoder(tuple(c for _, c in STAGES), decoder_channels, up, skips,
                           nn.Sequential(ConvBNAct(decoder_channels[-1], decoder_channels[-1]),
                                         nn.Conv2d(decoder_channels[-1], num_classes, 1)))


@register_model("mobilenetv2-unet", default_input=(3, 224, 224), tags=("segmentation", "pretrained"))
def mobilenetv2_unet(num_classes: int = 2, in_chans: int = 3, pretrained: bool = True, up: str = "transpose",
                     skips: bool = True) -> nn.Module:
    """U-Net decoder on a MobileNetV2 encoder (ImageNet weights when obtainable, else random init)."""
    return MobileNetV2UNet(num_classes, in_chans, pretrained, up, skips=skips)
