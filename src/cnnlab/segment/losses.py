"""Segmentation losses, selectable by name and combinable (``"bce+dice"``, ``"ce+0.5*dice"``).

Conventions shared by every loss here:

- ``logits`` are ``N x K x H x W``. ``K == 1`` is a binary task (one foreground logit, sigmoid);
  ``K > 1`` is multi-class (softmax). ``target`` is ``N x H x W`` int64 class indices.
- Pixels whose target equals ``ignore_index`` (CamVid's void) count nowhere: not in the loss, not
  in its normalisation.
- ``reduction="mean"`` gives one number for the batch. Pixel losses (CE, BCE, focal) average over
  all valid pixels of the batch, exactly like ``F.cross_entropy``; region losses (Dice, Tversky)
  sum their overlaps over the whole batch first, which keeps them stable when a rare class (caries)
  is missing from most images. ``reduction="none"`` gives one value per image instead, which is
  what the noisy-label strategy ranks (see :mod:`cnnlab.segment.task`).

Why several: with caries on < 1% of the pixels, plain BCE is minimised by predicting "no caries"
everywhere; ``pos_weight``, focal's down-weighting of easy pixels and the region losses (which
score the overlap with the rare class itself, whatever its size) each counter that.
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

from cnnlab.core.errors import CnnlabError

LossFn = Callable[..., Tensor]
EPS = 1e-7


def _valid(target: Tensor, ignore_index: int | None) -> Tensor:
    return torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index


def _reduce_pixels(loss: Tensor, weight: Tensor, reduction: str) -> Tensor:
    """Weighted mean of a per-pixel loss map over the batch (``mean``) or per image (``none``)."""
    if reduction == "none":
        return (loss * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(EPS)
    return (loss * weight).sum() / weight.sum().clamp_min(EPS)


def _pixel_weights(target: Tensor, valid: Tensor, class_weights: Tensor | None) -> Tensor:
    """Weight of each pixel: its class's weight (1 without weights), 0 where ignored."""
    if class_weights is None:
        return valid.float()
    return class_weights.to(target.device)[target.clamp(0, len(class_weights) - 1)] * valid


def cross_entropy(logits: Tensor, target: Tensor, ignore_index: int | None = None,
                  class_weights: Tensor | None = None, reduction: str = "mean", smoothing: float = 0.0,
                  pixel_weight: Tensor | None = None) -> Tensor:
    """Softmax cross-entropy; on a one-logit (binary) output it is BCE, the same loss for K=2.

    With class weights the mean is ``sum(w_y * l) / sum(w_y)``, as in ``F.cross_entropy``.
    ``smoothing`` is ``F.cross_entropy``'s ``label_smoothing``; ``pixel_weight`` (``N x H x W``)
    multiplies each pixel's weight (small-lesion weighting: :func:`lesion_weights`).
    """
    if logits.shape[1] == 1:
        pos = None if class_weights is None else class_weights[1] / class_weights[0]
        return bce(logits, target, ignore_index, pos, reduction, smoothing, pixel_weight)
    valid = _valid(target, ignore_index)
    loss = F.cross_entropy(logits, torch.where(valid, target, 0), reduction="none", label_smoothing=smoothing)
    return _reduce_pixels(loss, _pixel_weights(target, valid, class_weights) * _ones(pixel_weight), reduction)


def bce(logits: Tensor, target: Tensor, ignore_index: int | None = None,
        pos_weight: float | Tensor | None = None, reduction: str = "mean", smoothing: float = 0.0,
        pixel_weight: Tensor | None = None) -> Tensor:
    """Binary cross-entropy on the foreground logit; ``pos_weight`` multiplies the positive term.

    ``smoothing`` eps softens the targets to ``y (1 - eps) + eps / 2`` (label smoothing of the mask,
    Szegedy et al., 2016: a pixel the mask gets wrong is pushed less far); ``pixel_weight`` as in
    :func:`cross_entropy`.
    """
    if logits.shape[1] != 1:
        raise CnnlabError(f"bce needs a binary task (one output channel), got {logits.shape[1]} channels; use ce")
    valid = _valid(target, ignore_index)
    y = (target == 1).float() * (1 - smoothing) + smoothing / 2
    pw = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    loss = F.binary_cross_entropy_with_logits(logits[:, 0], y, pos_weight=pw, reduction="none")
    return _reduce_pixels(loss, valid.float() * _ones(pixel_weight), reduction)


def _log_pt(logits: Tensor, safe: Tensor) -> Tensor:
    """log of the probability each pixel gives its target class (sigmoid for one logit, else softmax)."""
    if logits.shape[1] == 1:
        return -F.binary_cross_entropy_with_logits(logits[:, 0], (safe == 1).float(), reduction="none")
    return F.log_softmax(logits, 1).gather(1, safe[:, None])[:, 0]


def gce(logits: Tensor, target: Tensor, ignore_index: int | None = None, q: float = 0.7,
        reduction: str = "mean", pixel_weight: Tensor | None = None) -> Tensor:
    """Generalized cross-entropy (Zhang & Sabuncu, 2018): ``(1 - p_t^q) / q``, a noise-robust loss.

    As q -> 0 it is cross-entropy; at q = 1 it is the mean absolute error ``1 - p_t``, which is
    robust to wrong labels because a pixel the model confidently disagrees with (p_t near 0) costs
    at most ``1/q`` and pulls with a gradient scaled by ``p_t^q`` instead of CE's unbounded ``-log p_t``.
    q = 0.7 is the paper's choice between CE's fast fitting and MAE's robustness.
    """
    valid = _valid(target, ignore_index)
    loss = (1 - (q * _log_pt(logits, torch.where(valid, target, 0))).exp()) / q
    return _reduce_pixels(loss, valid.float() * _ones(pixel_weight), reduction)


def _ones(pixel_weight: Tensor | None) -> Tensor | float:
    return 1.0 if pixel_weight is None else pixel_weight


def lesion_weights(target: Tensor, max_weight: float, ignore_index: int | None = None) -> Tensor:
    """Pixel weights (``N x H x W``) that make small lesions count as much as typical ones.

    A lesion is an 8-connected region of one foreground class (class > 0) in one image of the batch.
    A lesion smaller than the batch's median lesion has its pixels weighted ``median / area``, at
    most ``max_weight``; larger lesions and background keep 1. Without it a pixel loss is a sum over
    pixels, so a 20-pixel caries counts for a hundredth of a 2,000-pixel one and is the first
    thing the network gives up.
    """
    arr = target.detach().cpu().numpy()
    labels, areas = np.zeros(arr.shape, np.int64), [np.zeros(1)]  # lesion index per pixel (0: none)
    for i, m in enumerate(arr):
        for c in np.unique(m):
            if c == 0 or c == ignore_index:
                continue
            lab, n = ndimage.label(m == c, structure=np.ones((3, 3)))
            labels[i] = np.where(lab > 0, lab + sum(len(a) for a in areas) - 1, labels[i])
            areas.append(np.bincount(lab.ravel())[1:].astype(np.float64))
    areas = np.concatenate(areas)  # areas[0] is the background's placeholder
    if len(areas) == 1:
        return torch.ones(target.shape, device=target.device)
    factor = np.clip(np.median(areas[1:]) / np.maximum(areas, 1), 1.0, max_weight)
    factor[0] = 1.0
    return torch.from_numpy(factor[labels].astype(np.float32)).to(target.device)


def focal(logits: Tensor, target: Tensor, ignore_index: int | None = None, gamma: float = 2.0,
          alpha: float | None = None, reduction: str = "mean", pixel_weight: Tensor | None = None) -> Tensor:
    """Focal loss (Lin et al., 2017): ``-alpha_t (1 - p_t)^gamma log p_t``.

    ``(1 - p_t)^gamma`` shrinks the loss of pixels already classified confidently, so the sea of
    easy background stops drowning the few hard foreground pixels. ``alpha`` (binary only) weights
    positives by ``alpha`` and negatives by ``1 - alpha``.
    """
    valid = _valid(target, ignore_index)
    safe = torch.where(valid, target, 0)
    log_pt = _log_pt(logits, safe)
    y = (safe == 1).float()
    alpha_t = 1.0 if alpha is None or logits.shape[1] != 1 else alpha * y + (1 - alpha) * (1 - y)
    loss = -alpha_t * (1 - log_pt.exp()).pow(gamma) * log_pt
    return _reduce_pixels(loss, valid.float() * _ones(pixel_weight), reduction)


def _overlaps(logits: Tensor, target: Tensor, ignore_index: int | None, reduction: str):
    """Soft TP, FP, FN per class (``K x 1`` for batch-wide sums, ``N x K`` per image) and presence.

    Binary tasks score only the foreground; multi-class tasks score every class.
    """
    valid = _valid(target, ignore_index)
    safe = torch.where(valid, target, 0)
    if logits.shape[1] == 1:
        prob = torch.sigmoid(logits)
        truth = (safe == 1)[:, None].float()
    else:
        prob = logits.softmax(1)
        truth = F.one_hot(safe, logits.shape[1]).permute(0, 3, 1, 2).float()
    v = valid[:, None].float()
    prob, truth = prob * v, truth * v
    dims = (0, 2, 3) if reduction == "mean" else (2, 3)
    tp = (prob * truth).sum(dims)
    fp = (prob * (1 - truth)).sum(dims)
    fn = ((1 - prob) * truth).sum(dims)
    present = truth.sum(dims) > 0
    return tp, fp, fn, present


def tversky(logits: Tensor, target: Tensor, ignore_index: int | None = None, alpha: float = 0.3,
            beta: float = 0.7, smooth: float = 1.0, reduction: str = "mean") -> Tensor:
    """Tversky loss (Salehi et al., 2017): ``1 - (TP + s) / (TP + alpha FP + beta FN + s)``.

    ``beta > alpha`` charges a missed positive more than a false alarm: recall for small
    structures. ``alpha = beta = 0.5`` is the soft Dice loss. Multi-class: the mean over the
    classes present in the target (an absent class has no overlap to score); binary: always the
    foreground, so an empty mask still punishes false alarms.
    """
    tp, fp, fn, present = _overlaps(logits, target, ignore_index, reduction)
    loss = 1 - (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
    if logits.shape[1] == 1:
        return loss[..., 0]
    present = present.float()
    return (loss * present).sum(-1) / present.sum(-1).clamp_min(1)


def soft_dice(logits: Tensor, target: Tensor, ignore_index: int | None = None, smooth: float = 1.0,
              reduction: str = "mean") -> Tensor:
    """Soft Dice loss ``1 - (2 TP + s) / (2 TP + FP + FN + s)`` with probabilities in place of 0/1."""
    return tversky(logits, target, ignore_index, 0.5, 0.5, smooth / 2, reduction)


def per_sample_loss(logits: Tensor, target: Tensor, ignore_index: int | None = None) -> Tensor:
    """Each image's mean (B)CE over its valid pixels (``N``): the score small-loss selection ranks."""
    return cross_entropy(logits, target, ignore_index, reduction="none")


LOSSES = ("ce", "bce", "dice", "focal", "tversky", "gce")
PIXEL_LOSSES = frozenset({"ce", "bce", "focal", "gce"})  # the terms a pixel weight (lesion_weight) acts on
_TERM = re.compile(r"^(?:(\d*\.?\d+)\*)?([a-z]+)$")


def build_loss(spec: str, ignore_index: int | None = None, class_weights: Sequence[float] | Tensor | None = None,
               pos_weight: float | None = None, focal_gamma: float = 2.0, tversky_alpha: float = 0.3,
               tversky_beta: float = 0.7, gce_q: float = 0.7, label_smoothing: float = 0.0,
               lesion_weight: float | None = None) -> LossFn:
    """A loss from its name: one of ``ce, bce, dice, focal, tversky, gce`` or a sum like ``bce+0.5*dice``.

    Returns ``fn(logits, target, reduction="mean") -> Tensor``. ``class_weights`` apply to ``ce``
    (on a binary task they become ``pos_weight = w1 / w0``); ``pos_weight`` applies to ``bce``;
    ``label_smoothing`` softens the targets of ``ce`` and ``bce``; ``lesion_weight`` (the cap of
    :func:`lesion_weights`) weights small lesions' pixels in every pixel term (ce, bce, focal, gce).
    """
    for name, value, ok, expected in (("label_smoothing", label_smoothing, 0 <= label_smoothing < 1, "in [0, 1)"),
                                      ("gce_q", gce_q, 0 < gce_q <= 1, "in (0, 1]"),
                                      ("lesion_weight", lesion_weight, lesion_weight is None or lesion_weight > 1,
                                       "> 1 (the largest weight of a small lesion's pixel), or None")):
        if not ok:
            raise CnnlabError(f"{name} {value}: expected a number {expected}")
    weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
    eps = label_smoothing
    makers: dict[str, LossFn] = {
        "ce": lambda lo, t, r, pw: cross_entropy(lo, t, ignore_index, weights, r, eps, pw),
        "bce": lambda lo, t, r, pw: bce(lo, t, ignore_index,
                                        pos_weight if pos_weight is not None else
                                        (None if weights is None else weights[1] / weights[0]), r, eps, pw),
        "dice": lambda lo, t, r, pw: soft_dice(lo, t, ignore_index, reduction=r),
        "focal": lambda lo, t, r, pw: focal(lo, t, ignore_index, focal_gamma, reduction=r, pixel_weight=pw),
        "tversky": lambda lo, t, r, pw: tversky(lo, t, ignore_index, tversky_alpha, tversky_beta, reduction=r),
        "gce": lambda lo, t, r, pw: gce(lo, t, ignore_index, gce_q, r, pw),
    }
    terms: list[tuple[float, LossFn]] = []
    for raw in spec.lower().replace(" ", "").split("+"):
        m = _TERM.match(raw)
        if not m or m.group(2) not in makers:
            raise CnnlabError(f"unknown loss term {raw!r} in {spec!r}; expected names from {', '.join(LOSSES)} "
                              f"joined by '+', optionally weighted like 0.5*dice")
        weight = float(m.group(1) or 1.0)
        if weight == 0:  # a term that cannot take effect (all of them: nothing would be learned)
            raise CnnlabError(f"loss {spec!r}: the term {raw!r} has weight 0, so it would do nothing; leave it out"
                              if len(spec.split("+")) > 1 else
                              f"loss {spec!r} has weight 0: nothing would be learned; give a weight > 0")
        terms.append((weight, makers[m.group(2)]))

    def loss(logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        pw = None if lesion_weight is None else lesion_weights(target, lesion_weight, ignore_index)
        return sum(w * fn(logits, target, reduction, pw) for w, fn in terms)

    loss.spec = spec  # type: ignore[attr-defined]
    return loss


def loss_terms(spec: str) -> set[str]:
    """The loss names in a spec (``focal+0.5*tversky`` -> {focal, tversky}); unknown names stay for
    :func:`build_loss` to refuse."""
    return {m.group(2) for raw in spec.lower().replace(" ", "").split("+") if (m := _TERM.match(raw))}


def refuse_unused_weights(spec: str, class_weights: Sequence[float] | str | None, pos_weight: object,
                          label_smoothing: float | None = None, lesion_weight: float | None = None) -> None:
    """Weights given (``--class-weights``, ``--pos-weight``, ``--label-smoothing``, ``--lesion-weight``)
    that the loss ``spec`` would not use are refused: pos_weight weights bce's positive pixels; class
    weights weight ce (and bce, as w1/w0); label smoothing softens ce and bce; lesion weights any pixel term."""
    names = loss_terms(spec)
    if label_smoothing and not names & {"ce", "bce"}:
        raise CnnlabError(f"--label-smoothing {label_smoothing}: it softens the targets of ce and bce, and the loss "
                          f"{spec!r} has neither; give --loss with ce or bce (e.g. bce+dice), or leave it out")
    if lesion_weight is not None and not names & PIXEL_LOSSES:
        raise CnnlabError(f"--lesion-weight {lesion_weight}: it weights the pixels of {', '.join(sorted(PIXEL_LOSSES))}, "
                          f"and the loss {spec!r} has none of them; give --loss with one (e.g. bce+dice), or leave it out")
    if pos_weight is not None and "bce" not in names:
        raise CnnlabError(f"--pos-weight {pos_weight}: it weights the positive pixels of bce, and the loss {spec!r} "
                          f"has no bce term; give --loss with bce (e.g. bce+dice), or leave --pos-weight out")
    if class_weights is not None and not names & {"ce", "bce"}:
        raise CnnlabError(f"--class-weights: they weight the pixels of ce (and bce), and the loss {spec!r} takes no "
                          f"weights; give --loss with ce or bce, or leave --class-weights out")
    if isinstance(class_weights, (list, tuple)) and not any(float(w) > 0 for w in class_weights):
        raise CnnlabError(f"--class-weights {','.join(map(str, class_weights))}: all zero, so no pixel would count; "
                          f"give at least one weight > 0")


def median_frequency_weights(masks: Tensor, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """Median-frequency class balancing (Eigen & Fergus, 2015; SegNet): ``w_c = median(f) / f_c``.

    ``f_c`` is class c's pixel count divided by the pixel count of the images where c appears, so
    a class that is small where it occurs (poles, sign symbols) gets a large weight and the most
    common classes (road, sky) a weight below 1. Classes never seen get weight 0.
    """
    masks = masks.long()
    counts = torch.zeros(num_classes, dtype=torch.float64)
    image_pixels = torch.zeros(num_classes, dtype=torch.float64)
    for m in masks:
        valid = m[m != ignore_index] if ignore_index is not None else m.flatten()
        c = torch.bincount(valid.flatten(), minlength=num_classes)[:num_classes].double()
        counts += c
        image_pixels += (c > 0).double() * valid.numel()
    freq = counts / image_pixels.clamp_min(1)
    seen = counts > 0
    weights = torch.zeros(num_classes, dtype=torch.float64)
    weights[seen] = freq[seen].quantile(0.5) / freq[seen]  # the middle value, or mean of the two
    return weights.float()
