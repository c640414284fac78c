"""003 Q7b: does an untargeted FGSM perturbation of an image of class C look like C's class model?

The question's second part attacks an image that we and the network call C with the smallest
*untargeted* FGSM change, and compares what it finds with the class model of C (gradient ascent
on C's score, :mod:`cnnlab.explain.visualize`). Untargeted FGSM moves the image by
``eps * sign(grad_x CE(x, C))``: up the loss of the true class, i.e. (to first order) down C's
score relative to the others. Its direction does not depend on ``eps`` (only the clipping to
[0, 1] does), so the study looks at the direction itself over many test images:

- ``sign``: the FGSM direction ``sign(grad)`` (what the attack adds, divided by eps),
- ``gradient``: the raw gradient ``grad_x CE(x, C)`` (the direction before the sign),
- ``applied``: ``clip(x + eps* sign(grad)) - x`` at each image's smallest flipping ``eps*``
  (what the minimal attack really changes; images no budget up to ``eps_max`` flips are left out).

For every image of class C it takes the Pearson correlation (over pixels) of each direction with
the class model of every class; per class it compares ``r(own C)`` with the mean ``r`` over the
other classes' models, image by image (a paired difference), and judges the mean difference by
the project's rule (:mod:`cnnlab.core.text`): real only beyond twice its standard error.
"""
from __future__ import annotations

import math
import statistics

import torch
from torch import Tensor, nn

from cnnlab.attack.attacks import loss_gradient
from cnnlab.attack.sweep import smallest_eps
from cnnlab.core.text import verdict_sentence, versus

VARIANTS = ("sign", "gradient", "applied")


def pearson_rows(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of every row of ``a`` with every row of ``b`` (each flattened): ``len(a) x len(b)``.

    A constant row (no spread) has no correlation: NaN there.
    """
    a = a.flatten(1).double().cpu()
    b = b.flatten(1).double().cpu()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    den = a.norm(dim=1)[:, None] * b.norm(dim=1)[None, :]
    r = (a @ b.T) / den
    return torch.where(den > 0, r, torch.full_like(r, float("nan")))


def untargeted_directions(model: nn.Module, images: Tensor, labels: Tensor, eps_max: float = 0.5,
                          batch_size: int = 256) -> dict[str, Tensor]:
    """Per image: the loss gradient, its sign (untargeted FGSM's direction), the smallest flipping budget
    along it (``inf`` if none up to ``eps_max``) and the perturbation applied at that budget (zeros where none)."""
    model.eval()
    grads, eps = [], []
    for x, y in zip(images.split(batch_size), labels.split(batch_size)):
        g = loss_gradient(model, x, y)
        grads.append(g)
        eps.append(smallest_eps(model, x, g.sign(), lambda pred, y=y: pred != y, eps_max, batch_size=batch_size))
    grad, eps_star = torch.cat(grads), torch.cat(eps)
    finite = torch.isfinite(eps_star)
    e = torch.where(finite, eps_star, torch.zeros_like(eps_star)).view(-1, *[1] * (images.dim() - 1))
    applied = (images + e * grad.sign()).clamp(0, 1) - images
    return {"gradient": grad, "sign": grad.sign(), "applied": applied, "eps": eps_star}


def _stats(values: list[float]) -> dict:
    n = len(values)
    std = statistics.stdev(values) if n > 1 else math.nan
    return {"mean": statistics.fmean(values) if n else math.nan, "std": std,
            "se": std / math.sqrt(n) if n > 1 else math.inf, "n": n}


SENTENCES = {"higher": "the perturbation looks MORE like C's class model than like the other classes' models",
             "lower": "the perturbation looks LESS like C's class model than like the others' (it points away "
                      "from what the network thinks C looks like)",
             "same": "within noise: the perturbation does not resemble C's class model more than the others'"}


def compare_rows(r: Tensor, labels: Tensor, classes: list[str]) -> dict:
    """``r``: ``N x K`` correlations of each image's direction with each class model. Per class C (and over
    all images): r(own) and the mean r(other classes) per image, their paired difference, and the verdict."""
    own = r.gather(1, labels.view(-1, 1).cpu())[:, 0]
    others = (r.nansum(1) - own) / (r.shape[1] - 1)
    keep = ~(own.isnan() | others.isnan())

    def block(mask: Tensor) -> dict:
        m = mask & keep
        a, b = own[m].tolist(), others[m].tolist()
        d = _stats([x - y for x, y in zip(a, b)])
        out = {"own": _stats(a), "others": _stats(b), "difference": d}
        out["verdict"] = verdict_sentence(SENTENCES, d["mean"], d["se"], d["n"])
        out["outcome"] = versus(d["mean"], d["se"], d["n"])  # own vs others: higher, lower, same or undecided
        out["summary"] = (f"r(own) {out['own']['mean']:+.4f} vs r(others) {out['others']['mean']:+.4f}: "
                          f"{d['mean']:+.4f} ± {2 * d['se']:.4f} (2 SE, {d['n']} images): {out['verdict']}")
        return out

    present = set(labels.cpu().tolist())  # the classes studied (one, with --class)
    per_class = {name: block(labels.cpu() == c) for c, name in enumerate(classes) if c in present}
    return {"all": block(torch.ones_like(keep)), "per_class": per_class, "left_out_constant": int((~keep).sum())}


def study(model: nn.Module, images: Tensor, labels: Tensor, class_models: Tensor, classes: list[str],
          eps_max: float = 0.5) -> dict:
    """The whole comparison for every direction (``VARIANTS``); also each class's mean FGSM direction
    (mean of ``sign(grad)`` over its images) and that mean's correlation with every class model."""
    d = untargeted_directions(model, images, labels, eps_max)
    flipped = torch.isfinite(d["eps"]).cpu()
    out: dict = {"n_images": len(labels), "flipped": int(flipped.sum()), "eps_max": eps_max}
    finite = d["eps"][torch.isfinite(d["eps"])]
    out["smallest_flip_eps"] = {"median": float(finite.median()) if len(finite) else math.nan,
                                "mean": float(finite.mean()) if len(finite) else math.nan}
    matrices = {}
    for v in VARIANTS:
        r = pearson_rows(d[v], class_models)
        rows, labs = (r, labels.cpu()) if v != "applied" else (r[flipped], labels.cpu()[flipped])
        out[v] = compare_rows(rows, labs, classes)
        matrices[v] = r
    means = torch.stack([d["sign"][labels == c].mean(0) if (labels == c).any() else torch.zeros_like(d["sign"][0])
                         for c in range(len(classes))])
    r_mean = pearson_rows(means, class_models)
    out["mean_direction_correlation"] = {classes[c]: dict(zip(classes, r_mean[c].tolist()))
                                         for c in range(len(classes)) if (labels == c).any()}
    out["_arrays"] = {"mean_sign": means.detach().cpu(), "r_sign": matrices["sign"], "labels": labels.cpu()}
    return out
