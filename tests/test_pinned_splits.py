"""A run of image files pins its splits (issue 29, mechanism 4): config.json lists each split's files,
and evaluate, attacks and ``--resume`` use exactly those, whatever was added to the folder since."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.classify.api import evaluate_checkpoint, train_classifier
from cnnlab.core.errors import CnnlabError
from cnnlab.data import load_dataset
from cnnlab.runs.restore import checkpoint_splits

TINY = dict(model="simple-cnn", model_kwargs={"width": 2}, epochs=1, batch_size=16, progress=False, device="cpu")


def image_folder(root: Path, per_class: int = 10, prefix: str = "img") -> Path:
    """Two class folders of 8x8 grey PNGs, each image its own grey level (so each file is told apart)."""
    for c, name in enumerate(("ants", "bees")):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            level = (37 * i + 101 * c + 7 * len(prefix)) % 256
            Image.fromarray(np.full((8, 8), level, np.uint8)).save(root / name / f"{prefix}{i:02d}.png")
    return root


def relative(files, root: Path) -> list[str]:
    return [Path(f).relative_to(root).as_posix() for f in files]


@pytest.fixture
def pinned_run(tmp_path):
    data = image_folder(tmp_path / "data")
    out = tmp_path / "run"
    train_classifier("imagefolder", data_dir=str(data), out=out, **TINY)
    return data, out, json.loads((out / "config.json").read_text())["data_files"]


def test_config_json_lists_every_split_by_file(pinned_run):
    data, out, files = pinned_run
    train, val, test = (set(files[k]) for k in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert train | val | test == {p.relative_to(data).as_posix() for p in data.rglob("*.png")}
    assert (len(train), len(val), len(test)) == (14, 2, 4)  # 20 images: test 0.2, then val 0.1 of the rest
    assert files["image_size"] == [8, 8] and len(files["mean"]) == 1


def test_files_added_later_never_enter_the_test_split(pinned_run):
    data, out, files = pinned_run
    image_folder(data, per_class=10, prefix="a")  # new files sorting first: a fresh seeded cut would move
    fresh = load_dataset("imagefolder", str(data), val_fraction=0.1)
    assert set(relative(fresh.test.files, data)) & set(files["train"]), "the leak this test guards against"
    with pytest.warns(UserWarning, match=r"20 image file\(s\) not in this run's splits .* are ignored"):
        _, _, splits = checkpoint_splits(out / "best.ckpt")
    assert relative(splits.test.files, data) == files["test"]
    assert relative(splits.train.files, data) == files["train"] and relative(splits.val.files, data) == files["val"]
    with pytest.warns(UserWarning, match="not in this run's splits"):
        metrics = evaluate_checkpoint(out / "best.ckpt", device="cpu")
    assert metrics["test_size"] == len(files["test"])


def test_the_pinned_splits_are_the_trained_ones_image_for_image(pinned_run):
    data, out, _ = pinned_run
    trained = load_dataset("imagefolder", str(data), val_fraction=0.1)  # the folder unchanged: the same cut
    _, _, splits = checkpoint_splits(out / "best.ckpt")
    for part in ("train", "val", "test"):
        a, b = getattr(trained, part), getattr(splits, part)
        assert a.files == b.files and a.labels.tolist() == b.labels.tolist()
        assert (a.images == b.images).all()


def test_a_pinned_file_that_is_gone_is_refused_by_name(pinned_run):
    data, out, files = pinned_run
    gone = data / files["test"][0]
    gone.unlink()
    with pytest.raises(CnnlabError, match=rf"{gone.name} is gone: 1 of the 20 files this run's splits are pinned"):
        evaluate_checkpoint(out / "best.ckpt", device="cpu")


@pytest.mark.slow  # a run trained, then continued (5 s on the 2-core CPU beside other work)
def test_resume_trains_on_the_pinned_files(pinned_run):
    data, out, files = pinned_run
    image_folder(data, per_class=5, prefix="late")
    with pytest.warns(UserWarning, match=r"10 image file\(s\) not in this run's splits"):
        metrics = train_classifier(out=out, resume=True, epochs=2, progress=False)
    assert metrics["train_size"] == len(files["train"]) and metrics["test_size"] == len(files["test"])
    assert json.loads((out / "config.json").read_text())["data_files"]["test"] == files["test"]


def test_a_filename_dataset_pins_its_files_and_labels(tmp_path):
    data = tmp_path / "named"
    data.mkdir()
    for i in range(12):
        Image.fromarray(np.full((8, 8), 20 * i, np.uint8)).save(data / f"x_{i % 3}_{i:02d}.png")
    out = tmp_path / "run"
    train_classifier("filename", data_dir=str(data), dataset_kwargs={"label_regex": r"x_(\d)_"}, out=out, **TINY)
    files = json.loads((out / "config.json").read_text())["data_files"]
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(data / "x_3_99.png")  # a new file, even a new class
    with pytest.warns(UserWarning, match=r"1 image file\(s\) not in this run's splits"):
        _, _, splits = checkpoint_splits(out / "best.ckpt")
    assert splits.classes == ["0", "1", "2"]
    assert relative(splits.test.files, data) == files["test"]
    assert splits.test.labels.tolist() == [int(Path(f).name.split("_")[1]) for f in files["test"]]


def test_the_report_counts_the_pinned_files_instead_of_listing_them(pinned_run):
    from cnnlab.report.runs import _trained

    _, out, files = pinned_run
    view = _trained(out)
    assert view.config["data_files.test"] == f"{len(files['test'])} files"
    assert not any(files["train"][0] in str(v) for v in view.config.values())


@pytest.mark.slow  # two phases (3 CPU s on the 2-core machine beside other work)
def test_the_fine_tuning_phase_trains_on_the_first_phases_files(tmp_path):
    data = image_folder(tmp_path / "data")
    out = tmp_path / "run"
    train_classifier("imagefolder", data_dir=str(data), out=out, finetune_epochs=1, **TINY)
    first = json.loads((out / "frozen" / "config.json").read_text())["data_files"]
    assert json.loads((out / "config.json").read_text())["data_files"] == first
