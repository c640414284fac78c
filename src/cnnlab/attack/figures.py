"""Attack figures: clean | perturbation | adversarial panels, accuracy-vs-eps curves, flip-budget histogram."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from torch import Tensor  # noqa: E402

from cnnlab.data.images import to_rgb  # noqa: E402
from cnnlab.report.plots import save_figure  # noqa: E402


def save_panels(clean: Tensor, adv: Tensor, clean_probs: Tensor, adv_probs: Tensor, classes: Sequence[str],
                path: str | Path, eps: Sequence[float]) -> Path:
    """One row per image: clean (prediction, confidence) | perturbation scaled to the full range | adversarial."""
    n = len(clean)
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.6 * n), squeeze=False)
    for i in range(n):
        delta = adv[i] - clean[i]
        scale = float(delta.abs().max()) or 1.0
        p0, c0 = clean_probs[i].max(0)
        p1, c1 = adv_probs[i].max(0)
        axes[i, 0].imshow(to_rgb(clean[i]))
        axes[i, 0].set_title(f"clean: {classes[c0]} ({p0:.2f})", fontsize=8)
        axes[i, 1].imshow(to_rgb(0.5 + delta / (2 * scale)))
        axes[i, 1].set_title(f"perturbation x{0.5 / scale:.0f}, eps {eps[i]:.4f}", fontsize=8)
        axes[i, 2].imshow(to_rgb(adv[i]))
        axes[i, 2].set_title(f"adversarial: {classes[c1]} ({p1:.2f})", fontsize=8,
                             color="red" if c1 != c0 else "black")
        for ax in axes[i]:
            ax.axis("off")
    return save_figure(fig, path)


def plot_accuracy_vs_eps(eps: Sequence[float], curves: dict[str, Sequence[float]], path: str | Path) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for name, acc in curves.items():
        ax.plot(eps, acc, "-o", markersize=3, label=name)
    ax.set_xlabel("eps (L-inf, [0, 1] pixels)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_flip_histogram(values: np.ndarray, path: str | Path) -> Path:
    """Histogram of the smallest flipping FGSM budget per image (images that never flip are counted apart)."""
    held = values[values > 0]  # 0: wrong before any attack
    fig, ax = plt.subplots(figsize=(5, 3.8))
    ax.hist(held[np.isfinite(held)], bins=30)
    ax.set_xlabel("smallest FGSM eps that flips a correct prediction")
    ax.set_ylabel("images")
    ax.set_title(f"median {np.median(held) if len(held) else float('nan'):.4f} over {len(held)} correct images; "
                 f"{int(np.isinf(held).sum())} never flipped", fontsize=9)
    return save_figure(fig, path)
