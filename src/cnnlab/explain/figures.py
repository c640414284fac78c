"""Heatmap overlays and comparison grids, saved as PNG (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402

from cnnlab.report.plots import save_figure  # noqa: E402


def to_rgb(image: Tensor) -> np.ndarray:
    """C x H x W float image in [0, 1] -> H x W x 3 array (grey images repeated)."""
    arr = image.detach().cpu().float().clamp(0, 1).numpy().transpose(1, 2, 0)
    return np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr


def overlay(image: Tensor, cam: Tensor, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """The map in a colour scale blended over the image: H x W x 3 in [0, 1]."""
    heat = plt.get_cmap(cmap)(cam.detach().cpu().float().clamp(0, 1).numpy())[..., :3]
    return (1 - alpha) * to_rgb(image) + alpha * heat


def save_overlay(image: Tensor, cam: Tensor, path: str | Path, title: str = "") -> Path:
    """Image | map over image, side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.4))
    axes[0].imshow(to_rgb(image))
    axes[1].imshow(overlay(image, cam))
    for ax in axes:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def save_comparison(images: Tensor, maps: dict[str, Tensor], path: str | Path,
                    row_titles: Sequence[str] = ()) -> Path:
    """One row per image: the image, then each method's map over it."""
    methods = list(maps)
    rows, cols = len(images), len(methods) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.3 * rows), squeeze=False)
    for i in range(rows):
        axes[i, 0].imshow(to_rgb(images[i]))
        axes[i, 0].set_title(row_titles[i] if i < len(row_titles) else "", fontsize=7)
        for j, m in enumerate(methods, start=1):
            axes[i, j].imshow(overlay(images[i], maps[m][i]))
            if i == 0:
                axes[i, j].set_title(m, fontsize=9)
        for ax in axes[i]:
            ax.axis("off")
    return save_figure(fig, path)


def save_image(image: Tensor, path: str | Path, title: str = "") -> Path:
    fig, ax = plt.subplots(figsize=(4, 4.2))
    ax.imshow(to_rgb(image))
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def save_trajectory(values: dict[str, Sequence[float]], path: str | Path, xlabel: str = "step") -> Path:
    """One panel per series (e.g. class score and probability over gradient-ascent steps)."""
    fig, axes = plt.subplots(1, len(values), figsize=(4.2 * len(values), 3.2), squeeze=False)
    for ax, (name, ys) in zip(axes[0], values.items()):
        ax.plot(range(len(ys)), ys)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    return save_figure(fig, path)
