"""The segmentation task for the training engine: loss, whole-set metrics, monitored score.

Noisy labels (DC1000's masks miss some caries and add others). Strategy, off unless
``noisy_drop > 0``: *small-loss selection* (Han et al., 2018, co-teaching; Jiang et al., 2018).
Networks fit clean labels before they memorise wrong ones, so after ``warmup_steps`` training
steps the images of each batch are ranked by their own mean (B)CE and the ``noisy_drop`` fraction
with the highest loss — the masks the model most disagrees with — is left out of that step's
loss. Evaluation always uses every image. The warm-up counts training steps of this task object
(a resumed run counts again from zero).
"""
from __future__ import annotations

import math
from typing import Callable

from torch import Tensor
from torchmetrics import MetricCollection

from cnnlab.data.segmentation import IGNORE
from cnnlab.segment.losses import per_sample_loss
from cnnlab.segment.metrics import SegmentationMetrics


class SegmentationTask:
    def __init__(self, num_classes: int, loss: Callable[[Tensor, Tensor], Tensor], ignore_index: int = IGNORE,
                 noisy_drop: float = 0.0, warmup_steps: int = 0) -> None:
        if not 0 <= noisy_drop < 1:
            raise ValueError(f"noisy_drop must be in [0, 1), got {noisy_drop}")
        self.num_classes, self.criterion, self.ignore_index = num_classes, loss, ignore_index
        self.noisy_drop, self.warmup_steps, self.steps = noisy_drop, warmup_steps, 0
        self.dropped = 0  # images left out so far (reported in metrics.json)
        self.monitor = "dice" if num_classes == 2 else "miou"

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        if outputs.requires_grad:  # a training step (evaluation runs without gradients)
            self.steps += 1
        return self.aux_loss(outputs, targets, count=True)

    def aux_loss(self, outputs: Tensor, targets: Tensor, count: bool = False) -> Tensor:
        """The loss of an auxiliary output (deep supervision; the engine's ``task_loss`` calls it after
        ``loss`` on the main output of the same step): the same criterion and small-loss selection,
        not counted again as a step or in ``dropped``."""
        if outputs.requires_grad and self.noisy_drop > 0 and self.steps > self.warmup_steps:
            outputs, targets = self.small_loss_subset(outputs, targets, count)
        return self.criterion(outputs, targets)

    def small_loss_subset(self, outputs: Tensor, targets: Tensor, count: bool = True) -> tuple[Tensor, Tensor]:
        """The batch without its ``noisy_drop`` fraction of highest-loss images (at least one kept);
        ``count`` adds them to ``dropped``."""
        keep = max(1, len(targets) - math.floor(self.noisy_drop * len(targets)))
        if keep == len(targets):
            return outputs, targets
        scores = per_sample_loss(outputs.detach(), targets, self.ignore_index)
        idx = scores.argsort()[:keep]
        self.dropped += (len(targets) - keep) * count
        return outputs[idx], targets[idx]

    def metrics(self) -> MetricCollection:
        return MetricCollection({"seg": SegmentationMetrics(self.num_classes, self.ignore_index)})
