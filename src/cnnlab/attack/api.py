"""The functions behind ``cnnlab attack``: attack image files, or sweep budgets over a checkpoint's test set."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from cnnlab.attack import figures
from cnnlab.attack.attacks import check_eps, fgsm, run_attack
from cnnlab.attack.sweep import accuracy_vs_eps, min_flip_eps, predict
from cnnlab.core.errors import CnnlabError
from cnnlab.core import output
from cnnlab.core.fileio import refuse_overwriting_inputs, write_json
from cnnlab.data.images import load_images
from cnnlab.runs.sources import load_model, resolve_class


def attack_files(images: Sequence[str], model: str | None = None, checkpoint: str | None = None,
                 method: str = "fgsm", eps: float = 4 / 255, target: str | None = None, steps: int = 10,
                 alpha: float | None = None, smallest: bool = False, eps_max: float = 0.25,
                 out: str | Path = "runs/attack", device: str = "cpu", seed: int = 0) -> list[dict]:
    """Attack each image's own prediction (files carry no label); writes ``panels.png`` and ``attack.json``.

    ``smallest`` uses, per image, the smallest FGSM budget that flips it instead of ``eps``.
    """
    check_eps(eps)
    out = Path(out)
    refuse_overwriting_inputs([out / "panels.png", out / "attack.json"],
                              [f for f in images if not str(f).startswith("skimage:")])
    pc = load_model(model, checkpoint, device)
    x = load_images(images, pc.input_size).to(device)
    clean = predict(pc.model, x)
    labels = clean.argmax(1)
    if smallest:
        if target is not None or method != "fgsm":
            raise CnnlabError("--smallest finds the smallest untargeted FGSM budget; drop --target/--method")
        budgets = min_flip_eps(pc.model, x, labels, eps_max)
        adv = torch.cat([fgsm(pc.model, x[i:i + 1], labels[i:i + 1], b if math.isfinite(b) else eps_max)
                         for i, b in enumerate(budgets.tolist())])
    else:
        kw = dict(steps=steps, alpha=alpha, targeted=target is not None)
        if method == "pgd":
            kw["generator"] = torch.Generator().manual_seed(seed)
        goal = labels if target is None else torch.full_like(labels, resolve_class(target, pc.classes))
        adv = run_attack(method, pc.model, x, goal, eps, **kw)
        budgets = torch.full((len(x),), eps)
    after = predict(pc.model, adv)
    figures.save_panels(x, adv, clean, after, pc.classes, out / "panels.png", budgets.tolist())
    rows = [dict(image=str(f), clean=pc.classes[int(clean[i].argmax())], clean_prob=float(clean[i].max()),
                 adversarial=pc.classes[int(after[i].argmax())], adversarial_prob=float(after[i].max()),
                 eps=float(budgets[i]), linf=float((adv[i] - x[i]).abs().max()),
                 flipped=bool(after[i].argmax() != clean[i].argmax()))
            for i, f in enumerate(images)]
    write_json(out / "attack.json", dict(model=pc.name, method="fgsm" if smallest else method, target=target,
                                         rows=rows))
    return rows


def sweep(model: nn.Module, images: Tensor, labels: Tensor, eps: Sequence[float],
          attacks: Sequence[str] = ("fgsm", "pgd"), steps: int = 10, eps_max: float = 0.5,
          seed: int = 0) -> dict:
    """Accuracy vs eps for each attack, and the smallest flipping FGSM budget per image."""
    result: dict = {"eps": [check_eps(e) for e in eps], "n": len(labels)}
    for name in attacks:
        result[name] = accuracy_vs_eps(model, images, labels, eps, name, seed=seed, steps=steps)
    flips = min_flip_eps(model, images, labels, eps_max).cpu().numpy()
    held = flips[flips > 0]  # images the model gets right without attack (0: already wrong)
    result["min_flip_eps"] = dict(median_of_correct=float(np.median(held)) if len(held) else None,
                                  wrong_when_clean=int((flips == 0).sum()),
                                  never_flipped=int(np.isinf(flips).sum()), eps_max=eps_max,
                                  per_image=[float(v) for v in flips])
    return result


def checkpoint_test_set(checkpoint: str | Path, data_dir: str | None = None, n: int | None = None,
                        seed: int = 0) -> tuple[Tensor, Tensor, list[str]]:
    """The checkpoint's held-out test split (the seeded split it was trained with) as [0, 1] floats.

    ``n`` draws a seeded random subset, so a quick sweep is still a fair sample of all classes.
    """
    from cnnlab.runs.restore import checkpoint_splits

    _, _, splits = checkpoint_splits(checkpoint, data_dir)
    test = splits.test
    if n is not None and n < len(test):
        test = test.subset(torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:n])
    return test.images.float() / 255, test.labels, list(splits.classes)


def sweep_checkpoint(checkpoint: str | Path, data_dir: str | None = None, n: int | None = 1000,
                     eps: Sequence[float] = (0, 0.01, 0.02, 0.05, 0.1, 0.2), attacks: Sequence[str] = ("fgsm", "pgd"),
                     steps: int = 10, eps_max: float = 0.5, out: str | Path | None = None, device: str = "cpu",
                     seed: int = 0) -> dict:
    """``sweep`` on a checkpoint's test set; writes sweep.json, accuracy_vs_eps.png, min_flip_eps.png, panels.png."""
    if out is not None:
        out = output.check_folder(out, ("sweep.json", "accuracy_vs_eps.png", "min_flip_eps.png", "panels.png"))
    pc = load_model(checkpoint=checkpoint, device=device)
    images, labels, classes = checkpoint_test_set(checkpoint, data_dir, n, seed)
    images, labels = images.to(device), labels.to(device)
    result = sweep(pc.model, images, labels, eps, attacks, steps, eps_max, seed)
    result.update(checkpoint=str(checkpoint), attacks=list(attacks), pgd_steps=steps)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "sweep.json", result)
        figures.plot_accuracy_vs_eps(result["eps"], {a: result[a] for a in attacks}, out / "accuracy_vs_eps.png")
        figures.plot_flip_histogram(np.array(result["min_flip_eps"]["per_image"]), out / "min_flip_eps.png")
        _example_panels(pc.model, images, labels, result, classes, out / "panels.png")
    return result


def _example_panels(model: nn.Module, images: Tensor, labels: Tensor, result: dict, classes: list[str],
                    path: Path, k: int = 4) -> None:
    """The first ``k`` correctly classified images that flip, each attacked with its smallest budget."""
    flips = torch.tensor(result["min_flip_eps"]["per_image"])
    picks = [i for i in range(len(flips)) if 0 < flips[i] < float("inf")][:k]
    if not picks:
        return
    x, y = images[picks], labels[picks]
    adv = torch.cat([fgsm(model, x[j:j + 1], y[j:j + 1], float(flips[i])) for j, i in enumerate(picks)])
    figures.save_panels(x, adv, predict(model, x), predict(model, adv), classes, path, flips[picks].tolist())
