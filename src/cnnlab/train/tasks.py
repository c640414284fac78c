"""Tasks tell the engine what a batch's loss and metrics are; the loop itself is task-agnostic.

A task has ``loss(outputs, targets)``, ``metrics()`` (a fresh torchmetrics ``MetricCollection``
updated with ``(outputs, targets)``) and ``monitor`` (the metric maximised to pick the best
checkpoint and to stop early). Segmentation defines its own task with the same three members.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy


class ClassificationTask:
    monitor = "accuracy"

    def __init__(self, num_classes: int, label_smoothing: float = 0.0) -> None:
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs, targets, label_smoothing=self.label_smoothing)

    def metrics(self) -> MetricCollection:
        return MetricCollection({"accuracy": MulticlassAccuracy(self.num_classes, average="micro")})
