"""One run lifecycle for every task (``cnnlab.runs``): a tiny classifier and a tiny segmenter, each
stopped by Ctrl-C after its first epoch and resumed, end with the history and the held-out scores of
an unbroken run; any checkpoint is restored by its task; the recipe layers' model_kwargs rule."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from cnnlab.classify.api import train_classifier
from cnnlab.core.errors import CnnlabError
from cnnlab.runs import lifecycle
from cnnlab.runs.recipe import layered
from cnnlab.runs.restore import restore
from cnnlab.runs.rundir import Interrupted
from cnnlab.segment.api import train_segmenter
from cnnlab.train.checkpoint import load_checkpoint, save_checkpoint
from tests.test_segment import FAST, _one_thread, write_pairs  # noqa: F401 (_one_thread: autouse fixture)

CLASSIFIER = dict(model="simple-cnn", model_kwargs={"width": 4, "hidden": 16}, epochs=3, batch_size=64, lr=0.05,
                  device="cpu", progress=False)


def stop_during_epoch_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C at the end of epoch 2's training, before its checkpoint is written: the run folder
    then holds epoch 1 only, as after a kill at any moment of epoch 2."""
    real_fit = lifecycle.fit

    def fit(*args, on_epoch=None, **kwargs):
        def hook(row: dict, model: torch.nn.Module) -> None:
            if row["epoch"] == 2:
                raise KeyboardInterrupt
            if on_epoch is not None:
                on_epoch(row, model)
        return real_fit(*args, on_epoch=hook, **kwargs)

    monkeypatch.setattr(lifecycle, "fit", fit)


def assert_same_history(resumed: list[dict], unbroken: list[dict]) -> None:
    """Every epoch's losses, metrics and learning rate agree (wall-clock seconds aside)."""
    assert [r["epoch"] for r in resumed] == [r["epoch"] for r in unbroken] == [1, 2, 3]
    for a, b in zip(resumed, unbroken):
        assert a.keys() == b.keys()
        for key in a.keys() - {"seconds"}:
            assert math.isclose(a[key], b[key], rel_tol=1e-5, abs_tol=1e-7), (a["epoch"], key, a[key], b[key])


def interrupt_then_resume(train, out: Path, monkeypatch: pytest.MonkeyPatch, **options) -> dict:
    """``train`` stopped during epoch 2, then continued with ``resume`` and no options repeated."""
    with monkeypatch.context() as patch:
        stop_during_epoch_2(patch)
        with pytest.raises(Interrupted, match=f"interrupted after epoch 1; continue with --resume --out {out}"):
            train(out=out, **options)
    assert load_checkpoint(out / "last.ckpt")["epoch"] == 1
    assert not (out / "metrics.json").exists()
    return train(out=out, resume=True, progress=False)


def test_a_classifier_resumed_after_epoch_1_ends_as_an_unbroken_run(tmp_path, monkeypatch):
    unbroken = train_classifier("digits", out=tmp_path / "a", **CLASSIFIER)
    resumed = interrupt_then_resume(train_classifier, tmp_path / "b", monkeypatch, dataset="digits", **CLASSIFIER)
    assert_same_history(resumed["history"], unbroken["history"])
    assert resumed["test_accuracy"] == unbroken["test_accuracy"] and resumed["best_epoch"] == unbroken["best_epoch"]
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["history"] == resumed["history"]
    assert (tmp_path / "b" / "curves.png").is_file() and (tmp_path / "b" / "confusion_matrix.png").is_file()


def test_a_segmenter_resumed_after_epoch_1_ends_as_an_unbroken_run(tmp_path, monkeypatch):
    images, masks = write_pairs(tmp_path, 8)
    options = dict(FAST, folder=dict(images=images, masks=masks, classes=["bg", "square", "disc"]), epochs=3,
                   val_fraction=0.25, test_fraction=0.25)
    unbroken = train_segmenter(out=tmp_path / "a", **options)
    resumed = interrupt_then_resume(train_segmenter, tmp_path / "b", monkeypatch, **options)
    assert_same_history(resumed["history"], unbroken["history"])
    assert resumed["split"] == unbroken["split"] == "test" and resumed["miou"] == unbroken["miou"]
    assert (tmp_path / "b" / "curves.png").is_file() and (tmp_path / "b" / "predictions.png").is_file()


def test_restore_rebuilds_any_checkpoint_by_its_task(tmp_path, digits_run):
    model, meta = restore(digits_run / "best.ckpt")
    assert "task" not in meta and meta["classes"] and not model.training
    images, masks = write_pairs(tmp_path, 5)
    train_segmenter(folder=dict(images=images, masks=masks, classes=["bg", "square", "disc"]), out=tmp_path / "seg",
                    val_fraction=0.2, test_fraction=0.2, **{**FAST, "epochs": 1})
    model, meta = restore(tmp_path / "seg" / "last.ckpt")
    assert meta["task"] == "segmentation" and model(torch.zeros(1, 3, 24, 32)).shape == (1, 3, 24, 32)
    save_checkpoint(tmp_path / "det.ckpt", {**load_checkpoint(tmp_path / "seg" / "last.ckpt"), "task": "detection"})
    with pytest.raises(CnnlabError, match="unknown task 'detection'"):
        restore(tmp_path / "det.ckpt")


def test_a_model_chosen_in_a_later_layer_drops_the_earlier_model_kwargs():
    recipe = dict(model="unet", model_kwargs={"width": 32}, lr=0.1)
    assert layered(recipe, dict(model="resunet")) == dict(model="resunet", model_kwargs={}, lr=0.1)
    assert layered(recipe, dict(model="unet", lr=0.2)) == dict(model="unet", model_kwargs={"width": 32}, lr=0.2)
    assert layered(recipe, dict(model="resunet", model_kwargs={"depth": 2}))["model_kwargs"] == {"depth": 2}
    assert layered(dict(lr=0.1), recipe, dict(epochs=2)) == dict(recipe, epochs=2)
