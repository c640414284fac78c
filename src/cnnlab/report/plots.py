"""The figures a student would otherwise hand-make in a notebook, saved as PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402

from cnnlab.core.fileio import atomic_path  # noqa: E402


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Tight layout, write atomically (creating the folder), close: every figure of cnnlab ends here."""
    path = Path(path)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path


def plot_curves(history: list[dict], path: str | Path, metric: str = "accuracy") -> Path:
    """Train vs validation loss and ``metric`` per epoch (the first thing to look at for overfitting)."""
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", metric)):
        for split, style in (("train", "-o"), ("val", "-s")):
            values = [r.get(f"{split}_{key}") for r in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, style, label=split, markersize=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, path)


def plot_confusion(matrix: np.ndarray, classes: Sequence[str], path: str | Path) -> Path:
    """Confusion matrix with counts; rows are true classes, columns predictions."""
    n = len(classes)
    fig, ax = plt.subplots(figsize=(max(5, 0.55 * n + 2), max(4, 0.55 * n + 1.5)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    thresh = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] > thresh else "black")
    return save_figure(fig, path)


def to_display(image: Tensor) -> np.ndarray:
    """uint8 C x H x W tensor -> array imshow understands (grey as 2-D)."""
    arr = image.cpu().numpy()
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def image_grid(images: Tensor, titles: Sequence[str], path: str | Path, cols: int = 4,
               colors: Sequence[str] | None = None) -> Path:
    """Images (uint8 N x C x H x W) in a grid with a title each (colour e.g. green/red for right/wrong)."""
    n = len(images)
    cols = min(cols, max(n, 1))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.5 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(to_display(images[k]), cmap="gray" if images.shape[1] == 1 else None)
            ax.set_title(titles[k], fontsize=8, color=(colors[k] if colors else "black"))
    return save_figure(fig, path)


def plot_pr_curve(precision: np.ndarray, recall: np.ndarray, path: str | Path,
                  point: tuple[float, float] | None = None, label: str = "") -> Path:
    """Precision-recall curve of a binary classifier, with the chosen operating point marked."""
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(recall, precision, label="test PR curve")
    if point is not None:
        ax.plot(point[1], point[0], "ro", label=label or "chosen threshold")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)
