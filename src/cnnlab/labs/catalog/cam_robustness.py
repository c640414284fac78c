"""003 Q1b: how far do class activation maps move when an adversarial perturbation moves the input?

A model that a few grey levels fool should not be trusted to explain itself either. The
experiment explains the same test images before and after an FGSM/PGD perturbation of growing
budget and measures, per image, how far each CAM moved:

- Spearman rank correlation of the perturbed map with the clean map (1: same ranking of pixels),
- top-k overlap: the share of the clean map's most important ``fraction`` of pixels that are still
  among the perturbed map's most important ones (1: the same region is highlighted),
- deletion AUC of the perturbed map on the perturbed image (lower: the map still points at what
  the model uses for its new decision, i.e. it stays faithful even if it moved).

Each map explains the model's top-1 class on the image it is given (what a user of the CAM would
see): on images whose prediction flipped, the perturbed map explains the new, wrong class. The
images are split into those whose prediction *held* and those where it *flipped*, since a map that
moves after a flip is expected, one that moves while the decision holds is not.

Differences between methods and models are judged against their per-image standard error: a gap
within twice the standard error is reported as "within noise", never as a win.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from cnnlab.attack.attacks import run_attack
from cnnlab.attack.sweep import predict
from cnnlab.explain.cam import BaseCAM, get_cam
from cnnlab.explain.metrics import deletion_auc, rank_correlation

DEFAULT_METHODS = ("gradcam", "shapcam")
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


def per_image_mean(rows: list[dict], method: str, measure: str = "spearman", held_only: bool = False) -> Tensor:
    """Each image's ``measure`` averaged over every attack and budget (NaN where a map was constant).

    ``held_only`` averages only the settings in which the image's prediction held (NaN if it never did).
    """
    mine = [r for r in rows if r["method"] == method]
    values = torch.tensor([r["per_image"][measure] for r in mine], dtype=torch.float64)
    if held_only:
        flipped = torch.tensor([r["per_image"]["flipped"] for r in mine])
        values = values.masked_fill(flipped, float("nan"))
    return values.nanmean(0)


def mean_gap(a: Tensor, b: Tensor, paired: bool = True) -> dict:
    """``mean(a) - mean(b)`` and its standard error (paired: over per-image differences)."""
    if paired:
        ok = torch.isfinite(a) & torch.isfinite(b)
        d = (a - b)[ok]
        se = float(d.std() / math.sqrt(len(d))) if len(d) > 1 else float("inf")
        return {"a": float(a[ok].mean()), "b": float(b[ok].mean()), "difference": float(d.mean()), "se": se,
                "n": int(len(d))}
    a, b = a[torch.isfinite(a)], b[torch.isfinite(b)]
    se = math.sqrt(float(a.var()) / len(a) + float(b.var()) / len(b)) if min(len(a), len(b)) > 1 else float("inf")
    return {"a": float(a.mean()), "b": float(b.mean()), "difference": float(a.mean() - b.mean()), "se": se,
            "n": int(min(len(a), len(b)))}


def compare_gap(gap: dict) -> str:
    """``"higher"``, ``"lower"`` or ``"same"`` (within twice the standard error): the wording of every verdict."""
    from cnnlab.core.text import versus

    return versus(gap["difference"], gap["se"])


NAMES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "scorecam": "Score-CAM", "shapcam": "Shap-CAM"}


def _gap_text(gap: dict) -> str:
    return f"{gap['a']:.3f} vs {gap['b']:.3f}, difference {gap['difference']:+.3f} +- {2 * gap['se']:.3f} (2 SE, n={gap['n']})"


def method_verdict(model_name: str, rows: list[dict], methods: Sequence[str]) -> tuple[dict, str]:
    """The two most stable methods of one model compared on the same images (paired over images)."""
    means = {m: per_image_mean(rows, m) for m in methods}
    order = sorted(methods, key=lambda m: -float(means[m][torch.isfinite(means[m])].mean()))
    a, b = order[0], order[1]
    gap = dict(mean_gap(means[a], means[b]), methods=[a, b])
    if compare_gap(gap) == "same":
        text = (f"{model_name}: {NAMES.get(a, a)} and {NAMES.get(b, b)} moved equally within noise "
                f"(mean Spearman with the clean map over all attacks and budgets {_gap_text(gap)}).")
    else:
        text = (f"{model_name}: {NAMES.get(a, a)}'s maps moved less than {NAMES.get(b, b)}'s "
                f"(mean Spearman with the clean map over all attacks and budgets {_gap_text(gap)}).")
    return gap, text


def training_verdict(method: str, clean_rows: list[dict], adv_rows: list[dict], paired: bool,
                     held_only: bool = False) -> tuple[dict, str]:
    """Adversarially trained vs clean model, one method: are the maps steadier (higher Spearman)?"""
    gap = mean_gap(per_image_mean(adv_rows, method, held_only=held_only),
                   per_image_mean(clean_rows, method, held_only=held_only), paired)
    where = "on images whose prediction held" if held_only else "over all images"
    word = {"higher": "made the maps steadier", "lower": "made the maps LESS steady",
            "same": "changed the maps' stability only within noise"}
    text = (f"{NAMES.get(method, method)} {where}: adversarial training {word[compare_gap(gap)]} "
            f"(mean Spearman adversarially trained vs clean model {_gap_text(gap)}).")
    return gap, text


def conclude(results: dict[str, dict], methods: Sequence[str], paired: bool) -> tuple[dict, list[str]]:
    """Verdicts and their numbers for ``results`` = {"clean": map_shift(...), "adversarial": map_shift(...)}."""
    numbers: dict = {"methods": {}, "training": {}, "training_held": {}}
    lines = []
    labels = {"clean": "Clean model", "adversarial": "Adversarially trained model"}
    if len(methods) > 1:
        for key, res in results.items():
            numbers["methods"][key], text = method_verdict(labels.get(key, key), res["rows"], methods)
            lines.append(text)
    for key, res in results.items():
        shares = {m: sum(r["all"]["undefined"] for r in res["rows"] if r["method"] == m)
                  / sum(r["all"]["n"] for r in res["rows"] if r["method"] == m) for m in methods}
        numbers.setdefault("constant_map_share", {})[key] = shares
        lines.append(f"{labels.get(key, key)}: share of (image, attack, budget) cases whose clean or attacked map was "
                     f"constant (all zero after the ReLU, so its ranking is undefined and left out of every mean): "
                     + ", ".join(f"{NAMES.get(m, m)} {v:.0%}" for m, v in shares.items()) + ".")
    if {"clean", "adversarial"} <= set(results):
        for m in methods:
            numbers["training"][m], text = training_verdict(m, results["clean"]["rows"], results["adversarial"]["rows"], paired)
            lines.append(text)
            numbers["training_held"][m], text = training_verdict(m, results["clean"]["rows"],
                                                                 results["adversarial"]["rows"], paired, held_only=True)
            lines.append(text)
        flips = {k: max(r["flip_rate"] for r in res["rows"]) for k, res in results.items()}
        numbers["largest_flip_rate"] = flips
        lines.append(f"At the largest budget the attacks flipped up to {flips['clean']:.0%} of the clean model's "
                     f"predictions and {flips['adversarial']:.0%} of the adversarially trained model's; a map that "
                     f"explains a new, wrong class is expected to move, so the held-only lines are the fairer test.")
    return numbers, lines


def markdown_table(results: dict[str, dict]) -> str:
    """One row per model, method, attack and budget; held and flipped images apart."""
    def f(v) -> str:
        return "-" if v is None else f"{v:.3f}"

    lines = ["| model | method | attack | eps | flip rate | held: n | Spearman | top-k overlap | deletion AUC | "
             "flipped: n | Spearman | top-k overlap | deletion AUC |", "|---" * 13 + "|"]
    for key, res in results.items():
        for m, c in res["clean"].items():
            lines.append(f"| {key} | {m} | none | 0 | 0 | {len(res['clean_prediction'])} | 1 | 1 | "
                         f"{f(c['deletion_auc'])} | 0 | - | - | - |")
        for r in res["rows"]:
            h, fl = r["held"], r["flipped"]
            lines.append(f"| {key} | {r['method']} | {r['attack']} | {r['eps']:g} | {r['flip_rate']:.2f} | {h['n']} | "
                         f"{f(h['spearman'])} | {f(h['topk_overlap'])} | {f(h['deletion_auc'])} | {fl['n']} | "
                         f"{f(fl['spearman'])} | {f(fl['topk_overlap'])} | {f(fl['deletion_auc'])} |")
    return "\n".join(lines)
