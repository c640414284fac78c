"""Segmentation: mask formats, pairing and bad input, presets, metrics against torchmetrics, models,
joint augmentation, the noisy-label filter, and train/evaluate/predict end to end on tiny images."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassJaccardIndex

from cnnlab.cli.main import main
from cnnlab.core.errors import CnnlabError
from cnnlab.models import create_model, list_models
from cnnlab.models import mobilenet_unet
from cnnlab.segment.api import infer, predict_masks, train_segmenter
from cnnlab.data.augment import JointAugment
from cnnlab.data.tensor_loader import SegLoader
from cnnlab.data.segmentation import IGNORE, SegSet, load_segmentation, pair_files, read_mask
from cnnlab.segment.losses import build_loss
from cnnlab.segment.metrics import SegmentationMetrics, confusion_matrix, scores
from cnnlab.segment.noise import corrupt_masks
from cnnlab.segment.task import SegmentationTask
from cnnlab.models.unet import UNet

COLOURS = [(0, 0, 0), (200, 30, 30), (30, 200, 30)]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions run fastest on one thread, and on a busy machine two threads spin-wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def scene(seed: int, h: int = 24, w: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image with a red square (class 1) and a green disc (class 2) on noise, and its mask."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    y, x = rng.integers(2, h - 10), rng.integers(2, w - 10)
    mask[y:y + 8, x:x + 8] = 1
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.integers(5, h - 5), rng.integers(5, w - 5)
    mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= 12] = 2
    img = np.array(COLOURS, np.float64)[mask] + rng.normal(0, 20, (h, w, 3))
    return img.clip(0, 255).astype(np.uint8), mask


def write_pairs(root: Path, n: int, fmt: str = "index", size=(24, 32), seed0: int = 0,
                img_dir="images", mask_dir="masks") -> tuple[Path, Path]:
    """``n`` image/mask files with the masks written in ``fmt``."""
    images, masks = root / img_dir, root / mask_dir
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img, mask = scene(seed0 + i, *size)
        Image.fromarray(img).save(images / f"s{i:02d}.png")
        Image.fromarray(encode_mask(mask, fmt)).save(masks / f"s{i:02d}.png")
    return images, masks


def encode_mask(mask: np.ndarray, fmt: str) -> np.ndarray:
    if fmt == "index":
        return mask
    if fmt == "binary":
        return ((mask > 0) * 255).astype(np.uint8)
    if fmt == "palette":
        return np.array(COLOURS, np.uint8)[mask]
    if fmt == "red":
        return np.stack([mask, np.zeros_like(mask), np.zeros_like(mask)], -1)
    raise ValueError(fmt)


# ---------------------------------------------------------------- mask formats and bad input

@pytest.mark.parametrize("fmt", ["index", "palette", "red"])
def test_every_mask_format_reads_back_the_class_indices(tmp_path, fmt):
    _, mask = scene(1)
    path = tmp_path / "m.png"
    Image.fromarray(encode_mask(mask, fmt)).save(path)
    got = read_mask(path, fmt, 3, palette=COLOURS)
    np.testing.assert_array_equal(got, mask)
    if fmt != "palette":  # auto detection: one channel -> index, green/blue zero -> red channel
        np.testing.assert_array_equal(read_mask(path, "auto", 3), mask)


def test_binary_masks_and_palette_mode_pngs(tmp_path):
    _, mask = scene(2)
    Image.fromarray(encode_mask(mask, "binary")).save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "b.png", "binary", 2), mask > 0)
    np.testing.assert_array_equal(read_mask(tmp_path / "b.png", "auto", 2), mask > 0)
    p = Image.fromarray(mask, mode="P")  # a palette-mode PNG stores indices; colours must not leak in
    p.putpalette([9, 9, 9, 250, 0, 0, 0, 250, 0] + [0] * 759)
    p.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "p.png", "index", 3), mask)


def test_void_becomes_ignore_and_values_beyond_the_classes_name_the_file(tmp_path):
    mask = np.array([[0, 11], [3, 10]], np.uint8)
    Image.fromarray(mask).save(tmp_path / "void.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "void.png", "index", 11, void=11), [[0, IGNORE], [3, 10]])
    with pytest.raises(CnnlabError, match=r"bad\.png.*\[12\].*0\.\.10"):
        Image.fromarray(np.array([[0, 12]], np.uint8)).save(tmp_path / "bad.png")
        read_mask(tmp_path / "bad.png", "index", 11, void=11)
    Image.fromarray(np.array(COLOURS, np.uint8)[[[0, 1]]]).save(tmp_path / "c.png")
    with pytest.raises(CnnlabError, match=r"c\.png.*\(30, 200, 30\).*not in the palette|c\.png.*palette"):
        read_mask(tmp_path / "c.png", "palette", 2, palette=[(9, 9, 9), (1, 1, 1)])


def test_pairing_by_stem_and_unpaired_files_are_named(tmp_path):
    images, masks = write_pairs(tmp_path, 3)
    assert [p[0].stem for p in pair_files(images, masks)] == ["s00", "s01", "s02"]
    (masks / "s01.png").rename(masks / "s01_mask.png")
    with pytest.raises(CnnlabError) as err:
        pair_files(images, masks)
    assert "s01.png" in str(err.value) and "without a mask" in str(err.value)
    assert "s01_mask.png" in str(err.value) and "without an image" in str(err.value)
    for p in masks.iterdir():
        if "_mask" not in p.stem:
            p.rename(masks / f"{p.stem}_mask.png")
    assert len(pair_files(images, masks, mask_suffix="_mask")) == 3


def test_size_mismatch_names_both_files(tmp_path):
    images, masks = write_pairs(tmp_path, 2)
    Image.fromarray(np.zeros((20, 32), np.uint8)).save(masks / "s01.png")
    with pytest.raises(CnnlabError, match=r"images/s01\.png is 24x32 but mask .*masks/s01\.png is 20x32"):
        load_segmentation(images=images, masks=masks, classes=["bg", "square", "disc"], val_fraction=0,
                          test_fraction=0)


def test_folder_split_and_resize(tmp_path):
    images, masks = write_pairs(tmp_path, 10, fmt="palette")
    data = load_segmentation(images=images, masks=masks, classes=["bg", "square", "disc"], mask_format="palette",
                             palette=COLOURS, size=(12, 16), val_fraction=0.2, test_fraction=0.2, seed=1)
    assert (len(data.train), len(data.val), len(data.test)) == (6, 2, 2)
    assert data.train.images.shape[1:] == (3, 12, 16) and data.train.masks.shape[1:] == (12, 16)
    assert set(data.train.masks.unique().tolist()) <= {0, 1, 2}
    assert not set(data.train.names) & set(data.test.names)
    again = load_segmentation(images=images, masks=masks, classes=["bg", "square", "disc"], mask_format="palette",
                              palette=COLOURS, size=(12, 16), val_fraction=0.2, test_fraction=0.2, seed=1)
    assert again.test.names == data.test.names  # seeded


def test_presets_camvid_dc1000_carla_layouts(tmp_path):
    cam = tmp_path / "camvid"
    write_pairs(cam, 3, img_dir="train", mask_dir="trainannot")
    write_pairs(cam, 2, img_dir="val", mask_dir="valannot", seed0=10)
    m = np.array(Image.open(cam / "trainannot" / "s00.png"))
    m[0, :5] = 11  # void
    Image.fromarray(m).save(cam / "trainannot" / "s00.png")
    data = load_segmentation("camvid", cam)
    assert data.num_classes == 11 and data.classes[3] == "road"
    assert (len(data.train), len(data.val), data.test) == (3, 2, None)
    assert (data.train.masks[0, 0, :5] == IGNORE).all()

    dc = tmp_path / "dc1000"
    write_pairs(dc, 5, fmt="binary", img_dir="images", mask_dir="labels")
    data = load_segmentation("dc1000", dc, val_fraction=0.2, test_fraction=0.2)
    assert data.classes == ["background", "caries"] and data.in_chans == 1
    assert set(data.train.masks.unique().tolist()) == {0, 1}

    carla = tmp_path / "carla"
    write_pairs(carla, 4, fmt="red", img_dir="CameraRGB", mask_dir="CameraSeg")
    data = load_segmentation("carla", carla, val_fraction=0.25, test_fraction=0.25)
    assert data.num_classes == 13 and set(data.train.masks.unique().tolist()) <= {0, 1, 2}
    (carla / "CameraSeg").rename(carla / "CameraMask")  # the course's copies name the mask folder so
    renamed = load_segmentation("carla", carla, val_fraction=0.25, test_fraction=0.25)
    assert torch.equal(renamed.train.masks, data.train.masks)
    (carla / "CameraMask").rename(carla / "elsewhere")
    with pytest.raises(CnnlabError, match="CameraSeg does not exist"):
        load_segmentation("carla", carla)
    with pytest.raises(CnnlabError, match="unknown segmentation dataset"):
        load_segmentation("kitti", tmp_path)


# ---------------------------------------------------------------- metrics

def test_metrics_over_batches_match_torchmetrics_on_the_whole_set():
    g = torch.Generator().manual_seed(0)
    k = 5
    tm_iou = MulticlassJaccardIndex(k, average=None, ignore_index=IGNORE)
    tm_f1 = MulticlassF1Score(k, average=None, ignore_index=IGNORE, multidim_average="global")
    tm_acc = MulticlassAccuracy(k, average="micro", ignore_index=IGNORE)
    ours = SegmentationMetrics(k, IGNORE)
    for _ in range(3):
        logits = torch.randn(2, k, 9, 7, generator=g)
        target = torch.randint(0, k, (2, 9, 7), generator=g)
        target[torch.rand(2, 9, 7, generator=g) < 0.2] = IGNORE
        ours.update(logits, target)
        pred = logits.argmax(1)
        for m in (tm_iou, tm_f1, tm_acc):
            m.update(pred, target)
    got, cm = ours.compute(), ours.cm
    s = scores(cm)
    torch.testing.assert_close(s["iou"].float(), tm_iou.compute())
    torch.testing.assert_close(s["dice"].float(), tm_f1.compute())
    assert float(got["miou"]) == pytest.approx(float(tm_iou.compute().mean()), abs=1e-6)
    assert float(got["pixel_accuracy"]) == pytest.approx(float(tm_acc.compute()), abs=1e-6)


def test_binary_metrics_by_hand_and_absent_class_left_out_of_the_mean():
    # one channel: logit > 0 is positive. truth 1 1 0 0 void ; prediction 1 0 1 0 1
    logits = torch.tensor([[[[3.0, -1.0, 2.0, -4.0, 5.0]]]])
    target = torch.tensor([[[1, 1, 0, 0, IGNORE]]])
    m = SegmentationMetrics(2)
    m.update(logits, target)
    r = m.compute()
    assert float(r["iou"]) == pytest.approx(1 / 3) and float(r["dice"]) == pytest.approx(2 / 4)
    assert float(r["pixel_accuracy"]) == pytest.approx(2 / 4)
    cm = confusion_matrix(torch.tensor([0, 0, 1]), torch.tensor([0, 0, 1]), 3)  # class 2 never appears
    assert float(scores(cm)["miou"]) == 1.0


# ---------------------------------------------------------------- models

def test_models_registered_and_keep_the_input_size():
    names = {e.name for e in list_models(tag="segmentation")}
    assert {"unet", "resunet", "mobilenetv2-unet"} <= names
    x = torch.randn(2, 3, 37, 50)  # sides not multiples of 16 or 32
    for name, kw in [("unet", dict(width=4, depth=3)), ("unet", dict(width=4, depth=2, up="bilinear")),
                     ("resunet", dict(width=4, depth=3)), ("mobilenetv2-unet", dict(pretrained=False))]:
        assert create_model(name, num_classes=5, in_chans=3, **kw)(x).shape == (2, 5, 37, 50), name
    assert create_model("unet", num_classes=1, in_chans=1, width=4, depth=2)(torch.randn(1, 1, 16, 16)).shape == (1, 1, 16, 16)


def test_unet_2015_size_and_resunet_has_residual_encoder():
    # Ronneberger et al.: 64..1024 channels, 4 poolings, ~31 M parameters (2 classes)
    n = sum(p.numel() for p in UNet(2, 1, width=64, depth=4).parameters())
    assert 30.9e6 < n < 31.1e6
    res = create_model("resunet", num_classes=2, in_chans=3, width=8, depth=2)
    assert type(res.encoder[0]).__name__ == "ResidualBlock"


def test_every_resunet_stage_is_residual_the_identity_path_carries_the_input():
    from cnnlab.models.layers import ResidualBlock

    torch.manual_seed(0)
    res = create_model("resunet", num_classes=2, in_chans=3, width=4, depth=2).eval()
    blocks = [*res.encoder, *(up.conv for up in res.decoder)]
    assert len(blocks) == 5 and all(isinstance(b, ResidualBlock) for b in blocks)
    for block in blocks:
        last_bn = [m for m in block.body.modules() if isinstance(m, torch.nn.BatchNorm2d)][-1]
        in_ch = next(m for m in block.body.modules() if isinstance(m, torch.nn.Conv2d)).in_channels
        x = torch.randn(2, in_ch, 8, 8)
        with torch.no_grad():
            last_bn.weight.zero_(), last_bn.bias.zero_()  # the branch now adds nothing
            assert torch.allclose(block(x), torch.relu(block.shortcut(x)))  # the shortcut alone carries x
            assert block.shortcut(x).abs().sum() > 0


def test_deep_supervision_heads_every_lower_decoder_stage_and_leaves_the_main_output_alone():
    """Training: the main logits of the plain ResU-Net with the same weights, plus one upsampled head per
    decoder stage below full resolution weighted 0.5 ** s; the engine adds their weighted losses once
    each; evaluation: the main logits only."""
    from cnnlab.models.layers import AuxOutputs
    from cnnlab.train.engine import task_loss

    torch.manual_seed(0)
    deep = create_model("resunet", num_classes=1, in_chans=1, width=4, depth=3, deep_supervision=True).train()
    plain = create_model("resunet", num_classes=1, in_chans=1, width=4, depth=3).train()
    missing, unexpected = plain.load_state_dict(deep.state_dict(), strict=False)
    assert not missing and sorted({k.split(".")[1] for k in unexpected}) == ["0", "1"]  # two aux heads
    x = torch.randn(2, 1, 20, 28)  # padded to 24 x 32 inside, cropped back
    out = deep(x)
    assert isinstance(out, AuxOutputs) and out.aux_weight == (0.25, 0.5)  # 1/4 and 1/2 resolution
    torch.testing.assert_close(out.logits, plain(x))
    assert all(a.shape == (2, 1, 20, 28) for a in out.aux)
    # the 1/4-resolution head is constant on 4 x 4 blocks up to bilinear smoothing: not the main logits
    assert not torch.allclose(out.aux[0], out.logits)
    target = (torch.rand(2, 20, 28) > 0.7).long()
    task = SegmentationTask(2, build_loss("bce+dice", IGNORE), IGNORE, noisy_drop=0.5, warmup_steps=1)
    _, loss = task_loss(task, out, target)
    expected = sum(w * build_loss("bce+dice", IGNORE)(o, target) for o, w in
                   zip((out.logits, *out.aux), (1.0, *out.aux_weight)))
    torch.testing.assert_close(loss, expected)  # the warm-up step: every image
    assert task.steps == 1  # three outputs, one step
    task_loss(task, deep(x), target)
    assert task.steps == 2 and task.dropped == 1  # after warm-up: one of two images left out, counted once
    loss.backward()
    assert all(h.weight.grad is not None and h.weight.grad.abs().sum() > 0 for h in deep.aux_heads)
    assert deep.eval()(x).shape == (2, 1, 20, 28)


def test_mobilenetv2_unet_skips_and_pretrained_weights(monkeypatch):
    from torchvision.models import mobilenet_v2

    net = mobilenet_unet.MobileNetV2UNet(3, pretrained=False)
    feats, x = [], torch.randn(1, 3, 64, 64)
    for stage in net.stages:
        x = stage(x)
        feats.append(tuple(x.shape[1:]))
    assert feats == [(16, 32, 32), (24, 16, 16), (32, 8, 8), (96, 4, 4), (320, 2, 2)]
    assert net.pretrained_loaded is False
    reference = mobilenet_v2().state_dict()
    monkeypatch.setattr(mobilenet_unet, "_imagenet_state", lambda: reference)
    loaded = mobilenet_unet.MobileNetV2UNet(3, pretrained=True)
    assert loaded.pretrained_loaded
    torch.testing.assert_close(loaded.stages[3][-1].conv[0][0].weight, reference["features.13.conv.0.0.weight"])
    grey = mobilenet_unet.MobileNetV2UNet(2, in_chans=1, pretrained=True)  # RGB filters summed for grey
    torch.testing.assert_close(grey.stages[0][0][0].weight, reference["features.0.0.weight"].sum(1, keepdim=True))


# ---------------------------------------------------------------- augmentation and loader

def _set(n=4, h=24, w=32) -> SegSet:
    pairs = [scene(i, h, w) for i in range(n)]
    return SegSet(torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2).contiguous(),
                  torch.from_numpy(np.stack([p[1] for p in pairs])), [f"s{i}" for i in range(n)])


def test_identity_transform_is_exact_and_geometry_moves_image_and_mask_together():
    data = _set()
    x, y = data.images.float(), data.masks.long()
    g = torch.Generator().manual_seed(0)
    x2, y2 = JointAugment.crop_only()(x, y, (24, 32), g)
    torch.testing.assert_close(x2, x, atol=1e-3, rtol=0)  # float rounding of the sampling grid
    assert torch.equal(y2, y)
    # flips and crops without resampling: the image channel that encodes the mask must still agree
    coded = (y.float() * 100).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    aug = JointAugment(hflip=True, vflip=True, scale=(1, 1), rotate=0, jitter=0)
    xc, yc = aug(coded, y, (16, 16), g)
    assert torch.equal((xc[:, 0] / 100).round().long(), yc)
    # zooming out pulls pixels from outside the image: those are ignored, not background
    _, yz = JointAugment(hflip=False, scale=(0.5, 0.5), rotate=0, jitter=0)(x, y, (24, 32), g)
    assert (yz == IGNORE).float().mean() > 0.5
    # rotation + scaling: labels stay labels (nearest), never blends of two
    _, yr = JointAugment(rotate=30, scale=(0.8, 1.3))(x, y, (24, 32), g)
    assert set(yr.unique().tolist()) <= {0, 1, 2, IGNORE}


def test_loader_crops_repeat_focus_and_resume_order():
    data = _set(n=4)
    data.masks[:] = 0
    data.masks[:, 20:, 28:] = 1  # a small corner lesion
    kw = dict(mean=(0.5,) * 3, std=(0.25,) * 3, shuffle=True, crop=(8, 8), seed=3, repeat=3)
    loader = SegLoader(data, 4, focus=1.0, **kw)
    assert len(loader) == 3
    for x, y in loader:
        assert x.shape == (4, 3, 8, 8) and y.shape == (4, 8, 8)
        assert ((y == 1).flatten(1).any(1)).all()  # every focused crop shows the lesion
    plain = SegLoader(data, 4, **kw)
    hits = torch.cat([(y == 1).flatten(1).any(1) for _, y in plain])
    assert hits.float().mean() < 1.0
    a = SegLoader(data, 2, **kw)
    state = a.state_dict()
    first = [y for _, y in a]
    b = SegLoader(data, 2, **kw)
    b.load_state_dict(state)
    assert all(torch.equal(u, v) for u, v in zip(first, (y for _, y in b)))


def test_sliding_window_equals_whole_image_for_a_pointwise_model():
    model = torch.nn.Conv2d(3, 4, 1)
    x = torch.randn(2, 3, 37, 45)
    torch.testing.assert_close(infer(model, x, (16, 16), overlap=0.5), infer(model, x))


# ---------------------------------------------------------------- noisy labels

def test_small_loss_selection_drops_the_worst_images_after_warmup_only():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 2, (4, 6, 6), generator=g)
    logits = (target.float() * 8 - 4).unsqueeze(1).clone()  # confident and right...
    target[2] = 1 - target[2]  # ...except on a corrupted mask
    logits.requires_grad_(True)
    loss = build_loss("bce", IGNORE)
    task = SegmentationTask(2, loss, IGNORE, noisy_drop=0.25, warmup_steps=1)
    assert task.loss(logits, target).item() == pytest.approx(loss(logits, target).item())  # warm-up
    clean = [0, 1, 3]
    assert task.loss(logits, target).item() == pytest.approx(loss(logits[clean], target[clean]).item())
    assert task.dropped == 1
    with torch.no_grad():  # evaluation always scores every image
        assert task.loss(logits.detach(), target).item() == pytest.approx(loss(logits, target).item())
    assert task.monitor == "dice" and SegmentationTask(5, loss).monitor == "miou"


def test_corrupt_masks_known_fraction():
    masks = torch.zeros(10, 16, 16, dtype=torch.uint8)
    masks[:, 6:10, 6:10] = 1
    masks[:, 0, 0] = IGNORE
    shifted, idx = corrupt_masks(masks, 0.3, "shift", seed=1)
    assert len(idx) == 3 and idx == corrupt_masks(masks, 0.3, "shift", seed=1)[1]
    untouched = [i for i in range(10) if i not in idx]
    assert torch.equal(shifted[untouched], masks[untouched])
    assert all(int((shifted[i] == 1).sum()) == 16 for i in idx)  # moved, not resized
    erased, idx = corrupt_masks(masks, 0.5, "erase")
    assert all(int((erased[i] == 1).sum()) == 0 and erased[i, 0, 0] == IGNORE for i in idx)
    grown, idx = corrupt_masks(masks, 1.0, "dilate")
    assert int((grown[0] == 1).sum()) > 16
    with pytest.raises(CnnlabError, match="unknown corruption"):
        corrupt_masks(masks, 0.1, "flip")


def _lesion_masks() -> torch.Tensor:
    """Two 32x32 masks by hand: 10 separate 4x4 lesions (class 1) in all, 6 in the first, 4 in the second."""
    masks = torch.zeros(2, 32, 32, dtype=torch.uint8)
    for i, (y, x) in enumerate([(2, 2), (2, 10), (2, 18), (10, 2), (10, 10), (10, 18), (20, 2), (20, 10),
                                (20, 18), (26, 26)]):
        masks[0 if i < 6 else 1, y:y + 4, x:x + 4] = 1
    return masks


def test_boundary_corruption_moves_the_outline_by_exactly_k_pixels():
    from cnnlab.segment.noise import parse_mode

    masks = torch.zeros(1, 20, 20, dtype=torch.uint8)
    masks[0, 6:14, 6:14] = 1  # an 8x8 lesion
    grown, idx = corrupt_masks(masks, 1.0, "dilate:2")
    assert idx == [0] and int(grown[0].sum()) == 12 * 12 and bool(grown[0, 4:16, 4:16].all())
    shrunk, _ = corrupt_masks(masks, 1.0, "erode:2")
    assert int(shrunk[0].sum()) == 4 * 4 and bool(shrunk[0, 8:12, 8:12].all())
    assert parse_mode("dilate") == ("dilate", 3) and parse_mode("erode:5") == ("erode", 5)
    for bad in ("dilate:0", "erode:x", "shift:2"):
        with pytest.raises(CnnlabError, match="corruption"):
            parse_mode(bad)


def test_lesion_corruption_hits_its_requested_rates():
    from cnnlab.segment.noise import lesions

    masks = _lesion_masks()
    assert sum(len(lesions(m)) for m in masks) == 10
    dropped, idx = corrupt_masks(masks, 0.3, "drop", seed=3)
    assert sum(len(lesions(m)) for m in dropped) == 7 and int(dropped.sum()) == 7 * 16
    assert torch.equal(dropped | masks, masks) and idx  # only erased, in the masks named
    added, idx = corrupt_masks(masks, 0.5, "spurious", seed=3)
    assert sum(len(lesions(m)) for m in added) == 15 and int(added.sum()) == 15 * 16
    assert torch.equal(added & masks, masks)  # every true lesion kept, the new ones on free ground


def test_cli_refuses_an_unknown_corruption_at_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["segment", "train", "--corrupt-mode", "dilate:0", "--corrupt-fraction", "0.1"])
    assert exit_.value.code == 2
    assert "argument --corrupt-mode: corruption 'dilate:0'" in capsys.readouterr().err


# ---------------------------------------------------------------- end to end

FAST = dict(model_kwargs={"width": 4, "depth": 2}, epochs=25, batch_size=4, lr=0.01, device="cpu", progress=False)


def test_train_learns_an_easy_scene_and_writes_the_run_folder(tmp_path):
    images, masks = write_pairs(tmp_path, 12)
    out = tmp_path / "run"
    m = train_segmenter(folder=dict(images=images, masks=masks, classes=["bg", "square", "disc"]), out=out,
                        val_fraction=0.17, test_fraction=0.17, augment="none", loss="ce+dice", **FAST)
    assert m["split"] == "test" and m["images"] == 2
    assert m["miou"] > 0.8, m["miou"]
    assert set(m["per_class"]) == {"bg", "square", "disc"}
    for name in ("config.json", "metrics.json", "best.ckpt", "last.ckpt", "curves.png", "predictions.png"):
        assert (out / name).is_file(), name
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert len(history) == 25 and "val_miou" in history[0] and "train_loss" in history[0]


def test_cli_binary_train_evaluate_predict_masks_of_input_size(tmp_path, capsys):
    images, masks = write_pairs(tmp_path, 6, fmt="binary")
    out = tmp_path / "run"
    assert main(["segment", "train", "--images", str(images), "--masks", str(masks), "--classes", "bg,object",
                 "--model-kwargs", '{"width": 4, "depth": 2}', "--loss", "bce+dice", "--pos-weight", "sqrt",
                 "--epochs", "2", "--batch-size", "2", "--crop", "16", "16", "--noisy-drop", "0.5",
                 "--val-fraction", "0.2", "--test-fraction", "0.2", "--device", "cpu", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert {"dice", "iou", "pixel_error"} <= set(m) and m["pos_weight"] > 1 and m["noisy"]["images_dropped"] > 0
    assert main(["segment", "evaluate", "--checkpoint", str(out / "best.ckpt"), "--split", "val",
                 "--device", "cpu", "--out", str(tmp_path / "ev")]) == 0
    printed = capsys.readouterr().out
    assert "Dice" in printed and "worst images: " in printed
    ev = json.loads((tmp_path / "ev" / "eval_metrics.json").read_text())
    with open(tmp_path / "ev" / "per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == ev["images"] and {"name", "pixel_accuracy", "miou", "dice", "iou"} <= set(rows[0])
    worst = sorted(rows, key=lambda r: float(r["dice"]) if r["dice"] else 1.0)[0]["name"]
    assert ev["worst"][0] == worst and Image.open(tmp_path / "ev" / "worst.png").size[1] > 0
    odd = tmp_path / "new"
    odd.mkdir()
    Image.fromarray(scene(99, 21, 27)[0]).save(odd / "odd_size.jpg")
    assert main(["segment", "predict", "--checkpoint", str(out / "best.ckpt"), str(odd), str(images / "s00.png"),
                 "--out", str(tmp_path / "pred"), "--window", "16", "16", "--device", "cpu"]) == 0
    written = sorted(p.name for p in (tmp_path / "pred").iterdir())
    assert written == ["odd_size.png", "s00.png"]
    pred = np.array(Image.open(tmp_path / "pred" / "odd_size.png"))
    assert pred.shape == (21, 27) and set(np.unique(pred)) <= {0, 255}


def test_predict_resizes_back_for_models_trained_on_resized_images(tmp_path):
    images, masks = write_pairs(tmp_path, 5)
    out = tmp_path / "run"
    train_segmenter(folder=dict(images=images, masks=masks, classes=["bg", "square", "disc"]), out=out,
                    size=(12, 16), val_fraction=0.2, test_fraction=0.2, **{**FAST, "epochs": 1})
    (written,) = predict_masks(out / "last.ckpt", [images / "s03.png"], tmp_path / "p", device="cpu")
    arr = np.array(Image.open(written))
    assert arr.shape == (24, 32) and set(np.unique(arr)) <= {0, 1, 2}


def test_cli_bad_input_is_one_line_naming_the_file(tmp_path, capsys):
    images, masks = write_pairs(tmp_path, 3)
    (masks / "s02.png").unlink()
    code = main(["segment", "train", "--images", str(images), "--masks", str(masks), "--classes", "a,b,c",
                 "--device", "cpu", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "s02.png" in err and "without a mask" in err
    with pytest.raises(CnnlabError, match="not a cnnlab segmentation checkpoint"):
        torch.save({"state_dict": {}}, tmp_path / "x.ckpt")
        predict_masks(tmp_path / "x.ckpt", [images / "s00.png"], tmp_path / "p")


@pytest.mark.data
@pytest.mark.slow
def test_real_presets_read_with_their_formats():
    from tests.conftest import real_data

    cam = load_segmentation("camvid", real_data("camvid"))
    assert cam.train.images.shape[1:] == (3, 360, 480) and len(cam.train) == 367 and len(cam.val) == 101
    assert int(cam.train.masks[cam.train.masks != IGNORE].max()) == 10 and (cam.train.masks == IGNORE).any()
    dc = load_segmentation("dc1000", real_data("dc1000"))
    assert dc.train.images.shape[1:] == (1, 768, 1536) and len(dc.train) + len(dc.val) + len(dc.test) == 70
    assert 0 < float((dc.train.masks == 1).float().mean()) < 0.01  # caries under 1% of pixels


def test_another_model_does_not_inherit_the_recipes_unet_kwargs(tmp_path, monkeypatch):
    from cnnlab.models import mobilenet_unet

    monkeypatch.setattr(mobilenet_unet, "_imagenet_state", lambda: None)  # no download attempt in a test
    images, masks = write_pairs(tmp_path, 5)
    m = train_segmenter(folder=dict(images=images, masks=masks, classes=["bg", "square", "disc"]),
                        out=tmp_path / "run", model="mobilenetv2-unet", val_fraction=0.2, test_fraction=0.2,
                        **{**FAST, "model_kwargs": None, "epochs": 1})
    assert m["model"] == "mobilenetv2-unet"
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "width" not in (config.get("model_kwargs") or {})


def test_the_caries_resunet_recipe_trains_a_resunet_on_dc1000_and_refuses_another_dataset(tmp_path, capsys):
    from cnnlab.segment.recipes import NAMED, recipe

    dc = tmp_path / "dc1000"
    write_pairs(dc, 6, fmt="binary", img_dir="images", mask_dir="labels")
    opts = recipe("dc1000", "cpu", "caries-resunet")
    assert opts["model"] == "resunet" and opts["loss"] == "focal+dice" and opts["crop"] == (256, 256)  # dc1000's crop
    assert opts["focus"] == 0.75 and recipe("dc1000", "cpu")["focus"] == 0.5  # its own crop sampling
    m = train_segmenter(recipe="caries-resunet", data_dir=dc, out=tmp_path / "run", val_fraction=0.2,
                        test_fraction=0.2, epochs=1, crop=(32, 32), samples=4, batch_size=2, progress=False)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert m["model"] == "resunet" and config["recipe"] == "caries-resunet" and config["dataset"] == "dc1000"
    with pytest.raises(CnnlabError, match="--recipe caries-resunet trains on --dataset dc1000, not 'camvid'"):
        train_segmenter("camvid", recipe="caries-resunet", out=tmp_path / "b")
    main(["segment", "train", "--list-recipes"])
    listing = capsys.readouterr().out
    assert "caries-resunet (003 Q8, --dataset dc1000)" in listing and str(NAMED["caries-resunet"]["cpu"]) in listing


def test_unet_without_skips_ignores_encoder_features():
    """skips=False: the decoder sees only upsampled bottleneck features (fewer input channels per stage)."""
    from cnnlab.models import create_model

    with_skips = create_model("unet", num_classes=2, in_chans=1, width=8, depth=3)
    without = create_model("unet", num_classes=2, in_chans=1, width=8, depth=3, skips=False)
    x = torch.randn(2, 1, 37, 50)
    assert without(x).shape == with_skips(x).shape == (2, 2, 37, 50)
    # each decoder stage's first conv loses the skip's input channels: 3x3 x skip_ch x out_ch weights fewer
    lost = sum(9 * c * c for c in (8, 16, 32))
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert params(with_skips) - params(without) == lost


def test_per_image_scores_are_the_whole_set_definitions_on_each_image():
    from cnnlab.segment.inference import image_scores, rank_key, summarize
    from cnnlab.segment.metrics import confusion_matrix

    truth = torch.tensor([[[0, 1], [1, 1]], [[0, 0], [0, 0]]])
    pred = torch.tensor([[[0, 1], [0, 1]], [[0, 0], [1, 0]]])
    first, second = (image_scores(p, t, 2) for p, t in zip(pred, truth))
    assert first["dice"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 1)) and first["iou"] == pytest.approx(2 / 3)
    assert first == {k: pytest.approx(v) for k, v in summarize(confusion_matrix(pred[0], truth[0], 2), ["bg", "fg"]).items()
                     if k in first}
    assert second["dice"] == 0.0 and second["pixel_accuracy"] == 0.75  # a spurious lesion on a clean image
    assert rank_key(second) < rank_key(first)
    clean = image_scores(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2, dtype=torch.long), 2)
    assert clean["dice"] is None and rank_key(clean) == 1.0  # nothing to find, nothing found: not among the worst


def test_a_folder_run_pins_its_splits_and_evaluate_rebuilds_exactly_those(tmp_path):
    import warnings

    from cnnlab.segment.api import evaluate_segmenter

    images, masks = write_pairs(tmp_path, 10)
    out = tmp_path / "run"
    train_segmenter(folder=dict(images=images, masks=masks, classes=["bg", "square", "disc"]), out=out,
                    val_fraction=0.2, test_fraction=0.2, **{**FAST, "epochs": 1})
    pinned = json.loads((out / "config.json").read_text())["data_files"]
    assert sorted(n for names in pinned.values() for n in names) == [f"s{i:02d}" for i in range(10)]
    assert len(pinned["test"]) == 2
    before = evaluate_segmenter(out / "last.ckpt", device="cpu")
    write_pairs(tmp_path, 14)  # four new pairs: a re-split would move training images into the test split
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        after = evaluate_segmenter(out / "last.ckpt", device="cpu")
    assert any("4 image(s)" in str(w.message) and "left out" in str(w.message) for w in caught)
    assert after["images"] == 2 and after["miou"] == before["miou"]
    (images / f"{pinned['test'][0]}.png").unlink()
    (masks / f"{pinned['test'][0]}.png").unlink()
    with pytest.raises(CnnlabError, match=f"{pinned['test'][0]}.* is gone: 1 of the 10 images"):
        evaluate_segmenter(out / "last.ckpt", device="cpu")
