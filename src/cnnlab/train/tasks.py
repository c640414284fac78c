"""Tasks tell the engine what a batch's loss and metrics are; the loop itself is task-agnostic.

A task has ``loss(outputs, targets)``, ``metrics()`` (a fresh torchmetrics ``MetricCollection``
updated with ``(outputs, targets)``) and ``monitor`` (the metric maximised to pick the best
checkpoint and to stop early). Segmentation defines its own task with the same three members.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric, MetricCollection


class ClassificationTask:
    monitor = "accuracy"

    def __init__(self, num_classes: int, label_smoothing: float = 0.0) -> None:
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs, targets, label_smoothing=self.label_smoothing)

    def metrics(self) -> MetricCollection:
        return MetricCollection({"accuracy": Top1Accuracy()})


class Top1Accuracy(Metric):
    """Share of samples whose highest logit is the target class (torchmetrics' micro accuracy).

    Counted with two device-side sums: ``MulticlassAccuracy`` builds a confusion matrix with
    ``torch.bincount``, which waits for the GPU to learn its output size, so updating it after
    every training step stalls the queue of a small fast network once per step.
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("correct", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        self.correct += (preds.argmax(1) == target).sum()
        self.total += target.numel()

    def compute(self) -> Tensor:
        return self.correct.float() / self.total.clamp_min(1)
