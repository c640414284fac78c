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
    gce,
    lesion_weights,
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


def test_label_smoothing_softens_bce_targets_and_matches_torch_for_ce():
    p = [sig(2.0), sig(-1.0), sig(0.5)]
    eps = 0.2
    ys = [1 - eps / 2, eps / 2, eps / 2]  # y (1 - eps) + eps / 2
    terms = [-(y * math.log(q) + (1 - y) * math.log(1 - q)) for y, q in zip(ys, p)]
    assert bce(Z, T, 255, smoothing=eps).item() == pytest.approx(sum(terms) / 3, rel=1e-6)
    g = torch.Generator().manual_seed(2)
    logits, target = torch.randn(2, 4, 3, 3, generator=g), torch.randint(0, 4, (2, 3, 3), generator=g)
    ref = F.cross_entropy(logits, target, label_smoothing=eps)
    assert cross_entropy(logits, target, smoothing=eps).item() == pytest.approx(ref.item(), rel=1e-6)
    # a pixel the mask gets wrong (confidently predicted caries, labelled background) is pushed less
    z = torch.tensor([[[[4.0]]]], requires_grad=True)
    grads = []
    for e in (0.0, eps):
        z.grad = None
        bce(z, torch.zeros(1, 1, 1, dtype=torch.long), smoothing=e).backward()
        grads.append(z.grad.item())
    assert grads[1] == pytest.approx(sig(4.0) - eps / 2, rel=1e-6) and grads[1] < grads[0]


def test_gce_by_hand_limits_and_gradient():
    p = [sig(2.0), sig(-1.0), sig(0.5)]
    pt = [p[0], 1 - p[1], 1 - p[2]]
    q = 0.7
    assert gce(Z, T, 255, q=q).item() == pytest.approx(sum((1 - v ** q) / q for v in pt) / 3, rel=1e-6)
    assert gce(Z, T, 255, q=1.0).item() == pytest.approx(sum(1 - v for v in pt) / 3, rel=1e-6)  # MAE
    assert gce(Z, T, 255, q=1e-4).item() == pytest.approx(bce(Z, T, 255).item(), rel=1e-3)  # q -> 0: CE
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(1, 3, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 3, (1, 2, 2), generator=g)
    assert torch.autograd.gradcheck(lambda lo: gce(lo, target, q=q), (logits,))
    # bounded: a pixel confidently against its label costs at most 1/q, where CE grows without bound
    far = torch.tensor([[[[-30.0]]]])
    assert gce(far, torch.ones(1, 1, 1, dtype=torch.long), q=q).item() == pytest.approx(1 / q, rel=1e-6)


def test_lesion_weights_by_hand():
    t = torch.zeros(2, 8, 8, dtype=torch.long)
    t[0, 0:4, 0:4] = 1   # 16 pixels
    t[0, 6, 6] = 1       # 1 pixel
    t[1, 2:4, 5:7] = 1   # 4 pixels: the median lesion
    t[1, 7, 0] = 255     # ignored: not a lesion
    w = lesion_weights(t, max_weight=10, ignore_index=255)
    assert w[0, 6, 6] == 4 and w[0, 0, 0] == 1 and w[1, 2, 5] == 1 and w[0, 7, 7] == 1 and w[1, 7, 0] == 1
    assert lesion_weights(t, max_weight=3, ignore_index=255)[0, 6, 6] == 3  # capped
    # diagonal neighbours are one lesion (8-connected): a 2-pixel lesion beside the others' median
    t2 = torch.zeros(1, 5, 5, dtype=torch.long)
    t2[0, 0, 0] = t2[0, 1, 1] = 1
    t2[0, 3:5, 3:5] = 1
    t2[0, 0, 4] = 1
    assert lesion_weights(t2, 10)[0, 0, 4] == 2 and lesion_weights(t2, 10)[0, 0, 0] == 1
    assert torch.equal(lesion_weights(torch.zeros(1, 3, 3, dtype=torch.long), 10), torch.ones(1, 3, 3))


def test_lesion_weight_and_smoothing_reach_the_pixel_terms_only():
    t = torch.zeros(1, 2, 2, dtype=torch.long)
    t[0, 0, 0] = 1
    logits = torch.tensor([[[[0.3, -0.2], [0.1, 0.4]]]])
    # one lesion is its own median: weight 1, the plain loss
    assert build_loss("bce", lesion_weight=5)(logits, t).item() == pytest.approx(bce(logits, t).item(), rel=1e-6)
    t3 = torch.zeros(1, 6, 6, dtype=torch.long)
    t3[0, 0, 0] = 1
    t3[0, 2:5, 2:5] = 1
    t3[0, 0, 3] = t3[0, 0, 4] = 1  # apart from both others (not even diagonally)
    z = torch.randn(1, 1, 6, 6, generator=torch.Generator().manual_seed(4))
    weights = lesion_weights(t3, 5)
    assert weights[0, 0, 0] == 2 and weights[0, 3, 3] == 1  # median of 1, 2, 9 is 2
    expected = bce(z, t3, pixel_weight=weights) + soft_dice(z, t3)
    assert build_loss("bce+dice", lesion_weight=5)(z, t3).item() == pytest.approx(expected.item(), rel=1e-6)
    smoothed = bce(z, t3, smoothing=0.1) + soft_dice(z, t3)
    assert build_loss("bce+dice", label_smoothing=0.1)(z, t3).item() == pytest.approx(smoothed.item(), rel=1e-6)
    with pytest.raises(CnnlabError, match="label_smoothing 1.0: expected a number in \\[0, 1\\)"):
        build_loss("bce", label_smoothing=1.0)
    with pytest.raises(CnnlabError, match="lesion_weight 1: expected a number > 1"):
        build_loss("bce", lesion_weight=1)
