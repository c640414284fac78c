"""Bounds of the size-like options (issue 29, mechanism 5): the estimators against byte counts done by
hand, the argparse bounds, and the memory refusals with a budget small enough to trip them."""
from __future__ import annotations

import argparse
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import cnnlab.classify.api  # noqa: F401  (the train command's imports: at collection, not in a test)
from cnnlab.cli.main import main
from cnnlab.core import bounds
from cnnlab.core.errors import CnnlabError
from cnnlab.data import load_dataset
from cnnlab.explain.visualize import class_model  # torchvision: imported at collection, not in a test


def test_dense_and_mlp_estimates_are_the_hand_counts():
    assert bounds.dense_params([784, 128, 64, 10]) == 785 * 128 + 129 * 64 + 65 * 10 == 109386
    # 64 -> 100 -> 10: 65*100 + 101*10 = 7510 parameters
    weights, step = bounds.scratch_mlp_bytes([64, 100, 10], batch=32, optimizer="momentum")
    assert weights == 7510 * 4
    # weights, gradients, one momentum buffer; inputs and outputs of every layer, forward and
    # backward, for 32 images; the float64 draw of the 64 x 100 layer
    assert step == 3 * 7510 * 4 + 2 * 32 * (64 + 100 + 10) * 4 + 8 * 6400 == 185864
    assert bounds.scratch_mlp_bytes([64, 100, 10], 32, "sgd")[1] == 185864 - 7510 * 4
    assert bounds.scratch_mlp_bytes([64, 100, 10], 32, "adam")[1] == 185864 + 7510 * 4


def test_cnn_estimate_is_the_hand_count():
    # 1x8x8 images, one block of 4 3x3 filters ('same'), 2x2 pool -> 4x4x4 = 64, dense 64 -> 16 -> 10
    weights, step = bounds.scratch_cnn_bytes((1, 8, 8), [4], 3, [16], 10, batch=2, optimizer="sgd")
    params = (9 + 1) * 4 + 65 * 16 + 17 * 10
    assert params == 1250 and weights == 1250 * 4
    per_image = 2 * (10 * 10 + 8 * 8 * 9 + 8 * 8 * 4) + 2 * (64 + 16 + 10)  # padded, im2col, output; dense
    assert per_image == 2044
    assert step == (2 * params + 2 * per_image) * 4 + 8 * 64 * 16 == 34544


def test_linreg_and_batch_estimates_are_the_hand_counts():
    # X (1000 x 10), X with its bias column twice, four n-vectors, the 11 x 11 normal matrix twice
    assert bounds.linreg_bytes(1000, 10) == 8 * (1000 * 10 + 2 * 1000 * 11 + 4 * 1000 + 2 * 11 * 11) == 289936
    assert bounds.image_batch_bytes(8, (3, 32, 32)) == 8 * 3 * 32 * 32 * 4
    assert (bounds.blur_kernel(0.5), bounds.blur_kernel(30)) == (3, 181)


def test_step_bytes_counts_weights_activations_and_input():
    from cnnlab.analysis.memory import step_bytes

    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1))
    # 20 float weights, 4 copies; per image: the 2x4x4 output and the 1x4x4 input, 4 bytes each
    assert step_bytes(model, (1, 4, 4), batch=3) == 4 * 20 * 4 + 3 * (2 * 16 * 4 + 16 * 4) == 896
    assert step_bytes(model, (1, 4, 4), batch=3, copies=1) == 20 * 4 + 3 * 192
    model[0].bias.requires_grad_(False)  # partly frozen: no estimate of what the backward keeps
    assert step_bytes(model, (1, 4, 4), batch=3) is None


def test_human_sizes():
    assert [bounds.human(v) for v in (314e9, 6.1e9, 512e6, 2.6e12, 83e12, 12)] == \
        ["314 GB", "6.1 GB", "512 MB", "2.6 TB", "83 TB", "12 bytes"]


def test_need_names_option_value_estimate_and_limit(monkeypatch):
    monkeypatch.setenv("CNNLAB_MEMORY_LIMIT", "1M")
    bounds.need("--hidden", [10, 20], 1 << 20, "the weights alone need")  # exactly the budget: fine
    with pytest.raises(CnnlabError) as err:
        bounds.need("--hidden", [10, 20], 2e6, "the weights alone need")
    assert str(err.value) == "--hidden 10 20: the weights alone need 2.0 MB, more than $CNNLAB_MEMORY_LIMIT (1.0 MB)"
    monkeypatch.delenv("CNNLAB_MEMORY_LIMIT")
    with pytest.raises(CnnlabError, match=r"^--d 7: it needs 1.0 PB, more than the .* this machine has free$"):
        bounds.need("--d", 7, 1e15, "it needs")


def test_check_blames_the_option_whose_default_helps_most(monkeypatch):
    monkeypatch.setenv("CNNLAB_MEMORY_LIMIT", "1000")
    def estimate(o):
        return o["a"] * o["b"]
    assert bounds.culprit(estimate, {"a": 1000, "b": 2}, {"a": 1, "b": 1}) == "a"
    assert bounds.culprit(estimate, {"a": 2, "b": 1000}, {"a": 1, "b": 1}) == "b"
    with pytest.raises(CnnlabError, match="^--b 2000: x needs 4.0 kB"):
        bounds.check(estimate, {"a": 2, "b": 2000}, {"a": 1, "b": 1}, "x needs")
    bounds.check(estimate, {"a": 2, "b": 500}, {"a": 1, "b": 1}, "x needs")


@pytest.mark.parametrize("check,text,says", [
    (bounds.side, "0", "expected an image side in [1, 4096] pixels, got '0'"),
    (bounds.side, "4097", "expected an image side in [1, 4096] pixels, got '4097'"),
    (bounds.side, "1.5", "expected an integer, got '1.5'"),
    (bounds.tile_side, "63", "expected a tile side in [64, 4096] pixels"),
    (bounds.grid, "1025", "expected a number of images in [1, 1024]"),
    (bounds.threads, "0", "expected a thread count in [1, "),
])
def test_argparse_bounds_refuse(check, text, says):
    with pytest.raises(argparse.ArgumentTypeError, match=None) as err:
        check(text)
    assert says in str(err.value)


def test_argparse_bounds_accept_their_ends():
    assert (bounds.side("1"), bounds.side("4096"), bounds.grid("1024"), bounds.tile_side("64")) == (1, 4096, 1024, 64)
    assert bounds.threads(str(bounds.cpu_count())) == bounds.cpu_count()
    with pytest.raises(argparse.ArgumentTypeError, match=f"this machine has {bounds.cpu_count()} CPUs"):
        bounds.threads(str(bounds.cpu_count() + 1))


def test_a_count_above_the_data_is_all_of_it_with_a_warning():
    with pytest.warns(UserWarning, match=r"^--subset 50: the training split of x holds only 7 images; using all 7$"):
        assert bounds.at_most("--subset", 50, 7, "the training split of x") == 7
    assert bounds.at_most("--subset", 5, 7, "the training split of x") == 5


def _folder(root):
    """Two classes of five 8x8 grey images."""
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / c / f"{i}.png")


def test_subset_above_the_training_split_warns_and_keeps_it_whole(tmp_path):
    _folder(tmp_path)
    with pytest.warns(UserWarning, match=r"^--subset 1000: the training split of imagefolder holds only (\d+) "
                                         r"images; using all \1$"):
        splits = load_dataset("imagefolder", tmp_path, val_fraction=0, subset=1000)
    assert len(splits.train) + len(splits.test) == 10


def test_a_model_whose_weights_do_not_fit_is_refused_before_they_are_allocated(monkeypatch):
    from cnnlab.models.registry import check_weights

    monkeypatch.setenv("CNNLAB_MEMORY_LIMIT", "10K")
    with pytest.raises(CnnlabError, match=r"^model 'simple-cnn' with \{'width': 64\}: its weights alone need .* "
                                          r"more than \$CNNLAB_MEMORY_LIMIT \(10 kB\)$"):
        check_weights("simple-cnn", 10, 1, {"width": 64})
    check_weights("simple-cnn", 10, 1, {})  # the registry's own sizes are not checked
    monkeypatch.setenv("CNNLAB_MEMORY_LIMIT", "1G")
    check_weights("simple-cnn", 10, 1, {"width": 4})
    check_weights("simple-cnn", 10, 1, {"width": "x"})  # left to the real build, which names the fault


def test_visualize_blur_is_bounded_by_the_image():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    with pytest.raises(CnnlabError, match=r"^--blur-sigma 3: its Gaussian kernel of 19 pixels is wider than the "
                                          r"8x8 image it blurs \(at most 2.33 here\)$"):
        class_model(model, 0, (1, 8, 8), steps=1, blur_sigma=3)
    torch.manual_seed(0)
    assert class_model(model, 0, (1, 8, 8), steps=2, blur_every=1, blur_sigma=2.33).image.shape == (1, 8, 8)


def test_a_training_step_that_does_not_fit_is_refused_before_the_run_folder(monkeypatch, tmp_path, capsys):
    """--batch-size with the image size: the step's estimate (weights x 4, activations of a meta
    trace x batch) against the budget; with 4096-pixel images the same check refuses real machines,
    at a cost of decoding them first, so the small budget stands in for a small machine here."""
    from cnnlab.analysis.memory import check_step

    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1))
    monkeypatch.setenv("CNNLAB_MEMORY_LIMIT", "600")
    with pytest.raises(CnnlabError, match=r"^--batch-size 64 \(3 images here\) of 1x4x4 images: a training step of "
                                          r"model 'tiny' needs 896 bytes, more than \$CNNLAB_MEMORY_LIMIT"):
        check_step(model, (1, 4, 4), 64, images=3, copies=4, doing="a training step of model 'tiny' needs")
    check_step(model, (1, 4, 4), 1, images=3, copies=4)  # 4 x 80 + 192 bytes: fits
    monkeypatch.setenv("CNNLAB_MEMORY_LIMIT", "100K")
    _folder(tmp_path / "data")
    code = main(["train", "--dataset", "imagefolder", "--data-dir", str(tmp_path / "data"), "--model", "simple-cnn",
                 "--batch-size", "64", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(r"error: --batch-size 64 \(\d images here\) of 1x8x8 images: a training step of model "
                     r"'simple-cnn' needs .*, more than \$CNNLAB_MEMORY_LIMIT \(102 kB\)$", err.strip()), err
    assert not (tmp_path / "run").exists()


def test_a_gpu_step_is_measured_against_the_gpus_own_memory(monkeypatch):
    monkeypatch.delenv("CNNLAB_MEMORY_LIMIT", raising=False)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda index=None: (1000, 8000))
    with pytest.raises(CnnlabError, match=r"^--batch-size 9: a step needs 2.0 kB, more than the 1.0 kB GPU 1 has free$"):
        bounds.need("--batch-size", 9, 2000, "a step needs", torch.device("cuda:1"))
    bounds.need("--batch-size", 9, 2000, "a step needs", torch.device("cpu"))  # the host's memory: plenty


def test_attack_sweep_n_above_the_test_split_is_all_of_it_with_a_warning(monkeypatch, tmp_path, capsys):
    """The sweep draws min(n, test split) images (cnnlab.attack.api); the handler says when that was fewer."""
    import cnnlab.attack.api

    asked = {}

    def fake_sweep(checkpoint, n=None, **_):
        asked["n"] = n
        return {"n": 360, "eps": [0.0], "fgsm": [0.9], "min_flip_eps": {"wrong_when_clean": 36, "median_of_correct": 0.1,
                                                                        "never_flipped": 0, "eps_max": 0.25}}

    monkeypatch.setattr(cnnlab.attack.api, "sweep_checkpoint", fake_sweep)
    argv = ["attack", "sweep", "--checkpoint", "x.ckpt", "--eps", "0", "--attacks", "fgsm", "--out", str(tmp_path / "s")]
    with pytest.warns(UserWarning, match=r"^--n 100000: the checkpoint's test split holds only 360 images; using all 360$"):
        assert main([*argv, "--n", "100000"]) == 0
    assert asked["n"] == 100000
    assert main(argv) == 0 and asked["n"] == 1000  # the default: silent
    assert main([*argv, "--n", "0"]) == 0 and asked["n"] is None  # 0: all of them
    assert "warning" not in capsys.readouterr().err
