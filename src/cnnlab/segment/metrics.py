"""Segmentation metrics over a whole set, from one confusion matrix.

Averaging per-batch IoUs would weigh a batch of two images like one of two hundred and give a
class missing from a batch an undefined score, so the matrix of (true, predicted) pixel counts is
accumulated over the set and every score is read off it at the end. Void pixels are skipped.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric


def predict_classes(logits: Tensor, threshold: float = 0.5) -> Tensor:
    """Class index per pixel: argmax over K channels, or ``sigmoid(logit) > threshold`` for one
    (binary) channel, computed as ``logit > log(t / (1 - t))`` (0 for the usual 0.5)."""
    if logits.shape[1] != 1:
        return logits.argmax(1)
    return (logits[:, 0] > logit(threshold)).long()


def logit(p: float) -> float:
    if not 0 < p < 1:
        raise ValueError(f"a decision threshold must be in (0, 1), got {p}")
    return math.log(p / (1 - p))


class ThresholdSearch:
    """The binary decision threshold with the best Dice of the positive class over a whole set.

    With lesions on under 1% of the pixels, a network trained with a region loss rarely puts its
    best cut at probability 0.5; the threshold that maximizes Dice on the validation images is the
    one a user should get (the test images never choose anything). For every candidate threshold
    ``t`` the pixels with ``sigmoid(z) > t`` are counted exactly (a histogram of how many
    candidates each logit exceeds, then cumulative sums), so one pass over the set scores them all.
    """

    def __init__(self, thresholds: Sequence[float] | None = None, ignore_index: int = 255) -> None:
        grid = thresholds if thresholds is not None else [round(0.02 * k, 2) for k in range(1, 50)]
        self.thresholds = torch.tensor(sorted(grid), dtype=torch.float64)
        self.cuts = torch.tensor([logit(float(t)) for t in self.thresholds], dtype=torch.float64)
        self.ignore_index = ignore_index
        m = len(self.thresholds) + 1
        self.pos, self.neg = torch.zeros(m, dtype=torch.long), torch.zeros(m, dtype=torch.long)

    def update(self, logits: Tensor, target: Tensor) -> None:
        z, y = logits[:, 0], target
        valid = y != self.ignore_index
        exceeded = torch.searchsorted(self.cuts.to(z.device), z[valid].double().contiguous())
        m = len(self.pos)
        self.pos += torch.bincount(exceeded[y[valid] == 1], minlength=m).cpu()
        self.neg += torch.bincount(exceeded[y[valid] == 0], minlength=m).cpu()

    def counts(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(tp, fp, fn)`` per candidate: positive where more than ``j`` candidates are exceeded."""
        above = lambda h: h.flip(0).cumsum(0).flip(0)[1:]  # noqa: E731  # pixels exceeding candidate j
        tp, fp = above(self.pos), above(self.neg)
        return tp, fp, self.pos.sum() - tp

    def dice(self) -> Tensor:
        tp, fp, fn = (c.double() for c in self.counts())
        return torch.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn).clamp(min=1), torch.zeros_like(tp))

    def dice_at(self, threshold: float) -> float:
        return float(self.dice()[self._index(threshold)])

    def _index(self, threshold: float) -> int:
        hit = torch.nonzero(torch.isclose(self.thresholds, torch.tensor(float(threshold), dtype=torch.float64)))
        if not len(hit):
            raise ValueError(f"{threshold} is not one of the candidate thresholds")
        return int(hit[0])

    def best(self) -> tuple[float, float]:
        """``(threshold, dice)``; among equal Dice the threshold nearest 0.5 wins."""
        d = self.dice()
        ties = torch.nonzero(d == d.max())[:, 0]
        j = int(ties[(self.thresholds[ties] - 0.5).abs().argmin()])
        return float(self.thresholds[j]), float(d[j])


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """K x K counts, rows true class, columns predicted class; ignored pixels left out."""
    valid = target != ignore_index
    idx = target[valid].long() * num_classes + pred[valid].long()
    return torch.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def scores(cm: Tensor) -> dict[str, Tensor]:
    """Per-class IoU and Dice, their means, and pixel accuracy from a confusion matrix.

    IoU_c = TP / (TP + FP + FN), Dice_c = 2 TP / (2 TP + FP + FN). A class absent from both truth
    and prediction has no defined score (NaN) and is left out of the means.
    """
    cm = cm.double()
    tp = cm.diag()
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    union = tp + fp + fn
    nan = torch.tensor(float("nan"), dtype=cm.dtype, device=cm.device)
    iou = torch.where(union > 0, tp / union.clamp(min=1), nan)
    dice = torch.where(union > 0, 2 * tp / (union + tp).clamp(min=1), nan)
    return {"iou": iou, "dice": dice, "miou": iou.nanmean(), "mdice": dice.nanmean(),
            "pixel_accuracy": tp.sum() / cm.sum().clamp(min=1)}


class SegmentationMetrics(Metric):
    """torchmetrics ``Metric`` accumulating the confusion matrix of ``(logits, target)`` batches.

    ``compute()`` gives ``miou``, ``mdice`` and ``pixel_accuracy``; for binary tasks also ``iou``
    and ``dice`` of the positive class (the figures reported for caries and membranes).
    """

    full_state_update = False

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        super().__init__()
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.add_state("cm", torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        self.cm += confusion_matrix(predict_classes(logits), target, self.num_classes, self.ignore_index)

    def compute(self) -> dict[str, Tensor]:
        s = scores(self.cm)
        out = {"miou": s["miou"], "mdice": s["mdice"], "pixel_accuracy": s["pixel_accuracy"]}
        if self.num_classes == 2:
            out.update(iou=s["iou"][1].nan_to_num(0.0), dice=s["dice"][1].nan_to_num(0.0))
        return out


def per_class_table(cm: Tensor, classes: list[str]) -> dict[str, dict[str, float]]:
    """``{class: {iou, dice, support}}`` for metrics.json (support: true pixels of the class)."""
    s = scores(cm)
    support = cm.sum(1)
    return {name: {"iou": float(s["iou"][i]), "dice": float(s["dice"][i]), "support": int(support[i])}
            for i, name in enumerate(classes)}
