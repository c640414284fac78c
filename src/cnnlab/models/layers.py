"""Building blocks shared by every model family (the timm way: layers reused across models)."""
from __future__ import annotations

import torch
from torch import Tensor, nn


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


class ConvBNAct(nn.Sequential):
    """Conv2d -> BatchNorm2d -> activation, 'same' padding for odd kernels by default.

    The conv has no bias because the BatchNorm shift makes it redundant.
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
    ) -> None:
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, dilation, groups, bias=not bn)
        ]
        if bn:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(make_activation(act))
        super().__init__(*layers)


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
