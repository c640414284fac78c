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
from torchmetrics.classification import BinaryAccuracy

from cnnlab.core.errors import CnnlabError


class ClassificationTask:
    monitor = "accuracy"

    def __init__(self, num_classes: int, label_smoothing: float = 0.0) -> None:
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs, targets, label_smoothing=self.label_smoothing)

    def metrics(self) -> MetricCollection:
        """Acc@1, and Acc@5 where there are more than 5 classes (ImageNet's pair of numbers)."""
        found = {"accuracy": TopKAccuracy(1)}
        if self.num_classes > 5:
            found["top5_accuracy"] = TopKAccuracy(5)
        return MetricCollection(found)


class TopKAccuracy(Metric):
    """Share of samples whose target class is among the ``k`` highest logits (torchmetrics' micro
    accuracy with ``top_k``; k = 1 is plain accuracy).

    Counted with two device-side sums: ``MulticlassAccuracy`` builds a confusion matrix with
    ``torch.bincount``, which waits for the GPU to learn its output size, so updating it after
    every training step stalls the queue of a small fast network once per step.
    """

    full_state_update = False

    def __init__(self, k: int = 1) -> None:
        super().__init__()
        self.k = k
        self.add_state("correct", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        if self.k == 1:
            self.correct += (preds.argmax(1) == target).sum()
        else:
            self.correct += (preds.topk(self.k, dim=1).indices == target[:, None]).any(1).sum()
        self.total += target.numel()

    def compute(self) -> Tensor:
        return self.correct.float() / self.total.clamp_min(1)


class BinaryTask:
    """Two classes, ONE output: a sigmoid on one logit, trained with binary cross-entropy.

    The model's ``N x 1`` output is the logit of the positive class (class index 1). Label smoothing
    pulls the targets towards 0.5 by ``label_smoothing / 2``, as K-way smoothing does for K = 2.
    """

    monitor = "accuracy"
    num_classes = 2

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        y = targets.float() * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        return F.binary_cross_entropy_with_logits(outputs.view(-1), y)

    def metrics(self) -> MetricCollection:
        return MetricCollection({"accuracy": _BinaryLogitAccuracy()})


class _BinaryLogitAccuracy(BinaryAccuracy):
    """BinaryAccuracy at probability 0.5 fed with ``N x 1`` logits."""

    def update(self, preds: Tensor, target: Tensor) -> None:  # type: ignore[override]
        super().update(preds.view(-1).sigmoid(), target)


def make_task(loss: str, num_classes: int, label_smoothing: float = 0.0):
    """The task for ``--loss``: ``ce`` (K logits, softmax cross-entropy) or ``bce`` (one logit, two classes)."""
    if loss == "bce":
        if num_classes != 2:
            raise CnnlabError(f"--loss bce needs a two-class dataset (one sigmoid output); this one has {num_classes}")
        return BinaryTask(label_smoothing)
    if loss != "ce":
        raise CnnlabError(f"unknown loss {loss!r}; expected ce or bce")
    return ClassificationTask(num_classes, label_smoothing)
