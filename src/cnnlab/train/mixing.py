"""Mixup and CutMix on training batches, through ``torchvision.transforms.v2``.

Both blend two images of a batch and their labels: MixUp the whole image (``lam * x_i + (1 - lam)
* x_j``), CutMix a box of one pasted into the other, ``lam`` drawn from ``Beta(alpha, alpha)``
per batch. The targets become class probabilities, which ``F.cross_entropy`` takes as they are,
so the classification loss needs no change. With both on, each batch gets one of the two
(``RandomChoice``, as timm's ``Mixup(switch_prob=0.5)``).
"""
from __future__ import annotations

from typing import Any, Callable

from torch import Tensor

from cnnlab.core.errors import CnnlabError

Mixer = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def batch_mixer(mixup: float, cutmix: float, task: Any) -> Mixer | None:
    """``(images, labels) -> (mixed images, soft labels)`` for the given Beta alphas, or None when both are 0.

    Only a K-way softmax task can learn from mixed labels (a one-logit BCE task or a segmentation
    task has no class-probability target), so any other task is refused here, before training.
    """
    if not mixup and not cutmix:
        return None
    from torchvision.transforms import v2

    from cnnlab.train.tasks import ClassificationTask

    if not isinstance(task, ClassificationTask):
        raise CnnlabError("--mixup/--cutmix need a K-way softmax classifier (--loss ce); "
                          f"this run trains a {type(task).__name__}")
    choices = [t for alpha, t in ((mixup, v2.MixUp), (cutmix, v2.CutMix)) if alpha]
    alphas = [a for a in (mixup, cutmix) if a]
    transforms = [make(alpha=a, num_classes=task.num_classes) for make, a in zip(choices, alphas)]
    return transforms[0] if len(transforms) == 1 else v2.RandomChoice(transforms)
