"""Building blocks shared by every model family (the timm way: layers reused across models)."""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from cnnlab.core.errors import CnnlabError


class AuxOutputs(NamedTuple):
    """What a model with auxiliary heads returns in training: the engine adds ``aux_weight`` x each
    auxiliary loss to the main one (``cnnlab.train.engine.task_loss``) and reports the main logits.
    One head (Inception-v3's): a tensor and a float; several (a U-Net's deep supervision): tuples."""

    logits: Tensor
    aux: Tensor | tuple[Tensor, ...]
    aux_weight: float | tuple[float, ...]


def make_activation(name: str | None) -> nn.Module:
    """An activation by name; ``None``/"identity" gives a no-op."""
    table = {
        "relu": lambda: nn.ReLU(inplace=True),
        "relu6": lambda: nn.ReLU6(inplace=True),
        "silu": lambda: nn.SiLU(inplace=True),
        "gelu": nn.GELU,
        "sigmoid": nn.Sigmoid,
        "identity": nn.Identity,
    }
    key = (name or "identity").lower()
    if key not in table:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(table)}")
    return table[key]()


NORMS = ("batch", "group", "layer", "none")
GROUPS = 8  # GroupNorm groups (fewer when the width is not a multiple of 8)


def make_norm(kind: str, channels: int) -> nn.Module:
    """The normalisation after a conv, by name: statistics over different axes of ``N x C x H x W``.

    ``batch``: per channel over (N, H, W), the batch couples the samples (Ioffe & Szegedy 2015);
    ``group``: per sample over (H, W) and a group of channels (Wu & He 2018), batch-independent;
    ``layer``: per sample over (C, H, W) (GroupNorm with one group); ``none``: identity.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(channels, GROUPS), channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise CnnlabError(f"norm={kind!r}: expected one of {', '.join(NORMS)}")


class FeatureBatchNorm(nn.Module):
    """BatchNorm1d over every (channel, row, column) of a ``C x H x W`` map: a fully connected
    network's BatchNorm applied to conv features, with its own statistics, scale and shift per
    position (``2·C·H·W`` parameters instead of BatchNorm2d's ``2·C``)."""

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.bn = nn.BatchNorm1d(math.prod(self.shape))

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(x.flatten(1)).view_as(x)


class ConvBNAct(nn.Sequential):
    """Conv2d -> normalisation (BatchNorm2d by default) -> activation, 'same' padding for odd kernels.

    ``norm`` picks the normalisation (:func:`make_norm`); ``bn=False`` is the older spelling of
    ``norm="none"``. The conv has a bias only without normalisation: a norm's shift makes it redundant.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        groups: int = 1,
        act: str | None = "relu",
        bn: bool = True,
        norm: str | None = None,
    ) -> None:
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        norm = norm or ("batch" if bn else "none")
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, dilation, groups, bias=norm == "none")
        ]
        if norm != "none":
            layers.append(make_norm(norm, out_ch))
        layers.append(make_activation(act))
        super().__init__(*layers)


def adapt_first_conv(conv: nn.Conv2d, in_chans: int) -> nn.Conv2d:
    """A pretrained RGB first convolution made to take ``in_chans`` channels, in place.

    One channel: the filters are summed over R, G and B, so a grey image gives exactly the
    response the RGB filters give that image replicated to three channels (conv is linear in its
    input). Other counts: the mean filter on every channel, scaled by ``3 / in_chans`` so an input
    with equal channels still gives the RGB response. Pretrained filters keep their meaning, which
    dropping them for random ones would lose. Works on ``nn.Conv2d`` subclasses (their own
    padding logic is kept).
    """
    if in_chans == conv.in_channels:
        return conv
    if conv.in_channels != 3 or conv.groups != 1:
        raise ValueError(f"adapt_first_conv expects an ungrouped 3-channel conv, got {conv}")
    with torch.no_grad():
        w = conv.weight
        new = w.sum(1, keepdim=True) if in_chans == 1 else w.mean(1, keepdim=True).repeat(1, in_chans, 1, 1) * 3 / in_chans
    conv.weight = nn.Parameter(new.contiguous())
    conv.in_channels = in_chans
    return conv


class Residual(nn.Module):
    """``x + body(x)``: the identity shortcut that lets gradients skip the body."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ClassifierHead(nn.Sequential):
    """Global average pool -> flatten -> (dropout) -> linear: turns any feature map into logits."""

    def __init__(self, in_ch: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Linear(in_ch, num_classes),
        )


class Normalize(nn.Module):
    """``(x - mean) / std`` inside the model, so callers work on [0, 1] pixel-space images.

    Explanations and attacks need this: an epsilon or a heatmap then means the same thing for
    every model, whatever normalization it was trained with.
    """

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class PatchWhitening(nn.Conv2d):
    """A stem conv that whitens ``k x k`` patches: fixed filters computed from the data, not learned.

    :meth:`init_from_data` takes the (normalised) training images, forms every ``k x k`` patch as a
    vector of ``d = C k^2`` numbers, and eigendecomposes their second-moment matrix
    ``S = E[p p^T] = V diag(lambda) V^T``. The filters are the eigenvectors scaled by
    ``1 / sqrt(lambda + eps)``, largest first, then the same ``d`` filters negated (``2 d`` outputs,
    so a following ReLU/GELU loses nothing): the first ``d`` outputs then have second moment
    ``diag(lambda / (lambda + eps))``, the identity but for the directions weaker than ``eps``.
    Decorrelated, unit-scale inputs are what the next layer learns fastest from (airbench94's stem,
    after Coates & Ng's patch whitening). The filters stay frozen; the bias trains for the first
    ``bias_epochs`` epochs (the engine calls :meth:`set_epoch`) and is frozen after them.
    """

    def __init__(self, in_ch: int, kernel_size: int = 2, eps: float = 5e-4, bias_epochs: int = 3) -> None:
        d = in_ch * kernel_size * kernel_size
        super().__init__(in_ch, 2 * d, kernel_size, padding=0, bias=True)
        self.eps, self.bias_epochs = eps, bias_epochs
        self.weight.requires_grad_(False)
        nn.init.zeros_(self.bias)

    @torch.no_grad()
    def init_from_data(self, images: Tensor) -> None:
        """Set the filters from ``images`` (``N x C x H x W``, normalised as the model's inputs)."""
        c, (kh, kw) = self.in_channels, self.kernel_size
        patches = images.float().unfold(2, kh, 1).unfold(3, kw, 1)  # N, C, H', W', kh, kw
        flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c * kh * kw).double()
        second_moment = flat.T @ flat / len(flat)
        eigenvalues, eigenvectors = torch.linalg.eigh(second_moment)  # ascending
        filters = (eigenvectors.T / (eigenvalues + self.eps).sqrt()[:, None]).flip(0)
        filters = filters.reshape(-1, c, kh, kw)
        self.weight.copy_(torch.cat([filters, -filters]).to(self.weight))
        self.bias.zero_()

    def set_epoch(self, epoch: int) -> None:
        self.bias.requires_grad_(epoch < self.bias_epochs)


class FrozenScaleBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose scale stays 1 (only the shift trains): one fewer knob per channel.

    Before a scale-invariant layer the BN scale only changes the effective learning rate of
    what follows; fixing it (airbench94) removes that coupling and some optimizer work.
    ``momentum`` is PyTorch's (the weight of the new batch statistics).
    """

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__(channels, eps=eps, momentum=momentum)
        self.weight.requires_grad_(False)


# ---------------------------------------------------------------------------------------------
# Blocks of the course's architectures (ResNet, ResNeXt, SENet, Inception, MobileNet, EfficientNet)
# ---------------------------------------------------------------------------------------------


class Resize(nn.Module):
    """Bilinear resize of every input to ``size x size`` inside the model.

    Lets a network meant for a larger input (a pretrained ImageNet trunk, a compound-scaled
    EfficientNet) train on small stored images without keeping an upscaled copy of the dataset.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = int(size)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] == (self.size, self.size):
            return x
        return nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                         antialias=x.shape[-1] > self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class TwoClassLogits(nn.Module):
    """One logit ``z`` (a sigmoid/BCE model) as two logits ``[0, z]``.

    ``softmax([0, z])[1] == sigmoid(z)`` and cross-entropy on ``[0, z]`` equals BCE on ``z``, so
    every tool written for K-way logits (reports, predict, Grad-CAM, attacks) uses a one-output
    binary model unchanged.
    """

    def forward(self, z: Tensor) -> Tensor:
        return torch.cat([torch.zeros_like(z), z], dim=1)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10%.

    MobileNet and EfficientNet keep every width a multiple of 8 (hardware-friendly); this is
    the rounding their reference code uses, so scaled widths match the published models.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): a per-channel gate computed from global context.

    Squeeze: global average pool to ``C`` numbers. Excite: ``C -> C/r -> C`` with a sigmoid,
    then rescale each channel. The two 1x1 layers hold ``2 C^2 / r`` weights (plus ``C/r + C``
    biases when ``bias``): cheap next to a 3x3 conv's ``9 C^2``. ``hidden`` overrides ``C/r``
    (EfficientNet sizes it from the block's *input* width).
    """

    def __init__(self, channels: int, reduction: int = 16, hidden: int | None = None,
                 act: str = "relu", bias: bool = True) -> None:
        super().__init__()
        hidden = hidden or max(1, channels // reduction)
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=bias)
        self.act = make_activation(act)
        self.expand = nn.Conv2d(hidden, channels, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


def _shortcut(in_ch: int, out_ch: int, stride: int, bn: bool = True) -> nn.Module:
    """Identity when shapes agree, else a strided 1x1 projection (ResNet option B)."""
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return ConvBNAct(in_ch, out_ch, 1, stride, act=None, bn=bn)


class ResidualBlock(nn.Module):
    """``relu(body(x) + shortcut(x))``: what every ResNet-family block does with its own body."""

    def __init__(self, body: nn.Module, in_ch: int, out_ch: int, stride: int = 1, bn: bool = True) -> None:
        super().__init__()
        self.body = body
        self.shortcut = _shortcut(in_ch, out_ch, stride, bn)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class BasicBlock(ResidualBlock):
    """ResNet-18/34 block: two 3x3 convs and a shortcut.

    ``se_reduction`` appends squeeze-and-excitation to the body before the addition (SE-ResNet).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, se_reduction: int | None = None) -> None:
        super().__init__(nn.Sequential(
            ConvBNAct(in_ch, out_ch, 3, stride),
            ConvBNAct(out_ch, out_ch, 3, act=None),
            SqueezeExcite(out_ch, se_reduction) if se_reduction else nn.Identity(),
        ), in_ch, out_ch, stride)


class Bottleneck(ResidualBlock):
    """ResNet-50 block: 1x1 reduce to ``width``, 3x3 (stride here, as torchvision's v1.5), 1x1 expand.

    The 3x3 conv works on ``width`` channels only, so a 4x wider output costs little.
    ``groups > 1`` turns the 3x3 into a grouped conv: that is the ResNeXt block.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, width: int | None = None,
                 groups: int = 1, se_reduction: int | None = None) -> None:
        width = width or out_ch // 4
        super().__init__(nn.Sequential(
            ConvBNAct(in_ch, width, 1),
            ConvBNAct(width, width, 3, stride, groups=groups),
            ConvBNAct(width, out_ch, 1, act=None),
            SqueezeExcite(out_ch, se_reduction) if se_reduction else nn.Identity(),
        ), in_ch, out_ch, stride)


class ResNeXtBlock(Bottleneck):
    """ResNeXt block (Xie et al. 2017): ``cardinality`` parallel paths of ``bottleneck_width``
    channels each, implemented as one grouped 3x3 conv of ``cardinality * bottleneck_width``.

    More paths at equal cost beat a wider or deeper plain bottleneck (the paper's point).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, cardinality: int = 32,
                 bottleneck_width: int = 4, se_reduction: int | None = None) -> None:
        super().__init__(in_ch, out_ch, stride, width=cardinality * bottleneck_width,
                         groups=cardinality, se_reduction=se_reduction)


class InceptionModule(nn.Module):
    """Inception v1 module: 1x1, 3x3 and 5x5 convs and a 3x3 max-pool side by side, concatenated.

    The 1x1 "reductions" before the 3x3/5x5 convs (and after the pool) keep the wide branches
    cheap; output channels are ``c1 + c3 + c5 + pool_proj``. ``reduce=False`` is the paper's naive
    module (its Fig. 2a): the 3x3 and 5x5 convs read all ``in_ch`` channels and the pooled input
    passes through unprojected, so the output has ``c1 + c3 + c5 + in_ch`` channels.
    """

    def __init__(self, in_ch: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int,
                 pool_proj: int, reduce: bool = True) -> None:
        super().__init__()
        self.branch1 = ConvBNAct(in_ch, c1, 1)
        if reduce:
            self.branch3 = nn.Sequential(ConvBNAct(in_ch, c3_reduce, 1), ConvBNAct(c3_reduce, c3, 3))
            self.branch5 = nn.Sequential(ConvBNAct(in_ch, c5_reduce, 1), ConvBNAct(c5_reduce, c5, 5))
            self.branch_pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), ConvBNAct(in_ch, pool_proj, 1))
        else:
            self.branch3, self.branch5 = ConvBNAct(in_ch, c3, 3), ConvBNAct(in_ch, c5, 5)
            self.branch_pool = nn.MaxPool2d(3, 1, 1)
        self.out_channels = c1 + c3 + c5 + (pool_proj if reduce else in_ch)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], 1)


class DepthwiseSeparable(nn.Sequential):
    """MobileNetV1 unit: a k x k depthwise conv (one filter per channel) then a 1x1 pointwise conv.

    Costs ``HW(k²C + C*C')`` multiply-adds instead of ``HW * k² C C'``, a ratio of
    ``1/C' + 1/k²``: 8-9x fewer for wide 3x3 layers.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, act: str = "relu", kernel: int = 3) -> None:
        super().__init__(
            ConvBNAct(in_ch, in_ch, kernel, stride, groups=in_ch, act=act),
            ConvBNAct(in_ch, out_ch, 1, act=act),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (x``expand``), 3x3 depthwise, 1x1 *linear* projection.

    The inverse of a bottleneck: thin tensors at the shortcut, wide ones inside. The projection
    has no activation because ReLU on a thin tensor destroys information (the paper's argument).
    The shortcut exists only when stride is 1 and widths agree.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, expand: int = 6, act: str = "relu6") -> None:
        super().__init__()
        hidden = in_ch * expand
        layers: list[nn.Module] = [ConvBNAct(in_ch, hidden, 1, act=act)] if expand != 1 else []
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=act),
                   ConvBNAct(hidden, out_ch, 1, act=None)]
        self.body = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x) if self.use_residual else self.body(x)


class DropPath(nn.Module):
    """Stochastic depth: in training, drop a residual branch for a whole sample with probability ``p``.

    Surviving branches are scaled by ``1/(1-p)`` so the expected output is unchanged; at eval
    time it is the identity. EfficientNet uses it (called drop-connect there) in every MBConv.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) >= self.p
        return x * keep / (1.0 - self.p)


class MBConv(nn.Module):
    """EfficientNet block: inverted residual with a ``kernel`` depthwise conv, SE and SiLU.

    SE squeezes to ``se_ratio`` of the block's *input* width (the reference implementation),
    and the shortcut branch is dropped per sample with ``drop_path`` during training.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, expand: int = 6,
                 se_ratio: float = 0.25, drop_path: float = 0.0, act: str = "silu") -> None:
        super().__init__()
        hidden = in_ch * expand
        layers: list[nn.Module] = [ConvBNAct(in_ch, hidden, 1, act=act)] if expand != 1 else []
        layers.append(ConvBNAct(hidden, hidden, kernel, stride, groups=hidden, act=act))
        if se_ratio:
            layers.append(SqueezeExcite(hidden, hidden=max(1, int(in_ch * se_ratio)), act=act))
        layers.append(ConvBNAct(hidden, out_ch, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == out_ch
        self.drop_path = DropPath(drop_path) if self.use_residual else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return x + self.drop_path(self.body(x)) if self.use_residual else self.body(x)


class DilatedBlock(nn.Module):
    """Two 3x3 convs with dilation ``d`` and a residual: resolution kept, receptive field +4d.

    A dilated 3x3 samples its 9 taps ``d`` pixels apart, so stacking dilations 1, 2, 4, 8
    grows the receptive field exponentially with no pooling and no extra parameters.
    """

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBNAct(channels, channels, 3, dilation=dilation),
            ConvBNAct(channels, channels, 3, dilation=dilation, act=None),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.body(x))


def resolve_stem(stem: str, image_size: int) -> str:
    """``"auto"`` picks the CIFAR stem for small inputs (<= 64 px) and the ImageNet stem otherwise.

    An ImageNet stem divides the input by 4 (ResNet) or 2 (MobileNet) before the first block;
    on 32x32 images that throws away most of the picture, so CIFAR variants keep stride 1 there.
    """
    if stem == "auto":
        return "cifar" if image_size <= 64 else "imagenet"
    if stem not in ("cifar", "imagenet"):
        raise CnnlabError(f"stem={stem!r}: expected 'auto', 'cifar' or 'imagenet'")
    return stem


class Concat(nn.ModuleList):
    """Parallel branches on the same input, outputs concatenated along the channels.

    The shape of every Inception block after v1: 1x1, factorised and pooling branches side by
    side. A branch may itself end in a ``Concat`` (Inception-v3's 1x3 and 3x1 on one 1x1 output).
    """

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__(branches)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([branch(x) for branch in self], 1)


class ScaledResidual(nn.Module):
    """``act(x + scale * branch(x))``: an Inception-ResNet block (Szegedy et al. 2017).

    The branch ends in a linear 1x1 conv back to the input width, and nothing normalises the sum,
    so with thousands of channels the residuals pile up; scaling them by 0.1-0.3 before the
    addition is what the paper found to keep such networks from dying early in training.
    """

    def __init__(self, branch: nn.Module, scale: float = 1.0, act: str | None = "relu") -> None:
        super().__init__()
        self.branch = branch
        self.scale = scale
        self.act = make_activation(act)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.scale * self.branch(x))

    def extra_repr(self) -> str:
        return f"scale={self.scale:g}"
