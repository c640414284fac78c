"""From a trained model to masks: sliding windows, flip test-time augmentation, the decision threshold.

What a run chose for these (the validation threshold of a binary task, the flips averaged, the
tile size) is an :class:`Inference` stored in its checkpoint, so ``segment predict`` and
``segment evaluate`` give the measured quality without flags.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from cnnlab.segment import figures
from cnnlab.data.tensor_loader import SegLoader
from cnnlab.data.segmentation import IGNORE, SegSet
from cnnlab.segment.metrics import ThresholdSearch, confusion_matrix, per_class_table, predict_classes, scores
from cnnlab.train.engine import autocast

# flips averaged by test-time augmentation: the image dimensions each view flips
TTA_FLIPS: dict[str, tuple[tuple[int, ...], ...]] = {"": ((),), "h": ((), (-1,)), "hv": ((), (-1,), (-2,), (-2, -1))}
# images above this many pixels are tiled even without a window: memory stays bounded
LARGE_IMAGE_PIXELS = 4096 * 2048
AUTO_WINDOW = (1024, 1024)


@dataclass(frozen=True)
class Inference:
    """How logits become a mask: ``threshold`` on the sigmoid of binary tasks, ``tta`` flips
    averaged (``""``, ``"h"`` or ``"hv"``), ``window`` tiles of ``overlap`` (None: whole images,
    tiled with ``AUTO_WINDOW`` only when larger than ``LARGE_IMAGE_PIXELS``)."""

    threshold: float = 0.5
    tta: str = ""
    window: tuple[int, int] | None = None
    overlap: float = 0.25

    def __post_init__(self) -> None:
        if self.tta not in TTA_FLIPS:
            raise ValueError(f"tta must be one of {sorted(TTA_FLIPS)}, got {self.tta!r}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["window"] = list(self.window) if self.window else None
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> "Inference":
        d = dict(d or {})
        if d.get("window"):
            d["window"] = tuple(d["window"])
        return cls(**d)


def _starts(size: int, window: int, overlap: float) -> list[int]:
    stride = max(1, int(window * (1 - overlap)))
    starts = list(range(0, size - window + 1, stride))
    return starts if starts[-1] == size - window else starts + [size - window]


def _tiled(model: nn.Module, x: Tensor, window: Sequence[int] | None, overlap: float) -> Tensor:
    """Logits of the whole image at once, or averaged over overlapping ``window`` tiles.

    Tiles keep the memory of full-resolution prediction bounded; overlapping them averages away
    the weaker predictions near tile borders.
    """
    H, W = x.shape[-2:]
    if window is None and H * W > LARGE_IMAGE_PIXELS:
        window = AUTO_WINDOW
    if window is None or (window[0] >= H and window[1] >= W):
        return model(x).float()
    wh, ww = min(window[0], H), min(window[1], W)
    total, count = None, torch.zeros(1, 1, H, W, device=x.device)
    for y0 in _starts(H, wh, overlap):
        for x0 in _starts(W, ww, overlap):
            out = model(x[..., y0:y0 + wh, x0:x0 + ww]).float()
            if total is None:
                total = torch.zeros(len(x), out.shape[1], H, W, device=x.device)
            total[..., y0:y0 + wh, x0:x0 + ww] += out
            count[..., y0:y0 + wh, x0:x0 + ww] += 1
    return total / count


@torch.no_grad()
def flip_views(model: nn.Module, x: Tensor, window: Sequence[int] | None = None, overlap: float = 0.25,
               tta: str = "") -> list[Tensor]:
    """Logits of each test-time view, flipped back to the image's orientation (the first is the
    image itself)."""
    views = []
    with autocast(x.device):
        for dims in TTA_FLIPS[tta]:
            out = _tiled(model, x.flip(dims) if dims else x, window, overlap)
            views.append(out.flip(dims) if dims else out)
    return views


def infer(model: nn.Module, x: Tensor, window: Sequence[int] | None = None, overlap: float = 0.25,
          tta: str = "") -> Tensor:
    """Logits for a batch, averaged over the ``tta`` flips (a flip-symmetric model is unchanged)."""
    views = flip_views(model, x, window, overlap, tta)
    return views[0] if len(views) == 1 else torch.stack(views).mean(0)


def image_scores(pred: Tensor, target: Tensor, num_classes: int) -> dict[str, float | None]:
    """One image's scores: the whole-set definitions applied to its own confusion matrix.

    ``miou`` averages the classes present in its truth or prediction; binary tasks add the positive
    class's ``dice`` and ``iou``, None when the image has no positive pixel in either (nothing to miss).
    """
    s = scores(confusion_matrix(pred, target, num_classes, IGNORE))
    finite = lambda v: None if torch.isnan(v) else float(v)  # noqa: E731
    row = {"pixel_accuracy": float(s["pixel_accuracy"]), "miou": finite(s["miou"])}
    if num_classes == 2:
        row.update(dice=finite(s["dice"][1]), iou=finite(s["iou"][1]))
    return row


def rank_key(row: dict) -> float:
    """What "worst" means: the positive class's Dice (binary) or the image's mIoU; undefined counts as perfect."""
    value = row["dice"] if "dice" in row else row["miou"]
    return 1.0 if value is None else value


def evaluate_set(model: nn.Module, data: SegSet, mean, std, classes: list[str], device: torch.device,
                 inference: Inference = Inference(), batch_size: int = 4, figure: Path | None = None,
                 n_show: int = 4, search: ThresholdSearch | None = None, worst: int = 0,
                 worst_figure: Path | None = None) -> dict:
    """Scores of ``model`` over a whole set (one confusion matrix) with ``inference``'s settings.

    Also, in the same pass, ``plain``: the scores without TTA at threshold 0.5 (what the settings
    add). ``search`` (binary tasks) is fed the TTA logits, to choose a threshold afterwards.
    ``worst`` > 0 adds ``per_image`` (every image's own scores, in data order) and draws the
    ``worst`` lowest-scoring images to ``worst_figure``: what a user looks at next.
    """
    model.eval()
    k = len(classes)
    loader = SegLoader(data, batch_size, mean, std, device=device)
    cm = torch.zeros(k, k, dtype=torch.long, device=device)
    cm_plain = torch.zeros_like(cm)
    shown, per_image, kept = [], [], []  # kept: (key, index, prediction) of the worst images so far
    for x, y in loader:
        views = flip_views(model, x, inference.window, inference.overlap, inference.tta)
        logits = views[0] if len(views) == 1 else torch.stack(views).mean(0)
        pred = predict_classes(logits, inference.threshold)
        cm += confusion_matrix(pred, y, k, IGNORE)
        cm_plain += confusion_matrix(predict_classes(views[0]), y, k, IGNORE)
        if search is not None:
            search.update(logits, y)
        if len(shown) * batch_size < n_show:
            shown.append(pred.cpu())
        if worst:
            for p, t in zip(pred, y):
                row = {"name": data.names[len(per_image)], **image_scores(p, t, k)}
                kept = sorted(kept + [(rank_key(row), len(per_image), p.cpu())], key=lambda e: e[:2])[:worst]
                per_image.append(row)
    result = {**summarize(cm, classes), "images": len(data), "inference": inference.to_dict(),
              "plain": {k_: v for k_, v in summarize(cm_plain, classes).items() if k_ not in ("per_class", "confusion_matrix")}}
    if figure is not None and len(data):
        n = min(n_show, len(data))
        figures.prediction_panels(data.images[:n], data.masks[:n], torch.cat(shown)[:n], k, figure, data.names[:n])
    if worst:
        result["per_image"] = per_image
        if worst_figure is not None and kept:
            idx = [i for _, i, _ in kept]
            figures.prediction_panels(data.images[idx], data.masks[idx], torch.stack([p for *_, p in kept]), k,
                                      worst_figure, [data.names[i] for i in idx],
                                      [f"{'Dice' if k == 2 else 'mIoU'} {key:.3f}" for key, *_ in kept])
    return result


def summarize(cm: Tensor, classes: list[str]) -> dict:
    """The figures of metrics.json from a confusion matrix (binary tasks add the positive class's)."""
    s = scores(cm)
    out = {"miou": float(s["miou"]), "mdice": float(s["mdice"]), "pixel_accuracy": float(s["pixel_accuracy"]),
           "pixel_error": 1 - float(s["pixel_accuracy"]), "per_class": per_class_table(cm.cpu(), classes),
           "confusion_matrix": cm.cpu().tolist()}
    if len(classes) == 2:
        out.update(iou=float(s["iou"][1].nan_to_num(0)), dice=float(s["dice"][1].nan_to_num(0)))
    return out
