"""Segmentation losses against hand-computed values and PyTorch's own implementations."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cnnlab.core.errors import CnnlabError
from cnnlab.segment.losses import (
    bce,
    build_loss,
    cross_entropy,
    focal,
    median_frequency_weights,
    per_sample_loss,
    soft_dice,
    tversky,
)


def sig(z: float) -> float:
    return 1 / (1 + math.exp(-z))


# one image, one logit channel, 2 x 2 pixels; target [[1, 0], [0, 255]] (255 ignored)
Z = torch.tensor([[[[2.0, -1.0], [0.5, 9.0]]]])
T = torch.tensor([[[1, 0], [0, 255]]])


def test_bce_by_hand_ignores_void_and_weights_positives():
    p = [sig(2.0), sig(-1.0), sig(0.5)]
    terms = [-math.log(p[0]), -math.log(1 - p[1]), -math.log(1 - p[2])]
    assert bce(Z, T, 255).item() == pytest.approx(sum(terms) / 3, rel=1e-6)
    # pos_weight multiplies the positive pixel's term; the mean still divides by the pixel count
    assert bce(Z, T, 255, pos_weight=4.0).item() == pytest.approx((4 * terms[0] + terms[1] + terms[2]) / 3, rel=1e-6)


def test_cross_entropy_matches_torch_with_weights_and_ignore():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 6, generator=g)
    target = torch.randint(0, 4, (2, 5, 6), generator=g)
    target[0, :2] = 7  # void
    w = torch.tensor([0.5, 1.0, 2.0, 3.0])
    ref = F.cross_entropy(logits, target, weight=w, ignore_index=7)
    assert cross_entropy(logits, target, 7, w).item() == pytest.approx(ref.item(), rel=1e-6)
    # per image: each image's own weighted mean
    per = cross_entropy(logits, target, 7, w, reduction="none")
    for i in range(2):
        assert per[i].item() == pytest.approx(F.cross_entropy(logits[i:i + 1], target[i:i + 1], weight=w,
                                                              ignore_index=7).item(), rel=1e-6)


def test_cross_entropy_on_one_logit_is_two_class_softmax_ce():
    """sigmoid(z) equals softmax([0, z])[1], so BCE on z is CE on logits (0, z)."""
    two = torch.cat([torch.zeros_like(Z), Z], 1)
    assert cross_entropy(Z, T, 255).item() == pytest.approx(F.cross_entropy(two, T, ignore_index=255).item(), rel=1e-6)
    w = torch.tensor([1.0, 3.0])  # class weights become pos_weight = 3
    assert cross_entropy(Z, T, 255, w).item() == pytest.approx(bce(Z, T, 255, pos_weight=3.0).item(), rel=1e-6)


def test_soft_dice_by_hand():
    p = [sig(2.0), sig(-1.0), sig(0.5)]  # the ignored pixel's 9.0 must not count
    tp, fp, fn = p[0], p[1] + p[2], 1 - p[0]
    expected = 1 - (2 * tp + 1) / (2 * tp + fp + fn + 1)
    assert soft_dice(Z, T, 255).item() == pytest.approx(expected, rel=1e-6)


def test_tversky_by_hand_and_dice_special_case():
    p = [sig(2.0), sig(-1.0), sig(0.5)]
    tp, fp, fn = p[0], p[1] + p[2], 1 - p[0]
    expected = 1 - (tp + 1) / (tp + 0.3 * fp + 0.7 * fn + 1)
    assert tversky(Z, T, 255, alpha=0.3, beta=0.7).item() == pytest.approx(expected, rel=1e-6)
    assert tversky(Z, T, 255, 0.5, 0.5, smooth=0.5).item() == pytest.approx(soft_dice(Z, T, 255).item(), rel=1e-6)


def test_multiclass_dice_averages_present_classes_only():
    # perfect, confident prediction of classes 0 and 1; class 2 absent from the target
    target = torch.tensor([[[0, 1], [1, 0]]])
    logits = F.one_hot(target, 3).permute(0, 3, 1, 2).float() * 50
    assert soft_dice(logits, target, smooth=0).item() == pytest.approx(0.0, abs=1e-6)
    # all-wrong prediction: both present classes score 0 overlap -> loss 1
    assert soft_dice(logits.roll(1, dims=1), target, smooth=0).item() == pytest.approx(1.0, abs=1e-6)


def test_focal_by_hand_and_gamma_zero_is_bce():
    p = [sig(2.0), sig(-1.0), sig(0.5)]
    pt = [p[0], 1 - p[1], 1 - p[2]]
    expected = sum(-(1 - q) ** 2 * math.log(q) for q in pt) / 3
    assert focal(Z, T, 255, gamma=2.0).item() == pytest.approx(expected, rel=1e-6)
    assert focal(Z, T, 255, gamma=0.0).item() == pytest.approx(bce(Z, T, 255).item(), rel=1e-6)
    g = torch.Generator().manual_seed(1)
    logits, target = torch.randn(2, 3, 4, 4, generator=g), torch.randint(0, 3, (2, 4, 4), generator=g)
    assert focal(logits, target, gamma=0.0).item() == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-6)


def test_combination_by_name_sums_weighted_terms():
    combo = build_loss("bce+0.5*dice", ignore_index=255, pos_weight=2.0)
    expected = bce(Z, T, 255, pos_weight=2.0) + 0.5 * soft_dice(Z, T, 255)
    assert combo(Z, T).item() == pytest.approx(expected.item(), rel=1e-6)
    per = combo(Z.repeat(3, 1, 1, 1), T.repeat(3, 1, 1), reduction="none")
    assert per.shape == (3,) and torch.allclose(per, expected.expand(3), rtol=1e-5)


def test_unknown_loss_and_bce_on_multiclass_are_errors():
    with pytest.raises(CnnlabError, match="unknown loss term 'dise'"):
        build_loss("bce+dise")
    with pytest.raises(CnnlabError, match="bce needs a binary task"):
        build_loss("bce")(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def test_per_sample_loss_ranks_the_wrong_mask_highest():
    logits = torch.full((3, 1, 4, 4), -5.0)
    logits[:, :, :2] = 5.0  # the model sees foreground in the top half of every image
    target = torch.zeros(3, 4, 4, dtype=torch.long)
    target[:, :2] = 1
    target[1] = 1 - target[1]  # image 1's mask is upside down
    scores = per_sample_loss(logits, target)
    assert scores.argmax().item() == 1 and scores[1] > 10 * scores[0]


def test_median_frequency_weights_by_hand():
    # image A: 3 px class 0, 1 px class 1; image B: 2 px class 0, 2 px void (255)
    masks = torch.tensor([[[0, 0], [0, 1]], [[0, 0], [255, 255]]])
    # f0 = 5 / (4 + 2) (class 0 in both images, B has 2 valid px); f1 = 1 / 4; class 2 never seen
    f0, f1 = 5 / 6, 1 / 4
    median = (f0 + f1) / 2  # even count: the mean of the two middle values, as numpy's median
    w = median_frequency_weights(masks, 3, 255)
    assert w.tolist() == pytest.approx([median / f0, median / f1, 0.0], rel=1e-6)
