"""Training features users reach for: gradient accumulation, clipping, top-k checkpoints, mixup/cutmix.

Each is checked against what it must equal: accumulated micro-batches against one large batch,
the logged gradient norm against autograd's, the kept checkpoints against the history's ranking.
"""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from cnnlab.core.errors import CnnlabError
from cnnlab.train.config import TrainConfig
from cnnlab.train.engine import fit
from cnnlab.train.mixing import batch_mixer
from cnnlab.train.tasks import BinaryTask, ClassificationTask


def _data(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 4, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def _batches(x: torch.Tensor, y: torch.Tensor, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(y), size)]


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def _cfg(**kw) -> TrainConfig:
    settings = dict(epochs=2, lr=0.1, schedule="none", weight_decay=0.0, device="cpu", channels_last=False)
    return TrainConfig(**{**settings, **kw})


def test_accumulated_micro_batches_equal_one_large_batch():
    x, y = _data()
    large, small = _model(), _model()
    fit(large, _batches(x, y, 32), None, ClassificationTask(3), _cfg(batch_size=32), progress=False)
    fit(small, _batches(x, y, 8), None, ClassificationTask(3), _cfg(batch_size=8, accumulate=4), progress=False)
    for a, b in zip(large.parameters(), small.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    untouched = _model()
    assert any((a - b).abs().max() > 1e-3 for a, b in zip(large.parameters(), untouched.parameters()))


def test_the_schedule_counts_optimizer_steps_not_micro_batches():
    from cnnlab.train.engine import one_cycle

    x, y = _data(40)
    history = fit(_model(), _batches(x, y, 4), None, ClassificationTask(3),
                  _cfg(epochs=2, batch_size=4, accumulate=3, schedule="onecycle"), progress=False)
    # 10 micro-batches -> 4 optimizer steps an epoch (3 + 3 + 3 + 1): epoch 2 starts at step 4 of 8
    assert history[1]["lr"] == pytest.approx(0.1 * one_cycle(8, 0.25)(4))
    assert history[1]["lr"] != pytest.approx(0.1 * one_cycle(20, 0.25)(10))


def test_a_short_last_group_is_averaged_over_its_own_micro_batches():
    x, y = _data(48)
    whole, grouped = _model(), _model()
    # 48 images: batches of 16, 16, 16; accumulate 2 -> groups (16+16) and (16): the second alone
    fit(whole, [(x[:32], y[:32]), (x[32:], y[32:])], None, ClassificationTask(3), _cfg(epochs=1), progress=False)
    fit(grouped, _batches(x, y, 16), None, ClassificationTask(3), _cfg(epochs=1, accumulate=2), progress=False)
    for a, b in zip(whole.parameters(), grouped.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_gradient_clipping_logs_autograds_norm_and_bounds_the_step():
    x, y = _data(16)
    model, probe = _model(), _model()
    loss = nn.functional.cross_entropy(probe(x), y)
    loss.backward()
    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in probe.parameters()))
    before = [p.detach().clone() for p in model.parameters()]
    history = fit(model, [(x, y)], None, ClassificationTask(3),
                  _cfg(epochs=1, momentum=0.0, grad_clip=1e-3), progress=False)
    assert history[0]["grad_norm"] == pytest.approx(float(norm), rel=1e-5)
    step = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    assert float(step) == pytest.approx(0.1 * 1e-3, rel=1e-3)  # lr x clip: the clipped gradient's length


def test_keep_top_keeps_the_best_epochs_by_validation_accuracy(tmp_path):
    user_files = {"epoch7.ckpt.mine": "a user's file", "notes-epoch001.ckpt": "not a checkpoint"}
    for name, text in user_files.items():
        (tmp_path / name).write_text(text)
    x, y = _data(96, seed=1)
    val = _batches(*_data(60, seed=2), 30)
    history = fit(_model(), _batches(x, y, 16), val, ClassificationTask(3),
                  _cfg(epochs=5, keep_top=2, lr=0.3), out_dir=tmp_path, progress=False)
    ranked = sorted(history, key=lambda r: (-r["val_accuracy"], r["epoch"]))
    expected = sorted(f"epoch{r['epoch']:03d}.ckpt" for r in ranked[:2])
    assert sorted(p.name for p in tmp_path.glob("epoch*.ckpt")) == expected
    for name in expected:
        state = torch.load(tmp_path / name, weights_only=True)
        assert f"epoch{state['epoch']:03d}.ckpt" == name and "state_dict" in state
    assert json.loads((tmp_path / "history.json").read_text())[-1]["epoch"] == 5
    assert {name: (tmp_path / name).read_text() for name in user_files} == user_files


def test_mixup_gives_soft_labels_that_sum_to_one_and_mix_two_images():
    x, y = _data(32)
    mixer = batch_mixer(0.4, 0.0, ClassificationTask(3))
    mixed, soft = mixer(x, y)
    assert soft.shape == (32, 3) and torch.allclose(soft.sum(1), torch.ones(32))
    lam = soft[torch.arange(32), y].min()  # torchvision mixes each image with its batch neighbour (roll by 1)
    assert 0.0 <= float(lam) <= 1.0
    both = batch_mixer(0.4, 1.0, ClassificationTask(3))
    assert type(both).__name__ == "RandomChoice"
    assert batch_mixer(0.0, 0.0, ClassificationTask(3)) is None


def test_mixup_is_refused_for_a_one_logit_task():
    with pytest.raises(CnnlabError, match="--mixup/--cutmix need a K-way softmax"):
        batch_mixer(0.2, 0.0, BinaryTask())


def test_training_with_cutmix_learns_and_reports_accuracy_on_the_original_labels():
    x, y = _data(64)
    history = fit(_model(), _batches(x, y, 16), None, ClassificationTask(3),
                  _cfg(epochs=2, cutmix=1.0, mixup=0.2), progress=False)
    assert all(0.0 <= row["train_accuracy"] <= 1.0 for row in history)
    assert all(torch.isfinite(torch.tensor(row["train_loss"])) for row in history)


@pytest.mark.parametrize("option, value", [("accumulate", 0), ("accumulate", 2000), ("keep_top", -1),
                                           ("grad_clip", -1.0), ("mixup", float("nan")), ("cutmix", 11.0)])
def test_bad_values_are_refused_by_the_config(option, value):
    with pytest.raises(CnnlabError, match=option):
        TrainConfig(**{option: value})


def test_the_cli_takes_the_features_and_records_them(tmp_path, capsys):
    from cnnlab.cli.main import main

    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--epochs", "2", "--subset", "300", "--model-kwargs", '{"width": 4}',
                 "--accumulate", "2", "--grad-clip", "5", "--keep-top", "1", "--mixup", "0.2", "--cutmix", "1",
                 "--out", str(out), "--no-progress"]) == 0
    train = json.loads((out / "config.json").read_text())["train"]
    assert (train["accumulate"], train["grad_clip"], train["keep_top"], train["mixup"], train["cutmix"]) == (2, 5, 1, 0.2, 1)
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert all(row["grad_norm"] > 0 for row in history)
    best = max(history, key=lambda r: (r["val_accuracy"], -r["epoch"]))
    assert [p.name for p in out.glob("epoch*.ckpt")] == [f"epoch{best['epoch']:03d}.ckpt"]
    assert "Acc@5" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        main(["train", "--dataset", "digits", "--accumulate", "0", "--out", str(tmp_path / "bad")])
    assert refused.value.code == 2
    assert "--accumulate" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_randaugment_is_torchvisions_per_image_repeatable_and_leaves_the_global_rng_alone():
    from torchvision.transforms import v2

    from cnnlab.data.augment import get_augment, rand_augment

    same = torch.arange(16 * 16, dtype=torch.float32).remainder(256).view(1, 1, 16, 16).repeat(12, 3, 1, 1)
    state = torch.get_rng_state()
    a = rand_augment(same, 2, 9, torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, rand_augment(same, 2, 9, torch.Generator().manual_seed(5)))
    assert a.shape == same.shape and torch.equal(a, a.round()) and a.min() >= 0 and a.max() <= 255
    assert len({tuple(img.flatten().tolist()) for img in a}) > 1  # each image its own ops
    # image by image, torchvision's transform under the seed drawn from the generator
    seed = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(5)))
    torch.manual_seed(seed)
    peer = v2.RandAugment(num_ops=2, magnitude=9)
    expected = torch.stack([peer(img) for img in same.to(torch.uint8)]).float()
    torch.set_rng_state(state)
    assert torch.equal(a, expected)
    assert get_augment("randaugment").recolours and get_augment("cifar-randaugment").hflip


def test_a_randaugment_loader_hands_normalised_batches(tmp_path):
    from cnnlab.data.augment import get_augment
    from cnnlab.data.tensor_loader import TensorLoader
    from cnnlab.data.registry import load_dataset

    splits = load_dataset("digits")
    loader = TensorLoader(splits.train, 64, splits.mean, splits.std, shuffle=True, augment=get_augment("randaugment"))
    x, _ = next(iter(loader))
    plain = TensorLoader(splits.train, 64, splits.mean, splits.std, shuffle=True)
    p, _ = next(iter(plain))
    assert x.shape == p.shape and abs(float(x.mean()) - float(p.mean())) < 0.5 and not torch.equal(x, p)


def _write_folder(root, n_per_class: int = 12, size=(10, 14)):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(("dark", "light")):
        (root / name).mkdir(parents=True)
        for i in range(n_per_class):
            pixels = rng.integers(0, 100, size) + 120 * c
            Image.fromarray(pixels.astype("uint8"), "L").save(root / name / f"{i}.png")


def test_a_folder_over_the_memory_budget_streams_through_a_dataloader(tmp_path, monkeypatch, capsys):
    from cnnlab.classify.api import make_loaders
    from cnnlab.data.imagefolder import load_image_folder
    from cnnlab.data.streaming import FileImageSet
    from cnnlab.data.tensor_loader import StreamingLoader

    _write_folder(tmp_path / "pics")
    resident = load_image_folder(tmp_path / "pics", name="pics", seed=3)
    monkeypatch.setenv("CNNLAB_MEMORY_BUDGET", "1K")  # 24 images of 10 x 14 = 3,360 bytes
    streamed = load_image_folder(tmp_path / "pics", name="pics", seed=3)
    assert "streaming them from disk through a DataLoader" in capsys.readouterr().err
    assert isinstance(streamed.train, FileImageSet) and streamed.info["loading"].startswith("streamed")
    assert resident.info["loading"] == "decoded into memory"
    assert streamed.train.shape == tuple(resident.train.images.shape)
    assert torch.equal(streamed.train.images, resident.train.images)  # the same pixels, the same split
    cfg = _cfg(batch_size=5, device="cpu")
    (a, _, at), (b, _, bt) = make_loaders(resident, cfg, "digits"), make_loaders(streamed, cfg, "digits")
    assert isinstance(b, StreamingLoader) and not isinstance(a, StreamingLoader)
    b.workers = 1
    for (xa, ya), (xb, yb) in zip(a, b):  # same seed: same order and the same augmentation draws
        assert torch.equal(ya, yb)
        torch.testing.assert_close(xa, xb, rtol=1e-4, atol=1e-4)
    assert len(list(bt)) == len(at)


def test_the_memory_budget_is_read_from_the_environment(monkeypatch):
    from cnnlab.data.streaming import memory_budget

    for text, expected in (("512M", 512 << 20), ("2G", 2 << 30), ("1500", 1500), ("1.5K", 1536)):
        monkeypatch.setenv("CNNLAB_MEMORY_BUDGET", text)
        assert memory_budget() == expected
    monkeypatch.setenv("CNNLAB_MEMORY_BUDGET", "lots")
    with pytest.raises(CnnlabError, match="CNNLAB_MEMORY_BUDGET='lots': expected a size"):
        memory_budget()


def test_cnnlab_train_streams_a_folder_over_budget_and_says_so(tmp_path, monkeypatch, capsys):
    from cnnlab.cli.main import main

    _write_folder(tmp_path / "pics", size=(12, 12))
    monkeypatch.setenv("CNNLAB_MEMORY_BUDGET", "1K")
    out = tmp_path / "run"
    assert main(["train", "--dataset", "imagefolder", "--data-dir", str(tmp_path / "pics"), "--model", "mlp",
                 "--epochs", "2", "--batch-size", "4", "--out", str(out), "--no-progress"]) == 0
    assert "24 images would take 3.4 KiB decoded, over the memory budget of 1.0 KiB" in capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data_loading"] == "streamed from disk (DataLoader workers)"
    assert len(metrics["history"]) == 2 and metrics["test_size"] == 4  # 2 of each class of 12 (20%, stratified)


def test_config_reruns_a_run_exactly_and_print_config_shows_the_layers(tmp_path, capsys):
    from cnnlab.cli.main import main

    first, again = tmp_path / "first", tmp_path / "again"
    base = ["--epochs", "1", "--subset", "300", "--model-kwargs", '{"width": 4}', "--no-progress"]
    assert main(["train", "--dataset", "digits", "--lr", "0.03", "--seed", "7", "--out", str(first), *base]) == 0
    capsys.readouterr()
    assert main(["train", "--config", str(first / "config.json"), "--epochs", "3", "--print-config"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["dataset"], shown["lr"], shown["seed"], shown["epochs"], shown["subset"]) == ("digits", 0.03, 7, 3, 300)
    assert not any(p.name.startswith("digits-") for p in tmp_path.iterdir())  # nothing trained, no folder
    assert main(["train", "--config", str(first), "--out", str(again), "--no-progress"]) == 0
    stored = [json.loads((run / "config.json").read_text()) for run in (first, again)]
    assert stored[0]["train"] == stored[1]["train"] and stored[0]["subset"] == stored[1]["subset"] == 300
    results = [json.loads((run / "metrics.json").read_text()) for run in (first, again)]
    assert results[0]["test_accuracy"] == results[1]["test_accuracy"]  # CPU runs repeat exactly
    assert results[0]["history"][0]["train_loss"] == results[1]["history"][0]["train_loss"]
    assert main(["train", "--config", str(first), "--resume", "--out", str(again)]) == 2
    assert "give one of them" in capsys.readouterr().err


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_resume_with_more_epochs_extends_a_finished_run_on_the_new_schedule(tmp_path, capsys, schedule):
    import math

    from cnnlab.cli.main import main
    from cnnlab.train.engine import one_cycle

    out = tmp_path / "run"
    base = ["--out", str(out), "--no-progress", "--schedule", schedule, "--lr", "0.05"]
    assert main(["train", "--epochs", "2", "--subset", "300", "--model-kwargs", '{"width": 4}', *base]) == 0
    assert main(["train", "--resume", "--epochs", "3", *base]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["epochs"] == 3 and config["extended_from"] == [2]
    metrics = json.loads((out / "metrics.json").read_text())
    history = metrics["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3]
    steps = math.ceil(metrics["train_size"] / 64)
    at = 2 * steps  # epoch 3 starts here, on the curve of a 3-epoch run
    expected = (0.05 * one_cycle(3 * steps, 0.25)(at) if schedule == "onecycle"
                else 0.05 * (1 + math.cos(math.pi * at / (3 * steps))) / 2)
    assert history[2]["lr"] == pytest.approx(expected, rel=1e-6)
    assert torch.load(out / "last.ckpt", weights_only=True)["epoch"] == 3
    assert main(["train", "--resume", "--epochs", "1", *base]) == 2
    assert "has already trained 3 epochs" in capsys.readouterr().err


def test_progress_goes_to_stderr_and_train_log_results_to_stdout(tmp_path, capsys, monkeypatch):
    from cnnlab.cli.main import main
    from cnnlab.core import log

    monkeypatch.setattr(log, "PROGRESS_EVERY", 0.0)
    monkeypatch.setattr("cnnlab.train.engine.PROGRESS_EVERY", 0.0)  # piped: a line per batch here
    out = tmp_path / "run"
    assert main(["train", "--epochs", "2", "--subset", "300", "--model-kwargs", '{"width": 4}', "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == f"run folder: {out}" and "test accuracy" in captured.out
    assert "train_loss" not in captured.out
    assert "epoch   2  train_loss" in captured.err and "epoch 1/2: batch 1/" in captured.err
    logged = (out / "train.log").read_text()
    assert "epoch   1  train_loss" in logged and "steps 5  " in logged

    quiet = tmp_path / "quiet"
    assert main(["train", "-q", "--epochs", "1", "--subset", "300", "--model-kwargs", '{"width": 4}',
                 "--out", str(quiet)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "test accuracy" in captured.out
    assert "epoch   1  train_loss" in (quiet / "train.log").read_text()  # the log keeps the story under -q


def test_under_torchrun_lines_carry_the_rank_and_other_ranks_are_quiet(monkeypatch, capsys):
    from cnnlab.core import log

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    log.setup(0)
    log.log.info("hidden")
    log.log.warning("shown")
    log.setup(1)
    log.log.info("detail")
    assert capsys.readouterr().err == "[rank 1] shown\n[rank 1] detail\n"
    monkeypatch.setenv("RANK", "0")
    log.setup(0)
    log.log.info("epoch")
    assert capsys.readouterr().err == "[rank 0] epoch\n"
    monkeypatch.setenv("WORLD_SIZE", "1")
    log.setup(0)
