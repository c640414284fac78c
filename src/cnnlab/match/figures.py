"""What ``cnnlab match`` draws: the score map over the search image, and the boxes on it."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from torch import Tensor  # noqa: E402

from cnnlab.data.images import to_rgb  # noqa: E402
from cnnlab.core.fileio import atomic_path  # noqa: E402
from cnnlab.match.matcher import Match  # noqa: E402
from cnnlab.report.plots import save_figure  # noqa: E402

COLOURS = ("#00ff00", "#ff00ff", "#00ffff", "#ffff00", "#ff8000")


def save_heatmap(search: Tensor, score_map: Tensor, matches: Sequence[Match], path: str | Path,
                 title: str = "") -> Path:
    """The score of the box centred at each pixel, in colour over the search image, with the boxes."""
    h, w = search.shape[-2:]
    fig, ax = plt.subplots(figsize=(min(12, 2 + 6 * w / max(h, w)), min(10, 1 + 6 * h / max(h, w))))
    ax.imshow(to_rgb(search))
    heat = ax.imshow(score_map.float().numpy(), cmap="jet", alpha=0.5)  # NaN (no window) stays clear
    fig.colorbar(heat, ax=ax, fraction=0.046, pad=0.02, label="score")
    for i, m in enumerate(matches):
        x, y, bw, bh = m.box
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), bw, bh, fill=False, lw=2, color=COLOURS[i % len(COLOURS)]))
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return save_figure(fig, path)


def save_boxes(search: Tensor, matches: Sequence[Match], path: str | Path) -> Path:
    """The search image at its own size with each box drawn (rank and score written above it)."""
    from PIL import Image, ImageDraw

    im = Image.fromarray((to_rgb(search) * 255).round().astype(np.uint8))
    draw = ImageDraw.Draw(im)
    width = max(1, round(max(im.size) / 250))
    for i, m in enumerate(matches):
        x, y, bw, bh = m.box
        colour = COLOURS[i % len(COLOURS)]
        draw.rectangle([x, y, x + bw - 1, y + bh - 1], outline=colour, width=width)
        draw.text((x + 2, max(0, y - 11)), f"{i + 1}: {m.score:.3f}", fill=colour)
    path = Path(path)
    with atomic_path(path) as tmp:
        im.save(tmp, format="PNG")
    return path


def save_failures(pairs: Sequence, found: dict[str, Sequence[float]], ious: dict[str, float], method: str,
                  path: str | Path) -> Path:
    """One row per failed pair: the template as cut from its frame | the search image with the true
    box (green) and the box ``method`` found (magenta), its IoU in the title."""
    from cnnlab.match.images import load_image

    fig, axes = plt.subplots(len(pairs), 2, figsize=(8, 3.2 * len(pairs)), squeeze=False,
                             gridspec_kw={"width_ratios": (1, 2)})
    for (left, right), pair in zip(axes, pairs):
        x, y, w, h = (round(v) for v in pair.template_box)
        left.imshow(to_rgb(load_image(pair.template_image)[:, y:y + max(h, 1), x:x + max(w, 1)]))
        left.set_title(f"{pair.name}: template", fontsize=8)
        right.imshow(to_rgb(load_image(pair.search_image)))
        for box, colour in ((pair.true_box, COLOURS[0]), (found[pair.name], COLOURS[1])):
            bx, by, bw, bh = box
            right.add_patch(Rectangle((bx - 0.5, by - 0.5), bw, bh, fill=False, lw=2, color=colour))
        right.set_title(f"{method}: IoU {ious[pair.name]:.2f} (green: truth, magenta: found)", fontsize=8)
        for ax in (left, right):
            ax.axis("off")
    return save_figure(fig, path, dpi=80)
