"""Checkpoints: plain dicts of tensors and JSON-able values, written atomically.

Plain dicts load with ``torch.load(weights_only=True)`` (no pickled code runs on load), and a
checkpoint is written to a temporary file in the same folder and renamed over the old one, so a
crash mid-write never leaves a truncated ``last.ckpt`` behind.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.fileio import atomic_path


def save_checkpoint(path: str | Path, state: dict) -> Path:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated/foreign files raise many types
        raise CnnlabError(f"checkpoint {path} cannot be read: {exc}") from exc


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a trained classifier from its checkpoint; returns ``(model in eval mode, meta)``.

    ``meta`` holds what the model needs to be used: ``model``, ``model_kwargs``, ``classes``,
    ``mean``, ``std``, ``input_size`` (C, H, W).
    """
    from cnnlab.models import create_model

    ckpt = load_checkpoint(path)
    for key in ("model", "model_kwargs", "classes", "mean", "std", "input_size", "state_dict"):
        if key not in ckpt:
            raise CnnlabError(f"checkpoint {path} has no {key!r}: not a cnnlab classifier checkpoint")
    kwargs = dict(ckpt["model_kwargs"], pretrained=False) if ckpt["model"].startswith("transfer:") \
        else dict(ckpt["model_kwargs"])
    try:
        model = create_model(ckpt["model"], num_classes=len(ckpt["classes"]), in_chans=ckpt["input_size"][0],
                             **kwargs)
    except CnnlabError as exc:  # a checkpoint of a model this version of cnnlab does not know
        raise CnnlabError(f"checkpoint {path}: {exc}") from exc
    model.load_state_dict(ckpt["state_dict"])
    meta = {k: v for k, v in ckpt.items() if k not in ("state_dict", "optimizer", "scheduler", "rng", "loader")}
    return model.to(device).eval(), meta


def pixel_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """A checkpoint's classifier taking [0, 1] pixel images (normalization inside the model)."""
    from cnnlab.models.layers import Normalize

    model, meta = load_classifier(path, device)
    return nn.Sequential(Normalize(meta["mean"], meta["std"]), model).to(device).eval(), meta
