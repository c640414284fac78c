"""Segmentation metrics over a whole set, from one confusion matrix.

Averaging per-batch IoUs would weigh a batch of two images like one of two hundred and give a
class missing from a batch an undefined score, so the matrix of (true, predicted) pixel counts is
accumulated over the set and every score is read off it at the end. Void pixels are skipped.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric


def predict_classes(logits: Tensor) -> Tensor:
    """Class index per pixel: argmax over K channels, or ``logit > 0`` for one (binary) channel."""
    return (logits[:, 0] > 0).long() if logits.shape[1] == 1 else logits.argmax(1)


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
