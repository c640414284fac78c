"""Recipe presets (cpu | gpu, chosen by the device) and the frozen-trunk feature cache (issue 25)."""
from __future__ import annotations

import json

import pytest
import torch

from cnnlab.classify import recipes
from cnnlab.classify.api import evaluate_checkpoint, train_classifier
from cnnlab.classify.cache import FeatureLoader, trunk_features
from cnnlab.classify.recipes import NAMED_RECIPES, resolve_options
from cnnlab.cli.main import main
from cnnlab.core.errors import CnnlabError
from cnnlab.data.base import ImageSet
from cnnlab.data.tensor_loader import TensorLoader
from cnnlab.models import create_model
from cnnlab.models.pretrained import IMAGENET_MEAN, IMAGENET_STD
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.config import TrainConfig
from tests.test_recipes import tiny_data

PRESET_RECIPES = [name for name, r in NAMED_RECIPES.items() if r.cpu]


def test_the_preset_follows_the_device_and_preset_forces_one(monkeypatch):
    _, cpu = resolve_options(None, "resnext29", device="cpu")
    _, gpu = resolve_options(None, "resnext29", device="cpu", preset="gpu")
    assert cpu["model"] == "resnext20-4x16d" and gpu["model"] == "resnext29-4x16d"
    assert cpu["epochs"] == NAMED_RECIPES["resnext29"].cpu["epochs"] and gpu["epochs"] == 30
    monkeypatch.setattr(TrainConfig, "resolved_device", lambda self: torch.device("cuda", 0))
    _, auto = resolve_options(None, "resnext29")  # a run that resolves to a GPU takes the GPU preset
    assert auto["model"] == "resnext29-4x16d"
    assert recipes.resolve_preset("resnext29", None, None) == "gpu"
    assert recipes.resolve_preset(None, None, None) is None  # no named recipe: no preset


@pytest.mark.parametrize("name", PRESET_RECIPES)
def test_every_cpu_preset_is_the_recipe_with_its_stated_changes(name):
    recipe = NAMED_RECIPES[name]
    _, opts = resolve_options(None, name, preset="cpu")
    assert recipe.cpu_note and {k: opts[k] for k in recipe.cpu} == recipe.cpu
    kept = {k: v for k, v in recipe.options.items() if k not in recipe.cpu and k != "model_kwargs"}
    assert {k: opts[k] for k in kept} == kept  # everything else stays the assignment's
    assert opts["cpu_amp"] == recipes.cpu_has_native_bf16()
    _, gpu = resolve_options(None, name, preset="gpu")
    assert {k: gpu[k] for k in recipe.options} == recipe.options


def test_a_preset_needs_a_named_recipe_and_a_known_kind():
    with pytest.raises(CnnlabError, match="--preset cpu: presets belong to named recipes"):
        resolve_options("digits", None, preset="cpu")
    with pytest.raises(CnnlabError, match="expected one of cpu, gpu"):
        resolve_options(None, "cifar10-cnn", preset="tpu")
    with pytest.raises(SystemExit):
        main(["train", "--recipe", "cifar10-cnn", "--preset", "tpu"])


def test_the_run_records_its_preset_and_list_recipes_shows_the_cpu_changes(tmp_path, capsys):
    out = tmp_path / "run"
    train_classifier(recipe="cifar10-cnn", preset="gpu", data_dir=tiny_data("cifar10", tmp_path / "c10"), out=out,
                     epochs=1, batch_size=8, progress=False)
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "gpu" and config["train"]["schedule"] == "none"  # the assignment's own
    main(["train", "--list-recipes"])
    listing = capsys.readouterr().out
    assert "cpu preset" in listing and "ResNeXt-20 4x16d" in listing


def _grouped_convs(net: torch.nn.Module) -> list[tuple[int, int]]:
    """(groups, input channels) of every grouped convolution: a ResNeXt block's paths."""
    return [(m.groups, m.in_channels) for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]


def test_resnext11_is_resnext29_with_one_block_per_stage_and_half_the_outputs():
    small, full = create_model("resnext11-4x16d"), create_model("resnext29-4x16d")
    assert [len(s) for s in small.stages] == [1, 1, 1] and [len(s) for s in full.stages] == [3, 3, 3]
    assert [s[-1].body[2][0].out_channels for s in small.stages] == [128, 256, 512]  # half the outputs
    assert [g for g, _ in _grouped_convs(small)] == [4, 4, 4]  # one 4-path grouped 3x3 per block, as in ResNeXt-29 4x16d
    assert type(small.stages[0][0]) is type(full.stages[0][0])
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_resnext11_4x8d_is_the_one_block_member_with_half_width_paths_and_quarter_outputs():
    small, wide = create_model("resnext11-4x8d"), create_model("resnext11-4x16d")
    assert [len(s) for s in small.stages] == [1, 1, 1]
    assert [s[-1].body[2][0].out_channels for s in small.stages] == [64, 128, 256]
    assert _grouped_convs(small) == [(4, 32), (4, 64), (4, 128)]  # 4 paths of 8, 16, 32 channels
    assert type(small.stages[0][0]) is type(wide.stages[0][0])
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_resnext20_halves_the_resolution_in_its_first_stage_and_keeps_resnext29s_paths():
    small, full = create_model("resnext20-4x16d"), create_model("resnext29-4x16d")
    assert [len(s) for s in small.stages] == [2, 2, 2]
    assert [s[-1].body[2][0].out_channels for s in small.stages] == [128, 256, 512]
    assert _grouped_convs(small) == [(4, 64)] * 2 + [(4, 128)] * 2 + [(4, 256)] * 2  # 4 paths of 16, 32, 64
    assert _grouped_convs(small)[::2] == _grouped_convs(full)[::3]  # as in ResNeXt-29 4x16d
    shapes = []
    hooks = [s.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[-2:]))) for s in small.stages]
    assert small(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert shapes == [(16, 16), (8, 8), (4, 4)]  # full ResNeXt-29 keeps 32, 16, 8
    for h in hooks:
        h.remove()


def _frozen_transfer() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("transfer:efficientnet-lite0", num_classes=3, freeze=True, resize=64).eval()


def test_cached_features_give_the_logits_of_the_uncached_frozen_trunk():
    net = _frozen_transfer()
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    loader = TensorLoader(ImageSet(images, torch.arange(10) % 3), 4, IMAGENET_MEAN, IMAGENET_STD)
    features = trunk_features(net, loader, TrainConfig(device="cpu"), batch_size=3)
    assert features.shape == (10, 1280)
    cached = FeatureLoader(features, loader.labels, 4)
    with torch.no_grad():
        direct = torch.cat([net(x) for x, _ in loader])
        from_cache = torch.cat([net(f) for f, _ in cached])
    torch.testing.assert_close(from_cache, direct, rtol=1e-4, atol=1e-4)
    shuffled = FeatureLoader(features, loader.labels, 4, shuffle=True, seed=1)
    rows = torch.cat([f for f, _ in shuffled])
    assert sorted(rows[:, 0].tolist()) == sorted(features[:, 0].tolist())  # each image once an epoch


def test_a_cached_run_trains_only_the_head_and_its_checkpoint_reads_images(tmp_path):
    out = tmp_path / "run"
    m = train_classifier(recipe="cifar10-transfer", preset="cpu", data_dir=tiny_data("cifar10", tmp_path / "c10"),
                         out=out, model_kwargs={"freeze": True, "resize": 32}, epochs=2, batch_size=8, progress=False)
    assert not (out / "frozen").exists() and len(m["history"]) == 2  # the CPU preset has no fine-tuning phase
    config = json.loads((out / "config.json").read_text())
    assert config["cache_features"] is True and config["preset"] == "cpu"
    trained = load_checkpoint(out / "last.ckpt")["state_dict"]
    pretrained = create_model("transfer:efficientnet-lite0", num_classes=10).state_dict()
    trunk = [k for k in pretrained if k.startswith("features.")]
    assert trunk and all(torch.equal(trained[k], pretrained[k]) for k in trunk)  # BN statistics included
    # the test figure from cached features = the checkpoint evaluated on the images themselves
    assert evaluate_checkpoint(out / "best.ckpt")["test_accuracy"] == pytest.approx(m["test_accuracy"])


def test_cached_frozen_block_maps_give_the_logits_of_the_uncached_partly_trained_trunk():
    torch.manual_seed(0)
    net = create_model("transfer:efficientnet-lite0", num_classes=3, freeze=True, resize=64, train_last=2).eval()
    blocks = net.features.blocks
    trained = {n for n, p in net.named_parameters() if p.requires_grad}
    assert any(f"_blocks.{blocks - 1}." in n for n in trained) and any(f"_blocks.{blocks - 2}." in n for n in trained)
    assert not any(f"_blocks.{blocks - 3}." in n for n in trained) and "features.net._conv_stem.weight" not in trained
    assert net.cacheable() and "head.3.weight" in trained and "features.net._conv_head.weight" in trained
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    loader = TensorLoader(ImageSet(images, torch.arange(6) % 3), 4, IMAGENET_MEAN, IMAGENET_STD)
    maps = trunk_features(net, loader, TrainConfig(device="cpu"), batch_size=4)
    assert maps.shape == (6, net.split_channels, 2, 2)  # 64 px in, stride 32
    with torch.no_grad():
        direct = torch.cat([net(x) for x, _ in loader])
        from_cache = torch.cat([net(f) for f, _ in FeatureLoader(maps, loader.labels, 4)])
    torch.testing.assert_close(from_cache, direct, rtol=1e-4, atol=1e-4)
    with pytest.raises(CnnlabError, match="train_last=99: expected a number of blocks from 1 to"):
        create_model("transfer:efficientnet-lite0", num_classes=3, freeze=True, train_last=99)


def test_a_cached_partial_fine_tune_trains_the_last_blocks_and_its_checkpoint_reads_images(tmp_path):
    out = tmp_path / "run"
    m = train_classifier(recipe="cifar10-transfer", preset="cpu", data_dir=tiny_data("cifar10", tmp_path / "c10"),
                         out=out, model_kwargs={"freeze": True, "resize": 32, "train_last": 1}, epochs=2,
                         batch_size=8, progress=False)
    trained = load_checkpoint(out / "last.ckpt")["state_dict"]
    pretrained = create_model("transfer:efficientnet-lite0", num_classes=10).state_dict()
    last = len([k for k in pretrained if k.endswith("._project_conv.weight")]) - 1
    moved = {k for k in pretrained if k.startswith("features.") and not torch.equal(trained[k], pretrained[k])}
    assert moved and all(f"_blocks.{last}." in k or "_conv_head" in k or "_bn1" in k for k in moved)
    assert evaluate_checkpoint(out / "best.ckpt")["test_accuracy"] == pytest.approx(m["test_accuracy"])


def test_the_cache_refuses_what_would_change_between_epochs(tmp_path):
    data = tiny_data("cifar10", tmp_path / "c10")
    common = dict(data_dir=data, epochs=1, batch_size=8, progress=False, cache_features=True)
    with pytest.raises(CnnlabError, match="--cache-features computes each image's features once.*--augment cifar"):
        train_classifier("cifar10", out=tmp_path / "a", model="transfer:efficientnet-lite0",
                         model_kwargs={"freeze": True, "resize": 32}, augment="cifar", **common)
    with pytest.raises(CnnlabError, match="has no frozen pretrained trunk"):
        train_classifier("cifar10", out=tmp_path / "b", model="transfer:efficientnet-lite0",
                         model_kwargs={"resize": 32}, augment="none", **common)
    with pytest.raises(CnnlabError, match="has no frozen pretrained trunk"):
        train_classifier("cifar10", out=tmp_path / "c", model="simple-cnn", augment="none", **common)
