"""U-Net (Ronneberger et al., 2015) and ResU-Net: an encoder that halves the resolution ``depth``
times, a decoder that doubles it back, and skip connections that hand each decoder stage the
encoder's features at the same resolution (so fine detail lost by pooling comes back).

Differences from the 2015 paper, all standard today: 'same' padding instead of valid convolutions
(the output has the input's size, no tiling with overlap needed), BatchNorm after every
convolution, and a width/depth of choice (the paper's is ``width=64, depth=4``). Inputs whose
sides are not multiples of ``2**depth`` (CamVid's 360 rows) are zero-padded inside ``forward`` and
the logits cropped back, so any image size works.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.models.layers import AuxOutputs, ConvBNAct, ResidualBlock
from cnnlab.models.registry import register_model


class DoubleConv(nn.Sequential):
    """Two 3x3 conv-BN-ReLU: the unit of every U-Net stage."""

    def __init__(self, in_ch: int, out_ch: int, bn: bool = True) -> None:
        super().__init__(ConvBNAct(in_ch, out_ch, bn=bn), ConvBNAct(out_ch, out_ch, bn=bn))


def residual_stage(in_ch: int, out_ch: int, bn: bool = True) -> ResidualBlock:
    """``relu(conv-bn-relu-conv-bn(x) + shortcut(x))``; the shortcut is a 1x1 conv when widths differ.

    The identity path lets the encoder's gradients skip the convolutions (He et al., 2016), which
    is what ResU-Net (Zhang et al., 2018) adds to U-Net's encoder.
    """
    body = nn.Sequential(ConvBNAct(in_ch, out_ch, bn=bn), ConvBNAct(out_ch, out_ch, act=None, bn=bn))
    return ResidualBlock(body, in_ch, out_ch, bn=bn)


class UpBlock(nn.Module):
    """Upsample x2 to ``out_ch`` channels, concatenate the skip, then a double conv (``unit``:
    :class:`DoubleConv`, or :func:`residual_stage` in ResU-Net's decoder).

    ``up="transpose"``: a learned 2x2 stride-2 transposed convolution (the paper's "up-conv");
    ``up="bilinear"``: fixed bilinear upsampling then a 1x1 conv (no checkerboard artefacts).
    """

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, up: str = "transpose", bn: bool = True,
                 unit=DoubleConv) -> None:
        super().__init__()
        if up == "transpose":
            self.up = nn.ConvTranspose2d(in_ch, out_ch, 2, stride=2)
        elif up == "bilinear":
            self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                    ConvBNAct(in_ch, out_ch, 1, bn=bn))
        else:
            raise ValueError(f"unknown upsampling {up!r}; expected 'transpose' or 'bilinear'")
        self.conv = unit(out_ch + skip_ch, out_ch, bn)

    def forward(self, x: Tensor, skip: Tensor | None) -> Tensor:
        x = self.up(x)
        if skip is None:
            return self.conv(x)
        if x.shape[-2:] != skip.shape[-2:]:  # encoders with odd intermediate sizes
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Zero-pad bottom/right so both sides divide by ``multiple``; returns the original (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return (F.pad(x, (0, pw, 0, ph)) if ph or pw else x), (h, w)


class EncoderUNet(nn.Module):
    """A U-Net decoder on a pretrained encoder's ``stages`` (strides 2, 4, 8, 16, 32).

    Subclasses set ``self.stages`` and call :meth:`build_decoder` with the channels each stage ends
    with; the last stage is the bottleneck, the others feed the skips (none with ``skips=False``:
    the same encoder-decoder without skip connections, 000 Q8), and a last up-block restores the
    input resolution before the 1x1 ``head``.
    """

    def build_decoder(self, stage_channels: tuple[int, ...], decoder_channels: tuple[int, ...], up: str,
                      skips: bool, head: nn.Module) -> None:
        self.skips = skips
        skip_ch = [c if skips else 0 for c in stage_channels[:-1]][::-1]
        in_ch = [stage_channels[-1], *decoder_channels[:-1]]
        self.decoder = nn.ModuleList([UpBlock(i, s, o, up) for i, s, o in zip(in_ch, skip_ch, decoder_channels)])
        self.final_up = UpBlock(decoder_channels[-1], 0, decoder_channels[-1], up)
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        x, (h, w) = pad_to_multiple(x, 32)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        x = feats.pop()
        for up in self.decoder:
            skip = feats.pop()
            x = up(x, skip if self.skips else None)
        return self.head(self.final_up(x, None))[..., :h, :w]


class UNet(nn.Module):
    """U-Net with ``depth`` poolings; stage ``i`` has ``width * 2**i`` channels.

    ``block="double"`` is the 2015 design; ``block="residual"`` makes every stage residual, the
    encoder, the bottleneck and the decoder (ResU-Net, Zhang et al. 2018: residual units on both
    sides, each ``relu(conv-bn-relu-conv-bn(x) + shortcut(x))``). ``skips=False`` gives the same
    encoder-decoder without skip connections (each decoder stage sees only the upsampled features):
    the course's baseline for what the skips add (000 Q8).

    ``deep_supervision=True`` (deeply-supervised nets, Lee et al. 2015; as in UNet++ and nnU-Net) puts
    a 1x1 head on every decoder stage below full resolution; in training the model returns
    :class:`AuxOutputs` with their logits upsampled (bilinear) to the input size and weights
    ``0.5 ** s`` for a stage at ``1 / 2 ** s`` resolution, so the deep stages get a gradient of their
    own instead of only what passes through the layers above. In eval mode only the main logits.
    """

    def __init__(self, num_classes: int, in_chans: int = 3, width: int = 64, depth: int = 4,
                 up: str = "transpose", bn: bool = True, block: str = "double", dropout: float = 0.0,
                 skips: bool = True, deep_supervision: bool = False) -> None:
        super().__init__()
        blocks = {"double": DoubleConv, "residual": residual_stage}
        if block not in blocks:
            raise ValueError(f"unknown block {block!r}; expected one of {sorted(blocks)}")
        enc = blocks[block]
        chans = [width * 2 ** i for i in range(depth + 1)]
        self.depth, self.skips = depth, skips
        self.encoder = nn.ModuleList([enc(in_chans, chans[0], bn)] +
                                     [enc(chans[i - 1], chans[i], bn) for i in range(1, depth + 1)])
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.decoder = nn.ModuleList([UpBlock(chans[i + 1], chans[i] if skips else 0, chans[i], up, bn, enc)
                                      for i in reversed(range(depth))])
        self.head = nn.Conv2d(chans[0], num_classes, 1)
        # one head per decoder stage but the last, at 1/2**s resolution for s = depth - 1 .. 1
        self.aux_heads = nn.ModuleList([nn.Conv2d(chans[s], num_classes, 1) for s in reversed(range(1, depth))]
                                       if deep_supervision else [])

    def forward(self, x: Tensor) -> Tensor | AuxOutputs:
        x, (h, w) = pad_to_multiple(x, 2 ** self.depth)
        skips, aux = [], []
        for i, stage in enumerate(self.encoder):
            x = stage(x if i == 0 else self.pool(x))
            skips.append(x)
        x = self.dropout(skips.pop())
        for j, up in enumerate(self.decoder):
            skip = skips.pop()
            x = up(x, skip if self.skips else None)
            if self.training and j < len(self.aux_heads):
                scale = 2 ** (self.depth - 1 - j)
                aux.append(F.interpolate(self.aux_heads[j](x), scale_factor=scale, mode="bilinear",
                                         align_corners=False)[..., :h, :w])
        logits = self.head(x)[..., :h, :w]
        if not aux:
            return logits
        return AuxOutputs(logits, tuple(aux), tuple(0.5 ** (self.depth - 1 - j) for j in range(len(aux))))


@register_model("unet", default_input=(3, 256, 256), tags=("segmentation",))
def unet(num_classes: int = 2, in_chans: int = 3, width: int = 64, depth: int = 4, up: str = "transpose",
         bn: bool = True, dropout: float = 0.0, skips: bool = True, deep_supervision: bool = False) -> nn.Module:
    """U-Net (2015 design, same padding, BN): configurable width/depth, transposed-conv or bilinear up."""
    return UNet(num_classes, in_chans, width, depth, up, bn, "double", dropout, skips, deep_supervision)


@register_model("resunet", default_input=(3, 256, 256), tags=("segmentation",))
def resunet(num_classes: int = 2, in_chans: int = 3, width: int = 64, depth: int = 4, up: str = "transpose",
            bn: bool = True, dropout: float = 0.0, skips: bool = True, deep_supervision: bool = False) -> nn.Module:
    """ResU-Net: U-Net whose encoder, bottleneck and decoder stages are residual blocks."""
    return UNet(num_classes, in_chans, width, depth, up, bn, "residual", dropout, skips, deep_supervision)
