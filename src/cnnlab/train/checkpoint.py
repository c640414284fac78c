"""Checkpoints: plain dicts of tensors and JSON-able values, written atomically.

This module saves and loads them and builds no model (that needs the model registry, which sits
above the engine: see ``cnnlab.runs.restore``).

Plain dicts load with ``torch.load(weights_only=True)`` (no pickled code runs on load), and a
checkpoint is written to a temporary file in the same folder and renamed over the old one, so a
crash mid-write never leaves a truncated ``last.ckpt`` behind.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from torch import nn

from cnnlab.core.errors import CnnlabError
from cnnlab.core.fileio import save_torch
from cnnlab.core.versions import software_versions


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write ``state`` atomically, with the cnnlab, torch and Python versions that wrote it
    (``versions``; a ``versions`` already in ``state`` is kept)."""
    return save_torch(path, {"versions": software_versions(), **state})


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint's dict, loaded safely: tensors and plain values only, no pickled code."""
    path = Path(path)
    if path.is_dir():
        found = [p.name for p in (path / "best.ckpt", path / "last.ckpt") if p.is_file()]
        raise CnnlabError(f"checkpoint {path} is a folder; give a checkpoint file"
                          + (f" such as {path / found[0]}" if found else " (a run folder holds best.ckpt)"))
    if not path.is_file():
        raise CnnlabError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CnnlabError(f"checkpoint {path} is empty (0 bytes): a run that was killed before writing it, or a "
                          f"copy that failed")
    if is_onnx(path):
        raise CnnlabError(f"{path} is an ONNX file (written by cnnlab export), not a PyTorch checkpoint: run it with "
                          f"cnnlab predict --backend onnx --checkpoint {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001  (truncated/foreign files raise many types)
        raise CnnlabError(unreadable(path, exc)) from None
    if not isinstance(ckpt, dict):
        raise CnnlabError(f"checkpoint {path} holds a {type(ckpt).__name__}, not a dict of weights and settings: "
                          f"not a cnnlab checkpoint")
    return ckpt


def is_onnx(path: Path) -> bool:
    """An ONNX model by its name or its first bytes (a protobuf whose field 1, ir_version, comes first)."""
    if path.suffix.lower() == ".onnx":
        return True
    with open(path, "rb") as f:
        head = f.read(16)
    return head[:1] == b"\x08" and b"pytorch" in head or head[:1] == b"\x08" and b"onnx" in head.lower()


def unreadable(path: Path, exc: BaseException) -> str:
    """Why a checkpoint did not load, in one line. Torch's own message is not passed on: it
    suggests ``weights_only=False``, which would run whatever code the file carries."""
    found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", str(exc))
    if found:
        name = re.sub(r"^(posix|nt)\.", "os.", found.group(1))  # os.system is posix.system inside a pickle
        return (f"checkpoint {path} refuses to load: it holds code ({name}), not only tensors and plain values; "
                f"cnnlab never loads such files, since loading them would run that code")
    return f"checkpoint {path} cannot be read: the file is truncated or not a PyTorch checkpoint ({type(exc).__name__})"


RESUME_KEYS = ("state_dict", "optimizer", "scheduler", "rng", "history", "best_score", "bad_epochs", "epoch")


def load_resume_state(path: Path, meta: dict, device: str | torch.device = "cpu") -> dict:
    """A ``last.ckpt`` that ``--resume`` can continue: every piece of training state present,
    and the model the run trains (not another one whose weights happen to fit)."""
    ckpt = load_checkpoint(path, map_location=device)
    missing = [k for k in RESUME_KEYS if k not in ckpt]
    if missing:
        raise CnnlabError(f"checkpoint {path} has no {', '.join(missing)}: not a last.ckpt that --resume can continue")
    if "model" in ckpt and "model" in meta and _identity(ckpt) != _identity(meta):
        raise CnnlabError(f"checkpoint {path} holds {describe(ckpt)}, but this run trains {describe(meta)}")
    return ckpt


def load_weights(model: nn.Module, state_dict: object, path: str | Path, holds: str, asked: str) -> None:
    """Copy a checkpoint's weights into ``model``. Weights of another architecture are one line
    naming both models, not PyTorch's list of every mismatched tensor."""
    try:
        model.load_state_dict(state_dict)  # type: ignore[arg-type]
    except (RuntimeError, TypeError, ValueError, AttributeError, KeyError):
        mine = model.state_dict()
        theirs = state_dict if isinstance(state_dict, dict) else {}
        missing = [k for k in mine if k not in theirs]
        extra = [k for k in theirs if k not in mine]
        reshaped = [k for k in mine if k in theirs and getattr(theirs[k], "shape", None) != mine[k].shape]
        detail = f"{len(missing)} tensors missing, {len(extra)} unexpected, {len(reshaped)} of another shape"
        if reshaped:
            k = reshaped[0]
            detail += f", e.g. {k} is {tuple(getattr(theirs[k], 'shape', ()))} in the file, {tuple(mine[k].shape)} here"
        who = f"the {asked} it names" if holds == asked else f"{asked} (it holds {holds})"
        raise CnnlabError(f"checkpoint {path}: its weights do not fit {who}: {detail}") from None


def describe(meta: dict) -> str:
    """``simple-cnn {'width': 8}``: a model as a checkpoint or run names it."""
    kwargs = meta.get("model_kwargs") or {}
    return f"{meta.get('model')}" + (f" {kwargs}" if kwargs else "")


def _identity(meta: dict) -> str:
    """The model name and arguments, compared by value (key order, tuples vs JSON lists aside)."""
    return json.dumps([meta.get("model"), meta.get("model_kwargs") or {}], sort_keys=True, default=str)
