"""The course's architectures: published sizes, SE cost, compound scaling, MACs, and that every
registry model trains (forward + backward) on a tiny batch."""
from __future__ import annotations

import inspect
import json

import pytest
import torch
from torch import nn

from cnnlab.models import create_model, get_entry, list_models
from cnnlab.analysis.complexity import count_macs, count_params, model_complexity
from cnnlab.models.efficientnet import ALPHA, BETA, GAMMA, compound_scale
from cnnlab.models.layers import BasicBlock, SqueezeExcite
from cnnlab.models.mobilenet import mobilenet_v2_encoder


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny convolutions are slower with several threads, badly so on a busy shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _meta(name: str, **kw) -> nn.Module:
    """Build on the meta device: parameter shapes without memory or init cost."""
    with torch.device("meta"):
        return create_model(name, **kw)


# (name, kwargs, published parameter count, source)
PUBLISHED = [
    ("resnet18-cifar", dict(num_classes=10), 11.17e6, "ResNet-18 for CIFAR-10 (kuangliu/pytorch-cifar)"),
    ("resnet18", dict(num_classes=1000), 11.69e6, "He et al. 2016 / torchvision"),
    ("resnet50", dict(num_classes=1000), 25.56e6, "He et al. 2016 / torchvision"),
    ("resnext29-8x64d", dict(num_classes=10), 34.4e6, "Xie et al. 2017, Table 7"),
    ("mobilenet-v1", dict(num_classes=1000), 4.2e6, "Howard et al. 2017, Table 8"),
    ("mobilenet-v2", dict(num_classes=1000), 3.5e6, "Sandler et al. 2018 (3.4M in Table 4; 3.50M in torchvision)"),
    ("efficientnet-b0", dict(num_classes=1000), 5.3e6, "Tan & Le 2019, Table 2"),
]


@pytest.mark.parametrize("name,kw,published,source", PUBLISHED, ids=[f"{p[0]}-{p[1]['num_classes']}" for p in PUBLISHED])
def test_parameter_counts_match_published(name, kw, published, source):
    params = count_params(_meta(name, **kw))
    assert abs(params - published) / published < 0.01, f"{name}: {params} vs {published} ({source})"


@pytest.mark.parametrize("ours,kw,theirs", [
    ("resnet18", dict(num_classes=1000), "resnet18"),
    ("resnet34", dict(num_classes=1000), "resnet34"),
    ("resnet50", dict(num_classes=1000), "resnet50"),
    ("mobilenet-v2", dict(num_classes=1000), "mobilenet_v2"),
    ("efficientnet-b0", dict(num_classes=1000), "efficientnet_b0"),
])
def test_parameter_counts_equal_torchvision(ours, kw, theirs):
    import torchvision

    with torch.device("meta"):
        peer = torchvision.models.get_model(theirs)
    assert count_params(_meta(ours, **kw)) == count_params(peer)


def test_googlenet_is_torchvisions_with_true_5x5_convs():
    """torchvision's GoogLeNet uses 3x3 convs in the "5x5" branches; ours has real 5x5 ones, so it
    must hold exactly 16 * sum(c5_reduce * c5) more weights (25 - 9 taps per filter pair)."""
    import torchvision

    from cnnlab.models.inception import GOOGLENET_CFG

    with torch.device("meta"):
        peer = torchvision.models.googlenet(aux_logits=False, init_weights=False)
    extra = 16 * sum(cfg[3] * cfg[4] for cfg in GOOGLENET_CFG if cfg != "M")
    ours = count_params(_meta("googlenet", num_classes=1000))
    assert ours == count_params(peer) + extra == 7_005_832


@pytest.mark.parametrize("channels,r", [(64, 16), (96, 8), (512, 4)])
def test_se_adds_2c2_over_r_weights_per_block(channels, r):
    plain = count_params(BasicBlock(channels, channels))
    with_se = count_params(BasicBlock(channels, channels, se_reduction=r))
    assert with_se - plain == 2 * channels * channels // r + channels // r + channels  # weights + biases
    assert count_params(SqueezeExcite(channels, r, bias=False)) == 2 * channels * channels // r


def test_se_resnet18_cost_is_the_sum_over_its_blocks():
    r = 16
    widths = [64, 64, 128, 128, 256, 256, 512, 512]  # output channels of the 8 basic blocks
    expected = sum(2 * c * c // r + c // r + c for c in widths)
    assert count_params(_meta("se-resnet18", r=r)) - count_params(_meta("resnet18-cifar")) == expected == 89_080


def test_se_gate_rescales_channels_by_sigmoid():
    se = SqueezeExcite(4, reduction=2)
    nn.init.zeros_(se.expand.weight)
    nn.init.zeros_(se.expand.bias)  # gate = sigmoid(0) = 0.5 for every channel
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(se(x), 0.5 * x)


def test_compound_scaling_macs_follow_alpha_beta2_gamma2(capsys):
    base = None
    rows = []
    for phi in range(4):
        depth, width, res = compound_scale(phi)
        macs = model_complexity(f"efficientnet-b{phi}", num_classes=1000)["macs"]
        base = base or macs
        rule = (ALPHA * BETA**2 * GAMMA**2) ** phi
        rows.append((phi, depth, width, res, macs, macs / base, rule))
    with capsys.disabled():
        print("\nphi  depth  width  res   MACs      MACs/B0  (a*b^2*g^2)^phi")
        for phi, d, w, res, macs, ratio, rule in rows:
            print(f"{phi:3d}  {d:5.3f}  {w:5.3f}  {res:3d}  {macs / 1e6:7.1f}M  {ratio:7.3f}  {rule:7.3f}")
    for phi, *_, ratio, rule in rows:
        assert abs(ratio / rule - 1) <= 0.15, f"phi={phi}: MACs ratio {ratio:.3f} vs rule {rule:.3f}"


def test_compound_coefficients_are_parameters():
    d, w, r = compound_scale(2, alpha=1.5, beta=1.0, gamma=1.0)
    assert (d, w, r) == (2.25, 1.0, 224)
    deeper = count_params(_meta("efficientnet-b0", phi=2, alpha=1.5, beta=1.0, gamma=1.0))
    assert deeper > count_params(_meta("efficientnet-b0"))
    wider = count_params(_meta("efficientnet-b0", phi=1, alpha=1.0, beta=2.0, gamma=1.0))
    assert wider > 3 * count_params(_meta("efficientnet-b0"))  # 1x1 convs dominate: ~ width^2


def test_macs_match_fvcore_conv_and_linear_counts():
    from fvcore.nn import FlopCountAnalysis

    for name, kw, size in [("resnet18-cifar", {}, (3, 32, 32)), ("mobilenet-v2", dict(image_size=32), (3, 32, 32)),
                           ("googlenet-cifar", {}, (3, 16, 16))]:
        model = create_model(name, **kw).eval()
        flops = FlopCountAnalysis(model, torch.zeros(1, *size))
        flops.unsupported_ops_warnings(False)
        flops.uncalled_modules_warnings(False)
        ops = flops.by_operator()
        assert count_macs(model, size) == ops["conv"] + ops["linear"], name


def test_published_macs():
    """MACs at 224 (1000 classes) as the papers report them (ResNet-18 CIFAR: 0.56G in pytorch-cifar)."""
    cases = [("resnet18-cifar", {}, 0.556e9), ("mobilenet-v1", dict(num_classes=1000), 569e6),
             ("mobilenet-v2", dict(num_classes=1000), 300e6), ("efficientnet-b0", dict(num_classes=1000), 0.39e9)]
    for name, kw, published in cases:
        macs = model_complexity(name, **kw)["macs"]
        assert abs(macs - published) / published < 0.02, (name, macs)


def test_dilated_cnn_macs_by_hand():
    """Stem 3->64 and eight 64->64 3x3 convs at 32x32, plus a 64->10 linear layer."""
    expected = 1024 * 64 * 3 * 9 + 8 * 1024 * 64 * 64 * 9 + 64 * 10
    assert model_complexity("dilated-cnn")["macs"] == expected == 303_760_000


def test_dilated_cnn_keeps_resolution():
    model = create_model("dilated-cnn", width=8).eval()
    features = model[:-1](torch.zeros(1, 3, 20, 20))
    assert features.shape == (1, 8, 20, 20)


@pytest.mark.parametrize("name,size,final", [
    ("resnet18-cifar", 32, 4), ("resnet18", 224, 7), ("resnet50", 224, 7),
    ("googlenet-cifar", 32, 8), ("googlenet", 224, 7),
])
def test_stems_set_the_final_resolution(name, size, final):
    model = _meta(name)
    trunk = nn.Sequential(*list(model.children())[:-1])  # everything but the classifier head
    assert trunk(torch.zeros(1, 3, size, size, device="meta")).shape[-1] == final


def test_auto_stem_follows_image_size():
    assert count_macs(_meta("mobilenet-v2", image_size=32), (3, 32, 32)) > 10 * count_macs(
        _meta("mobilenet-v2", stem="imagenet"), (3, 32, 32))  # stride 8 instead of 32: 16x the positions
    assert count_params(_meta("se-resnet18", image_size=224)) == count_params(_meta("se-resnet18", stem="imagenet"))


def test_mobilenet_v2_encoder_levels():
    with torch.device("meta"):
        enc = mobilenet_v2_encoder()
        feats = enc(torch.zeros(1, 3, 224, 224))
    assert enc.out_channels == (16, 24, 32, 96, 1280)
    assert [f.shape[1] for f in feats] == list(enc.out_channels)
    assert [224 // f.shape[-1] for f in feats] == [2, 4, 8, 16, 32]
    with torch.device("meta"):
        feats = mobilenet_v2_encoder(in_chans=1, stem="cifar")(torch.zeros(1, 1, 32, 32))
    assert [32 // f.shape[-1] for f in feats] == [1, 2, 4, 8]


def _tiny_kwargs(name: str) -> tuple[dict, tuple[int, int, int]]:
    """Small inputs (16x16, or the model's own if smaller) so the whole zoo runs in seconds."""
    entry, _ = get_entry(name)
    c, h, _ = entry.default_input
    size = min(h, 16)
    params = inspect.signature(entry.builder).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kw = {"image_size": size} if "image_size" in params or takes_any else {}
    return kw, (c, size, size)


# The 299x299 Inceptions need at least 75 pixels (tests/test_inception.py runs them at 299; their
# -cifar variants run here).
TRAINABLE = [e.name for e in list_models()
             if not e.name.endswith(":") and "pretrained" not in e.tags and e.default_input[1] < 299]


@pytest.mark.parametrize("name", TRAINABLE)
def test_every_registry_model_forward_backward(name):
    torch.manual_seed(0)
    kw, (c, h, w) = _tiny_kwargs(name)
    model = create_model(name, num_classes=7, in_chans=c, **kw).train()
    out = model(torch.randn(2, c, h, w))
    dense = "segmentation" in get_entry(name)[0].tags  # one prediction per pixel
    assert out.shape == ((2, 7, h, w) if dense else (2, 7))
    out.square().mean().backward()
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # frozen ones (whitening) excluded
    missing = [n for n, p in trained if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for _, p in trained)


def test_family_model_trains_through_the_engine():
    """A registry model fits a tiny separable problem through cnnlab's engine and tensor loader."""
    from cnnlab.data.base import ImageSet
    from cnnlab.data.tensor_loader import TensorLoader
    from cnnlab.train.engine import evaluate, fit
    from cnnlab.train.config import TrainConfig
    from cnnlab.train.tasks import ClassificationTask

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(64) % 2
    images = (torch.rand(64, 3, 8, 8, generator=g) * 60).to(torch.uint8) + (labels * 120).view(-1, 1, 1, 1).to(torch.uint8)
    data = ImageSet(images, labels)
    loader = TensorLoader(data, 16, (0.5,) * 3, (0.3,) * 3, shuffle=True)
    model = create_model("dilated-cnn", num_classes=2, width=8)
    task = ClassificationTask(2)
    history = fit(model, loader, None, task, TrainConfig(epochs=10, lr=0.05, device="cpu"), progress=False)
    assert len(history) == 10 and history[-1]["train_loss"] < history[0]["train_loss"]
    assert evaluate(model, TensorLoader(data, 64, (0.5,) * 3, (0.3,) * 3), task)["accuracy"] >= 0.9


def test_cli_models_json_lists_params_and_macs(capsys):
    from cnnlab.cli.main import main

    assert main(["models", "--format", "json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["resnet18-cifar"]["params"] == 11_173_962 and rows["resnet50"]["params"] == 25_557_032 and rows["dilated-cnn"]["macs"] == 303_760_000
    assert rows["efficientnet-b1"]["input"] == [3, 258, 258]
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert "resnext29-8x64d" in table and "34.43M" in table and "5.39G" in table


def test_unknown_stem_is_a_clear_error():
    from cnnlab.core.errors import CnnlabError

    with pytest.raises(CnnlabError, match="stem='tiny'"):
        create_model("se-resnet18", stem="tiny")
    with pytest.raises(CnnlabError, match="stem='tiny'"):
        create_model("resnet18", stem="tiny")  # the deprecated argument of a renamed name is checked as before


def test_resnext29_residual_branches_start_at_zero_so_each_block_is_its_shortcut():
    from cnnlab.models.layers import ResidualBlock

    torch.manual_seed(0)
    model = create_model("resnext29-4x16d", num_classes=10)
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 9
    x = torch.randn(2, 64, 8, 8)
    first = blocks[0]
    assert torch.equal(first(x), torch.relu(first.shortcut(x)))  # the branch adds exactly nothing
    plain = create_model("resnet18-cifar", num_classes=10)  # resnet18-cifar keeps random branches (its measured zoo row)
    block = [m for m in plain.modules() if isinstance(m, ResidualBlock)][0]
    assert not torch.equal(block(x), torch.relu(block.shortcut(x)))


def test_pixel_wrap_normalises_then_runs_the_model_in_eval_mode():
    from cnnlab.models.pixel import pixel_wrap

    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5)).train()
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    wrapped = pixel_wrap(net, mean, std)
    x = torch.rand(2, 3, 8, 8)
    expected = net((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    assert not wrapped.training and not net.training  # running statistics, no dropout
    torch.testing.assert_close(wrapped(x), expected)
    assert [n for n, _ in wrapped.named_children()] == ["normalize", "net"] and "net.1" in dict(wrapped.named_modules())


def test_resnet50_is_torchvisions_params_and_macs():
    """The torchvision name means torchvision's model: its parameters and MACs at 224, not the CIFAR stem's."""
    import torchvision

    from cnnlab.analysis.summary import summarize

    ours = summarize(create_model("resnet50", num_classes=1000), (3, 224, 224))
    theirs = summarize(torchvision.models.resnet50(weights=None), (3, 224, 224))
    assert ours.params == theirs.params == 25_557_032
    assert ours.macs == theirs.macs and abs(ours.macs - 4.1e9) < 0.02e9


def test_cli_summary_resnet50_prints_torchvisions_counts(capsys):
    from cnnlab.cli.main import main

    assert main(["summary", "resnet50", "--input", "3,224,224"]) == 0
    out = capsys.readouterr().out
    assert "Params 25,557,032" in out and "(4.11 G)" in out


@pytest.mark.parametrize("old,kw", [("resnet18", dict(stem="cifar")), ("resnet18", dict(image_size=32)),
                                    ("googlenet", dict(stem="auto"))])
def test_old_stem_arguments_still_build_the_cifar_variant_with_a_warning(old, kw):
    with pytest.warns(FutureWarning, match=f"'{old}-cifar'"):
        model = _meta(old, **kw)
    assert count_params(model) == count_params(_meta(f"{old}-cifar"))
    with pytest.warns(FutureWarning):
        assert count_params(_meta(old, stem="imagenet")) == count_params(_meta(old, num_classes=10))


def test_small_inputs_to_a_renamed_name_say_the_cifar_name():
    from cnnlab.models.registry import check_input

    model = create_model("resnet18", num_classes=10)
    with pytest.warns(FutureWarning, match="32x32 inputs to model 'resnet18'.*'resnet18-cifar'"):
        check_input(model, (3, 32, 32), "resnet18")


def test_old_checkpoint_naming_resnet18_with_cifar_weights_restores_the_cifar_model(tmp_path):
    from cnnlab.runs.restore import load_classifier
    from cnnlab.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    old = create_model("resnet18-cifar", num_classes=3)
    meta = dict(model="resnet18", model_kwargs={}, classes=["a", "b", "c"], mean=[0.5] * 3, std=[0.5] * 3,
                input_size=[3, 32, 32])
    save_checkpoint(tmp_path / "old.ckpt", dict(meta, state_dict=old.state_dict()))
    with pytest.warns(FutureWarning, match="holds the CIFAR-stem model's weights.*'resnet18-cifar'"):
        model, restored = load_classifier(tmp_path / "old.ckpt")
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model(x), old.eval()(x))
    assert restored["model"] == "resnet18-cifar"
    new = create_model("resnet18", num_classes=3)
    save_checkpoint(tmp_path / "new.ckpt", dict(meta, state_dict=new.state_dict()))
    assert load_classifier(tmp_path / "new.ckpt")[1]["model"] == "resnet18"  # the ImageNet model stays itself
