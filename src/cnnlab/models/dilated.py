"""A CNN that never downsamples: dilated residual blocks grow the receptive field instead.

Classic CNNs trade resolution for context by pooling. Dilation (Yu & Koltun 2016) buys the
context without losing resolution: with dilations 1, 2, 4, 8 and two 3x3 convs per block the
receptive field reaches ``3 + 4 * (1 + 2 + 4 + 8) = 63`` pixels (stem 3, each block 4d), covering
a 32x32 image, while every feature map keeps the input's size (what dense prediction needs).
"""
from __future__ import annotations

from torch import nn

from cnnlab.models.layers import ClassifierHead, ConvBNAct, DilatedBlock
from cnnlab.models.registry import register_model


@register_model("dilated-cnn", default_input=(3, 32, 32), tags=("dilated",))
def dilated_cnn(num_classes: int = 10, in_chans: int = 3, width: int = 64,
                dilations: tuple[int, ...] = (1, 2, 4, 8)) -> nn.Module:
    """Full-resolution CNN: a 3x3 stem and residual blocks with dilations 1, 2, 4, 8, no pooling."""
    return nn.Sequential(
        ConvBNAct(in_chans, width, 3),
        *(DilatedBlock(width, d) for d in dilations),
        ClassifierHead(width, num_classes),
    )
