"""FGSM/I-FGSM/PGD against torchattacks, hand-derived flip budgets, sweeps, bad input and the attack CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnlab.attack.attacks import fgsm, ifgsm, pgd
from cnnlab.attack.sweep import accuracy_vs_eps, iterative_targeted, min_flip_eps, min_targeted_eps, predict
from cnnlab.cli.main import main
from cnnlab.core.errors import CnnlabError
from cnnlab.models.pixel import pixel_wrap

torchattacks = pytest.importorskip("torchattacks")


def tiny_classifier(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, padding=1),
                        nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    return pixel_wrap(net, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(8, 3, 16, 16, generator=g), torch.randint(0, 5, (8,), generator=g)


@pytest.mark.parametrize("eps", [1 / 255, 8 / 255, 0.1])
def test_fgsm_equals_torchattacks(batch, eps):
    model, (x, y) = tiny_classifier(), batch
    ours = fgsm(model, x, y, eps)
    theirs = torchattacks.FGSM(model, eps=eps)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-7)
    assert (ours - x).abs().max() <= eps + 1e-7


def test_targeted_fgsm_equals_torchattacks_and_helps_the_target(batch):
    model, (x, _) = tiny_classifier(), batch
    target = torch.full((8,), 3)
    ours = fgsm(model, x, target, 0.05, targeted=True)
    atk = torchattacks.FGSM(model, eps=0.05)
    atk.set_mode_targeted_by_label(quiet=True)
    assert torch.allclose(ours, atk(x, target), atol=1e-7)
    assert (predict(model, ours)[:, 3] > predict(model, x)[:, 3]).float().mean() >= 0.75


def test_pgd_without_random_start_equals_torchattacks_pgd_and_bim(batch):
    model, (x, y) = tiny_classifier(), batch
    ours = pgd(model, x, y, eps=8 / 255, steps=5, alpha=2 / 255, random_start=False)
    theirs = torchattacks.PGD(model, eps=8 / 255, alpha=2 / 255, steps=5, random_start=False)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-7)
    bim = torchattacks.BIM(model, eps=8 / 255, alpha=2 / 255, steps=5)(x, y)
    assert torch.allclose(ifgsm(model, x, y, 8 / 255, steps=5, alpha=2 / 255), bim, atol=1e-6)


def test_pgd_with_random_start_stays_in_the_eps_ball_and_the_pixel_range(batch):
    model, (x, y) = tiny_classifier(), batch
    x = x.clone()
    x[0] = 0.0  # a black image: the ball is cut by the [0, 1] range
    adv = pgd(model, x, y, eps=0.05, steps=3, generator=torch.Generator().manual_seed(0))
    assert (adv - x).abs().max() <= 0.05 + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    again = pgd(model, x, y, eps=0.05, steps=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(adv, again)  # seeded start: reproducible


def test_negative_or_nan_eps_is_rejected_and_zero_changes_nothing(batch):
    model, (x, y) = tiny_classifier(), batch
    for attack in (fgsm, pgd, ifgsm):
        with pytest.raises(CnnlabError, match="must be >= 0"):
            attack(model, x, y, -0.01)
    with pytest.raises(CnnlabError):
        fgsm(model, x, y, float("nan"))
    assert torch.equal(fgsm(model, x, y, 0.0), x)
    with pytest.raises(CnnlabError, match="--eps-max"):
        min_flip_eps(model, x, y, eps_max=-1)


class Linear2(nn.Module):
    """Two-class linear model: logit difference d(x) = <w, x> + b, so FGSM moves it by eps * sum|w|."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w = nn.Parameter(w)
        self.b = b

    def forward(self, x):
        d = (x.flatten(1) * self.w.flatten()).sum(1) + self.b
        return torch.stack([d, torch.zeros_like(d)], 1)


def test_smallest_flipping_eps_matches_the_closed_form_of_a_linear_model():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(1, 4, 4, generator=g)
    model = Linear2(w, float(0.05 - 0.5 * w.sum()))  # d(x) = <w, x - 0.5> + 0.05
    x = 0.5 + 0.01 * torch.rand(6, 1, 4, 4, generator=g)  # near grey: nothing clips at these budgets
    d = ((x - 0.5).flatten(1) * w.flatten()).sum(1) + 0.05
    assert (d > 0).all()  # every image is class 0...
    y = torch.zeros(len(x), dtype=torch.long)
    exact = d / w.abs().sum()  # ...and flips when eps * sum|w| reaches d
    found = min_flip_eps(model, x, y, eps_max=0.1, grid=20, refine=10)
    resolution = 0.1 / 20 / 2 ** 10
    assert torch.all(found >= exact - 1e-6) and torch.all(found <= exact + resolution + 1e-6)
    never = min_flip_eps(model, x, y, eps_max=float(exact.min()) / 2)
    assert torch.isinf(never).all()
    wrong = min_flip_eps(model, x, torch.ones_like(y))  # already misclassified: 0
    assert torch.equal(wrong, torch.zeros_like(wrong))


def test_smallest_targeted_eps_matches_the_closed_form_and_iterative_steps_reach_the_class():
    """Targeted toward class 1 (logit 0), one step moves d(x) by -eps * sum|w|: the class changes at d / sum|w|."""
    from cnnlab.explain.api import minimal_targeted_attack

    g = torch.Generator().manual_seed(3)
    w = torch.randn(1, 4, 4, generator=g)
    model = Linear2(w, float(0.05 - 0.5 * w.sum()))
    x = 0.5 + 0.01 * torch.rand(5, 1, 4, 4, generator=g)
    d = ((x - 0.5).flatten(1) * w.flatten()).sum(1) + 0.05
    assert (d > 0).all()
    target = torch.ones(len(x), dtype=torch.long)
    exact = d / w.abs().sum()
    found = min_targeted_eps(model, x, target, eps_max=0.1, grid=20, refine=10)
    assert torch.all(found >= exact - 1e-6) and torch.all(found <= exact + 0.1 / 20 / 2 ** 10 + 1e-6)
    attack = minimal_targeted_attack(model, x[:1], 1, eps_max=0.1)
    assert attack["reached"] and attack["method"] == "fgsm"  # default search: 50 budgets, 8 bisections
    assert exact[0] - 1e-6 <= attack["linf"] <= exact[0] + 0.1 / 50 / 2 ** 8 + 1e-6
    # too small a budget for one step: iterative steps of 1/255 get there in ceil(d / (sum|w| / 255)) steps
    adv, steps = iterative_targeted(model, x[:1], 1, eps_max=0.5, alpha=1 / 255)
    assert steps == int(torch.ceil(d[0] / (w.abs().sum() / 255))) and predict(model, adv).argmax() == 1
    _, never = iterative_targeted(model, x[:1], 1, eps_max=float(exact[0]) / 2)
    assert never == -1


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A small CNN trained for a few epochs on scikit-learn's digits (8 x 8), through the training API."""
    from cnnlab.classify.api import train_classifier

    out = tmp_path_factory.mktemp("digits-run")
    metrics = train_classifier("digits", model="simple-cnn", model_kwargs={"width": 8}, out=out, epochs=4,
                               progress=False, device="cpu")
    return out, metrics


def test_sweep_clean_accuracy_matches_training_and_pgd_is_at_least_as_strong(digits_run):
    from cnnlab.attack.api import checkpoint_test_set
    from cnnlab.runs.sources import load_model

    out, metrics = digits_run
    pc = load_model(checkpoint=out / "best.ckpt")
    images, labels, classes = checkpoint_test_set(out / "best.ckpt")
    eps = [0, 0.05, 0.1, 0.2]
    fg = accuracy_vs_eps(pc.model, images, labels, eps, "fgsm")
    pg = accuracy_vs_eps(pc.model, images, labels, eps, "pgd", steps=5)
    assert fg[0] == pytest.approx(metrics["test_accuracy"], abs=1e-6)  # eps = 0 is the clean test accuracy
    assert pg[0] == fg[0] and fg[0] > 0.7
    assert fg[-1] < fg[0] and all(p <= f + 0.02 for p, f in zip(pg[1:], fg[1:]))
    flips = min_flip_eps(pc.model, images[:20], labels[:20], eps_max=0.5)
    x, y = images[:20], labels[:20]
    for i in torch.nonzero(torch.isfinite(flips) & (flips > 0)).flatten()[:5]:
        adv = fgsm(pc.model, x[i:i + 1], y[i:i + 1], float(flips[i]))
        assert predict(pc.model, adv).argmax(1) != y[i]


def test_cli_attack_sweep_and_panels(digits_run, tmp_path, capsys):
    out, metrics = digits_run
    ckpt = str(out / "best.ckpt")
    assert main(["attack", "sweep", "--checkpoint", ckpt, "--n", "0", "--eps", "0,0.1,8/255", "--steps", "3",
                 "--out", str(tmp_path / "sweep")]) == 0
    result = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert result["fgsm"][0] == pytest.approx(metrics["test_accuracy"], abs=1e-6)
    assert result["eps"][2] == pytest.approx(8 / 255)
    assert len(result["min_flip_eps"]["per_image"]) == metrics["test_size"]
    for name in ("accuracy_vs_eps.png", "min_flip_eps.png", "panels.png"):
        assert (tmp_path / "sweep" / name).is_file()
    assert "| 0.1000 |" in capsys.readouterr().out
    image = tmp_path / "digit.png"
    Image.fromarray((np.random.default_rng(0).random((8, 8)) * 255).astype(np.uint8)).save(image)
    assert main(["attack", str(image), "--checkpoint", ckpt, "--smallest", "--out", str(tmp_path / "one")]) == 0
    rows = json.loads((tmp_path / "one" / "attack.json").read_text())["rows"]
    assert rows[0]["flipped"] and (tmp_path / "one" / "panels.png").is_file()
    assert main(["attack", str(image), "--checkpoint", ckpt, "--method", "pgd", "--target", "3", "--eps", "0.3",
                 "--out", str(tmp_path / "t")]) == 0
    with pytest.raises(SystemExit) as refused:  # argparse checks the budget
        main(["attack", str(image), "--checkpoint", ckpt, "--eps", "-0.1"])
    assert refused.value.code == 2 and "argument --eps: expected a budget in [0, 1]" in capsys.readouterr().err
    assert main(["attack", str(image), "--checkpoint", ckpt, "--target", "seven"]) == 2
    assert main(["attack", "sweep"]) == 2
