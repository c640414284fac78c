"""cnnlab summary / fuse against hand-derived numbers: output sizes, parameters, MACs and receptive
fields (padding 'same'/'valid', stride, dilation, pooling, branches), gradient-measured fields,
BatchNorm folding, bad input and the CLI."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torchvision
import torch.nn.functional as F
from torch import nn

from cnnlab.analysis.fold import batchnorm_pairs, fold_batchnorm, fuse_report, randomize_batchnorm
from cnnlab.analysis.receptive import WHOLE
from cnnlab.analysis.summary import summarize
from cnnlab.cli.main import main
from cnnlab.models import create_model
from cnnlab.models.local import LocallyConnected2d


def rows(model: nn.Module, size) -> list[tuple]:
    s = summarize(model, size)
    return [(l.name, l.type, l.output_shape, l.params, l.macs, s.field(l)["receptive_field"], s.field(l)["stride"],
             s.field(l)["start"]) for l in s.layers]


def plain_stack() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding="same"),          # 0
        nn.ReLU(),                                   # 1
        nn.Conv2d(8, 8, (4, 2), padding="same"),     # 2: even kernels pad 1 left (h) / 0 left (w)
        nn.Conv2d(8, 16, 3, stride=2, padding=1),    # 3
        nn.Conv2d(16, 16, 3, dilation=2, padding="valid"),  # 4
        nn.AvgPool2d(2),                             # 5
        nn.Conv2d(16, 4, 1),                         # 6
    )


# Derived by hand on a 3x32x32 input. RF r' = r + d(k-1)j, jump j' = jt, start s' = s + (d(k-1)/2 - p)j.
#  name type  output     params          MACs = out positions x C_out x C_in/g x kh x kw   RF     jump    start
PLAIN_TABLE = [
    ("0", "Conv2d", (8, 32, 32), 3 * 8 * 9 + 8, 32 * 32 * 8 * 27, [3, 3], [1, 1], [0, 0]),
    ("1", "ReLU", (8, 32, 32), 0, 0, [3, 3], [1, 1], [0, 0]),
    ("2", "Conv2d", (8, 32, 32), 8 * 8 * 8 + 8, 32 * 32 * 8 * 64, [6, 4], [1, 1], [0.5, 0.5]),
    ("3", "Conv2d", (16, 16, 16), 8 * 16 * 9 + 16, 16 * 16 * 16 * 72, [8, 6], [2, 2], [0.5, 0.5]),
    ("4", "Conv2d", (16, 12, 12), 16 * 16 * 9 + 16, 12 * 12 * 16 * 144, [16, 14], [2, 2], [4.5, 4.5]),
    ("5", "AvgPool2d", (16, 6, 6), 0, 16 * 6 * 6 * 4, [18, 16], [4, 4], [5.5, 5.5]),
    ("6", "Conv2d", (4, 6, 6), 16 * 4 + 4, 6 * 6 * 4 * 16, [18, 16], [4, 4], [5.5, 5.5]),
]


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_plain_stack_matches_the_hand_derived_table():
    assert rows(plain_stack(), (3, 32, 32)) == PLAIN_TABLE
    s = summarize(plain_stack(), (3, 32, 32))
    assert s.macs == sum(r[4] for r in PLAIN_TABLE) and s.flops == 2 * s.macs
    assert s.params == s.trainable_params == sum(r[3] for r in PLAIN_TABLE)


@pytest.mark.parametrize("dilations,rf", [((1, 1, 1), 7), ((1, 2, 4), 15), ((2, 2, 2), 13), ((1, 3, 9), 27)])
def test_dilated_stack_field_is_one_plus_twice_the_dilation_sum(dilations, rf):
    """Three 3x3 convs, no padding: r = 1 + 2(d1+d2+d3), jump 1, first centre at d1+d2+d3."""
    net = nn.Sequential(*[nn.Conv2d(2, 2, 3, dilation=d) for d in dilations])
    last = rows(net, (2, 40, 40))[-1]
    assert last[5] == [rf, rf] and last[6] == [1, 1] and last[7] == [sum(dilations)] * 2
    assert rf == 1 + 2 * sum(dilations)


def test_depthwise_separable_costs_one_over_cout_plus_one_over_k2_of_a_standard_conv():
    standard = nn.Conv2d(32, 64, 3, padding=1, bias=False)
    separable = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False), nn.Conv2d(32, 64, 1, bias=False))
    a, b = summarize(standard, (32, 16, 16)), summarize(separable, (32, 16, 16))
    assert (a.params, b.params) == (32 * 64 * 9, 32 * 9 + 32 * 64)
    assert (a.macs, b.macs) == (256 * 32 * 64 * 9, 256 * (32 * 9 + 32 * 64))
    assert b.params / a.params == pytest.approx(1 / 64 + 1 / 9) and b.macs / a.macs == pytest.approx(1 / 64 + 1 / 9)


class Inception(nn.Module):
    """GoogLeNet's inception (3a) without biases: 1x1 | 1x1-3x3 | 1x1-5x5 | maxpool-1x1, concatenated."""

    def __init__(self) -> None:
        super().__init__()
        c = lambda i, o, k: nn.Conv2d(i, o, k, padding=k // 2, bias=False)
        self.b1 = c(192, 64, 1)
        self.b2 = nn.Sequential(c(192, 96, 1), c(96, 128, 3))
        self.b3 = nn.Sequential(c(192, 16, 1), c(16, 32, 5))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), c(192, 32, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


def test_inception_module_macs_and_concat_field():
    s = summarize(Inception(), (192, 28, 28))
    hw = 28 * 28
    expected = hw * (192 * 64 + 192 * 96 + 96 * 128 * 9 + 192 * 16 + 16 * 32 * 25 + 192 * 32)
    assert s.macs == expected == 128_049_152  # the paper's "128M" for inception (3a)
    cat = s.layers[-1]
    assert (cat.name, cat.type, cat.output_shape, cat.macs) == ("cat", "cat()", (256, 28, 28), 0)
    assert s.field(cat)["receptive_field"] == [5, 5]  # the widest branch (5x5), all centred
    assert [s.field(l)["receptive_field"][0] for l in s.layers[:-1]] == [1, 1, 3, 1, 5, 3, 3]


def test_conv_versus_locally_connected_parameters_and_outputs():
    conv = nn.Conv2d(3, 8, 3)
    local = LocallyConnected2d(3, 8, 3, input_size=10)
    a, b = summarize(conv, (3, 10, 10)), summarize(local, (3, 10, 10))
    positions = 8 * 8
    assert a.params == 8 * 3 * 9 + 8 and b.params == positions * 8 * 3 * 9 + 8 * positions
    assert a.macs == b.macs == positions * 8 * 27  # same arithmetic, 64x the weights
    assert a.field(a.layers[0]) == b.field(b.layers[0])
    with torch.no_grad():  # tying the 64 filters gives back the convolution
        local.weight.copy_(conv.weight.reshape(1, 8, 27).expand(positions, -1, -1))
        local.bias.copy_(conv.bias.view(8, 1, 1).expand(8, 8, 8))
        x = torch.randn(2, 3, 10, 10)
        torch.testing.assert_close(local(x), conv(x), atol=1e-5, rtol=1e-5)


def test_residual_add_and_whole_input_after_global_pooling():
    s = summarize(torchvision.models.resnet18(), (3, 64, 64))
    names = [l.name for l in s.layers]
    assert names.count("layer1.0.add") == 1 and sum(n.endswith(".add") for n in names) == 8
    add = s.layers[names.index("layer2.0.add")]  # union of the main branch (67) and the shortcut (43)
    assert s.field(add)["receptive_field"] == [67, 67] and s.field(add)["stride"] == [8, 8]
    assert s.layers[names.index("layer4.1.add")].state != WHOLE
    assert s.field(s.layers[-1]) == {"receptive_field": [64, 64], "stride": None, "start": None}
    assert s.layers[-2].state == WHOLE  # avgpool: global pooling


@pytest.mark.parametrize("net,size", [
    (plain_stack(), (3, 32, 32)),
    (nn.Sequential(nn.Conv2d(1, 2, 5, stride=2, padding=2), nn.AvgPool2d(3, 2, 1), nn.Conv2d(2, 2, 3, dilation=3, padding=1),
                   nn.ZeroPad2d((2, 0, 1, 0)), nn.Conv2d(2, 1, 3)), (1, 48, 40)),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Upsample(scale_factor=2), nn.Conv2d(2, 2, 3, stride=2)), (1, 20, 20)),
])
def test_field_matches_the_input_gradient_support(net, size):
    """With positive weights and inputs, output unit n depends exactly on the pixels its field covers."""
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    s = summarize(net, size)
    f = s.layers[-1].state
    x = torch.rand(1, *size, requires_grad=True)
    out = net(x)
    n = (out.shape[2] // 2, out.shape[3] // 2)  # a unit away from the borders
    out[0, 0, n[0], n[1]].backward()
    support = x.grad[0].sum(0).nonzero()
    for axis in range(2):
        centre, half = f.start[axis] + n[axis] * f.jump[axis], (f.size[axis] - 1) / 2
        lo, hi = max(0, centre - half), min(size[axis + 1] - 1, centre + half)
        assert (support[:, axis].min().item(), support[:, axis].max().item()) == (math.ceil(lo), math.floor(hi))


def test_transposed_conv_upsampling_field():
    """ConvTranspose2d(k=4, s=2, p=1): every output reads 2 inputs per axis, jump 1/2, output 0 centred at -0.5."""
    s = summarize(nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ConvTranspose2d(1, 1, 4, 2, 1)), (1, 8, 8))
    last = s.layers[-1]
    assert last.output_shape == (1, 16, 16) and last.macs == 8 * 8 * 16
    assert s.field(last) == {"receptive_field": [4, 4], "stride": [0.5, 0.5], "start": [-0.5, -0.5]}


class Scale(nn.Module):
    def forward(self, x):
        return x * 0.5


class Spectral(nn.Module):
    def forward(self, x):
        return torch.fft.fft2(x).real


def test_custom_leaves_are_read_through_their_functions_or_reported_unknown():
    s = summarize(nn.Sequential(nn.Conv2d(1, 2, 3), Scale(), Spectral(), nn.Flatten(), nn.Linear(2 * 36, 3)), (1, 8, 8))
    by_name = {l.name: l for l in s.layers}
    assert by_name["1"].macs == 0 and s.field(by_name["1"])["receptive_field"] == [3, 3]
    assert by_name["2"].macs is None and by_name["2"].state is None
    assert [l.name for l in s.unknown] == ["2"] and s.macs == 36 * 2 * 9 + 72 * 3
    assert "Unknown layers, NOT counted in the MACs total: 2 (Spectral)" in s.format("table")
    assert create_model("resnet9") and summarize(create_model("resnet9"), (3, 32, 32)).unknown == []


def test_meta_and_real_forward_agree():
    net = create_model("locally-connected", in_chans=1)
    a, b = summarize(net, (1, 28, 28)), summarize(net, (1, 28, 28), execute=True)
    assert a.to_dict() == b.to_dict()


def test_json_schema_csv_and_markdown():
    s = summarize(plain_stack(), (3, 32, 32))
    d = json.loads(s.format("json"))
    assert d["input"] == [3, 32, 32]
    assert all(set(l) == {"name", "type", "output_shape", "params", "macs", "receptive_field", "stride", "start"}
               for l in d["layers"])
    assert set(d["total"]) == {"params", "trainable_params", "macs", "flops"}
    assert d["layers"][2]["receptive_field"] == [6, 4] and d["total"]["flops"] == 2 * d["total"]["macs"]
    lines = s.format("csv").splitlines()
    assert lines[0] == "name,type,output_shape,params,macs,receptive_field,stride,start"
    assert lines[3] == "2,Conv2d,8x32x32,520,524288,6x4,1x1,0.5x0.5"
    md = s.format("markdown").splitlines()
    assert md[0].startswith("| Layer | Type |") and md[4].startswith("| 2 | Conv2d | 8x32x32 | 520 | 524,288 | 6x4 |")


# --- BatchNorm folding ---------------------------------------------------------------------------


def test_fold_resnet18_is_exact_and_removes_every_batchnorm():
    torch.manual_seed(0)  # random weights and input: unseeded, the difference ranged up to about 1e-5 (float32 rounding)
    model = randomize_batchnorm(torchvision.models.resnet18()).eval()
    folded = fold_batchnorm(model)
    assert len(batchnorm_pairs(model)) == 20
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 20  # original untouched
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - folded(x)).abs().max().item() <= 1e-5


def test_fold_linear_transposed_grouped_and_unfoldable_pairs():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.up = nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2, bias=False)
            self.bn_up = nn.BatchNorm2d(6)
            self.conv = nn.Conv2d(6, 6, 3, padding=1)
            self.bn_shared = nn.BatchNorm2d(6)  # its conv output is also used by the shortcut: not foldable
            self.pre = nn.BatchNorm2d(6)  # BN before a layer: not a Conv->BN pair
            self.fc = nn.Linear(6, 5)
            self.bn_fc = nn.BatchNorm1d(5)

        def forward(self, x):
            y = self.bn_up(self.up(x))
            z = self.conv(y)
            z = self.bn_shared(z) + z
            return self.bn_fc(self.fc(self.pre(z).mean((2, 3))))

    net = randomize_batchnorm(Net()).eval()
    assert batchnorm_pairs(net) == [("up", "bn_up"), ("fc", "bn_fc")]
    folded = fold_batchnorm(net)
    assert isinstance(folded.bn_up, nn.Identity) and isinstance(folded.bn_shared, nn.BatchNorm2d)
    x = torch.randn(3, 4, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), atol=1e-5, rtol=1e-5)


class _SamePadConv(nn.Conv2d):
    """EfficientNet's static same padding: pad, then convolve with ``self.weight`` (linear in it)."""

    def forward(self, x):
        return F.conv2d(F.pad(x, (0, 1, 0, 1)), self.weight, self.bias, self.stride)


class _StdConv(nn.Conv2d):
    """timm's weight standardisation: the weight is renormalised per filter, so ``a W`` acts as ``W``."""

    def forward(self, x):
        w = (self.weight - self.weight.mean((1, 2, 3), keepdim=True)) / self.weight.std((1, 2, 3), keepdim=True)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


def test_fold_reaches_conv_subclasses_and_leaves_those_whose_weight_is_transformed():
    net = randomize_batchnorm(nn.Sequential(_SamePadConv(3, 4, 3, stride=2), nn.BatchNorm2d(4), nn.ReLU(),
                                            _StdConv(4, 5, 3, padding=1), nn.BatchNorm2d(5))).eval()
    assert batchnorm_pairs(net) == [("0", "1"), ("3", "4")]  # fx stops at the subclasses: both are candidates
    folded = fold_batchnorm(net)
    # the same-padding conv folds; folding into the standardised conv would be undone by its standardisation
    assert isinstance(folded[1], nn.Identity) and isinstance(folded[4], nn.BatchNorm2d)
    x = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), atol=1e-5, rtol=1e-5)
    r = fuse_report(net, (3, 9, 9), batch=2, repeats=1)
    assert r["pairs"] == 1 and r["batchnorm_left"] == 1


def test_fuse_report_fields():
    r = fuse_report(randomize_batchnorm(create_model("simple-cnn", in_chans=1, width=4)), (1, 28, 28), batch=2, repeats=2)
    assert r["pairs"] == 4 and r["batchnorm_left"] == 0 and r["max_abs_diff"] <= 1e-5
    assert r["ms_original"] > 0 and r["ms_folded"] > 0 and r["speedup"] == pytest.approx(r["ms_original"] / r["ms_folded"])


# --- bad input and the CLI -----------------------------------------------------------------------


BAD_FILE = '''
import torch
from torch import nn

class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(10, 2)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)

    def forward(self, x):
        return self.conv(x)
'''


def test_cli_summary_formats_and_file_models(tmp_path, capsys):
    path = tmp_path / "nets.py"
    path.write_text(BAD_FILE)
    assert main(["summary", f"{path}:Tiny", "--input", "3,9,9", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["layers"] == [{"name": "conv", "type": "Conv2d", "output_shape": [4, 4, 4], "params": 112, "macs": 1728,
                            "receptive_field": [3, 3], "stride": [2, 2], "start": [1, 1]}]
    assert main(["summary", "locally-connected"]) == 0
    out = capsys.readouterr().out
    assert "LocallyConnected2d" in out and "whole input" in out and "Params 105,850" in out
    assert main(["summary", "torchvision:squeezenet1_0", "--input", "3,64,64", "--format", "csv"]) == 0
    assert capsys.readouterr().out.count("cat()") == 8


@pytest.mark.parametrize("argv,message", [
    (["summary", "torchvision:resnet18", "--input", "1,32,32"],
     "--input 1,32,32: the model's first layer conv1 (Conv2d) expects 3 input channels, got 1"),
    (["summary", "{path}:Nope", "--input", "3,8,8"], "has no nn.Module class 'Nope' (it defines: Broken, Tiny)"),
    (["summary", "{path}:Broken", "--input", "3,8,8"],
     "the forward pass failed in layer fc (Linear) on a 1x3x8x8 input: RuntimeError: mat1 and mat2 shapes"),
    (["summary", "{path}:Tiny"], "give --input C,H,W for a model defined in a file"),
    (["summary", "resnet9", "--input", "3,a,32"], "argument --input: expected positive sizes C,H,W such as 3,224,224"),
    (["summary", "no-such-net"], "unknown model 'no-such-net'"),
    (["fuse", "{path}:Tiny", "--input", "3,8,8", "--format", "json"], None),
])
def test_bad_input_is_one_clear_line(tmp_path, capsys, argv, message):
    path = tmp_path / "nets.py"
    path.write_text(BAD_FILE)
    argv = [a.replace("{path}", str(path)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals (bad values, unknown options)
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and (message is None or message in err)


def test_cli_fuse(capsys):
    assert main(["fuse", "simple-cnn", "--random-bn", "--batch", "2", "--repeats", "2", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["pairs"] == 4 and r["max_abs_diff"] <= 1e-5 and r["input"] == [2, 1, 28, 28]


def test_one_counter_gives_the_papers_macs_and_the_whole_total():
    """resnet18-cifar (32x32, 10 classes): conv + linear 555.42 M (the papers', `cnnlab models`), 556.66 M with BN, pooling."""
    from cnnlab.analysis.complexity import count_macs, model_complexity

    s = summarize(create_model("resnet18-cifar"), (3, 32, 32))
    assert s.weight_macs == 555_422_720 and s.macs == 556_659_712
    assert model_complexity("resnet18-cifar")["macs"] == s.weight_macs
    bn_relu = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU())
    assert count_macs(bn_relu, (2, 6, 6)) == 16 * 3 * 2 * 9  # the conv alone
    assert summarize(bn_relu, (2, 6, 6)).macs == 16 * 3 * 2 * 9 + 2 * 16 * 3  # + BatchNorm's 2 per element
