"""Heatmap overlays and comparison grids, saved as PNG (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from cnnlab.data.images import to_rgb  # noqa: E402
from cnnlab.report.plots import save_figure  # noqa: E402


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


def _example_rows(res: dict, k: int) -> list[int]:
    """Up to ``k`` images whose prediction held and ``k`` that flipped under the figure's attack."""
    flipped = (res["last"]["pred"].cpu() != torch.tensor(res["clean_prediction"])).tolist()
    return [i for i, f in enumerate(flipped) if not f][:k] + [i for i, f in enumerate(flipped) if f][:k]


def save_robustness_maps(images: Tensor, results: dict[str, dict], classes: Sequence[str], path: str | Path,
                         k: int = 2) -> Path:
    """Per model and example image: clean image | each method's clean map | attacked image | each method's map on it."""
    rows = [(key, i) for key, res in results.items() for i in _example_rows(res, k)]
    methods = list(next(iter(results.values()))["clean_maps"])
    cols = 2 * (len(methods) + 1)
    fig, axes = plt.subplots(max(len(rows), 1), cols, figsize=(1.9 * cols, 2.1 * max(len(rows), 1)), squeeze=False)
    for r, (key, i) in enumerate(rows):
        res, last = results[key], results[key]["last"]
        rho = {row["method"]: row["per_image"]["spearman"][i] for row in res["rows"]
               if row["attack"] == last["attack"] and row["eps"] == last["eps"]}
        adv = last["adv"][i]
        panels = [(images[i], None, f"{key}: {classes[res['clean_prediction'][i]]}")]
        panels += [(images[i], res["clean_maps"][m][i], f"{m}, clean") for m in methods]
        panels += [(adv, None, f"{last['attack']} {last['eps']:g}: {classes[int(last['pred'][i])]}")]
        panels += [(adv, last["maps"][m][i], f"{m}, rho {rho[m]:.2f}") for m in methods]
        for c, (image, cam, title) in enumerate(panels):
            axes[r, c].imshow(to_rgb(image) if cam is None else overlay(image, cam))
            axes[r, c].set_title(title, fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    return save_figure(fig, path)


def plot_map_stability(results: dict[str, dict], path: str | Path) -> Path:
    """:func:`map_stability` written to ``path``."""
    return save_figure(map_stability(results), path)


def map_stability(results: dict[str, dict]) -> plt.Figure:
    """Mean Spearman and top-k overlap with the clean map against the budget, per model, method and attack."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    styles = {"clean": "-", "adversarial": "--"}
    for key, res in results.items():
        for j, (m, a) in enumerate(dict.fromkeys((r["method"], r["attack"]) for r in res["rows"])):
            rows = [r for r in res["rows"] if r["method"] == m and r["attack"] == a]
            for ax, measure in zip(axes, ("spearman", "topk_overlap")):
                ys = [np.nan if r["all"][measure] is None else r["all"][measure] for r in rows]
                ax.plot([0] + [r["eps"] for r in rows], [1] + ys, styles.get(key, ":"), marker="o", ms=3,
                        color=f"C{j}", label=f"{key}: {m}, {a}")
    for ax, name in zip(axes, ("Spearman with the clean map", "top-k overlap with the clean map")):
        ax.set(xlabel="eps (L-inf, [0, 1] pixels)", ylabel=name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return fig


def save_attack_vs_class_model(image: Tensor, delta: Tensor, target_model: Tensor, baseline_model: Tensor,
                               r: dict, path: str | Path) -> Path:
    """Image | minimal targeted perturbation (scaled to the full range) | attacked image | the target's class
    model | a random class's class model, with the perturbation's Pearson correlation to each class model."""
    scale = float(delta.abs().max()) or 1.0
    panels = [(image, f"image: {r['clean_prediction']}"),
              (0.5 + delta / (2 * scale), f"perturbation ({r['method']}, L-inf {r['linf']:.4f})"),
              ((image + delta).clamp(0, 1), f"attacked: {r['target'] if r['reached'] else 'target not reached'}"),
              (target_model, f"class model {r['target']}: r={r['pearson_target']:.3f}"),
              (baseline_model, f"class model {r['baseline_class']}: r={r['pearson_baseline']:.3f}")]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.8 * len(panels), 3.2))
    for ax, (img, title) in zip(axes, panels):
        ax.imshow(to_rgb(img))
        ax.set_title(title, fontsize=7)
        ax.axis("off")
    return save_figure(fig, path)


def save_untargeted_vs_class_models(models: Tensor, arrays: dict, classes: Sequence[str], wanted: Sequence[int],
                                    r: dict, path: str | Path) -> Path:
    """003 Q7b, one row per class C: C's class model | the mean untargeted FGSM direction over C's images
    (mean sign of the gradient, blue -1 .. red +1) | the mean Pearson r of the per-image direction with every
    class model (± 2 SE), C's own bar in red."""
    rows = [c for c in wanted if classes[c] in r["sign"]["per_class"]]  # classes with correctly classified images
    fig, axes = plt.subplots(len(rows), 3, figsize=(9.5, 2.2 * len(rows) + 0.4), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 2.6]})
    corr, labels = arrays["r_sign"], arrays["labels"]
    for ax, c in zip(axes, rows):
        stats = r["sign"]["per_class"][classes[c]]
        ax[0].imshow(to_rgb(models[c]))
        ax[0].set_title(f"class model: {classes[c]}", fontsize=7)
        mean = arrays["mean_sign"][c]
        ax[1].imshow(mean.mean(0).numpy(), cmap="bwr", vmin=-1, vmax=1)
        ax[1].set_title(f"mean FGSM direction (n={stats['own']['n']})\n"
                        f"r with own model {r['mean_direction_correlation'][classes[c]][classes[c]]:+.3f}", fontsize=7)
        for a in ax[:2]:
            a.axis("off")
        rc = corr[labels == c]
        m = rc.nanmean(0).numpy()
        k = torch.isfinite(rc).sum(0).clamp(min=2)
        se = (torch.nan_to_num(rc - rc.nanmean(0)) ** 2).sum(0).div(k - 1).sqrt().div(k.sqrt()).numpy()
        colours = ["tab:red" if j == c else "tab:grey" for j in range(len(classes))]
        ax[2].bar(range(len(classes)), m, yerr=2 * se, color=colours)
        ax[2].axhline(0, color="black", lw=0.5)
        ax[2].set_xticks(range(len(classes)))
        ax[2].set_xticklabels(classes, fontsize=6, rotation=30, ha="right")
        ax[2].set_ylabel("r", fontsize=7)
        d = stats["difference"]
        ax[2].set_title(f"r(own) {stats['own']['mean']:+.3f} vs r(others) {stats['others']['mean']:+.3f}: "
                        f"{d['mean']:+.3f} ± {2 * d['se']:.3f} (2 SE): own {stats['outcome']}", fontsize=7)
    fig.suptitle("untargeted FGSM direction vs class models (Pearson r over pixels, per image; bars ± 2 SE)",
                 fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.965))
    return save_figure(fig, path)
