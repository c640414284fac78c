"""The functions behind ``cnnlab explain`` and ``cnnlab visualize``: files in, PNG/JSON/markdown out."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from cnnlab.explain import figures
from cnnlab.core.errors import CnnlabError
from cnnlab.core import output
from cnnlab.core.fileio import read_json, refuse_overwriting_inputs, write_json, write_text
from cnnlab.explain.cam import METHODS, as_targets, feature_layers, get_cam
from cnnlab.explain.metrics import deletion_auc, insertion_auc, noise_stability
from cnnlab.data.images import load_images
from cnnlab.runs.sources import PixelClassifier, load_model, resolve_class
from cnnlab.explain.visualize import class_model

MANIFEST = "explain.json"  # the overlays of an explain output folder (read by cnnlab report)


def _targets(pc: PixelClassifier, target: str | None, probs: Tensor) -> Tensor:
    """The class to explain per image: ``target`` (name or index) for all, else each image's top-1."""
    return probs.argmax(1) if target is None else torch.full((len(probs),), resolve_class(target, pc.classes))


def _predict(model: nn.Module, images: Tensor) -> Tensor:
    with torch.no_grad():
        return model(images).softmax(1)


def list_layers(model: str | None = None, checkpoint: str | None = None) -> dict[str, tuple[int, ...]]:
    """Every layer a CAM can use (name -> C x H x W of its output), in the order the network runs them."""
    pc = load_model(model, checkpoint)
    return feature_layers(pc.model, torch.rand(1, *pc.input_size))


def explain_files(images: Sequence[str], model: str | None = None, checkpoint: str | None = None,
                  method: str = "gradcam", layer: str | None = None, target: str | None = None,
                  out: str | Path = "runs/explain", device: str = "cpu", **cam_kwargs) -> list[dict]:
    """One CAM overlay per image (``<out>/<image>_<method>.png``), for the top-1 class or ``target``."""
    targets = [Path(out) / f"{_stem(f)}_{method}.png" for f in images]
    output.check_distinct(dict(zip(images, targets)))
    refuse_overwriting_inputs([*targets, Path(out) / MANIFEST],
                              [f for f in images if not str(f).startswith("skimage:")])
    pc = load_model(model, checkpoint, device)
    x = load_images(images, pc.input_size).to(device)
    probs = _predict(pc.model, x)
    t = _targets(pc, target, probs)
    cam = get_cam(method, pc.model, layer, **cam_kwargs)
    maps = cam(x, t)
    rows = []
    for i, f in enumerate(images):
        top = int(probs[i].argmax())
        row = dict(image=str(f), method=method, layer=cam.layer_name, prediction=pc.classes[top],
                   probability=float(probs[i, top]), target=pc.classes[int(t[i])], target_probability=float(probs[i, t[i]]))
        row["overlay"] = str(figures.save_overlay(
            x[i], maps[i], targets[i],
            f"{method} on {cam.layer_name}: {row['target']} (p={row['target_probability']:.2f}); "
            f"top-1 {row['prediction']} ({row['probability']:.2f})"))
        rows.append(row)
    _record_overlays(Path(out), rows)
    return rows


def _record_overlays(out: Path, rows: list[dict]) -> None:
    """``out/explain.json`` lists every overlay written to ``out`` (kept across calls): what a report
    shows as this folder's CAMs, named by cnnlab rather than guessed from file names."""
    path = out / MANIFEST
    known = read_json(path, "explain manifest") if path.is_file() else []
    kept = {r["overlay"]: r for r in known if isinstance(r, dict) and "overlay" in r}
    kept.update({r["overlay"]: r for r in rows})
    write_json(path, list(kept.values()))


def _stem(image: str | Path) -> str:
    return Path(str(image).replace("skimage:", "")).stem


def compare(model: nn.Module, images: Tensor, targets=None, methods: Sequence[str] = tuple(METHODS),
            layer: str | None = None, steps: int = 20, sigma: float = 0.03, repeats: int = 3,
            cam_kwargs: dict | None = None) -> tuple[list[dict], dict[str, Tensor]]:
    """Every method on the same images: maps, deletion/insertion AUC, noise stability and time.

    Returns ``(rows, maps)``: one row per method with per-image values and their means.
    """
    probs = _predict(model, images)
    t = probs.argmax(1) if targets is None else as_targets(targets, len(images), images.device)
    rows, maps = [], {}
    for name in methods:
        kwargs = (cam_kwargs or {}).get(name, {})
        cam = get_cam(name, model, layer, **kwargs)
        start = time.perf_counter()
        maps[name] = cam(images, t)
        seconds = time.perf_counter() - start
        dele = deletion_auc(model, images, maps[name], t, steps)
        ins = insertion_auc(model, images, maps[name], t, steps)
        stab = noise_stability(cam, images, t, sigma, repeats, maps=maps[name])
        rows.append(dict(method=name, layer=cam.layer_name, deletion_auc=float(dele.mean()),
                         insertion_auc=float(ins.mean()), stability=float(stab.nanmean()),
                         seconds_per_image=seconds / len(images), per_image=dict(
                             deletion_auc=dele.tolist(), insertion_auc=ins.tolist(), stability=stab.tolist())))
    return rows, maps


def markdown_table(rows: list[dict]) -> str:
    lines = ["| method | deletion AUC (lower better) | insertion AUC (higher better) | "
             "noise stability, Spearman (higher better) | s/image |", "|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['deletion_auc']:.4f} | {r['insertion_auc']:.4f} | {r['stability']:.4f} | "
              f"{r['seconds_per_image']:.2f} |" for r in rows]
    return "\n".join(lines)


def compare_files(images: Sequence[str], model: str | None = None, checkpoint: str | None = None,
                  methods: Sequence[str] = tuple(METHODS), layer: str | None = None, target: str | None = None,
                  out: str | Path = "runs/explain-compare", steps: int = 20, sigma: float = 0.03, repeats: int = 3,
                  samples: int = 16, device: str = "cpu") -> list[dict]:
    """``compare`` on image files; writes compare.md (table), compare.json and compare.png (all maps)."""
    out = output.check_folder(out, ("compare.md", "compare.json", "compare.png"))
    pc = load_model(model, checkpoint, device)
    x = load_images(images, pc.input_size).to(device)
    probs = _predict(pc.model, x)
    t = _targets(pc, target, probs)
    rows, maps = compare(pc.model, x, t, methods, layer, steps, sigma, repeats,
                         cam_kwargs={"shapcam": {"samples": samples}})
    out.mkdir(parents=True, exist_ok=True)
    names = [_stem(f) for f in images]
    titles = [f"{n}: {pc.classes[int(c)]} ({float(probs[i, c]):.2f})" for i, (n, c) in enumerate(zip(names, t))]
    figures.save_comparison(x, maps, out / "compare.png", titles)
    setup = dict(model=pc.name, images=list(map(str, images)), targets=[pc.classes[int(c)] for c in t],
                 deletion_steps=steps, noise_sigma=sigma, noise_repeats=repeats, shapcam_samples=samples)
    write_json(out / "compare.json", dict(setup, rows=rows))
    write_text(out / "compare.md", f"{markdown_table(rows)}\n\n{json.dumps(setup)}\n")
    return rows


def visualize_class(target: str, model: str | None = None, checkpoint: str | None = None,
                    out: str | Path = "runs/visualize", device: str = "cpu", **options) -> dict:
    """Class-model visualization; writes ``<class>.png``, ``<class>_trajectory.png`` and ``.json``."""
    pc = load_model(model, checkpoint, device)
    index = resolve_class(target, pc.classes, "--class")
    result = class_model(pc.model, index, pc.input_size, **options)
    probs = _predict(pc.model, result.image[None])[0]
    top = probs.topk(min(3, len(probs)))
    name = pc.classes[index]
    stem = Path(out) / name.replace(" ", "_").replace("/", "_")
    output.refuse_existing([f"{stem}.png", f"{stem}_trajectory.png", f"{stem}.json"])
    summary = dict(model=pc.name, target=name, steps=len(result.scores) - 1, start_score=result.scores[0],
                   final_score=result.scores[-1], final_probability=float(probs[index]),
                   top3=[(pc.classes[int(j)], float(p)) for p, j in zip(top.values, top.indices)],
                   options=options, scores=result.scores, probabilities=result.probs)
    summary["image"] = str(figures.save_image(result.image, f"{stem}.png",
                                              f"{name}: p={summary['final_probability']:.3f}"))
    summary["trajectory"] = str(figures.save_trajectory({"class score (logit)": result.scores,
                                                         "probability": result.probs}, f"{stem}_trajectory.png"))
    write_json(f"{stem}.json", summary)
    return summary


def pearson(a: Tensor, b: Tensor) -> float:
    """Pearson correlation of two images' pixels (any shapes with the same number of elements)."""
    from torchmetrics.functional import pearson_corrcoef

    return float(pearson_corrcoef(a.flatten().double().cpu(), b.flatten().double().cpu()))


def minimal_targeted_attack(model: nn.Module, image: Tensor, target: int, eps_max: float = 0.5) -> dict:
    """The smallest perturbation that makes the model say ``target`` for ``image`` (``1 x C x H x W``).

    First the smallest one-step targeted FGSM budget (a scan and bisection over eps); when no budget
    up to ``eps_max`` reaches the class in one step, targeted iterative FGSM (steps of 1/255 inside
    the ``eps_max`` ball) until the model says ``target``.
    """
    from cnnlab.attack.sweep import iterative_targeted, min_targeted_eps

    goal = torch.tensor([target], device=image.device)
    eps = float(min_targeted_eps(model, image, goal, eps_max)[0])
    if eps < float("inf"):
        from cnnlab.attack.attacks import fgsm

        adv, method, steps = fgsm(model, image, goal, eps, targeted=True), "fgsm", 1
    else:
        adv, steps = iterative_targeted(model, image, target, eps_max)
        method = "iterative-fgsm"
    reached = int(_predict(model, adv)[0].argmax()) == target
    return dict(adv=adv, method=method, steps=steps, reached=reached, linf=float((adv - image).abs().max()))


def compare_attack_files(target: str, image: str, model: str | None = None, checkpoint: str | None = None,
                         out: str | Path = "runs/visualize", device: str = "cpu", eps_max: float = 0.5,
                         **options) -> dict:
    """003 Q7: the class model of ``target`` next to the minimal targeted perturbation that turns ``image``
    into ``target``; Pearson correlation of the perturbation with that class model and, as a baseline,
    with the class model of a random other class (seeded). Writes ``<class>_vs_attack.png`` and ``.json``."""
    import random

    pc = load_model(model, checkpoint, device)
    index = resolve_class(target, pc.classes, "--class")
    stem = Path(out) / f"{pc.classes[index].replace(' ', '_').replace('/', '_')}_vs_attack"
    refuse_overwriting_inputs([f"{stem}.png", f"{stem}.json"], [image] if not image.startswith("skimage:") else [],
                              "--out")
    x = load_images([image], pc.input_size).to(device)
    clean = int(_predict(pc.model, x)[0].argmax())
    if clean == index:
        raise CnnlabError(f"--compare-attack {image}: the model already says {pc.classes[index]!r} for it, so no "
                          f"perturbation is needed; pick another --class or image")
    attack = minimal_targeted_attack(pc.model, x, index, eps_max)
    delta = (attack.pop("adv") - x)[0]
    others = [c for c in range(len(pc.classes)) if c not in (index, clean)]
    baseline = random.Random(options.get("seed", 0)).choice(others)
    models = {c: class_model(pc.model, c, pc.input_size, **options).image for c in (index, baseline)}
    result = dict(model=pc.name, image=str(image), clean_prediction=pc.classes[clean], target=pc.classes[index],
                  **attack, pearson_target=pearson(delta, models[index]), baseline_class=pc.classes[baseline],
                  pearson_baseline=pearson(delta, models[baseline]), options=options, eps_max=eps_max)
    result["figure"] = str(figures.save_attack_vs_class_model(x[0], delta, models[index], models[baseline], result,
                                                              f"{stem}.png"))
    write_json(f"{stem}.json", result)
    return result


UNTARGETED_FILES = ("untargeted_vs_class_models.json", "untargeted_vs_class_models.png")


def untargeted_attack_files(checkpoint: str | Path, target: str | None = None, n: int = 200,
                            data_dir: str | None = None, out: str | Path = "runs/visualize", device: str = "cpu",
                            eps_max: float = 0.5, **options) -> dict:
    """003 Q7b: untargeted FGSM on ``n`` correctly classified test images of each class C (or of ``target``
    only), its direction correlated with the class model of C and of every other class
    (:mod:`cnnlab.explain.untargeted`). Writes ``untargeted_vs_class_models.json`` and ``.png``."""
    from cnnlab.attack.api import checkpoint_test_set
    from cnnlab.explain.untargeted import study

    out = output.check_folder(out, UNTARGETED_FILES)
    pc = load_model(checkpoint=checkpoint, device=device)
    wanted = range(len(pc.classes)) if target is None else [resolve_class(target, pc.classes, "--class")]
    images, labels, _ = checkpoint_test_set(checkpoint, data_dir)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(options.get("seed", 0)))
    images, labels = images[order].to(device), labels[order].to(device)
    pred = torch.cat([_predict(pc.model, b).argmax(1) for b in images.split(512)])
    picks = torch.cat([torch.nonzero((labels == c) & (pred == c))[:n, 0] for c in wanted])
    if len(picks) < 2:
        raise CnnlabError(f"fewer than two correctly classified test images of {', '.join(pc.classes[c] for c in wanted)}:"
                          f" nothing to average")
    x, y = images[picks], labels[picks]
    models = torch.stack([class_model(pc.model, c, pc.input_size, **options).image for c in range(len(pc.classes))])
    result = study(pc.model, x, y, models, pc.classes, eps_max)
    arrays = result.pop("_arrays")
    result = dict(model=pc.name, classes=[pc.classes[c] for c in wanted], n_per_class=n,
                  images_per_class={pc.classes[c]: int((y == c).sum()) for c in wanted},
                  clean_accuracy_of_sample=float((pred == labels).float().mean()), options=options, **result)
    out.mkdir(parents=True, exist_ok=True)
    result["figure"] = str(figures.save_untargeted_vs_class_models(models, arrays, pc.classes, wanted, result,
                                                                   out / UNTARGETED_FILES[1]))
    write_json(out / UNTARGETED_FILES[0], result)
    return result
