"""Checkpoint -> model + meta, by task: the one place a trained model is rebuilt from its file.

The engine only saves and loads checkpoint dicts (``cnnlab.train.checkpoint``); building the
model a checkpoint names needs the model registry, so it happens here, above both. A checkpoint's
``task`` field says which rebuild applies (``segmentation``; classifier checkpoints carry none),
and :func:`restore` takes any of them. Every malformed or foreign file is refused in one line.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable, TypeVar

import torch
from torch import nn

from cnnlab.core.errors import CnnlabError
from cnnlab.core.fileio import read_json
from cnnlab.data import DatasetSplits, load_dataset
from cnnlab.models import create_model
from cnnlab.models.layers import TwoClassLogits
from cnnlab.models.pixel import pixel_wrap
from cnnlab.models.registry import RENAMED_CIFAR, get_entry, warn_renamed
from cnnlab.train.checkpoint import describe, load_checkpoint, load_weights

T = TypeVar("T")
TRAINING_STATE = ("state_dict", "optimizer", "scheduler", "rng", "loader")  # not part of a model's meta


def restore(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Any cnnlab checkpoint's model in eval mode and its meta, rebuilt as its ``task`` says."""
    ckpt = load_checkpoint(path)
    task = ckpt.get("task", "classification")
    if task not in REBUILD:
        raise CnnlabError(f"checkpoint {path}: unknown task {task!r}; expected one of {', '.join(REBUILD)}")
    return REBUILD[task](path, ckpt, device)


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a trained classifier from its checkpoint; returns ``(model in eval mode, meta)``.

    ``meta`` holds what the model needs to be used: ``model``, ``model_kwargs``, ``classes``,
    ``mean``, ``std``, ``input_size`` (C, H, W). A one-output (sigmoid, ``--loss bce``) binary model
    comes back behind ``TwoClassLogits``, so it gives two logits like every other classifier.
    """
    return _classifier(path, load_classifier_checkpoint(path), device)


def load_segmenter(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a trained segmentation model from its checkpoint: ``(model in eval mode, meta)``."""
    ckpt = load_checkpoint(path)
    if ckpt.get("task") != "segmentation":
        if "classes" in ckpt and "model" in ckpt:
            raise CnnlabError(f"checkpoint {path} holds a classifier ({ckpt['model']}); "
                              f"use it with `cnnlab evaluate|predict`")
        raise CnnlabError(f"checkpoint {path} is not a cnnlab segmentation checkpoint")
    return _segmenter(path, ckpt, device)


def load_classifier_checkpoint(path: str | Path) -> dict:
    """A checkpoint's dict, refusing a segmentation checkpoint with the command that takes it."""
    ckpt = load_checkpoint(path)
    if ckpt.get("task") == "segmentation":
        raise CnnlabError(f"checkpoint {path} holds a segmentation model ({ckpt.get('model')}); "
                          f"use it with `cnnlab segment evaluate|predict`")
    return ckpt


def _classifier(path: str | Path, ckpt: dict, device: str | torch.device) -> tuple[nn.Module, dict]:
    check_meta(path, ckpt, ("model", "model_kwargs", "classes", "mean", "std", "input_size", "state_dict"),
               "classifier")
    ckpt = _renamed(path, ckpt)
    kwargs = dict(ckpt["model_kwargs"], pretrained=False) if ckpt["model"].startswith("transfer:") \
        else dict(ckpt["model_kwargs"])
    outputs = ckpt.get("outputs", len(ckpt["classes"]))
    model = build_from_checkpoint(path, ckpt["model"], lambda: create_model(
        ckpt["model"], num_classes=outputs, in_chans=ckpt["input_size"][0], **kwargs))
    load_weights(model, ckpt["state_dict"], path, describe(ckpt), describe(ckpt))
    if outputs == 1:
        model = nn.Sequential(model, TwoClassLogits())
    return model.to(device).eval(), _meta(ckpt)


def _segmenter(path: str | Path, ckpt: dict, device: str | torch.device) -> tuple[nn.Module, dict]:
    check_meta(path, ckpt, ("model", "model_kwargs", "classes", "mean", "std", "in_chans", "state_dict"),
               "segmentation")
    kwargs = dict(ckpt["model_kwargs"])
    entry, _ = build_from_checkpoint(path, ckpt["model"], lambda: get_entry(ckpt["model"]))
    if "pretrained" in inspect.signature(entry.builder).parameters:
        kwargs["pretrained"] = False  # the checkpoint holds the weights; never download
    model = build_from_checkpoint(path, ckpt["model"], lambda: build_model(
        ckpt["model"], len(ckpt["classes"]), ckpt["in_chans"], **kwargs))
    load_weights(model, ckpt["state_dict"], path, describe(ckpt), describe(ckpt))
    return model.to(device).eval(), _meta(ckpt)


def _renamed(path: str | Path, ckpt: dict) -> dict:
    """``ckpt`` naming its model as the registry now does: a checkpoint written before the
    torchvision names meant torchvision's models (``resnet18`` for the CIFAR-stem ResNet-18) whose
    weights do not fit the ImageNet-stem model gets the ``-cifar`` name, with the deprecation warning."""
    name = ckpt["model"].strip().lower()
    if name not in RENAMED_CIFAR or {"stem", "image_size"} & set(ckpt["model_kwargs"]):
        return ckpt  # no old name, or one create_model resolves from its old arguments
    with torch.device("meta"):
        model = build_from_checkpoint(path, name, lambda: create_model(
            name, num_classes=ckpt.get("outputs", len(ckpt["classes"])), in_chans=ckpt["input_size"][0],
            **ckpt["model_kwargs"]))
    if set(model.state_dict()) == set(ckpt["state_dict"]):
        return ckpt
    warn_renamed(name, f"checkpoint {path} names {name!r} but holds the CIFAR-stem model's weights")
    return dict(ckpt, model=RENAMED_CIFAR[name])


REBUILD: dict[str, Callable[[str | Path, dict, str | torch.device], tuple[nn.Module, dict]]] = {
    "classification": _classifier, "segmentation": _segmenter}


def _meta(ckpt: dict) -> dict:
    """What a restored model is used with: the checkpoint less its weights and training state."""
    return {k: v for k, v in ckpt.items() if k not in TRAINING_STATE}


def out_channels(num_classes: int) -> int:
    """Binary segmentation predicts one logit per pixel; K-class segmentation K logits."""
    return 1 if num_classes == 2 else num_classes


def build_model(name: str, num_classes: int, in_chans: int, **kwargs) -> nn.Module:
    """A registry segmentation model with :func:`out_channels` outputs (training and restoring agree)."""
    return create_model(name, num_classes=out_channels(num_classes), in_chans=in_chans, **kwargs)


def pixel_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """A checkpoint's classifier taking [0, 1] pixel images (normalization inside the model)."""
    model, meta = load_classifier(path, device)
    return pixel_wrap(model, meta["mean"], meta["std"]).to(device), meta


def check_meta(path: str | Path, ckpt: dict, required: tuple[str, ...], what: str) -> None:
    """The settings a model is rebuilt from are there and have the types they must have (a
    hand-edited or foreign file fails here, in one line, not inside a model constructor)."""
    missing = [k for k in required if k not in ckpt]
    if missing and ckpt and all(hasattr(v, "shape") for v in ckpt.values()):
        raise CnnlabError(f"checkpoint {path} is a bare state_dict ({len(ckpt)} tensors) without the model's name, "
                          f"classes and normalisation that cnnlab rebuilds it from: use a run's best.ckpt, or "
                          f"train from these weights with --init-from")
    if missing:
        raise CnnlabError(f"checkpoint {path} has no {', '.join(map(repr, missing))}: not a cnnlab {what} checkpoint")
    rules = {"model": str, "model_kwargs": dict, "classes": list, "mean": list, "std": list, "input_size": list,
             "in_chans": int}
    for key, kind in rules.items():
        if key in ckpt and not isinstance(ckpt[key], (kind, tuple) if kind is list else kind):
            raise CnnlabError(f"checkpoint {path}: {key!r} is a {type(ckpt[key]).__name__}, expected a {kind.__name__}")
    size = ckpt.get("input_size")
    if size is not None and (len(size) != 3 or not all(isinstance(v, int) and v > 0 for v in size)):
        raise CnnlabError(f"checkpoint {path}: input_size {size} is not three positive integers (C, H, W)")
    if "in_chans" in ckpt and ckpt["in_chans"] < 1:
        raise CnnlabError(f"checkpoint {path}: in_chans {ckpt['in_chans']} is not a channel count")
    if "classes" in ckpt and len(ckpt["classes"]) < (2 if what == "segmentation" else 1):
        raise CnnlabError(f"checkpoint {path}: too few class names ({ckpt['classes']})")


def build_from_checkpoint(path: str | Path, name: str, build: Callable[[], T]) -> T:
    """``build()`` (a registry lookup or a model), with a model the registry cannot make from the
    file's settings reported as one line naming the file."""
    try:
        return build()
    except CnnlabError as exc:
        raise CnnlabError(f"checkpoint {path}: {exc}") from None
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        raise CnnlabError(f"checkpoint {path}: model {name!r} cannot be built from its settings "
                          f"({type(exc).__name__}: {exc})") from None


def load_run_splits(dataset: str, data_dir: str | None, config: dict) -> DatasetSplits:
    """The seeded splits a run's ``config`` names (classes, subset, fractions, seed, dataset kwargs);
    for a run that pinned its splits by file (``data_files``: image folders), exactly those files."""
    return load_dataset(dataset, data_dir, val_fraction=config.get("val_fraction", 0.1),
                        test_fraction=config.get("test_fraction", 0.2), seed=config.get("split_seed", 42),
                        classes=config.get("classes"), subset=config.get("subset"),
                        test_subset=config.get("test_subset"), pinned=config.get("data_files"),
                        **config.get("dataset_kwargs", {}))


def checkpoint_splits(checkpoint: str | Path, data_dir: str | None = None) -> tuple[dict, dict, DatasetSplits]:
    """A checkpoint, its run's config.json, and the same seeded splits it was trained with.

    Later tools (evaluate, attacks) must use the run's own test split, never images it trained on.
    """
    ckpt = load_classifier_checkpoint(checkpoint)
    config_path = Path(checkpoint).parent / "config.json"
    config = read_json(config_path, "run configuration") if config_path.exists() else {}
    if not isinstance(config, dict):
        raise CnnlabError(f"{config_path} does not hold a run configuration (a JSON object)")
    dataset = ckpt.get("dataset") or config.get("dataset")
    if dataset is None:
        raise CnnlabError(f"{checkpoint}: no dataset recorded, so there is no test split to use")
    return ckpt, config, load_run_splits(dataset, data_dir or config.get("data_dir"), config)
