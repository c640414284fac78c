"""cnnlab summary against the peers: total MACs equal fvcore's FlopCountAnalysis on torchvision
resnet18, vgg11, mobilenet_v2 and googlenet; parameters equal sum(p.numel()); receptive fields equal
the composition of torchscan's per-layer kernel/stride/padding on the sequential models it supports."""
from __future__ import annotations

import logging

import pytest
import torch
import torchvision
from torch import nn

from cnnlab.analysis.summary import summarize

fvcore_nn = pytest.importorskip("fvcore.nn")
torchscan = pytest.importorskip("torchscan")

SIZE = (3, 64, 64)  # every network below accepts it; 64x smaller than 224 so the tests stay fast


@pytest.mark.parametrize("name", ["resnet18", "vgg11", "mobilenet_v2", "googlenet"])
def test_total_macs_and_params_equal_fvcore_and_numel(name):
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, weights=None, **({"init_weights": False} if name == "googlenet" else {}))
    model.eval()
    s = summarize(model, SIZE)
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    flops = fvcore_nn.FlopCountAnalysis(model, torch.randn(1, *SIZE))
    flops.unsupported_ops_warnings(False)
    flops.uncalled_modules_warnings(False)
    assert s.macs == flops.total()  # fvcore counts one multiply-add as one "flop"
    assert s.params == sum(p.numel() for p in model.parameters())
    unused = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("aux1.", "aux2.")))  # googlenet's
    assert sum(layer.params for layer in s.layers) == s.params - unused  # eval mode skips auxiliary heads
    assert s.unknown == []


def _torchscan_fields(model: nn.Module, size) -> list[tuple[float, float, float]]:
    """Compose torchscan's per-module (kernel span, stride, padding) along axis 0 into cumulative
    (size, jump, start): r += (k-1)j, start = (r-1)/2 - effective padding, P += p*j, j *= s."""
    report = torchscan.crawl_module(model, size)
    r, j, pad, out = 1.0, 1.0, 0.0, []
    for layer in report["layers"][1:]:  # [0] is the Sequential itself
        m = layer["metrics"]
        k, s, p = m["receptive_field"]["value"], m["effective_stride"]["value"], m["effective_padding"]["value"]
        r, pad, j = r + (k - 1) * j, pad + p * j, j * s
        out.append((r, j, (r - 1) / 2 - pad))
    return out


@pytest.mark.parametrize("build", [
    lambda: torchvision.models.vgg11(init_weights=False).features,
    lambda: torchvision.models.alexnet().features,
    lambda: nn.Sequential(nn.Conv2d(3, 4, 5, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AvgPool2d(3, 2, 1),
                  nn.Conv2d(4, 4, 3, dilation=3, padding=2), nn.MaxPool2d(2, dilation=2), nn.Conv2d(4, 4, 5, stride=2)),
], ids=["vgg11.features", "alexnet.features", "dilated-strided"])
def test_receptive_fields_equal_torchscan_composition(build):
    model = build()
    s = summarize(model, SIZE)
    ours = [(f.size[0], f.jump[0], f.start[0]) for f in (layer.state for layer in s.layers)]
    assert ours == _torchscan_fields(model, SIZE)
