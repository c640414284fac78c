"""airbench's speed features as general engine pieces: whitening stem, alternating flip, weight
averaging, TTA, BN learning-rate groups, decoupled SGD, torch.compile warm-up, the fast recipe."""
from __future__ import annotations

import copy
import json
import logging
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cnnlab.classify.recipes import decoupled_sgd, train_config
from cnnlab.core.log import log
from cnnlab.data.augment import Augment, alternating_flip, get_augment
from cnnlab.data.base import ImageSet
from cnnlab.data.tensor_loader import TensorLoader
from cnnlab.models import create_model
from cnnlab.models.layers import PatchWhitening
from cnnlab.data.segmentation import IGNORE
from cnnlab.segment.losses import build_loss
from cnnlab.segment.task import SegmentationTask
from cnnlab.train.averaging import WeightAverage
from cnnlab.train.engine import build_optimizer, fit, one_cycle
from cnnlab.train.config import TrainConfig
from cnnlab.train.tasks import ClassificationTask
from cnnlab.train.tta import tta_logits
from tests.bench_scripts import load_benchmark
from tests.test_train import CrashAfter


def _smooth_images(n=64, c=3, size=12, seed=0) -> torch.Tensor:
    """Images with strongly correlated neighbouring pixels and channels (like photos)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, size + 2, size + 2, generator=g)
    x = F.avg_pool2d(x, 3, stride=1)  # neighbours share most of their sum
    return x.repeat(1, c, 1, 1) + 0.3 * torch.randn(n, c, size, size, generator=g)


def test_whitening_makes_the_patch_second_moment_the_identity():
    images = _smooth_images()
    layer = PatchWhitening(3, kernel_size=2, eps=1e-10)
    layer.init_from_data(images)
    out = F.conv2d(images.double(), layer.weight.double())  # the filters alone, without the bias
    d = 3 * 2 * 2
    first = out[:, :d].permute(0, 2, 3, 1).reshape(-1, d)
    before = images.double().unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, d)
    assert not torch.allclose(before.T @ before / len(before), torch.eye(d, dtype=torch.double), atol=0.1)
    assert torch.allclose(first.T @ first / len(first), torch.eye(d, dtype=torch.double), atol=1e-4)
    assert torch.equal(out[:, d:], -out[:, :d])  # the negated copies
    assert not layer.weight.requires_grad and layer.bias.requires_grad
    layer.set_epoch(3)
    assert not layer.bias.requires_grad  # bias_epochs=3: frozen from the fourth epoch


def test_alternating_flip_mirrors_each_image_on_exactly_every_other_epoch():
    n, w = 40, 5
    images = torch.zeros(n, 1, 3, w, dtype=torch.uint8)
    images[:, :, :, -1] = 255  # a marker in the right-hand column: at the left when mirrored
    data = ImageSet(images, torch.arange(n))  # the label names the image
    loader = TensorLoader(data, 16, (0.0,), (1 / 255,), shuffle=True, augment=get_augment("cifar-fast"), seed=3)
    loader.augment = Augment(hflip=True, alternate_flip=True)  # no translation: the marker stays in its column
    flipped = torch.zeros(6, n, dtype=torch.bool)
    for epoch in range(6):
        seen = 0
        for x, y in loader:
            flipped[epoch, y] = x[:, 0, 0, 0] == 255
            seen += len(y)
        assert seen == n
    assert (flipped[1:] != flipped[:-1]).all()  # every image changes view every epoch
    assert 0 < flipped[0].sum() < n  # a random half starts mirrored
    base = torch.tensor([True, False])
    assert alternating_flip(base, 0).tolist() == [True, False] and alternating_flip(base, 1).tolist() == [False, True]


def test_lookahead_and_ema_equal_hand_computed_averages():
    w = [torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 0.0]]), torch.tensor([[5.0, 4.0]]), torch.tensor([[-1.0, 8.0]])]

    def run(mode):
        model = nn.Linear(2, 1, bias=False)
        model.weight.data.copy_(torch.tensor([[0.0, 0.0]]))
        avg = WeightAverage(model, mode, every=2, decay=0.5, power=1.0)
        seen = []
        for step, value in enumerate(w, start=1):
            model.weight.data.copy_(value)  # what an optimizer step would have produced
            avg.step(model, step, total=4)
            seen.append(model.weight.detach().clone())
        avg.finish(model)
        return seen, model.weight.detach(), avg.slow["weight"]

    # decay at step s is 0.5 * s / 4: 0.25 at step 2, 0.5 at step 4
    slow2 = 0.25 * torch.tensor([[0.0, 0.0]]) + 0.75 * w[1]
    seen, final, slow = run("lookahead")
    assert torch.allclose(seen[1], slow2) and torch.allclose(seen[0], w[0])  # synced on step 2 only
    slow4 = 0.5 * slow2 + 0.5 * w[3]
    assert torch.allclose(slow, slow4) and torch.allclose(final, slow4)
    seen, final, slow = run("ema")
    assert torch.allclose(seen[1], w[1])  # EMA leaves the model alone ...
    assert torch.allclose(slow, slow4) and torch.allclose(final, slow4)  # ... until finish()


def test_tta_levels_average_the_hand_built_views():
    x = torch.arange(2 * 1 * 4 * 5, dtype=torch.float).view(2, 1, 4, 5)
    identity = nn.Flatten()  # "logits" = the pixels, so each view is visible in the output
    assert torch.equal(tta_logits(identity, x, 0), x.flatten(1))
    mirror = 0.5 * (x + x.flip(-1))
    assert torch.allclose(tta_logits(identity, x, 1), mirror.flatten(1))
    # a shift up-left by one pixel reads pixel (i-1, j-1), reflected at the border (-1 -> 1)
    up = [1, 0, 1, 2]
    left = [1, 0, 1, 2, 3]
    down = [1, 2, 3, 2]
    right = [1, 2, 3, 4, 3]
    up_left, down_right = x[:, :, up][..., left], x[:, :, down][..., right]
    pair = lambda v: 0.5 * (v + v.flip(-1))  # noqa: E731
    expected = 0.5 * mirror + 0.25 * (pair(up_left) + pair(down_right))
    assert torch.allclose(tta_logits(identity, x, 2), expected.flatten(1))


def _airbench_optimizer(model, lr, wd, momentum, batch_size, bias_scaler):
    """airbench94's optimizer, as its main() builds it (summed loss, decoupled hyperparameters)."""
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    lr, wd = lr / kilostep_scale, wd * batch_size / kilostep_scale
    lr_biases = lr * bias_scaler
    norm_biases = [p for k, p in model.named_parameters() if "norm" in k and p.requires_grad]
    other = [p for k, p in model.named_parameters() if "norm" not in k and p.requires_grad]
    return torch.optim.SGD([dict(params=norm_biases, lr=lr_biases, weight_decay=wd / lr_biases),
                            dict(params=other, lr=lr, weight_decay=wd / lr)], momentum=momentum, nesterov=True)


def test_decoupled_sgd_and_bn_lr_groups_step_like_airbench():
    batch = 16
    torch.manual_seed(0)
    ours = create_model("speed-vgg", num_classes=10, widths=(8, 16, 16))
    ours[0].init_from_data(torch.randn(32, 3, 16, 16))
    theirs = copy.deepcopy(ours)
    cfg = TrainConfig(**decoupled_sgd(11.5, 0.0153, 0.85, batch), bn_lr_scale=64.0, decay_all=True)
    opt_ours = build_optimizer(ours, cfg)
    opt_theirs = _airbench_optimizer(theirs, 11.5, 0.0153, 0.85, batch, 64.0)
    x, y = torch.randn(batch, 3, 16, 16), torch.randint(0, 10, (batch,))
    for _ in range(3):
        for model, opt, reduction in ((ours, opt_ours, "mean"), (theirs, opt_theirs, "sum")):
            loss = F.cross_entropy(model(x), y, label_smoothing=0.2, reduction=reduction)
            opt.zero_grad()
            loss.backward()
            opt.step()
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), name
    assert not torch.allclose(ours[2].norm1.bias, torch.zeros(8))  # the BN biases did train


def test_default_groups_are_unchanged_and_bn_scale_divides_decay():
    model = create_model("simple-cnn", num_classes=10, width=4)
    groups = build_optimizer(model, TrainConfig(weight_decay=0.01)).param_groups
    assert [len(g["params"]) for g in groups] == [sum(p.ndim > 1 for p in model.parameters()),
                                                  sum(p.ndim <= 1 for p in model.parameters())]
    assert [g["weight_decay"] for g in groups] == [0.01, 0.0]
    scaled = build_optimizer(model, TrainConfig(lr=0.1, weight_decay=0.01, bn_lr_scale=10, decay_all=True)).param_groups
    bn_params = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert sum(p.numel() for p in scaled[2]["params"]) == bn_params
    assert scaled[2]["lr"] == pytest.approx(1.0) and scaled[2]["weight_decay"] == pytest.approx(0.001)
    assert scaled[1]["weight_decay"] == 0.01  # linear biases decay too under decay_all


def test_one_cycle_start_and_end_factors():
    f = one_cycle(100, 0.21, start=0.2, end=0.07)  # the peak falls on step 0.21 * 100 - 1 = 20
    assert f(0) == pytest.approx(0.2) and f(99) == pytest.approx(0.07)
    assert f(20) == pytest.approx(1.0) and f(10) == pytest.approx(0.6)


def test_prenormalised_loader_yields_the_same_batches():
    g = torch.Generator().manual_seed(0)
    data = ImageSet(torch.randint(0, 256, (50, 3, 8, 8), generator=g, dtype=torch.uint8), torch.arange(50) % 3)
    kw = dict(mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), shuffle=True, augment=Augment(hflip=True, translate=1), seed=1)
    plain, pre = TensorLoader(data, 16, **kw), TensorLoader(data, 16, prenormalize=True, **kw)
    for (xa, ya), (xb, yb) in zip(plain, pre):
        assert torch.equal(ya, yb) and torch.allclose(xa, xb, atol=1e-5)
    assert plain.batch_sizes() == [16, 16, 16, 2]
    assert torch.allclose(plain.sample(5), pre.sample(5), atol=1e-6)
    half = TensorLoader(data, 16, prenormalize=True, dtype=torch.float16, **kw)
    assert half.images.dtype == torch.float16 and next(iter(half))[0].dtype == torch.float16


def _tiny_rgb(n=96, size=16, seed=0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    images = torch.randint(0, 120, (n, 3, size, size), generator=g) + (labels * 40).view(-1, 1, 1, 1)
    return ImageSet(images.to(torch.uint8), labels)


def test_fit_initialises_the_whitening_stem_and_freezes_its_bias_after_its_epochs():
    data = _tiny_rgb()
    loader = TensorLoader(data, 32, (0.4,) * 3, (0.25,) * 3, shuffle=True, augment=get_augment("cifar-fast"), seed=0)
    model = create_model("speed-vgg", num_classes=4, widths=(8, 16, 16), whiten_bias_epochs=1)
    biases = []
    fit(model, loader, None, ClassificationTask(4), TrainConfig(epochs=3, lr=0.2, decay_all=True), progress=False,
        on_epoch=lambda row, m: biases.append(m[0].bias.detach().clone()))
    reference = PatchWhitening(3, 2, eps=5e-4)
    reference.init_from_data(loader.sample(5000))
    assert torch.allclose(model[0].weight, reference.weight, atol=1e-5)
    assert not torch.equal(biases[0], torch.zeros_like(biases[0]))  # trained in epoch 1
    assert torch.equal(biases[0], biases[1]) and torch.equal(biases[1], biases[2])  # frozen after it


def test_compile_warm_up_leaves_no_trace_and_is_timed_apart(monkeypatch):
    """With torch.compile replaced by the identity, a compiled run must train exactly like an eager
    one: the warm-up's forward/backward passes restore weights, BN statistics, RNG and loader state."""
    data = _tiny_rgb(n=72)

    def run(compile_model: bool):
        torch.manual_seed(0)
        model = create_model("simple-cnn", num_classes=4, in_chans=3, width=4)  # has dropout: uses the RNG
        loader = TensorLoader(data, 32, (0.4,) * 3, (0.25,) * 3, shuffle=True, augment=Augment(hflip=True), seed=0)
        val = TensorLoader(data, 50, (0.4,) * 3, (0.25,) * 3)
        history = fit(model, loader, val, ClassificationTask(4), TrainConfig(epochs=2, compile=compile_model, tta=1),
                      progress=False)
        return model, history

    calls = []
    monkeypatch.setattr(torch, "compile", lambda m, **kw: calls.append(m) or m)
    eager, h1 = run(False)
    compiled, h2 = run(True)
    assert len(calls) == 2 and "compile_seconds" not in h1[0] and h2[0]["compile_seconds"] > 0
    assert "compile_seconds" not in h2[1]
    for (k, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        assert torch.equal(a, b), k
    assert h1[-1]["val_accuracy"] == h2[-1]["val_accuracy"]


def test_a_failing_compile_warns_and_trains_eager_from_the_same_state(monkeypatch, caplog):
    """Where inductor cannot compile (no C++ compiler on a laptop) a preset with ``compile=True`` must
    still train: the warning names the failure, and the weights equal an eager run's to the bit,
    although the failure came half-way through the warm-up's forward/backward passes."""
    data = _tiny_rgb(n=72)

    class NoCompiler(nn.Module):  # forwards once (a step half-done), then fails as inductor does
        def __init__(self, module):
            super().__init__()
            self.module, self.calls = module, 0

        def forward(self, x):
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("CppCompileError: C++ compile error\nno compiler found")
            return self.module(x)

    def run(compile_model: bool):
        torch.manual_seed(0)
        model = create_model("simple-cnn", num_classes=4, in_chans=3, width=4)
        loader = TensorLoader(data, 32, (0.4,) * 3, (0.25,) * 3, shuffle=True, augment=Augment(hflip=True), seed=0)
        return model, fit(model, loader, None, ClassificationTask(4), TrainConfig(epochs=2, compile=compile_model),
                          progress=False)

    eager, h1 = run(False)
    monkeypatch.setattr(torch, "compile", lambda m, **kw: NoCompiler(m))
    monkeypatch.setattr(log, "propagate", True)  # a CLI test before may have set cnnlab's logger apart
    with caplog.at_level(logging.WARNING, logger=log.name):
        fallback, h2 = run(True)
    assert "torch.compile failed (RuntimeError: CppCompileError: C++ compile error)" in caplog.text
    assert all("compile_seconds" not in row for row in h2) and len(h2) == 2
    for (k, a), b in zip(eager.state_dict().items(), fallback.state_dict().values()):
        assert torch.equal(a, b), k


def test_compile_warm_up_counts_no_step_of_the_task_and_trains_auxiliary_heads(monkeypatch, caplog):
    """The warm-up and timed passes are not steps of the run: a deeply supervised ResU-Net (auxiliary
    outputs) under segmentation's noisy-label loss, which counts steps before it drops images, compiles
    without the fallback warning and ends with an eager run's weights, step count and dropped images."""
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(4, 1, 16, 16, generator=g), (torch.rand(4, 16, 16, generator=g) > 0.7).long())
               for _ in range(3)]

    def run(compile_model: bool):
        torch.manual_seed(0)
        model = create_model("resunet", num_classes=1, in_chans=1, width=4, depth=2, deep_supervision=True)
        task = SegmentationTask(2, build_loss("bce+dice", IGNORE), IGNORE, noisy_drop=0.5, warmup_steps=4)
        history = fit(model, batches, None, task, TrainConfig(epochs=2, compile=compile_model), progress=False)
        return model, task, history

    eager, eager_task, _ = run(False)
    monkeypatch.setattr(torch, "compile", lambda m, **kw: m)
    monkeypatch.setattr(log, "propagate", True)  # a CLI test before may have set cnnlab's logger apart
    with caplog.at_level(logging.WARNING, logger=log.name):
        model, task, history = run(True)
    assert "torch.compile failed" not in caplog.text and "compiled" in history[0]
    assert (task.steps, task.dropped) == (eager_task.steps, eager_task.dropped) == (6, 2 * 2)  # 2 steps past warm-up
    for (k, a), b in zip(eager.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k


class _Sleepy(nn.Module):
    """A tiny CNN whose forward sleeps unless told it is the fast ("compiled") one."""

    def __init__(self):
        super().__init__()
        self.net = create_model("simple-cnn", num_classes=4, in_chans=3, width=4)

    def forward(self, x, fast=False):
        if not fast:
            time.sleep(0.03)
        return self.net(x)


class _Compiled(nn.Module):
    """What the fake ``torch.compile`` returns: the same weights, faster or slower than eager."""

    def __init__(self, module, faster):
        super().__init__()
        self.module, self.faster, self.calls = module, faster, 0

    def forward(self, x):
        self.calls += 1
        if not self.faster:
            time.sleep(0.06)
        return self.module(x, fast=self.faster)


@pytest.mark.parametrize("faster", [True, False])
def test_compile_is_kept_only_where_it_steps_faster(faster, monkeypatch):
    """Compiling made ResNeXt-20 slower on one CPU and faster on another: the run times one training
    pass of each and trains with the faster, reporting both; the weights equal an eager run's."""
    data = _tiny_rgb(n=72)
    made = []

    def run(compile_model):
        torch.manual_seed(0)
        model = _Sleepy()
        loader = TensorLoader(data, 32, (0.4,) * 3, (0.25,) * 3, shuffle=True, augment=Augment(hflip=True), seed=0)
        return model, fit(model, loader, None, ClassificationTask(4), TrainConfig(epochs=1, compile=compile_model),
                          progress=False)

    eager, _ = run(False)
    monkeypatch.setattr(torch, "compile", lambda m, **kw: made.append(_Compiled(m, faster)) or made[-1])
    model, history = run(True)
    first = history[0]
    assert first["compiled"] is faster and first["compile_seconds"] > 0
    slower, quicker = (first["eager_pass_ms"], first["compiled_pass_ms"])[:: 1 if faster else -1]
    assert slower > quicker + 20  # the sleeps: 30 ms eager against 0 or 60 ms compiled
    warm_and_race = 2 + 4  # warm-up passes at both batch sizes (32 and the last 8), 4 timed rounds
    assert made[0].calls == warm_and_race + (3 if faster else 0)  # 72 images in batches of 32: 3 steps
    for (k, a), b in zip(eager.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k


class CrashAfterWithSample(CrashAfter):
    """The crashing loader, with the images for the whitening stem (not an epoch of its own)."""

    def sample(self, n):
        return self.loader.sample(n)


def test_resume_with_lookahead_matches_an_unbroken_run(tmp_path):
    data = _tiny_rgb()
    cfg = TrainConfig(epochs=3, lr=0.2, average="lookahead", average_every=2)

    def run(out, crash_after=None, resume=False):
        torch.manual_seed(0)
        model = create_model("speed-vgg", num_classes=4, widths=(8, 8, 8))
        loader = TensorLoader(data, 32, (0.4,) * 3, (0.25,) * 3, shuffle=True, augment=get_augment("cifar-fast"), seed=0)
        loader = CrashAfterWithSample(loader, crash_after) if crash_after else loader
        fit(model, loader, None, ClassificationTask(4), cfg, out, {"model": "speed-vgg"}, resume=resume, progress=False)
        return model

    unbroken = run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", crash_after=1)
    resumed = run(tmp_path / "b", resume=True)
    for (k, a), b in zip(unbroken.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_cifar10_fast_recipe_is_airbench94s_hyperparameters():
    cfg = train_config("cifar10", "cifar10-fast")
    kilostep_scale = 1024 * (1 + 1 / (1 - 0.85))
    assert cfg.batch_size == 1024 and cfg.lr == pytest.approx(11.5 / kilostep_scale * 1024)
    assert cfg.lr * cfg.weight_decay == pytest.approx(0.0153 * 1024 / kilostep_scale)  # per-step decay
    assert (cfg.bn_lr_scale, cfg.label_smoothing, cfg.tta, cfg.average, cfg.momentum) == (64.0, 0.2, 2, "lookahead", 0.85)


def test_cli_trains_with_the_fast_recipe_on_an_image_folder(tmp_path, capsys):
    from cnnlab.cli.main import main

    rng = np.random.default_rng(0)
    for c in range(4):
        for i in range(12):
            pixels = np.clip(rng.integers(0, 150, (32, 32, 3)) + 35 * c, 0, 255).astype(np.uint8)
            (tmp_path / "data" / f"class{c}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(tmp_path / "data" / f"class{c}" / f"{i}.png")
    out = tmp_path / "run"
    code = main(["train", "--recipe", "cifar10-fast", "--dataset", "imagefolder", "--data-dir", str(tmp_path / "data"),
                 "--model-kwargs", '{"widths": [8, 16, 16]}', "--epochs", "2", "--batch-size", "16",
                 "--out", str(out)])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and metrics["test_size"] == 8  # 20% of 12 per class, rounded
    assert config["model"] == "speed-vgg" and config["train"]["tta"] == 2 and config["augment"] == "cifar-fast"
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.slow
def test_torch_compile_really_compiles_on_the_cpu():
    from cnnlab.data import load_dataset

    splits = load_dataset("digits")
    loader = TensorLoader(splits.train, 128, splits.mean, splits.std, shuffle=True)
    model = create_model("mlp", num_classes=10, in_chans=1, image_size=8, hidden=(32,))
    history = fit(model, loader, None, ClassificationTask(10), TrainConfig(epochs=2, lr=0.1, compile=True),
                  progress=False)
    assert history[0]["compile_seconds"] > 0 and history[-1]["train_accuracy"] > 0.5


@pytest.mark.parametrize("k", [1, 5])
def test_topk_accuracy_equals_torchmetrics_micro_accuracy(k):
    from torchmetrics.classification import MulticlassAccuracy

    from cnnlab.train.tasks import TopKAccuracy

    g = torch.Generator().manual_seed(0)
    ours, peer = TopKAccuracy(k), MulticlassAccuracy(10, average="micro", top_k=k)
    for n in (7, 32, 1):
        logits, target = torch.randn(n, 10, generator=g), torch.randint(0, 10, (n,), generator=g)
        ours.update(logits, target)
        peer.update(logits, target)
    assert float(ours.compute()) == pytest.approx(float(peer.compute()))


FAKE_AIRBENCH = '''
import torch
logging_columns_list = ["run", "tta_val_acc", "total_time_seconds"]
def print_columns(columns, is_head=False, is_final_entry=False):
    pass
def print_training_details(variables, is_final_entry):
    pass
def main(run):
    data = torch.load("cifar10/train.pt")  # relative to the working folder, as airbench94 reads it
    tta_val_acc = float((data["labels"] < 5).float().mean()) if run != "warmup" else -1.0
    total_time_seconds = 1.5 + (run if run != "warmup" else 100)
    print_training_details(locals(), is_final_entry=True)
    return tta_val_acc
'''


def test_legacy_airbench_adapter_reads_its_own_logging_and_skips_the_warmup(tmp_path):
    """The peer adapter of benchmarks/cifar10_speed.py, on a stand-in with airbench94's interface."""
    from pathlib import Path

    peer = load_benchmark("airbench_peer")
    (tmp_path / "cifar10").mkdir()
    labels = torch.tensor([0, 1, 7, 9])
    torch.save({"images": torch.zeros(4, 32, 32, 3, dtype=torch.uint8), "labels": labels}, tmp_path / "cifar10" / "train.pt")
    script = tmp_path / "airbench94.py"
    script.write_text(FAKE_AIRBENCH)
    before = Path.cwd()
    result = peer.run_legacy_airbench94(script, tmp_path, runs=3)
    assert Path.cwd() == before  # the working folder is put back
    assert [r["seconds"] for r in result["runs"]] == [1.5, 2.5, 3.5]  # the warm-up run is not counted
    assert result["mean_acc"] == pytest.approx(0.5) and result["mean_seconds"] == pytest.approx(2.5)


@pytest.mark.slow
def test_cifar10_speed_smoke_writes_every_field_the_issue_names(tmp_path, monkeypatch, capsys):
    """benchmarks/cifar10_speed.py --smoke on a tiny CIFAR-like tree: one CPU run, no peer, a complete JSON."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 3)):
        for c in range(3):
            folder = tmp_path / "cifar" / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)).save(folder / f"{i}.png")
    bench = load_benchmark("cifar10_speed")
    out = tmp_path / "speed.json"
    monkeypatch.setattr("sys.argv", ["cifar10_speed.py", "--data-dir", str(tmp_path / "cifar"), "--smoke",
                                     "--out", str(out)])
    bench.main()
    doc = json.loads(out.read_text())
    assert doc["device"] == "cpu" and doc["smoke"] and (doc["train_images"], doc["test_images"]) == (18, 9)
    assert doc["airbench"] is None and doc["airbench_accuracy"] is None and doc["ratio"] is None
    (setting,) = doc["cnnlab"]
    assert setting["epochs"] == 1 and len(setting["runs"]) == 1
    accuracy = setting["runs"][0]["tta_accuracy"]
    assert accuracy * 9 == pytest.approx(round(accuracy * 9), abs=1e-3)  # a count of the 9 test images
    assert doc["cnnlab_accuracy"] == accuracy and doc["cnnlab_seconds"] == setting["runs"][0]["seconds"] > 0
    assert "wrote" in capsys.readouterr().out
