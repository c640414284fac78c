"""Measuring explanations instead of looking at them: faithfulness and stability.

- Deletion (Petsiuk et al. 2018, RISE): remove pixels most-important-first and follow the target
  probability; a faithful map makes it fall fast, so a *lower* area under the curve is better.
- Insertion: start from a blurred image and put pixels back most-important-first; *higher* is better.
- Stability: how much a map changes when the input gets a little noise, as the Spearman rank
  correlation between the clean and noisy maps (1 = same ranking of pixels; higher is more stable).
- Shift under attack (:func:`map_shift`): how far a map moves when an FGSM/PGD perturbation moves
  the input, as rank correlation and top-k overlap with the clean map, and whether the moved map is
  still faithful (deletion AUC). The course lab that compares methods and models with it is
  ``cnnlab lab cam-robustness`` (:mod:`cnnlab.labs.catalog.cam_robustness`).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torchvision.transforms.functional as TF
from torch import Tensor, nn
from torchmetrics.functional import spearman_corrcoef

from cnnlab.attack.attacks import run_attack
from cnnlab.attack.sweep import predict
from cnnlab.core.errors import CnnlabError
from cnnlab.explain.cam import BaseCAM, get_cam

BASELINES = ("zero", "blur", "mean")


def baseline_image(images: Tensor, kind: str) -> Tensor:
    """What a removed pixel becomes: black, a heavy blur of the image (RISE), or the image's mean colour."""
    if kind == "zero":
        return torch.zeros_like(images)
    if kind == "blur":
        size = images.shape[-1]
        sigma = max(size / 45, 0.5)  # RISE: sigma 5 at 224 pixels
        kernel = 2 * int(2 * sigma) + 1
        return TF.gaussian_blur(images, [kernel, kernel], [sigma, sigma])
    if kind == "mean":
        return images.mean(dim=(-2, -1), keepdim=True).expand_as(images)
    raise CnnlabError(f"unknown baseline {kind!r}; expected one of {', '.join(BASELINES)}")


def perturbation_curve(model: nn.Module, images: Tensor, maps: Tensor, targets: Tensor, mode: str = "deletion",
                       steps: int = 20, baseline: str | None = None, batch_size: int = 64) -> Tensor:
    """``N x (steps + 1)`` target probabilities as pixels are deleted (or inserted) in map order.

    Step ``j`` changes the ``j/steps`` fraction of most important pixels; ties in the map keep
    their raster order, so a constant map deletes top-left first.
    """
    if mode not in ("deletion", "insertion"):
        raise CnnlabError(f"mode must be deletion or insertion, got {mode!r}")
    baseline = baseline or ("zero" if mode == "deletion" else "blur")
    device = next(model.parameters()).device
    images, maps, targets = images.to(device), maps.to(device), targets.to(device)
    n, hw = len(images), maps[0].numel()
    order = maps.flatten(1).argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(hw, device=device).expand(n, hw))
    counts = torch.round(torch.linspace(0, hw, steps + 1, device=device)).long()
    base = baseline_image(images, baseline)
    probs = torch.empty(n, steps + 1, device=device)
    with torch.no_grad():
        for i in range(n):
            changed = (rank[i][None] < counts[:, None]).view(steps + 1, 1, *maps.shape[1:])
            first, second = (base[i], images[i]) if mode == "deletion" else (images[i], base[i])
            variants = torch.where(changed, first, second)
            logits = torch.cat([model(v) for v in variants.split(batch_size)])
            probs[i] = logits.softmax(1)[:, targets[i]]
    return probs


def auc(curve: Tensor) -> Tensor:
    """Area under ``N x (steps + 1)`` curves sampled evenly on [0, 1] (trapezoid rule)."""
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[1] - 1), dim=1)


def deletion_auc(model, images, maps, targets, steps: int = 20, baseline: str = "zero") -> Tensor:
    """Per-image area under the deletion curve: lower means the map found what the model uses."""
    return auc(perturbation_curve(model, images, maps, targets, "deletion", steps, baseline))


def insertion_auc(model, images, maps, targets, steps: int = 20, baseline: str = "blur") -> Tensor:
    """Per-image area under the insertion curve: higher means the map found what the model uses."""
    return auc(perturbation_curve(model, images, maps, targets, "insertion", steps, baseline))


def rank_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Spearman correlation between ``a[i]`` and ``b[i]`` for each i (ties get their average rank)."""
    return spearman_corrcoef(a.flatten(1).T.double().cpu(), b.flatten(1).T.double().cpu()).reshape(-1).float()


def noise_stability(explain: Callable[[Tensor, Tensor], Tensor], images: Tensor, targets: Tensor,
                    sigma: float = 0.03, repeats: int = 3, seed: int = 0, maps: Tensor | None = None) -> Tensor:
    """Per-image mean rank correlation between the map of each image and of ``repeats`` noisy copies.

    ``explain(images, targets) -> maps``; the target class is held fixed so the score measures how
    the explanation moves, not whether the prediction flips. Noise is Gaussian in [0, 1] pixel
    units (0.03 is about 8 grey levels), clipped to the valid range.
    """
    if sigma < 0:
        raise CnnlabError(f"noise sigma must be >= 0, got {sigma}")
    g = torch.Generator().manual_seed(seed)
    clean = explain(images, targets) if maps is None else maps
    scores = []
    for _ in range(repeats):
        noise = torch.randn(images.shape, generator=g).to(images.device)
        scores.append(rank_correlation(clean, explain((images + sigma * noise).clamp(0, 1), targets)))
    return torch.stack(scores).mean(0)


# ---------------------------------------------------------------- maps under attack

DEFAULT_METHODS = ("gradcam", "shapcam")  # the two 003 Q1b asks about
DEFAULT_ATTACKS = ("fgsm", "pgd")
DEFAULT_EPS = (0.01, 0.03, 0.1)


def topk_overlap(a: Tensor, b: Tensor, fraction: float = 0.1) -> Tensor:
    """Per image, the share of ``a[i]``'s top ``fraction`` of pixels that are also in ``b[i]``'s top ``fraction``."""
    fa, fb = a.flatten(1), b.flatten(1)
    k = max(1, round(fraction * fa.shape[1]))

    def top(f: Tensor) -> Tensor:
        return torch.zeros_like(f, dtype=torch.bool).scatter_(1, f.topk(k, dim=1).indices, True)

    return (top(fa) & top(fb)).sum(1).float() / k


def map_correlation(a: Tensor, b: Tensor) -> Tensor:
    """Spearman correlation per image; NaN where either map is constant (an all-zero CAM ranks nothing)."""
    def constant(m: Tensor) -> Tensor:
        return (m.flatten(1).amax(1) == m.flatten(1).amin(1)).cpu()

    return rank_correlation(a, b).masked_fill(constant(a) | constant(b), float("nan"))


def make_cams(model: nn.Module, methods: Sequence[str], layer: str | None, samples: int, seed: int) -> dict[str, BaseCAM]:
    """One CAM per method on the same layer; Shap-CAM's channel orders are seeded, so its maps are repeatable."""
    return {m: get_cam(m, model, layer, **({"samples": samples, "seed": seed} if m == "shapcam" else {}))
            for m in methods}


def attack_images(model: nn.Module, images: Tensor, labels: Tensor, attack: str, eps: float, pgd_steps: int,
                  seed: int) -> Tensor:
    """The untargeted ``attack`` of each image's ``labels`` (its clean prediction) at budget ``eps``."""
    kwargs: dict = {}
    if attack in ("pgd", "ifgsm"):
        kwargs["steps"] = pgd_steps
    if attack == "pgd":
        kwargs["generator"] = torch.Generator().manual_seed(seed)
    return run_attack(attack, model, images, labels, eps, **kwargs)


def _mean(values: Tensor) -> float | None:
    """Mean over the finite values (a constant map has no rank correlation), None when there are none."""
    finite = values[torch.isfinite(values)]
    return float(finite.mean()) if len(finite) else None


def group_summary(spearman: Tensor, overlap: Tensor, deletion: Tensor, keep: Tensor) -> dict:
    """Means of the three measures over the images selected by the boolean ``keep``."""
    return {"n": int(keep.sum()), "spearman": _mean(spearman[keep]), "topk_overlap": _mean(overlap[keep]),
            "deletion_auc": _mean(deletion[keep]), "undefined": int((~torch.isfinite(spearman[keep])).sum())}


def map_shift(model: nn.Module, images: Tensor, methods: Sequence[str] = DEFAULT_METHODS,
              attacks: Sequence[str] = DEFAULT_ATTACKS, eps: Sequence[float] = DEFAULT_EPS, *,
              topk: float = 0.1, pgd_steps: int = 10, deletion_steps: int = 20, samples: int = 16,
              layer: str | None = None, seed: int = 0) -> dict:
    """Every method's maps on clean and attacked ``images`` (pixels in [0, 1]); how far they moved.

    Returns ``{"clean": ..., "rows": [...], "last": ...}``: per method the clean maps' deletion AUC,
    one row per (method, attack, eps) with per-image values and held/flipped summaries, and the
    tensors of the first attack at its largest budget (for the figure).
    """
    model.eval()
    clean_pred = predict(model, images).argmax(1)
    cams = make_cams(model, methods, layer, samples, seed)
    clean_maps = {m: cam(images, clean_pred) for m, cam in cams.items()}
    clean = {m: {"deletion_auc": _mean(deletion_auc(model, images, clean_maps[m], clean_pred, deletion_steps)),
                 "layer": cams[m].layer_name} for m in methods}
    rows, last = [], None
    for attack in attacks:
        for e in eps:
            adv = attack_images(model, images, clean_pred, attack, e, pgd_steps, seed)
            pred = predict(model, adv).argmax(1)
            flipped = pred != clean_pred
            maps = {}
            for m, cam in cams.items():
                maps[m] = cam(adv, pred)
                rho = map_correlation(clean_maps[m], maps[m])
                overlap = topk_overlap(clean_maps[m], maps[m], topk)
                dele = deletion_auc(model, adv, maps[m], pred, deletion_steps)
                rows.append({"method": m, "attack": attack, "eps": float(e), "flip_rate": float(flipped.float().mean()),
                             "all": group_summary(rho, overlap, dele, torch.ones_like(flipped)),
                             "held": group_summary(rho, overlap, dele, ~flipped),
                             "flipped": group_summary(rho, overlap, dele, flipped),
                             "per_image": {"flipped": flipped.tolist(), "spearman": rho.tolist(),
                                           "topk_overlap": overlap.tolist(), "deletion_auc": dele.tolist()}})
            if attack == attacks[0] and e == max(eps):
                last = {"attack": attack, "eps": float(e), "adv": adv, "pred": pred, "maps": maps}
    return {"clean": clean, "clean_prediction": clean_pred.tolist(), "clean_maps": clean_maps, "rows": rows,
            "last": last}
