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
  what the noisy-label strategy ranks (see :mod:`cnnlab.segment.noisy`).

Why several: with caries on < 1% of the pixels, plain BCE is minimised by predicting "no caries"
everywhere; ``pos_weight``, focal's down-weighting of easy pixels and the region losses (which
score the overlap with the rare class itself, whatever its size) each counter that.
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
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
                  class_weights: Tensor | None = None, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy; on a one-logit (binary) output it is BCE, the same loss for K=2.

    With class weights the mean is ``sum(w_y * l) / sum(w_y)``, as in ``F.cross_entropy``.
    """
    if logits.shape[1] == 1:
        pos = None if class_weights is None else class_weights[1] / class_weights[0]
        return bce(logits, target, ignore_index, pos, reduction)
    valid = _valid(target, ignore_index)
    loss = F.cross_entropy(logits, torch.where(valid, target, 0), reduction="none")
    return _reduce_pixels(loss, _pixel_weights(target, valid, class_weights), reduction)


def bce(logits: Tensor, target: Tensor, ignore_index: int | None = None,
        pos_weight: float | Tensor | None = None, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy on the foreground logit; ``pos_weight`` multiplies the positive term."""
    if logits.shape[1] != 1:
        raise CnnlabError(f"bce needs a binary task (one output channel), got {logits.shape[1]} channels; use ce")
    valid = _valid(target, ignore_index)
    y = (target == 1).float()
    pw = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    loss = F.binary_cross_entropy_with_logits(logits[:, 0], y, pos_weight=pw, reduction="none")
    return _reduce_pixels(loss, valid.float(), reduction)


def focal(logits: Tensor, target: Tensor, ignore_index: int | None = None, gamma: float = 2.0,
          alpha: float | None = None, reduction: str = "mean") -> Tensor:
    """Focal loss (Lin et al., 2017): ``-alpha_t (1 - p_t)^gamma log p_t``.

    ``(1 - p_t)^gamma`` shrinks the loss of pixels already classified confidently, so the sea of
    easy background stops drowning the few hard foreground pixels. ``alpha`` (binary only) weights
    positives by ``alpha`` and negatives by ``1 - alpha``.
    """
    valid = _valid(target, ignore_index)
    safe = torch.where(valid, target, 0)
    if logits.shape[1] == 1:
        z = logits[:, 0]
        y = (safe == 1).float()
        log_pt = -F.binary_cross_entropy_with_logits(z, y, reduction="none")
        alpha_t = 1.0 if alpha is None else alpha * y + (1 - alpha) * (1 - y)
    else:
        log_pt = F.log_softmax(logits, 1).gather(1, safe[:, None])[:, 0]
        alpha_t = 1.0
    loss = -alpha_t * (1 - log_pt.exp()).pow(gamma) * log_pt
    return _reduce_pixels(loss, valid.float(), reduction)


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


LOSSES = ("ce", "bce", "dice", "focal", "tversky")
_TERM = re.compile(r"^(?:(\d*\.?\d+)\*)?([a-z]+)$")


def build_loss(spec: str, ignore_index: int | None = None, class_weights: Sequence[float] | Tensor | None = None,
               pos_weight: float | None = None, focal_gamma: float = 2.0, tversky_alpha: float = 0.3,
               tversky_beta: float = 0.7) -> LossFn:
    """A loss from its name: one of ``ce, bce, dice, focal, tversky`` or a sum like ``bce+0.5*dice``.

    Returns ``fn(logits, target, reduction="mean") -> Tensor``. ``class_weights`` apply to ``ce``
    (on a binary task they become ``pos_weight = w1 / w0``); ``pos_weight`` applies to ``bce``.
    """
    weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
    makers: dict[str, LossFn] = {
        "ce": lambda lo, t, r: cross_entropy(lo, t, ignore_index, weights, r),
        "bce": lambda lo, t, r: bce(lo, t, ignore_index,
                                    pos_weight if pos_weight is not None else
                                    (None if weights is None else weights[1] / weights[0]), r),
        "dice": lambda lo, t, r: soft_dice(lo, t, ignore_index, reduction=r),
        "focal": lambda lo, t, r: focal(lo, t, ignore_index, focal_gamma, reduction=r),
        "tversky": lambda lo, t, r: tversky(lo, t, ignore_index, tversky_alpha, tversky_beta, reduction=r),
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
        return sum(w * fn(logits, target, reduction) for w, fn in terms)

    loss.spec = spec  # type: ignore[attr-defined]
    return loss


def loss_terms(spec: str) -> set[str]:
    """The loss names in a spec (``focal+0.5*tversky`` -> {focal, tversky}); unknown names stay for
    :func:`build_loss` to refuse."""
    return {m.group(2) for raw in spec.lower().replace(" ", "").split("+") if (m := _TERM.match(raw))}


def refuse_unused_weights(spec: str, class_weights: Sequence[float] | str | None, pos_weight: object) -> None:
    """Weights given (``--class-weights``, ``--pos-weight``) that the loss ``spec`` would not use are
    refused: pos_weight weights bce's positive pixels; class weights weight ce (and bce, as w1/w0)."""
    names = loss_terms(spec)
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
