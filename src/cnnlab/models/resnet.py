"""ResNet (He et al. 2016), ResNeXt (Xie et al. 2017) and SE-ResNet (Hu et al. 2018).

One ``ResNet`` class: a stem, stages of residual blocks (the first block of each stage after the
first halves the resolution), and a global-pool classifier. The families differ only in the block.

Stems: ``stem="cifar"`` is one 3x3 conv at full resolution (the CIFAR ResNets of the papers'
CIFAR experiments and of kuangliu/pytorch-cifar); ``stem="imagenet"`` is the 7x7/2 conv and 3x3/2
max-pool for 224x224 input. ``resnet18/34/50`` are torchvision's architectures (ImageNet stem, as
the name means to a PyTorch user); ``resnet18/34/50-cifar`` carry the CIFAR stem. SE-ResNet and
ResNeXt-29 (CIFAR models by origin) keep ``stem="auto"``, chosen from ``image_size``.
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from cnnlab.models.layers import (BasicBlock, Bottleneck, ClassifierHead, ConvBNAct, ResidualBlock, ResNeXtBlock,
                                  resolve_stem)
from cnnlab.models.registry import Builder, register_model

BlockFactory = Callable[[int, int, int, int], nn.Module]  # (in_ch, out_ch, stride, stage index) -> block


class ResNet(nn.Module):
    """Stem -> stages of ``depths[i]`` blocks with ``widths[i]`` output channels -> pooled linear head.

    Each stage after the first halves the resolution in its first block; ``first_stride=2`` makes the
    first stage halve it too (a CIFAR network whose blocks start at 16 x 16)."""

    def __init__(self, block: BlockFactory, depths: list[int], widths: list[int], num_classes: int = 10,
                 in_chans: int = 3, stem: str = "cifar", stem_width: int = 64, zero_init_residual: bool = False,
                 first_stride: int = 1) -> None:
        super().__init__()
        if stem == "cifar":
            self.stem = ConvBNAct(in_chans, stem_width, 3)
        else:
            self.stem = nn.Sequential(ConvBNAct(in_chans, stem_width, 7, 2), nn.MaxPool2d(3, 2, 1))
        stages, c_in = [], stem_width
        for i, (depth, width) in enumerate(zip(depths, widths)):
            stride = 2 if i > 0 else first_stride
            blocks = [block(c_in if j == 0 else width, width, stride if j == 0 else 1, i) for j in range(depth)]
            stages.append(nn.Sequential(*blocks))
            c_in = width
        self.stages = nn.Sequential(*stages)
        self.head = ClassifierHead(c_in, num_classes)
        if zero_init_residual:
            zero_last_bn(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(self.stem(x)))


def zero_last_bn(model: nn.Module) -> None:
    """Start every residual branch at zero (the last BatchNorm's scale = 0, Goyal et al. 2017; torchvision's
    ``zero_init_residual``): each block begins as its shortcut, so a deep stack of wide blocks does not
    sum nine random branches into the head's input, which made ResNeXt-29 diverge at SGD lr 0.1."""
    for block in model.modules():
        if isinstance(block, ResidualBlock):
            nn.init.zeros_([m for m in block.body.modules() if isinstance(m, nn.BatchNorm2d)][-1].weight)


def _basic(se_reduction: int | None = None) -> BlockFactory:
    return lambda c_in, c_out, stride, _: BasicBlock(c_in, c_out, stride, se_reduction)


def _bottleneck(c_in: int, c_out: int, stride: int, _: int) -> nn.Module:
    return Bottleneck(c_in, c_out, stride)


RESNET_WIDTHS = [64, 128, 256, 512]


# depth -> (block, blocks per stage, stage widths, what the docstring says of them)
RESNETS = {18: (_basic(), [2, 2, 2, 2], RESNET_WIDTHS, "basic blocks [2, 2, 2, 2]"),
           34: (_basic(), [3, 4, 6, 3], RESNET_WIDTHS, "basic blocks [3, 4, 6, 3]"),
           50: (_bottleneck, [3, 4, 6, 3], [4 * w for w in RESNET_WIDTHS],
                "bottleneck blocks [3, 4, 6, 3], outputs 4x the 3x3 width")}


def _resnet(depth: int, stem: str) -> Builder:
    """Register ``resnet<depth>`` (torchvision's architecture and defaults: ImageNet stem, 224x224,
    1000 classes) or, for ``stem="cifar"``, ``resnet<depth>-cifar`` (3x3 full-resolution stem, 32x32, 10)."""
    block, depths, widths, layout = RESNETS[depth]
    cifar = stem == "cifar"

    def builder(num_classes: int = 10 if cifar else 1000, in_chans: int = 3) -> nn.Module:
        return ResNet(block, depths, widths, num_classes, in_chans, stem)

    builder.__doc__ = f"ResNet-{depth}, {stem} stem: {layout}"
    return register_model(f"resnet{depth}{'-cifar' if cifar else ''}", default_input=(3, 32, 32) if cifar else
                          (3, 224, 224), tags=("resnet",) if cifar else ("resnet", "imagenet-size"))(builder)


resnet18, resnet34, resnet50 = (_resnet(d, "imagenet") for d in RESNETS)  # 11.69M, 21.80M, 25.56M at 1000 classes
resnet18_cifar, resnet34_cifar, resnet50_cifar = (_resnet(d, "cifar") for d in RESNETS)  # 11.17M ... at 10


@register_model("se-resnet18", default_input=(3, 32, 32), tags=("resnet", "se"))
def se_resnet18(num_classes: int = 10, in_chans: int = 3, r: int = 16, stem: str = "auto",
                image_size: int = 32) -> nn.Module:
    """ResNet-18 with squeeze-and-excitation (reduction ``r``) in every block: +2C^2/r weights per block."""
    return ResNet(_basic(r), [2, 2, 2, 2], RESNET_WIDTHS, num_classes, in_chans, resolve_stem(stem, image_size))


def resnext29(cardinality: int, bottleneck_width: int, num_classes: int = 10, in_chans: int = 3,
              stem: str = "cifar", blocks: int = 3, widths: tuple[int, int, int] = (256, 512, 1024),
              stem_width: int = 64, first_stride: int = 1) -> ResNet:
    """ResNeXt-29 for CIFAR: 3 stages x 3 blocks (29 = 9 blocks x 3 layers + stem + head),
    outputs 256/512/1024, and the per-path width ``d`` doubling at each stage as in the paper;
    ``blocks`` per stage, the stages' output ``widths``, ``stem_width`` and ``first_stride`` make the
    smaller members (ResNeXt-11, ResNeXt-20).
    Residual branches start at zero (:func:`zero_last_bn`): with random ones its loss rose from 2.6
    to 4.1 in 20 SGD steps at lr 0.1 on CIFAR-10, with zeroed ones it fell to 1.9 by step 30."""

    def block(c_in: int, c_out: int, stride: int, stage: int) -> nn.Module:
        return ResNeXtBlock(c_in, c_out, stride, cardinality, bottleneck_width * 2**stage)

    return ResNet(block, [blocks] * 3, list(widths), num_classes, in_chans, stem, stem_width,
                  zero_init_residual=True, first_stride=first_stride)


@register_model("resnext29-8x64d", default_input=(3, 32, 32), tags=("resnet", "resnext"))
def resnext29_8x64d(num_classes: int = 10, in_chans: int = 3, stem: str = "auto", image_size: int = 32) -> nn.Module:
    """ResNeXt-29 8x64d: cardinality 8, 64 channels per path (34.4M params, the paper's CIFAR model)."""
    return resnext29(8, 64, num_classes, in_chans, resolve_stem(stem, image_size))


@register_model("resnext29-4x16d", default_input=(3, 32, 32), tags=("resnet", "resnext"))
def resnext29_4x16d(num_classes: int = 10, in_chans: int = 3, stem: str = "auto", image_size: int = 32) -> nn.Module:
    """ResNeXt-29 4x16d: a small ResNeXt (cardinality 4, 16 channels per path) for quick experiments."""
    return resnext29(4, 16, num_classes, in_chans, resolve_stem(stem, image_size))


@register_model("resnext11-4x16d", default_input=(3, 32, 32), tags=("resnet", "resnext"))
def resnext11_4x16d(num_classes: int = 10, in_chans: int = 3, stem: str = "auto", image_size: int = 32) -> nn.Module:
    """ResNeXt-11 4x16d: ResNeXt-29 4x16d with one block per stage instead of three and outputs
    128/256/512 instead of 256/512/1024 (the same 4 paths of 16-64 channels): 118 M multiply-adds
    to 494 M. The family member that trains on all of CIFAR-10 on a 2-core CPU: there BatchNorm and
    ReLU on the wide full-resolution maps, not the convolutions, take most of a step, and
    ResNeXt-29 4x16d trains at 48-66 images/s in bf16, ResNeXt-11 at 210-230 (benchmarks/cpu_roofline.py)."""
    return resnext29(4, 16, num_classes, in_chans, resolve_stem(stem, image_size), blocks=1, widths=(128, 256, 512))


@register_model("resnext11-4x8d", default_input=(3, 32, 32), tags=("resnet", "resnext"))
def resnext11_4x8d(num_classes: int = 10, in_chans: int = 3, stem: str = "auto", image_size: int = 32) -> nn.Module:
    """ResNeXt-11 4x8d: one block per stage, 4 paths of 8-32 channels, outputs 64/128/256 (30 M
    multiply-adds). On 2 cores it trains at about 620 images/s in bf16 where ResNeXt-11 4x16d manages
    240-310, but in 18 epochs of all CIFAR-10 it underfit (train accuracy 0.80, test 0.80)."""
    return resnext29(4, 8, num_classes, in_chans, resolve_stem(stem, image_size), blocks=1, widths=(64, 128, 256))


@register_model("resnext20-4x16d", default_input=(3, 32, 32), tags=("resnet", "resnext"))
def resnext20_4x16d(num_classes: int = 10, in_chans: int = 3, stem: str = "auto", image_size: int = 32) -> nn.Module:
    """ResNeXt-20 4x16d: two blocks per stage instead of three, outputs 128/256/512, a 32-channel stem,
    and a first stage that halves the resolution (blocks at 16/8/4 px instead of 32/16/8): 50 M
    multiply-adds and 1.2 M parameters to ResNeXt-29 4x16d's 494 M. The CPU preset's ResNeXt: the
    full-resolution maps are what a 2-core CPU pays for, so it drops them and keeps 4x16d's paths;
    ResNeXt-11 4x8d (0.16 M parameters), which keeps the maps, underfit CIFAR-10 in 18 epochs."""
    return resnext29(4, 16, num_classes, in_chans, resolve_stem(stem, image_size), blocks=2,
                     widths=(128, 256, 512), stem_width=32, first_stride=2)
