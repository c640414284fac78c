"""Segmentation figures: colour-coded masks and image | truth | prediction panels."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402

from cnnlab.report.plots import save_figure  # noqa: E402
from cnnlab.data.segmentation import IGNORE  # noqa: E402

# SegNet's CamVid colours for the first 11 classes, then tab20
_CAMVID = [(128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
           (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192)]


def class_colours(num_classes: int) -> np.ndarray:
    """``num_classes x 3`` uint8 colours; binary tasks show the positive class in red."""
    if num_classes == 2:
        return np.array([(0, 0, 0), (255, 40, 40)], dtype=np.uint8)
    tab = [tuple(int(255 * c) for c in plt.cm.tab20(i)[:3]) for i in range(20)]
    return np.array((_CAMVID + tab * (1 + num_classes // 20))[:num_classes], dtype=np.uint8)


def colour_mask(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Class indices -> RGB; ignored pixels black."""
    colours = class_colours(num_classes)
    out = colours[np.where(mask == IGNORE, 0, mask).clip(0, num_classes - 1)]
    out[mask == IGNORE] = 0
    return out


def overlay(image: np.ndarray, mask: np.ndarray, num_classes: int, alpha: float = 0.5) -> np.ndarray:
    """The image (H x W x C uint8) with the coloured mask blended in (binary: positives only)."""
    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    colour = colour_mask(mask, num_classes).astype(np.float32)
    where = (mask != IGNORE) & ((mask > 0) if num_classes == 2 else True)
    a = alpha * where[..., None]
    return (rgb * (1 - a) + colour * a).astype(np.uint8)


def prediction_panels(images: Tensor, truths: Tensor, preds: Tensor, num_classes: int, path: str | Path,
                      names: list[str] | None = None, scores: list[str] | None = None) -> Path:
    """One row per image: image | truth overlay | prediction overlay."""
    n = len(images)
    h, w = images.shape[-2:]
    fig, axes = plt.subplots(n, 3, figsize=(3 * 3.2 * max(w / h, 0.5), 3.2 * n), squeeze=False)
    for i in range(n):
        img = images[i].permute(1, 2, 0).cpu().numpy()
        truth, pred = truths[i].cpu().numpy(), preds[i].cpu().numpy()
        panels = [(img[..., 0] if img.shape[2] == 1 else img, names[i] if names else "image"),
                  (overlay(img, truth, num_classes), "truth"),
                  (overlay(img, pred, num_classes), "prediction" + (f" ({scores[i]})" if scores else ""))]
        for ax, (arr, title) in zip(axes[i], panels):
            ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    return save_figure(fig, path, dpi=90)
