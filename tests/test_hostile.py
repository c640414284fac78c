"""Hostile input, replayed: every case of issue 10 and more of the same families.

Each case runs the real CLI in-process and asserts what a user must get: the exit code, ONE line
on stderr that names the argument or file at fault, no traceback, and no file outside ``--out``
changed (every file under the test's world is hashed before and after). Failing ``train`` runs
must also leave no run folder behind. ``CASES`` is the table; the families are in its comments.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.classify.api import predict_files, train_classifier
from cnnlab.export.api import export_checkpoint
from cnnlab.cli.main import main
from cnnlab.data import load_dataset
from cnnlab.core.errors import CnnlabError
from cnnlab.segment.api import train_segmenter
from tests.idx_files import write_idx_set
from tests.test_segment import write_pairs

ROOT = Path(__file__).resolve().parents[1]


class Evil:
    """A pickled object whose unpickling creates a file: proof that code from a data file ran."""

    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def __reduce__(self):
        return (open, (str(self.flag), "w"))


class OsSystem:
    """A pickled call of os.system (never run: the loaders must refuse it by name)."""

    def __reduce__(self):
        return (os.system, ("echo this would have run",))


@dataclass
class World:
    root: Path
    paths: dict[str, str] = field(default_factory=dict)
    flag: Path | None = None

    def fmt(self, text: str, out: Path) -> str:
        return text.format(out=out, **self.paths)


def _png(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def _cifar_release(folder: Path, evil: object | None) -> None:
    """A CIFAR-10 python-pickle release in the official layout; ``evil`` replaces data_batch_1."""
    import pickle

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batch = {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"labels": [i % 10 for i in range(20)]}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(evil if evil is not None and name == "data_batch_1" else batch, 2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}, 2))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    """Inputs of every kind, a tiny classification run and a tiny segmentation run."""
    root = tmp_path_factory.mktemp("world")
    w = World(root, flag=root / "PWNED")
    p = w.paths
    p["root"] = str(root)
    torch.set_num_threads(1)
    digit = load_dataset("digits", val_fraction=0).test.images[0, 0].numpy()
    p["img"] = str(_png(root / "digit.png", digit))
    p["img16"] = str(_png(root / "digit16.png", digit.astype(np.uint16) * 257))
    (root / "notimage.png").write_text("this is text, not a PNG")
    p["notimg"] = str(root / "notimage.png")
    (root / "plain.txt").write_text("a file where a folder belongs")
    p["file"] = str(root / "plain.txt")
    p["empty"] = str(root / "empty")
    (root / "empty").mkdir()
    p["run"] = str(root / "run")
    train_classifier("digits", model="simple-cnn", model_kwargs={"width": 4}, epochs=1, batch_size=256,
                     out=root / "run", progress=False)
    images, masks = write_pairs(root / "seg", 8, fmt="binary", size=(16, 16))
    p["segimages"], p["segmasks"] = str(images), str(masks)
    p["seg"] = str(root / "segrun")
    train_segmenter(folder=dict(images=images, masks=masks, classes=["bg", "fg"]), out=root / "segrun",
                    model_kwargs={"width": 4, "depth": 2}, epochs=1, batch_size=4, progress=False)
    # checkpoints that must never load
    p["evil"] = str(root / "evil.ckpt")
    torch.save({"model": "simple-cnn", "state_dict": {}, "x": Evil(w.flag)}, root / "evil.ckpt")
    (root / "truncated.ckpt").write_bytes((root / "run" / "best.ckpt").read_bytes()[:300])
    p["truncated"] = str(root / "truncated.ckpt")
    (root / "random.ckpt").write_bytes(os.urandom(256))
    p["random"] = str(root / "random.ckpt")
    (root / "random.onnx").write_bytes(os.urandom(256))
    p["randonnx"] = str(root / "random.onnx")
    torch.save({"model": "simple-cnn", "x": OsSystem()}, root / "ossystem.ckpt")
    p["ossystem"] = str(root / "ossystem.ckpt")
    (root / "empty.ckpt").write_bytes(b"")
    p["emptyckpt"] = str(root / "empty.ckpt")
    torch.save(torch.load(root / "run" / "best.ckpt", weights_only=True)["state_dict"], root / "bare.ckpt")
    p["bare"] = str(root / "bare.ckpt")
    export_checkpoint(root / "run" / "best.ckpt", root / "model.onnx")
    shutil.copy(root / "model.onnx", root / "model-onnx.ckpt")  # an ONNX file under a checkpoint's name
    p["onnx"], p["onnxckpt"] = str(root / "model.onnx"), str(root / "model-onnx.ckpt")
    torch.save([1, 2, 3], root / "list.ckpt")
    p["list"] = str(root / "list.ckpt")
    other = torch.load(root / "run" / "best.ckpt", weights_only=True)
    other["model"], other["model_kwargs"] = "mlp", {"image_size": 8}
    torch.save(other, root / "other-model.ckpt")
    p["othermodel"] = str(root / "other-model.ckpt")
    # a run whose last.ckpt is malicious, one with a broken config.json
    shutil.copytree(root / "run", root / "evilrun")
    shutil.copy(root / "evil.ckpt", root / "evilrun" / "last.ckpt")
    p["evilrun"] = str(root / "evilrun")
    shutil.copytree(root / "run", root / "mixedrun")  # config says simple-cnn, last.ckpt says mlp
    last = torch.load(root / "run" / "last.ckpt", weights_only=True)
    last["model"], last["model_kwargs"] = "mlp", {"image_size": 8}
    torch.save(last, root / "mixedrun" / "last.ckpt")
    p["mixedrun"] = str(root / "mixedrun")
    shutil.copytree(root / "run", root / "bestaslast")  # a best.ckpt copied over last.ckpt: no optimizer state
    shutil.copy(root / "run" / "best.ckpt", root / "bestaslast" / "last.ckpt")
    p["bestaslast"] = str(root / "bestaslast")
    shutil.copytree(root / "segrun", root / "segbroken")
    (root / "segbroken" / "config.json").write_text("{not json")
    p["segbroken"] = str(root / "segbroken")
    # datasets
    _cifar_release(root / "cifar-evil" / "cifar-10-batches-py", Evil(w.flag))
    p["cifarevil"] = str(root / "cifar-evil")
    for name, n_classes in (("onecls", 1), ("twocls", 2)):
        for c in range(n_classes):
            (root / name / f"class{c}").mkdir(parents=True)
            for i in range(6):
                _png(root / name / f"class{c}" / f"{i}.png", np.full((8, 8), 20 * i + 100 * c, np.uint8))
        p[name] = str(root / name)
    (root / "emptycls" / "a").mkdir(parents=True)
    (root / "emptycls" / "b").mkdir()
    _png(root / "emptycls" / "a" / "x.png", np.zeros((8, 8), np.uint8))
    p["emptycls"] = str(root / "emptycls")
    for c in ("a", "b"):
        (root / "corrupt" / c).mkdir(parents=True)
        (root / "corrupt" / c / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    p["corrupt"] = str(root / "corrupt")
    # Fashion-MNIST folders whose IDX files are wrong in each way the official ones never are (29.3)
    labels = (np.arange(40) % 10).astype(np.uint8)
    for name, change in {"idx12": dict(train_labels=np.where(labels == 3, 12, labels).astype(np.uint8)),
                         "idx255": dict(test_labels=np.full(20, 255, np.uint8)),
                         "idx2d": dict(train_labels=labels.reshape(20, 2)),
                         "idxfloatlab": dict(train_labels=labels.astype(">f4")),
                         "idxfloatimg": dict(train_images=np.zeros((40, 8, 8), ">f4")),
                         "idxswap": dict(train_images=labels, train_labels=np.zeros((40, 8, 8), np.uint8)),
                         "idxcount": dict(test_labels=labels[:19]),
                         "idxsize": dict(test_images=np.zeros((20, 10, 10), np.uint8))}.items():
        p[name] = str(write_idx_set(root / name, **change))
    # segmentation folders: a 255 in an index mask, JPEG masks
    images255, masks255 = write_pairs(root / "seg255", 4, fmt="index", size=(16, 16))
    m = np.array(Image.open(masks255 / "s02.png"))
    m[0, 0] = 255
    _png(masks255 / "s02.png", m)
    p["seg255images"], p["seg255masks"] = str(images255), str(masks255)
    shutil.copy(root / "digit.png", root / "digit_gradcam.png")  # named like explain's overlay of digit.png
    _pinned_runs(w)  # 29.4
    p["cache"] = os.environ["CNNLAB_CACHE"]  # tests/conftest.py's own cache (29.6: no --out inside it)
    return w


def _pinned_runs(w: World) -> None:
    """29.4: a run of an image folder (its splits pinned in config.json), that folder changed in each
    way a pinned run must notice, and copies of the run whose data_files were edited by hand."""
    root, p = w.root, w.paths
    shutil.copytree(root / "twocls", root / "pindata")
    train_classifier("imagefolder", data_dir=str(root / "pindata"), out=root / "pinrun", model="simple-cnn",
                     model_kwargs={"width": 2}, epochs=1, batch_size=16, progress=False)
    files = json.loads((root / "pinrun" / "config.json").read_text())["data_files"]
    p["pinrun"], p["pindata"] = str(root / "pinrun"), str(root / "pindata")
    shutil.copytree(root / "pindata", root / "pingone")
    (root / "pingone" / files["test"][0]).unlink()
    p["pingone"], p["pingonefile"] = str(root / "pingone"), files["test"][0]
    shutil.copytree(root / "pindata", root / "pinmoved")
    moved = Path(files["train"][0])
    other = "class1" if moved.parts[0] == "class0" else "class0"
    (root / "pinmoved" / other / "sub").mkdir()
    (root / "pinmoved" / moved).rename(root / "pinmoved" / other / "sub" / moved.name)
    p["pinmoved"], p["pinmovedfile"] = str(root / "pinmoved"), files["train"][0]
    shutil.copytree(root / "pindata", root / "pincorrupt")
    (root / "pincorrupt" / files["val"][0]).write_bytes(b"\x89PNG\r\n\x1a\n not any more")
    p["pincorrupt"], p["pincorruptfile"] = str(root / "pincorrupt"), files["val"][0]
    for name, change in {"pinescape": {"test": ["../digit.png"]}, "pinabsolute": {"test": [p["img"]]},
                         "pinnotlists": {"train": "class0/0.png"}, "pinsize": {"image_size": [8, 8, 8]}}.items():
        shutil.copytree(root / "pinrun", root / name)
        config = json.loads((root / name / "config.json").read_text())
        config["data_files"].update(change)
        (root / name / "config.json").write_text(json.dumps(config))
        p[name] = str(root / name)


def fingerprint(root: Path, skip: list[Path]) -> dict[str, str]:
    """sha256 of every file under ``root`` except those under ``skip``."""
    return {str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(root.rglob("*")) if f.is_file() and not any(f.is_relative_to(s) for s in skip)}


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's refusals
        code = exc.code
    return code, capsys.readouterr().err


# (argv, fragment the one line must contain). {out} is a fresh path per case.
CASES: list[tuple[str, str]] = [
    # -- numeric, JSON and device options: typed checkers at the argparse layer, every command
    ("train --epochs 0 --out {out}", "argument --epochs: expected an integer >= 1, got '0'"),
    ("train --epochs -3", "argument --epochs"),
    ("train --epochs 1.5", "argument --epochs: expected an integer"),
    ("train --batch-size 0", "argument --batch-size"),
    ("train --lr 0", "argument --lr: expected a number > 0"),
    ("train --lr nan", "argument --lr: expected a finite number"),
    ("train --lr inf", "argument --lr: expected a finite number"),
    ("train --lr fast", "argument --lr: expected a number, got 'fast'"),
    ("train --momentum -5", "argument --momentum: expected a number in [0, 1)"),
    ("train --momentum 1", "argument --momentum"),
    ("train --weight-decay -1", "argument --weight-decay: expected a number >= 0"),
    ("train --label-smoothing 2", "argument --label-smoothing"),
    ("train --label-smoothing -0.1", "argument --label-smoothing"),
    ("train --patience -1", "argument --patience: expected an integer >= 0"),
    ("train --val-fraction 1", "argument --val-fraction"),
    ("train --test-fraction 0", "argument --test-fraction"),
    ("train --test-fraction 1", "argument --test-fraction"),
    ("train --image-size 0", "argument --image-size"),
    ("train --model-kwargs {{x", "argument --model-kwargs: expected a JSON object"),
    ("train --model-kwargs [1]", "argument --model-kwargs: expected a JSON object"),
    ("train --device tpu9", "argument --device: expected auto, cpu, cuda"),
    ("train --device cuda", "argument --device: 'cuda' asked for, but this machine has no CUDA GPU"),
    ("train --device cuda:7", "argument --device"),
    ("train --seed -1", "argument --seed"),
    ("train --split-seed x", "argument --split-seed"),
    ("train --target-recall 0", "argument --target-recall"),
    ("train --target-recall 1.5", "argument --target-recall"),
    ("evaluate --checkpoint {run}/best.ckpt --device tpu", "argument --device"),
    ("predict --checkpoint {run}/best.ckpt {img} --topk 0", "argument --topk: expected an integer >= 1, got '0'"),
    ("predict --checkpoint {run}/best.ckpt {img} --topk -2", "argument --topk"),
    ("show -n 0 --out {out}", "argument -n: expected a number of images in [1, 1024]"),
    ("show --seed -3 --out {out}", "argument --seed"),
    ("show --image-size -1", "argument --image-size"),
    ("segment train --epochs 0", "argument --epochs"),
    ("segment train --size 0 0", "argument --size: expected an image side in [1, 4096] pixels"),
    ("segment train --crop -1 5", "argument --crop"),
    ("segment train --window 0 0", "argument --window"),
    ("segment train --repeat 0", "argument --repeat"),
    ("segment train --focus 2", "argument --focus: expected a number in [0, 1]"),
    ("segment train --noisy-drop 1", "argument --noisy-drop"),
    ("segment train --noisy-warmup -0.5", "argument --noisy-warmup"),
    ("segment train --corrupt-fraction -1", "argument --corrupt-fraction"),
    ("segment train --class-weights a,b", "argument --class-weights: expected a number, got 'a'"),
    ("segment train --class-weights 1,-2", "argument --class-weights"),
    ("segment train --pos-weight x", "argument --pos-weight"),
    ("segment train --pos-weight 0", "argument --pos-weight"),
    ("segment train --label-smoothing 1", "argument --label-smoothing"),
    ("segment train --lesion-weight 1", "argument --lesion-weight"),
    ("segment train --palette {{x", "argument --palette: expected a JSON list"),
    ("segment train --palette {{}}", "argument --palette: expected a JSON list"),
    ("segment train --model-kwargs {{x", "argument --model-kwargs"),
    ("segment train --val-fraction 1.5", "argument --val-fraction"),
    ("segment train --lr nan", "argument --lr"),
    ("segment train --batch-size 0", "argument --batch-size"),
    ("segment train --patience -2", "argument --patience"),
    ("segment train --device tpu", "argument --device"),
    ("segment evaluate --checkpoint {seg}/best.ckpt --window 0 0", "argument --window"),
    ("segment predict --checkpoint {seg}/best.ckpt {img} --out {out} --window 0 0", "argument --window"),
    ("segment predict --checkpoint {seg}/best.ckpt {img} --out {out} --device cuda", "argument --device"),
    ("scratch mlp --out {out} --epochs 0", "argument --epochs"),
    ("scratch mlp --out {out} --batch-size 0", "argument --batch-size"),
    ("scratch mlp --out {out} --hidden 64 0", "argument --hidden"),
    ("scratch mlp --out {out} --lr -1", "argument --lr"),
    ("scratch mlp --out {out} --momentum 1", "argument --momentum"),
    ("scratch mlp --out {out} --threads 0", "argument --threads"),
    ("scratch suite --out {out} --epochs 0", "argument --epochs"),
    ("scratch linreg --out {out} --n 0", "argument --n: expected an integer >= 1"),
    ("scratch linreg --out {out} --d -1", "argument --d"),
    ("scratch linreg --out {out} --steps 0", "argument --steps"),
    ("scratch linreg --out {out} --repeats 0", "argument --repeats"),
    ("scratch check --seed x", "argument --seed"),
    ("explain {img} --samples 0", "argument --samples"),
    ("explain compare {img} --steps 0", "argument --steps"),
    ("explain compare {img} --noise -1", "argument --noise"),
    ("explain compare {img} --repeats 0", "argument --repeats"),
    ("explain {img} --device tpu", "argument --device"),
    ("explain image {img} --samples 0", "argument --samples"),
    ("visualize --class 1 --lr nan", "argument --lr: expected a finite number"),
    ("visualize --class 1 --steps 0", "argument --steps"),
    ("visualize --class 1 --l2 -1", "argument --l2"),
    ("visualize --class 1 --jitter -1", "argument --jitter"),
    ("visualize --class 1 --blur-every -1", "argument --blur-every"),
    ("visualize --class 1 --blur-sigma 0", "argument --blur-sigma"),
    ("attack {img} --eps 2", "argument --eps: expected a budget in [0, 1]"),
    ("attack {img} --eps x", "argument --eps: expected a number like 0.03 or 8/255"),
    ("attack {img} --eps 1/0", "argument --eps"),
    ("attack {img} --eps nan", "argument --eps"),
    ("attack {img} --steps 0", "argument --steps"),
    ("attack {img} --alpha -1", "argument --alpha"),
    ("attack {img} --eps-max 0", "argument --eps-max"),
    ("attack sweep --checkpoint {run}/best.ckpt --n -5", "argument --n: expected an integer >= 0"),
    ("attack {img} --seed -1", "argument --seed"),
    ("attack image {img} --eps 2", "argument --eps: expected a budget in [0, 1]"),
    ("summary mlp --num-classes 0", "argument --num-classes"),
    ("summary mlp --input 3,0,8", "argument --input"),
    ("summary mlp --input a", "argument --input"),
    ("fuse mlp --batch 0", "argument --batch"),
    ("fuse mlp --repeats 0", "argument --repeats"),
    ("fuse mlp --threads 0", "argument --threads"),
    ("lab run optimisers --seed -1", "argument --seed"),
    ("lab optimisers --device tpu", "argument --device"),
    ("lab all --threads 0", "argument --threads"),
    ("lab list --seed 1", "unrecognized arguments: --seed 1"),
    ("train --epochs", "argument --epochs: expected one argument"),
    ("train --no-such-option", "unrecognized arguments: --no-such-option"),
    ("segment frobnicate", "argument <segment command>: invalid choice"),
    # -- names and choices given as text: models and their arguments, recipes, presets, methods
    ("train --model nosuch --out {out}", "unknown model 'nosuch'"),
    ("train --model mlp --model-kwargs {{\"bogus\":1}} --out {out}",
     "model 'mlp' has no argument 'bogus' (it takes: image_size, hidden"),
    ("train --model simple-cnn --model-kwargs {{\"width\":\"x\"}} --out {out}",
     "model 'simple-cnn' cannot be built with {{'width': 'x'}}: TypeError"),
    ("train --model simple-cnn --model-kwargs {{\"width\":-2}} --out {out}", "model 'simple-cnn' cannot be built"),
    ("train --dataset imagefolder --data-dir {twocls} --image-size 2 --out {out}",
     "model 'resnet9' cannot take 1x2x2 inputs"),
    ("train --recipe nosuch --out {out}", "unknown recipe 'nosuch'"),
    ("train --augment nosuch --out {out}", "unknown augmentation 'nosuch'"),
    ("train --target-recall 0.9 --out {out}", "--target-recall needs a two-class dataset; digits has 10 classes"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --model-kwargs {{\"bogus\":1}} "
     "--out {out}", "model 'unet' has no argument 'bogus'"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --loss nosuch --out {out}", "nosuch"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --loss ce --class-weights 1,2,3 "
     "--out {out}", "class_weights has 3 values for 2 classes"),
    ("segment train --dataset nosuch --out {out}", "unknown segmentation dataset 'nosuch'"),
    ("segment train --dataset camvid --data-dir {empty} --out {out}", "{empty}/train does not exist"),
    ("segment train --images {segimages} --masks {segmasks} --out {out}", "needs a preset (--dataset) or --images"),
    ("scratch mlp --dataset digits --activation swish --out {out}", "--activation must be one of"),
    ("scratch mlp --dataset digits --optimizer adamax --out {out}", "--optimizer must be one of"),
    ("scratch suite --dataset digits --variants xyz --out {out}", "--variants: unknown xyz"),
    ("lab nosuch", "unknown lab 'nosuch'"),
    ("lab run nosuch", "unknown lab 'nosuch'"),
    ("explain compare {img} --methods gradcam,foo", "argument --methods: expected one of gradcam"),
    ("explain {img} --checkpoint {run}/best.ckpt --layer nosuch --out {out}", "--layer 'nosuch' does not exist"),
    ("explain {img} --checkpoint {run}/best.ckpt --target zebra --out {out}", "--target 'zebra' is not one of"),
    ("explain --checkpoint {run}/best.ckpt", "give at least one image file"),
    ("visualize --class 99 --checkpoint {run}/best.ckpt --out {out}", "--class 99: class index out of range 0..9"),
    ("attack sweep --checkpoint {run}/best.ckpt --attacks fgsm,bim", "argument --attacks: expected one of fgsm"),
    ("attack sweep", "attack sweep needs --checkpoint"),
    ("attack {img} --checkpoint {run}/best.ckpt --eps 0.1,0.2 --out {out}", "--eps: an attack on files takes one"),
    ("attack {img} --checkpoint {run}/best.ckpt --target zebra --out {out}", "--target 'zebra' is not one of"),
    ("predict --checkpoint {run}/best.ckpt", "the following arguments are required: images"),
    # -- where output goes: a file where a folder belongs
    ("evaluate --checkpoint {run}/best.ckpt --out {file}", "plain.txt"),
    ("scratch mlp --dataset digits --epochs 1 --out {file}", "plain.txt"),
    ("lab bn-scale-invariance --quick --out {file}", "--out {file} is a file"),
    ("explain {img} --checkpoint {run}/best.ckpt --out {file}", "plain.txt"),
    ("segment evaluate --checkpoint {seg}/best.ckpt --out {file}", "plain.txt"),
    # -- the output guard (issue 29): no user file replaced without --overwrite, outputs checked first
    ("show --out {img}", "--out {img} already exists; pass --overwrite to replace it"),
    ("show --out {img}.txt --overwrite", "digit.png.txt: expected a file ending in .png"),
    ("scratch mlp --dataset digits --epochs 1 --out {run}",
     "--out {run}/metrics.json already exists (and 1 more); pass --overwrite"),
    ("segment predict --checkpoint {seg}/best.ckpt {segimages}/s00.png --out {segmasks}",
     "--out {segmasks}/s00.png already exists; pass --overwrite"),
    ("explain image {segimages}/s00.png {seg255images}/s00.png --checkpoint {run}/best.ckpt --out {out}",
     "would both be written to {out}/s00_gradcam.png"),
    ("segment predict --checkpoint {seg}/best.ckpt {segimages} {seg255images} --out {out}",
     "{segimages}/s00.png and {seg255images}/s00.png would both be written to {out}/s00.png"),
    ("train --data-dir {twocls} --out {twocls}/runs --epochs 1", "--out {twocls}/runs is inside --data-dir {twocls}"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --out {segmasks}/run",
     "--out {segmasks}/run is inside --masks {segmasks}"),
    ("lab run bn-scale-invariance --quick --data-dir {root} --out {root}/lab --overwrite", "is inside --data-dir"),
    ("match find {img} {img} --out {file}", "--out {file} is a file; expected a folder"),
    ("explain image {img} --checkpoint {run}/best.ckpt --out=", "argument --out: expected a value, got ''"),
    ("train --epochs 1 --out=", "argument --out: expected a value, got ''"),
    ("attack sweep --checkpoint {run}/best.ckpt --out {file}/sub", "plain.txt is a file"),
    # -- run folders: nothing lost, nothing half-made, conflicts named
    ("train --out {run} --epochs 1", "--out {run} already holds a run (config.json, last.ckpt, best.ckpt"),
    ("train --out {empty}/../plain.txt", "plain.txt is a file; expected a folder for the run"),
    ("train --out {file}/sub", "plain.txt is a file, so the run folder cannot be made there"),
    ("train --resume --out {run} --model mlp", "{run} was trained as simple-cnn on digits; you asked for mlp"),
    ("train --resume --out {run} --dataset fashion-mnist",
     "{run} was trained as simple-cnn on digits; you asked for simple-cnn on fashion-mnist"),
    ("train --resume --out {run} --lr 0.5 --batch-size 8",
     "{run} was trained with batch_size=256, lr=0.05; you asked for batch_size=8, lr=0.5"),
    ("train --resume --out {mixedrun}",
     "last.ckpt holds mlp {{'image_size': 8}}, but this run trains simple-cnn {{'width': 4}}"),
    ("train --resume --out {bestaslast}", "last.ckpt has no optimizer, scheduler, rng: not a last.ckpt that --resume"),
    ("train --resume --out {empty}", "--resume: no last.ckpt in {empty}"),
    ("train --resume", "--resume needs --out"),
    ("train --resume --overwrite --out {run}", "give one of them"),
    ("train --out /sys/cnnlab-hostile --epochs 1", "/sys/cnnlab-hostile"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --out {seg}",
     "--out {seg} already holds a run"),
    ("segment train --resume --out {seg} --model resunet", "{seg} was trained as unet on folder data; you asked for resunet"),
    ("segment train --resume --out {seg} --val-fraction 0.3", "{seg} was trained with val_fraction=0.1"),
    # -- datasets: bad folders, one class, a file where a folder belongs, code in a CIFAR pickle
    ("train --dataset imagefolder --data-dir {onecls} --out {out}", "classification needs >= 2 classes; imagefolder has 1"),
    ("train --dataset imagefolder --data-dir {emptycls} --out {out}", "emptycls/b: class folder 'b' holds no image files"),
    ("train --dataset imagefolder --data-dir {corrupt} --out {out}", "none of the 2 image files could be decoded"),
    ("train --dataset imagefolder --data-dir {root}/missing --out {out}", "--data-dir {root}/missing does not exist"),
    ("train --dataset imagefolder --out {out}", "the imagefolder dataset needs --data-dir"),
    ("train --dataset filename --data-dir {twocls} --label-regex ( --out {out}", "--label-regex '(' is not a valid"),
    ("train --dataset fashion-mnist --data-dir {file} --out {out}", "--data-dir {file} is a file"),
    ("train --dataset cifar10 --data-dir {cifarevil} --out {out}",
     "data_batch_1: refused: the file asks to call io.open"),
    ("show --dataset mnst --out {out}", "unknown dataset 'mnst'. Did you mean: mnist"),
    # -- checkpoints: never code, never torch's weights_only hint, never hundreds of keys
    ("evaluate --checkpoint {evil}", "evil.ckpt refuses to load: it holds code (io.open)"),
    ("predict --checkpoint {evil} {img}", "evil.ckpt refuses to load: it holds code"),
    ("explain {img} --checkpoint {evil}", "evil.ckpt refuses to load: it holds code"),
    ("explain layers --checkpoint {evil}", "evil.ckpt refuses to load: it holds code"),
    ("explain --list-layers --checkpoint {evil}", "`cnnlab explain --list-layers` is now `cnnlab explain layers`"),
    ("visualize --class 1 --checkpoint {evil} --out {out}", "evil.ckpt refuses to load: it holds code"),
    ("attack {img} --checkpoint {evil} --out {out}", "evil.ckpt refuses to load: it holds code"),
    ("attack sweep --checkpoint {evil} --out {out}", "evil.ckpt refuses to load: it holds code"),
    ("summary {evil}", "evil.ckpt refuses to load: it holds code"),
    ("fuse {evil}", "evil.ckpt refuses to load: it holds code"),
    ("segment evaluate --checkpoint {evil}", "config.json not found"),
    ("segment predict --checkpoint {evil} {img} --out {out}", "evil.ckpt refuses to load: it holds code"),
    ("train --resume --out {evilrun}", "last.ckpt refuses to load: it holds code"),
    ("evaluate --checkpoint {truncated}", "truncated.ckpt cannot be read: the file is truncated or not a PyTorch"),
    ("predict --checkpoint {random} {img}", "random.ckpt cannot be read"),
    ("predict --checkpoint {list} {img}", "list.ckpt holds a list, not a dict"),
    ("predict --checkpoint {empty} {img}", "checkpoint {empty} is a folder; give a checkpoint file (a run folder holds best.ckpt)"),
    ("predict --checkpoint {root}/nothing.ckpt {img}", "nothing.ckpt does not exist"),
    ("predict --checkpoint {othermodel} {img}", "other-model.ckpt: its weights do not fit the mlp"),
    ("predict --checkpoint {seg}/best.ckpt {img}", "holds a segmentation model (unet)"),
    ("evaluate --checkpoint {seg}/best.ckpt", "holds a segmentation model (unet)"),
    ("attack sweep --checkpoint {seg}/best.ckpt", "holds a segmentation model (unet)"),
    ("segment predict --checkpoint {run}/best.ckpt {img} --out {out}", "holds a classifier (simple-cnn)"),
    ("segment evaluate --checkpoint {segbroken}/best.ckpt", "segbroken/config.json is not valid JSON"),
    ("summary {root}/nothing.ckpt", "nothing.ckpt: no such file"),
    # -- image files: not images, folders, missing
    ("predict --checkpoint {run}/best.ckpt {notimg}", "notimage.png: cannot read image"),
    ("predict --checkpoint {run}/best.ckpt {empty}", "empty: cannot read image"),
    ("predict --checkpoint {run}/best.ckpt {root}/nope.png", "nope.png: no such image file"),
    ("explain {notimg} --checkpoint {run}/best.ckpt --out {out}", "notimage.png: cannot read image"),
    # -- segmentation data and outputs: a 255 is no class, outputs never replace inputs
    ("segment train --images {seg255images} --masks {seg255masks} --classes a,b,c --out {out}",
     "s02.png: mask values [255] are not classes 0..2"),
    ("segment train --images {seg255images} --masks {seg255masks} --classes a,b --mask-format palette "
     "--palette [[0,0,0]] --out {out}", "--palette has 1 colours for 2 classes"),
    ("segment train --images {seg255images} --masks {root}/nomasks --classes a,b --out {out}", "nomasks does not exist"),
    ("segment train --images {segimages} --masks {segmasks} --classes a --out {out}",
     "segmentation needs at least 2 classes"),
    ("segment predict --checkpoint {seg}/best.ckpt {segimages} --out {segimages}",
     "--out {segimages} is an input folder"),
    ("segment predict --checkpoint {seg}/best.ckpt {segimages}/s01.png --out {segimages}",
     "writing s01.png would overwrite the input file"),
    ("segment predict --checkpoint {seg}/best.ckpt {img} --out {file}", "--out {file} is a file"),
    ("segment predict --checkpoint {seg}/best.ckpt {root}/nope --out {out}", "input {root}/nope does not exist"),
    ("segment predict --checkpoint {seg}/best.ckpt {empty} --out {out}", "no input images"),
    ("explain {img} {root}/digit_gradcam.png --checkpoint {run}/best.ckpt --out {root}",
     "writing digit_gradcam.png would overwrite the input file"),
    # -- template matching (issue 12): files, boxes, scales, benchmark folders
    ("match {root}/nope.png {img} --out {out}", "nope.png: no such image file"),
    ("match {img} {img} --box 1,2,3 --out {out}", "--box '1,2,3': expected x,y,w,h"),
    ("match {img} {img} --scales 0,1 --out {out}", "argument --scales"),
    ("match {img} --out {out}", "the following arguments are required: SEARCH"),
    ("match find {img} {img} --box 1,2,3 --out {out}", "--box '1,2,3': expected x,y,w,h"),
    ("match benchmark {root}/nope --out {out}", "not a folder"),
    ("match benchmark {empty} --out {out} --methods xyz", "--methods 'xyz'"),
    # -- the commands of issues 14 and 17: NumPy CNN, export, reports, the demo page, predict --backend onnx
    ("scratch cnn --out {out} --epochs 0", "argument --epochs"),
    ("scratch cnn --out {out} --channels 8 0", "argument --channels: expected an integer >= 1"),
    ("scratch cnn --out {out} --hidden -1", "argument --hidden"),
    ("scratch cnn --out {out} --lr nan", "argument --lr: expected a finite number"),
    ("scratch cnn --out {out} --momentum 1", "argument --momentum"),
    ("scratch cnn --out {out} --dataset digits --kernel 4", "--kernel must be a positive odd number"),
    ("scratch cnn --out {out} --dataset digits --pool xyz", "--pool must be one of max, avg, got 'xyz'"),
    ("scratch cnn --out {file} --dataset digits --epochs 1", "plain.txt"),
    ("export {evil}", "evil.ckpt refuses to load: it holds code"),
    ("export {truncated}", "truncated.ckpt cannot be read"),
    ("export {root}/nothing.ckpt", "nothing.ckpt does not exist"),
    # issue 29: the extension is checked before anything, so these two now fail on it
    ("export {run}/best.ckpt --out {run}/best.ckpt --overwrite", "best.ckpt: expected a file ending in .onnx"),
    ("export {run}/best.ckpt --out {img}", "digit.png: expected a file ending in .onnx or .ts"),
    ("export {run}/best.ckpt --out {randonnx}", "random.onnx already exists; pass --overwrite to replace it"),
    ("export {run}/best.ckpt --out {file}/x.onnx", "plain.txt"),
    ("export {run}/best.ckpt --size 8 8 --out {out}.onnx", "--size is for segmenters"),
    ("export {run}/best.ckpt --opset 5", "argument --opset"),
    ("export {seg}/best.ckpt --size 0 0", "argument --size: expected an image side in [1, 4096] pixels"),
    ("export {run}/best.ckpt --format keras", "argument --format: invalid choice"),
    ("report {file}", "plain.txt: not a folder"),
    ("report {root}/missing", "missing: not a folder"),
    ("report {empty}", "empty: not a cnnlab run folder"),
    ("report {run} --out {run}/best.ckpt", "--out {run}/best.ckpt exists and is not a cnnlab report"),
    ("report {run} --out {empty}", "--out {empty} is a folder"),
    ("report {run} --out {file}/x.html", "plain.txt"),
    ("demo --checkpoint {evil}", "evil.ckpt refuses to load: it holds code"),
    ("demo --checkpoint {root}/nothing.ckpt", "nothing.ckpt does not exist"),
    ("demo --model nosuch", "--model 'nosuch': expected efficientnet-lite0-imagenet"),
    ("demo --port 70000", "argument --port"),
    ("demo --device tpu", "argument --device"),
    ("demo --checkpoint {run}/best.ckpt --model x", "not allowed with argument --checkpoint"),
    ("predict --backend onnx --checkpoint {randonnx} {img}", "random.onnx: not a readable ONNX model"),
    ("predict --backend onnx --checkpoint {run}/best.ckpt {img}", "--backend onnx runs a .onnx file"),
    ("predict --backend onnx --checkpoint {root}/nothing.onnx {img}", "exported model {root}/nothing.onnx does not exist"),
    ("predict --backend tf --checkpoint {run}/best.ckpt {img}", "argument --backend: invalid choice"),
    ("train --tensorboard --out {run} --epochs 1", "--out {run} already holds a run"),
    # -- issue 18: CAMs under attack (003 Q1b, now `lab cam-robustness`) and visualize --compare-attack (003 Q7)
    ("explain robustness --eps 0.1", "`cnnlab explain robustness` is now `cnnlab lab cam-robustness`"),
    ("lab cam-robustness --eps 2", "argument --eps: expected a budget in [0, 1]"),
    ("lab cam-robustness --eps 0.1,x", "argument --eps: expected a number like 0.03"),
    ("lab cam-robustness --topk 0", "argument --topk: expected a number in (0, 1]"),
    ("lab cam-robustness --n 0", "argument --n: expected an integer >= 1"),
    ("lab cam-robustness --subset -1", "argument --subset"),
    ("lab cam-robustness --width 0", "argument --width"),
    ("lab cam-robustness --pgd-steps 0", "argument --pgd-steps"),
    ("lab cam-robustness --attacks fgsm,cw", "argument --attacks: expected one of fgsm"),
    ("lab cam-robustness --adversarial fgsm:2", "argument --adversarial"),
    ("lab cam-robustness --adversarial cw:0.1", "argument --adversarial"),
    ("lab cam-robustness --seed -1", "argument --seed"),
    ("lab cam-robustness --checkpoint-adv {run}/best.ckpt --out {out}", "--checkpoint-adv needs --checkpoint too"),
    ("lab cam-robustness {img} --checkpoint {run}/best.ckpt --out {out}", "unrecognized arguments: {img}"),
    ("lab cam-robustness --model torchvision:resnet18 --out {out}", "unrecognized arguments: --model"),
    ("lab cam-robustness --checkpoint {evil} --out {out}", "evil.ckpt refuses to load: it holds code"),
    ("lab cam-robustness --checkpoint {run}/best.ckpt --checkpoint-adv {root}/nothing.ckpt --out {out}",
     "nothing.ckpt does not exist"),
    ("lab cam-robustness --checkpoint {run}/best.ckpt --out {file}", "--out {file} is a file"),
    ("visualize --class 1 --eps-max 0", "argument --eps-max"),
    ("visualize --class 1 --eps-max 1.5", "argument --eps-max"),
    ("visualize --class 1 --compare-attack {notimg} --checkpoint {run}/best.ckpt --out {out}",
     "notimage.png: cannot read image"),
    ("visualize --class 1 --compare-attack {root}/nope.png --checkpoint {run}/best.ckpt --out {out}", "nope.png"),
    ("visualize --class zebra --compare-attack {img} --checkpoint {run}/best.ckpt --out {out}",
     "--class 'zebra' is not one of"),
    # -- 29.3 readers: IDX files checked for what the official ones hold, each fault naming its file
    ("train --dataset fashion-mnist --data-dir {idx12} --out {out}",
     "train-labels-idx1-ubyte.gz: label 12 at position 3 is not one of the 10 classes (0..9)"),
    ("train --dataset fashion-mnist --data-dir {idx255} --out {out}",
     "t10k-labels-idx1-ubyte.gz: label 255 at position 0 is not one of the 10 classes"),
    ("train --dataset fashion-mnist --data-dir {idx2d} --out {out}",
     "train-labels-idx1-ubyte.gz: expected N integer labels (an idx1-ubyte file), found uint8 of shape [20, 2]"),
    ("train --dataset fashion-mnist --data-dir {idxfloatlab} --out {out}",
     "train-labels-idx1-ubyte.gz: expected N integer labels (an idx1-ubyte file), found >f4"),
    ("train --dataset fashion-mnist --data-dir {idxfloatimg} --out {out}",
     "train-images-idx3-ubyte.gz: expected N x H x W uint8 images (an idx3-ubyte file), found >f4"),
    ("train --dataset fashion-mnist --data-dir {idxswap} --out {out}", "the two files are swapped"),
    ("train --dataset fashion-mnist --data-dir {idxcount} --out {out}",
     "t10k-images-idx3-ubyte.gz holds 20 images but {idxcount}/t10k-labels-idx1-ubyte.gz holds 19 labels"),
    ("train --dataset fashion-mnist --data-dir {idxsize} --out {out}",
     "t10k-images-idx3-ubyte.gz holds 10x10 images but {idxsize}/train-images-idx3-ubyte.gz holds 8x8"),
    ("show --dataset fashion-mnist --data-dir {idx12} --out {out}.png", "label 12 at position 3"),
    ("show --dataset fashion-mnist --data-dir {idxswap} --out {out}.png", "the two files are swapped"),
    ("scratch mlp --dataset fashion-mnist --data-dir {idx255} --out {out}", "label 255 at position 0"),
    ("scratch mlp --dataset fashion-mnist --data-dir {idxsize} --out {out}", "holds 10x10 images but"),
    ("scratch cnn --dataset fashion-mnist --data-dir {idxfloatimg} --out {out}", "expected N x H x W uint8 images"),
    # -- 29.8 messages name the real cause: code in a checkpoint, an ONNX file, an empty file, bare weights
    ("segment evaluate --checkpoint {run}/best.ckpt", "holds a classifier (simple-cnn); use it with `cnnlab evaluate|predict`"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg,extra --out {out}",
     "(this mask is binary, 0/255: --classes names 3 classes, a binary mask needs 2)"),
    ("evaluate --checkpoint {ossystem}", "ossystem.ckpt refuses to load: it holds code (os.system)"),
    ("predict --checkpoint {ossystem} {img}", "refuses to load: it holds code (os.system)"),
    ("train --init-from {ossystem} --out {out}", "refuses to load: it holds code (os.system)"),
    ("evaluate --checkpoint {onnx}", "model.onnx is an ONNX file (written by cnnlab export), not a PyTorch checkpoint: "
                                     "run it with cnnlab predict --backend onnx --checkpoint {onnx}"),
    ("predict --checkpoint {onnx} {img}", "is an ONNX file (written by cnnlab export)"),
    ("predict --checkpoint {onnxckpt} {img}", "model-onnx.ckpt is an ONNX file"),
    ("explain {img} --checkpoint {onnx}", "is an ONNX file"),
    ("evaluate --checkpoint {emptyckpt}", "empty.ckpt is empty (0 bytes)"),
    ("summary {emptyckpt}", "empty.ckpt is empty (0 bytes)"),
    ("evaluate --checkpoint {bare}", "bare.ckpt is a bare state_dict (28 tensors) without the model's name"),
    ("train --model mlp --init-from {run}/best.ckpt --out {out}",
     "its weights are simple-cnn {{'width': 4}} and do not fit this run's model, mlp {{'image_size': 8}}: 6 missing"),
    ("train --model-kwargs {{\"width\":6}} --init-from {run}/best.ckpt --out {out}",
     "do not fit this run's model, simple-cnn {{'width': 6}}: 21 of another shape"),
    # -- 29.4 caches and splits: a run's splits are pinned by file; a changed folder is named, never re-split
    ("evaluate --checkpoint {pinrun}/best.ckpt --data-dir {pingone}",
     "{pingone}/{pingonefile} is gone: 1 of the 12 files this run's splits are pinned to"),
    ("evaluate --checkpoint {pinrun}/best.ckpt --data-dir {pingone} --split train", "{pingonefile} is gone"),
    ("attack sweep --checkpoint {pinrun}/best.ckpt --data-dir {pingone} --out {out}", "{pingonefile} is gone"),
    ("train --resume --out {pinrun} --data-dir {pingone}", "{pingonefile} is gone"),
    ("evaluate --checkpoint {pinrun}/best.ckpt --data-dir {pinmoved}",
     "{pinmovedfile} is gone (a file of that name is now at {pinmoved}/class"),
    ("evaluate --checkpoint {pinrun}/best.ckpt --data-dir {pincorrupt}",
     "{pincorruptfile}: a file of this run's pinned splits can no longer be decoded"),
    ("evaluate --checkpoint {pinescape}/best.ckpt --data-dir {pindata}",
     "data_files: test file '../digit.png' is not a path inside the data folder"),
    ("attack sweep --checkpoint {pinabsolute}/best.ckpt --data-dir {pindata} --out {out}",
     "test file '{img}' is not a path inside the data folder"),
    ("evaluate --checkpoint {pinnotlists}/best.ckpt --data-dir {pindata}",
     "data_files is not the train/val/test file lists cnnlab writes"),
    ("evaluate --checkpoint {pinsize}/best.ckpt --data-dir {pindata}",
     "image_size [8, 8, 8] is not a height and a width in pixels"),
    # -- 29.6 options that cannot take effect: refused before anything is written
    ("train --dataset= --out {out}", "argument --dataset: expected a value, got ''"),
    ("train --recipe= --out {out}", "argument --recipe: expected a value, got ''"),
    ("train --augment= --out {out}", "argument --augment: expected a value, got ''"),
    ("train --data-dir= --out {out}", "argument --data-dir: expected a value, got ''"),
    ("show --out= ", "argument --out: expected a value, got ''"),
    ("explain compare {img} --checkpoint {run}/best.ckpt --methods= --out {out}", "argument --methods: expected a value"),
    ("match benchmark {root} --methods= --out {out}", "argument --methods: expected a value, got ''"),
    ("lab cam-robustness --dataset= --out {out}", "argument --dataset: expected a value, got ''"),
    ("scratch mlp --dataset= --out {out}", "argument --dataset: expected a value, got ''"),
    ("segment train --dataset= --out {out}", "argument --dataset: expected a value, got ''"),
    ("train --finetune-lr 0.01 --out {out}",
     "--finetune-lr 0.01: it sets the learning rate of the fine-tuning phase, and there is none without"),
    ("train --finetune-lr 0.01 --finetune-epochs 0 --out {out}", "--finetune-lr 0.01: it sets the learning rate"),
    ("train --vflip --augment none --out {out}", "--vflip: vertical flips are part of the training augmentation"),
    ("train --patience 3 --val-fraction 0 --epochs 1 --out {out}",
     "--patience 3: early stopping watches the validation split, and this run has none"),
    ("train --keep-top 2 --val-fraction 0 --epochs 1 --out {out}",
     "--keep-top 2: the best epochs are ranked on the validation split, and this run has none"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --patience 2 --val-fraction 0 --out {out}",
     "--patience 2: early stopping watches the validation split"),
    ("train --classes 0,1 --target-recall 0.9 --val-fraction 0 --out {out}",
     "--target-recall 0.9: the threshold is chosen on the validation split, and this run has none"),
    ("train --data-dir {root}/nowhere --out {out}", "--data-dir {root}/nowhere does not exist"),
    ("show --data-dir {root}/nowhere --out {out}.png", "--data-dir {root}/nowhere does not exist"),
    ("scratch mlp --dataset digits --data-dir {root}/nowhere --out {out}", "--data-dir {root}/nowhere does not exist"),
    ("lab run bn-scale-invariance --quick --data-dir {root}/nowhere --out {out}", "{root}/nowhere does not exist"),
    ("evaluate --checkpoint {run}/best.ckpt --data-dir {root}/nowhere", "--data-dir {root}/nowhere does not exist"),
    ("attack sweep --checkpoint {run}/best.ckpt --data-dir {root}/nowhere --out {out}", "nowhere does not exist"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --loss 0*bce --out {out}",
     "loss '0*bce' has weight 0: nothing would be learned"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --loss bce+0*dice --out {out}",
     "the term '0*dice' has weight 0, so it would do nothing"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --loss dice --pos-weight 2 --out {out}",
     "--pos-weight 2.0: it weights the positive pixels of bce, and the loss 'dice' has no bce term"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --loss dice --label-smoothing 0.1 "
     "--out {out}", "--label-smoothing 0.1: it softens the targets of ce and bce, and the loss 'dice' has neither"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --loss dice+tversky --lesion-weight 5 "
     "--out {out}", "--lesion-weight 5.0: it weights the pixels of bce, ce, focal, gce, and the loss 'dice+tversky'"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --loss focal --class-weights 1,2 "
     "--out {out}", "--class-weights: they weight the pixels of ce (and bce), and the loss 'focal' takes no weights"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --class-weights 0,0 --out {out}",
     "--class-weights 0.0,0.0: all zero"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --noisy-warmup 0.5 --out {out}",
     "--noisy-warmup 0.5: it delays --noisy-drop, which is off"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --corrupt-mode erase --out {out}",
     "--corrupt-mode erase: it says how masks are corrupted"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --focus 0.5 --out {out}",
     "--focus 0.5: it centres training crops on foreground pixels"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --focus-on rare --out {out}",
     "--focus-on rare: it says which pixels --focus centres crops on, and --focus is 0"),
    ("train --dataset digits --image-size 16 --out {out}", "--image-size does not apply to dataset 'digits'"),
    ("train --dataset imagefolder --data-dir {twocls} --label-regex c(\\d) --out {out}",
     "--label-regex does not apply to dataset 'imagefolder'"),
    ("show --dataset mnist --image-size 32 --out {out}.png", "--image-size does not apply to dataset 'mnist'"),
    ("train --data-dir {twocls} --dataset imagefolder --out {cache}/run", "is inside cnnlab's cache ($CNNLAB_CACHE)"),
    ("show --out {cache}/grid.png", "--out {cache}/grid.png is inside cnnlab's cache"),
    ("evaluate --checkpoint {pinrun}/best.ckpt --out {pindata}/eval",
     "--out {pindata}/eval is inside the run's data folder {pindata}"),
    # -- 29.5 size bounds: image sides, grids, threads and memory, refused before anything loads or is written
    ("train --dataset imagefolder --data-dir {twocls} --image-size 4097 --out {out}",
     "argument --image-size: expected an image side in [1, 4096] pixels, got '4097'"),
    ("show --dataset imagefolder --data-dir {twocls} --image-size 100000 --out {out}.png",
     "argument --image-size: expected an image side in [1, 4096] pixels"),
    ("show -n 100000 --out {out}.png", "argument -n: expected a number of images in [1, 1024] (one figure)"),
    ("export {seg}/best.ckpt --size 100000 100000 --out {out}.onnx", "argument --size: expected an image side"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --size 100000 100000 --out {out}",
     "argument --size: expected an image side in [1, 4096] pixels"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --crop 100000 100000 --out {out}",
     "argument --crop: expected an image side"),
    ("segment predict --checkpoint {seg}/best.ckpt {img} --window 100000 100000 --out {out}",
     "argument --window: expected an image side"),
    ("summary simple-cnn --input 1,100000,100000 --execute", "argument --input: expected channels and sides of at most 4096"),
    ("match {img} {img} --tile 100000000 --out {out}", "argument --tile: expected a tile side in [64, 4096] pixels"),
    ("match {img} {img} --template-size 1e6 --out {out}", "argument --template-size: expected a number in [0, 4096]"),
    ("match {img} {img} --scales 0.5:2:1000000000 --out {out}", "argument --scales: expected scales like"),
    ("match {img} {img} --scales 1,1000 --out {out}", "argument --scales: expected at most 100 scales of at most 64"),
    ("scratch mlp --dataset digits --threads 100000 --out {out}", "argument --threads: expected a thread count in [1, "),
    ("scratch linreg --threads 100000 --out {out}", "argument --threads: expected a thread count"),
    ("lab run bn-scale-invariance --quick --threads 100000 --out {out}", "argument --threads: expected a thread count"),
    ("fuse simple-cnn --threads 100000", "argument --threads: expected a thread count"),
    ("scratch mlp --dataset digits --hidden 10000000000 --out {out}",
     "--hidden 10000000000: the weights alone need 3.0 TB, more than"),
    ("scratch mlp --dataset digits --hidden 1000000 100000 --out {out}", "--hidden 1000000 100000: the weights alone need"),
    ("scratch cnn --dataset digits --kernel 99999 --out {out}", "--kernel 99999: the weights alone need"),
    ("scratch cnn --dataset digits --channels 8 10000000000 --out {out}", "--channels 8 10000000000: the weights alone"),
    ("scratch linreg --n 10000000000 --out {out}", "--n 10000000000: the largest problem needs"),
    ("scratch linreg --d 1000000 --out {out}", "--d 1000000: the largest problem needs 16 TB, more than"),
    ("scratch linreg --n-fixed 10000000000 --out {out}", "--n-fixed 10000000000: the largest problem needs"),
    ("fuse simple-cnn --batch 100000000000", "--batch 100000000000 of 1x28x28: a forward needs"),
    ("summary simple-cnn --input 4096,4096,4096 --execute", "--input 4096,4096,4096: a forward needs"),
    ("train --model-kwargs {{\"width\":100000000}} --epochs 1 --out {out}",
     "model 'simple-cnn' with {{'width': 100000000}}: its weights alone need"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --crop 8 8 --samples 100000000000000 "
     "--out {out}", "--samples 100000000000000: an epoch of 100000000000000 crops needs for its order alone 1.7 PB"),
    ("segment train --images {segimages} --masks {segmasks} --classes bg,fg --crop 8 8 --repeat 10000000000000 "
     "--out {out}", "--repeat 10000000000000: an epoch of"),
    ("lab cam-robustness --quick --width 100000000 --out {out}",
     "model 'simple-cnn' with {{'width': 100000000}}: its weights alone need"),
    ("visualize --class 3 --checkpoint {run}/best.ckpt --blur-sigma 30 --out {out}",
     "--blur-sigma 30: its Gaussian kernel of 181 pixels is wider than the 8x8 image it blurs (at most 2.33 here)"),
    # -- 29.2 demo --host: an address this machine cannot serve is one line naming --host, before the model loads
    ("demo --host no-such-host.invalid --port 0", "--host no-such-host.invalid: expected an IPv4 address or a name "
                                                  "of this machine"),
    ("demo --host ::1 --port 0", "--host ::1: expected an IPv4 address"),
    ("demo --host 192.0.2.1 --port 0", "--host 192.0.2.1: this machine cannot listen there"),
]


def _case_id(case: tuple[str, str]) -> str:
    return case[0].replace("{segimages} --masks {segmasks}", "...")


@pytest.mark.parametrize("argv,fragment", CASES, ids=[_case_id(c) for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(world, capsys, tmp_path, argv, fragment):
    out = tmp_path / "out"
    before = fingerprint(world.root, [out])
    code, err = run_cli(world.fmt(argv, out).split(), capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and "weights_only" not in err
    assert world.fmt(fragment, out) in lines[0], lines[0]
    assert fingerprint(world.root, [out]) == before, "a file outside --out changed"
    if argv.startswith(("train", "segment train")):
        assert not out.exists() and not Path("/sys/cnnlab-hostile").exists(), "a refused run left a folder"
    assert not world.flag.exists(), "code from a data file ran"


def test_the_table_covers_every_command():
    """Every subcommand appears in the hostile table (a new command must add its cases)."""
    from cnnlab.cli.main import build_parser

    commands = set()
    for action in build_parser()._subparsers._group_actions:
        for name, sub in action.choices.items():
            nested = [a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction"]
            commands |= {f"{name} {n}" for a in nested for n in a.choices} if nested else {name}
    grouped = {c.split()[0] for c in commands if " " in c}
    tried = {" ".join(a.split()[:2]) if a.split()[0] in grouped else a.split()[0] for a, _ in CASES}
    untested = commands - tried - {"datasets", "models"}  # these two take no input
    assert not untested, f"no hostile case for: {sorted(untested)}"


def test_failed_resume_keeps_config_json_and_a_resume_continues_the_run(world, capsys, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(world.paths["run"], run)
    config = (run / "config.json").read_bytes()
    code, err = run_cli(["train", "--resume", "--out", str(run), "--model", "mlp"], capsys)
    assert code == 2 and (run / "config.json").read_bytes() == config
    (run / ".last.ckpt.abcd1234.cnnlab-tmp").write_bytes(b"")  # what a kill -9 during the write leaves
    (run / "notes.abcd1234.tmp").write_text("mine")  # a user's file of a similar name is not ours
    code, err = run_cli(["train", "--resume", "--out", str(run)], capsys)  # everything from config.json
    assert code == 0, err
    assert not list(run.glob(".*.cnnlab-tmp")) and (run / "config.json").read_bytes() == config
    assert (run / "notes.abcd1234.tmp").read_text() == "mine"


def test_overwrite_replaces_the_run(world, capsys, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(world.paths["run"], run)
    (run / "notes.txt").write_text("mine")
    code, err = run_cli(["train", "--overwrite", "--out", str(run), "--epochs", "1", "--batch-size", "256",
                         "--model-kwargs", '{"width": 2}'], capsys)
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["model_kwargs"] == {"width": 2}
    assert (run / "notes.txt").read_text() == "mine"  # only the run's own files are replaced


def test_sixteen_bit_png_predicts_like_the_eight_bit_one(world):
    """The same digit as 8-bit and as 16-bit PNG: same probabilities (clipping made it all white)."""
    ckpt = Path(world.paths["run"]) / "best.ckpt"
    a, b = predict_files(ckpt, [world.paths["img"], world.paths["img16"]], topk=10, device="cpu")
    assert [c for c, _ in a["top"]] == [c for c, _ in b["top"]]
    np.testing.assert_allclose([p for _, p in a["top"]], [p for _, p in b["top"]], atol=1e-6)


def test_sixteen_bit_images_scale_to_eight_bits_everywhere(tmp_path):
    from cnnlab.data.imagefolder import _decode, read_image

    ramp = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257)
    _png(tmp_path / "g16.png", ramp)
    expected = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(read_image(tmp_path / "g16.png")[..., 0], expected)
    np.testing.assert_array_equal(read_image(tmp_path / "g16.png", 3)[..., 1], expected)
    np.testing.assert_array_equal(_decode(tmp_path / "g16.png")[0], expected)


def test_sixteen_bit_masks_keep_their_labels(tmp_path):
    from cnnlab.data.segmentation import read_mask

    labels = np.array([[0, 1], [2, 1]], np.uint16)
    _png(tmp_path / "index16.png", labels)
    np.testing.assert_array_equal(read_mask(tmp_path / "index16.png", "index", 3), labels)
    _png(tmp_path / "binary16.png", labels.clip(0, 1) * 65535)
    np.testing.assert_array_equal(read_mask(tmp_path / "binary16.png", "auto", 2), labels.clip(0, 1))


def test_lossy_masks_load_with_a_warning(tmp_path):
    from cnnlab.data.segmentation import load_segmentation

    images, masks = write_pairs(tmp_path, 4, fmt="binary", size=(16, 16))
    for m in list(masks.iterdir()):
        Image.open(m).save(m.with_suffix(".jpg"), quality=90)
        m.unlink()
    kwargs = dict(images=images, masks=masks, classes=["bg", "fg"], val_fraction=0, test_fraction=0)
    with pytest.warns(UserWarning, match=r"lossy format.*s00\.jpg"):
        data = load_segmentation(mask_format="binary", **kwargs)
    assert set(data.train.masks.unique().tolist()) == {0, 1}
    with pytest.warns(UserWarning), pytest.raises(CnnlabError, match="not classes 0..1 .*use --mask-format binary"):
        load_segmentation(**kwargs)  # auto: JPEG noise makes the values no longer 0/255


def test_a_count_above_the_data_is_all_of_it_with_a_warning(world, capsys, tmp_path):
    """29.5: more images than the data holds means all of them, said once (show -n, attack sweep --n)."""
    with pytest.warns(UserWarning, match=r"^-n 100: the training split of imagefolder holds only (\d+) images; "
                                         r"using all \1$"):
        code, err = run_cli(["show", "--dataset", "imagefolder", "--data-dir", world.paths["twocls"], "-n", "100",
                             "--out", str(tmp_path / "grid.png")], capsys)
    assert code == 0 and (tmp_path / "grid.png").is_file(), err


def test_a_batch_over_the_memory_limit_is_refused_before_anything_runs(world, capsys, tmp_path, monkeypatch):
    """29.5: --batch-size against $CNNLAB_MEMORY_LIMIT (standing in for a small machine): evaluate before its
    pass, segment train before its run folder, each naming the option, the image size and the estimate."""
    monkeypatch.setenv("CNNLAB_MEMORY_LIMIT", "1K")
    code, err = run_cli(["evaluate", "--checkpoint", f"{world.paths['run']}/best.ckpt", "--out", str(tmp_path / "e")],
                        capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "error: --batch-size 512 (359 images here) of 1x8x8 images: a forward needs" in err, err
    assert not (tmp_path / "e").exists()
    monkeypatch.setenv("CNNLAB_MEMORY_LIMIT", "40M")  # the recipe's unet (31 MB of weights) fits; a step does not
    code, err = run_cli(["segment", "train", "--images", world.paths["segimages"], "--masks", world.paths["segmasks"],
                         "--classes", "bg,fg", "--batch-size", "4", "--out", str(tmp_path / "s")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "error: --batch-size 4 of 3x16x16 images: a training step of model 'unet' needs" in err, err
    assert "more than $CNNLAB_MEMORY_LIMIT (42 MB)" in err and not (tmp_path / "s").exists()


def test_read_only_cache_is_a_warning_not_an_error(world, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_CACHE", "/sys/cnnlab-cache")
    code, err = run_cli(["show", "--dataset", "imagefolder", "--data-dir", world.paths["twocls"], "--out",
                         str(tmp_path / "grid.png")], capsys)
    assert code == 0 and (tmp_path / "grid.png").is_file()


def test_cnnlab_data_pointing_at_a_file(world, capsys, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA", world.paths["file"])
    code, err = run_cli(["show", "--dataset", "fashion-mnist"], capsys)
    assert code == 2 and err.strip() == f"cnnlab show: error: CNNLAB_DATA={world.paths['file']} is a file; " \
                                        f"expected a folder holding fashion-mnist/"


def test_decompression_bomb_is_one_line(world, capsys, monkeypatch):
    from PIL import Image as PILImage

    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 10)  # 8x8 = 64 > 2 x 10: PIL refuses it
    code, err = run_cli(["predict", "--checkpoint", f"{world.paths['run']}/best.ckpt", world.paths["img"]], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "DecompressionBombError" in err


def test_malicious_cifar_pickle_runs_no_code(world):
    with pytest.raises(CnnlabError, match="refused: the file asks to call io.open"):
        load_dataset("cifar10", world.paths["cifarevil"])
    assert not world.flag.exists()


def test_the_cifar_loader_reads_an_official_style_release(tmp_path):
    _cifar_release(tmp_path / "cifar-10-batches-py", None)
    splits = load_dataset("cifar10", tmp_path, val_fraction=0)
    assert splits.classes == [f"c{i}" for i in range(10)] and len(splits.train) == 100 and len(splits.test) == 20
    assert splits.train.images.shape[1:] == (3, 32, 32)


def test_ctrl_c_names_the_epoch_and_how_to_continue(tmp_path):
    """A real SIGINT during training: exit 130, one line with the epoch and the resume command."""
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "cnnlab.cli.main", "train", "--epochs", "200", "--batch-size", "256", "--out", str(out),
           "--model-kwargs", '{"width": 2}']
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 240
    while not (out / "history.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    if (out / "history.json").exists():
        done = len(json.loads((out / "history.json").read_text()))
        assert err.strip().splitlines()[-1] == f"cnnlab train: interrupted after epoch {done}; " \
                                               f"continue with --resume --out {out}"
    else:  # on a loaded machine the first epoch can outlast the deadline: nothing saved, nothing to resume
        assert err.strip().splitlines()[-1] == "cnnlab train: interrupted during the first epoch, before anything " \
                                               f"was saved; start again with --overwrite --out {out}"


def case_families() -> dict[str, int]:
    """The table's cases per family (the ``# --`` comment heading each group of CASES)."""
    import ast

    source = Path(__file__).read_text().splitlines()
    tree = ast.parse("\n".join(source))
    table = next(n for n in tree.body if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "CASES")
    families: dict[str, int] = {}
    family = None
    for element in table.value.elts:
        heading = [line.strip()[4:] for line in source[table.lineno:element.lineno - 1] if line.strip().startswith("# --")]
        family = heading[-1] if heading else family
        families[family] = families.get(family, 0) + 1
    assert sum(families.values()) == len(CASES)
    return families


def test_every_case_has_a_family():
    assert None not in case_families()


if __name__ == "__main__":  # the closing note's counts: python -m tests.test_hostile
    scenario_tests = [n for n in dir() if n.startswith("test_") and n not in
                      ("test_bad_input_is_one_line_and_changes_nothing", "test_the_table_covers_every_command",
                       "test_every_case_has_a_family")]
    for name, count in case_families().items():
        print(f"{count:4d}  {name}")
    print(f"{len(CASES)} table cases + {len(scenario_tests)} scenario tests ({', '.join(scenario_tests)})")
