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

The measures are explain's (:func:`cnnlab.explain.metrics.map_shift`); this module is the course
lab around them, ``cnnlab lab cam-robustness`` (a lab of the frame with options of its own): the
models, the verdicts and the files.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from cnnlab.core.errors import CnnlabError
from cnnlab.core import output
from cnnlab.core.fileio import write_json, write_text
from cnnlab.core.text import undecided, versus
from cnnlab.data.base import has_files
from cnnlab.explain import figures
from cnnlab.explain.metrics import DEFAULT_ATTACKS, DEFAULT_EPS, DEFAULT_METHODS, map_shift
from cnnlab.labs.frame import LabContext, LabResult, register_lab


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
    """``mean(a) - mean(b)``, its standard error and twice it (the noise a verdict allows; paired: over
    per-image differences)."""
    if paired:
        ok = torch.isfinite(a) & torch.isfinite(b)
        d = (a - b)[ok]
        se = float(d.std() / math.sqrt(len(d))) if len(d) > 1 else float("inf")
        return {"a": float(a[ok].mean()), "b": float(b[ok].mean()), "difference": float(d.mean()), "se": se,
                "two_se": 2 * se, "n": int(len(d))}
    a, b = a[torch.isfinite(a)], b[torch.isfinite(b)]
    se = math.sqrt(float(a.var()) / len(a) + float(b.var()) / len(b)) if min(len(a), len(b)) > 1 else float("inf")
    return {"a": float(a.mean()), "b": float(b.mean()), "difference": float(a.mean() - b.mean()), "se": se,
            "two_se": 2 * se, "n": int(min(len(a), len(b)))}


def compare_gap(gap: dict) -> str:
    """``"higher"``, ``"lower"``, ``"same"`` (within twice the standard error) or ``"undecided"`` (no image to
    compare on): the wording of every verdict."""
    return versus(gap["difference"], gap["se"], gap["n"])


QUICK = {"epochs": 1, "subset": 200, "width": 4, "n": 6, "eps": (0.1,), "attacks": ("fgsm",), "samples": 2, "steps": 4}
"""A seconds-long run (``cnnlab lab cam-robustness --quick``, what the tests run): tiny models, one attack."""

NAMES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "scorecam": "Score-CAM", "shapcam": "Shap-CAM"}


GAP = "{a:.3f} vs {b:.3f}, difference {difference:+.3f} +- {two_se:.3f} (2 SE, n={n})"
"""How a verdict quotes its gap: placeholders named like the fields of :func:`mean_gap`."""


def _gap_paths(prefix: str) -> dict[str, str]:
    """Where the numbers of :data:`GAP` are, for the gap stored at ``prefix`` of the lab's numbers."""
    return {field: f"{prefix}.{field}" for field in ("a", "b", "difference", "two_se", "n")}


def method_verdict(model_name: str, rows: list[dict], methods: Sequence[str]) -> tuple[dict, str]:
    """The two most stable methods of one model compared on the same images (paired over images).

    Returns the gap and the verdict as a sentence template over the gap's fields (:data:`GAP`).
    """
    means = {m: per_image_mean(rows, m) for m in methods}
    order = sorted(methods, key=lambda m: -float(means[m][torch.isfinite(means[m])].mean()))
    a, b = order[0], order[1]
    gap = dict(mean_gap(means[a], means[b]), methods=[a, b])
    if (why := undecided(gap["difference"], gap["se"], gap["n"])) is not None:
        template = f"{model_name}: no verdict on whether {NAMES.get(a, a)} or {NAMES.get(b, b)} moved less: {why}."
    elif compare_gap(gap) == "same":
        template = (f"{model_name}: {NAMES.get(a, a)} and {NAMES.get(b, b)} moved equally within noise "
                    f"(mean Spearman with the clean map over all attacks and budgets {GAP}).")
    else:
        template = (f"{model_name}: {NAMES.get(a, a)}'s maps moved less than {NAMES.get(b, b)}'s "
                    f"(mean Spearman with the clean map over all attacks and budgets {GAP}).")
    return gap, template


def training_verdict(method: str, clean_rows: list[dict], adv_rows: list[dict], paired: bool,
                     held_only: bool = False) -> tuple[dict, str]:
    """Adversarially trained vs clean model, one method: are the maps steadier (higher Spearman)?

    Returns the gap and the verdict as a sentence template over the gap's fields (:data:`GAP`).
    """
    gap = mean_gap(per_image_mean(adv_rows, method, held_only=held_only),
                   per_image_mean(clean_rows, method, held_only=held_only), paired)
    where = "on images whose prediction held" if held_only else "over all images"
    word = {"higher": "made the maps steadier", "lower": "made the maps LESS steady",
            "same": "changed the maps' stability only within noise"}
    if (why := undecided(gap["difference"], gap["se"], gap["n"])) is not None:
        return gap, f"{NAMES.get(method, method)} {where}: no verdict on adversarial training: {why}."
    template = (f"{NAMES.get(method, method)} {where}: adversarial training {word[compare_gap(gap)]} "
                f"(mean Spearman adversarially trained vs clean model {GAP}).")
    return gap, template


def conclude(result: LabResult, results: dict[str, dict], methods: Sequence[str], paired: bool) -> None:
    """The verdicts on ``results`` = {"clean": map_shift(...), "adversarial": map_shift(...)}.

    Their numbers go into ``result.numbers`` and their sentences through :meth:`LabResult.conclude`,
    so each sentence quotes the numbers it states.
    """
    numbers = result.numbers
    numbers.update(methods={}, training={}, training_held={}, constant_map_share={})
    labels = {"clean": "Clean model", "adversarial": "Adversarially trained model"}
    if len(methods) > 1:
        for key, res in results.items():
            numbers["methods"][key], template = method_verdict(labels.get(key, key), res["rows"], methods)
            result.conclude(template, **_gap_paths(f"methods.{key}"))
    for key, res in results.items():
        numbers["constant_map_share"][key] = {
            m: sum(r["all"]["undefined"] for r in res["rows"] if r["method"] == m)
            / sum(r["all"]["n"] for r in res["rows"] if r["method"] == m) for m in methods}
        result.conclude(f"{labels.get(key, key)}: share of (image, attack, budget) cases whose clean or attacked map "
                        f"was constant (all zero after the ReLU, so its ranking is undefined and left out of every "
                        f"mean): " + ", ".join(f"{NAMES.get(m, m)} {{m{i}:.0%}}" for i, m in enumerate(methods)) + ".",
                        **{f"m{i}": f"constant_map_share.{key}.{m}" for i, m in enumerate(methods)})
    if {"clean", "adversarial"} <= set(results):
        clean, adversarial = results["clean"]["rows"], results["adversarial"]["rows"]
        for m in methods:
            numbers["training"][m], template = training_verdict(m, clean, adversarial, paired)
            result.conclude(template, **_gap_paths(f"training.{m}"))
            numbers["training_held"][m], template = training_verdict(m, clean, adversarial, paired, held_only=True)
            result.conclude(template, **_gap_paths(f"training_held.{m}"))
        numbers["largest_flip_rate"] = {k: max(r["flip_rate"] for r in res["rows"]) for k, res in results.items()}
        result.conclude("At the largest budget the attacks flipped up to {clean:.0%} of the clean model's predictions "
                        "and {adversarial:.0%} of the adversarially trained model's; a map that explains a new, wrong "
                        "class is expected to move, so the held-only lines are the fairer test.",
                        clean="largest_flip_rate.clean", adversarial="largest_flip_rate.adversarial")


def results_table(results: dict[str, dict]) -> str:
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


def _robustness_models(checkpoint: str | None, checkpoint_adv: str | None, out: Path, train: dict,
                       data_dir: str | None, progress: bool) -> dict[str, str]:
    """The checkpoints to study: the given ones, or a clean and an adversarially trained simple-cnn
    trained here into ``<out>/models/`` on the same data with the same settings."""
    if checkpoint_adv is not None and checkpoint is None:
        raise CnnlabError("--checkpoint-adv needs --checkpoint too (the clean model it is compared with)")
    if checkpoint is not None:
        return {"clean": checkpoint, **({"adversarial": checkpoint_adv} if checkpoint_adv else {})}
    from cnnlab.classify.api import train_classifier

    paths = {}
    for key, spec in (("clean", ""), ("adversarial", train["adversarial"])):
        run = out / "models" / key
        train_classifier(train["dataset"], data_dir=data_dir, out=run, overwrite=True, progress=progress,
                         model="simple-cnn", model_kwargs={"width": train["width"]}, epochs=train["epochs"],
                         subset=train["subset"], seed=train["seed"], adversarial=spec)
        paths[key] = str(run / "best.ckpt")
    return paths


def robustness_files(checkpoint: str | None = None, checkpoint_adv: str | None = None, *,
                     dataset: str | None = None, adversarial: str = "fgsm:0.1", epochs: int = 3,
                     subset: int | None = 6000, width: int = 16, n: int = 100,
                     methods: Sequence[str] = DEFAULT_METHODS, attacks: Sequence[str] = DEFAULT_ATTACKS,
                     eps: Sequence[float] = DEFAULT_EPS, topk: float = 0.1, pgd_steps: int = 10,
                     steps: int = 20, samples: int = 16, layer: str | None = None, data_dir: str | None = None,
                     out: str | Path = "runs/lab-cam-robustness", device: str = "cpu", seed: int = 0,
                     progress: bool = True) -> LabResult:
    """003 Q1b on files: ``map_shift`` for a clean and an adversarially trained model on the same test images.

    Without checkpoints both models are trained here (simple-cnn, ``epochs`` on a seeded ``subset``
    of ``dataset``, 0 or None: all of it; Fashion-MNIST when its files are found, else the embedded
    digits). Writes robustness.json (every number, per image too), robustness.md (table and
    conclusions), maps.png (example maps side by side) and stability.png (Spearman and top-k
    overlap vs eps). Returns the verdicts as the lab's result (numbers, conclusions, table, figure).
    """
    from cnnlab.attack.api import checkpoint_test_set
    from cnnlab.attack.training import parse_adversarial
    from cnnlab.runs.sources import load_model

    parse_adversarial(adversarial)
    if checkpoint is None:  # the models trained here: a --width whose weights cannot fit is refused first
        from cnnlab.models.registry import check_weights

        check_weights("simple-cnn", 10, 3, {"width": width})
    out = output.check_folder(out, ("robustness.json", "robustness.md", "maps.png", "stability.png"))
    if dataset is None:
        dataset = "fashion-mnist" if has_files("fashion-mnist", data_dir) else "digits"
    train = dict(dataset=dataset, adversarial=adversarial, epochs=epochs, subset=subset or None, width=width, seed=seed)
    paths = _robustness_models(checkpoint, checkpoint_adv, out, train, data_dir, progress)
    images, labels, classes = checkpoint_test_set(paths["clean"], data_dir, n, seed)
    images = images.to(device)
    loaded = {key: load_model(checkpoint=path, device=device) for key, path in paths.items()}  # all checked first
    for key, pc in loaded.items():
        if list(pc.classes) != list(classes) or tuple(pc.input_size) != tuple(images.shape[1:]):
            raise CnnlabError(f"--checkpoint-adv {paths[key]}: its classes/input size differ from --checkpoint's "
                              f"({pc.input_size} vs {tuple(images.shape[1:])}); both must classify the same images")
    results, models = {}, {}
    for key, pc in loaded.items():
        path = paths[key]
        results[key] = map_shift(pc.model, images, methods, attacks, eps, topk=topk, pgd_steps=pgd_steps,
                                 deletion_steps=steps, samples=samples, layer=layer, seed=seed)
        models[key] = dict(checkpoint=path, clean_accuracy=float((torch.tensor(results[key]["clean_prediction"])
                                                                  == labels).float().mean()))
    setup = dict(models=models, trained_here=checkpoint is None and train or None, images=len(images),
                 methods=list(methods), attacks=list(attacks), eps=list(eps), topk_fraction=topk, pgd_steps=pgd_steps,
                 deletion_steps=steps, shapcam_samples=samples, layer=results["clean"]["clean"][methods[0]]["layer"],
                 seed=seed, target="each image's top-1 class (the new class on a flipped image)")
    result = LabResult(numbers={"clean_accuracy": {key: m["clean_accuracy"] for key, m in models.items()}},
                       figure=figures.map_stability(results), settings=setup, table=results_table(results))
    conclude(result, results, methods, paired=True)
    out.mkdir(parents=True, exist_ok=True)
    figures.save_robustness_maps(images, results, classes, out / "maps.png")
    figures.plot_map_stability(results, out / "stability.png")
    write_json(out / "robustness.json", dict(
        setup, verdicts=result.numbers, conclusions=result.conclusions,
        results={k: {"clean": r["clean"], "clean_prediction": r["clean_prediction"], "rows": r["rows"]}
                 for k, r in results.items()}))
    write_text(out / "robustness.md", f"{result.table}\n\n" + "\n".join(f"- {c}" for c in result.conclusions)
               + f"\n\n{json.dumps(setup)}\n")
    return result


@register_lab("cam-robustness", "003 Q1b",
              "How far do CAMs move under attack, and does adversarial training steady them?")
def cam_robustness(ctx: LabContext) -> LabResult:
    """The lab: :func:`robustness_files` with the run's size, seed, data and device, and the lab's own options
    (``ctx.options``: checkpoints, attacks, budgets...) over :data:`QUICK` in a quick run."""
    options = {**(QUICK if ctx.quick else {}), **ctx.options}
    return robustness_files(**options, data_dir=ctx.data_dir, out=ctx.out, device=ctx.device, seed=ctx.seed,
                            progress=ctx.progress)
