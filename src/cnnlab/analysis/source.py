"""Which model to analyse: a registry name, a torchvision name, a ``file.py:Class`` or a checkpoint.

``MODEL`` is resolved in that order of precedence:

- ``path/to/file.py:ClassName``: the class is imported from the file and built with no arguments;
- ``runs/x/best.ckpt``: a cnnlab classifier checkpoint (:func:`cnnlab.runs.restore.load_classifier`);
- a cnnlab registry name (``cnnlab models``), built with ``in_chans`` = the ``--input`` channels;
- a torchvision classifier name, optionally prefixed ``torchvision:``, built without weights.
"""
from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

from torch import nn

from cnnlab.core.errors import CnnlabError
from cnnlab.core.names import did_you_mean

Size = tuple[int, ...]


def load_model(spec: str, input_size: Size | None = None, num_classes: int | None = None) -> tuple[nn.Module, Size]:
    """The model named by ``spec`` and the input size to analyse it at (``input_size`` or its default)."""
    path, _, cls = spec.rpartition(":")
    if path.endswith(".py"):
        if input_size is None:
            raise CnnlabError(f"{spec}: give --input C,H,W for a model defined in a file")
        return _from_file(Path(path), cls), input_size
    if spec.endswith((".ckpt", ".pt", ".pth")):
        from cnnlab.runs.restore import load_classifier

        if not Path(spec).is_file():
            raise CnnlabError(f"checkpoint {spec}: no such file")
        model, meta = load_classifier(spec)
        return model, input_size or tuple(meta["input_size"])
    from cnnlab.models.registry import get_entry

    try:
        entry, args = get_entry(spec)
    except CnnlabError:
        return _torchvision(spec, input_size, num_classes)
    size = input_size or entry.default_input
    kwargs = {"in_chans": size[0], **({"num_classes": num_classes} if num_classes else {})}
    if "pretrained" in inspect.signature(entry.builder).parameters:
        kwargs["pretrained"] = False  # weights do not change any count
    try:
        return entry.builder(*args, **kwargs), size
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CnnlabError(f"model {spec!r} cannot be built for --input {','.join(map(str, size))}: {exc}") from exc


def _torchvision(spec: str, input_size: Size | None, num_classes: int | None) -> tuple[nn.Module, Size]:
    import torchvision

    from cnnlab.models.registry import list_models

    name = spec.removeprefix("torchvision:")
    known = torchvision.models.list_models()
    if name not in known:
        hint = did_you_mean(name, [e.name for e in list_models()] + known)
        raise CnnlabError(f"unknown model {spec!r}: not a cnnlab model (`cnnlab models`), a torchvision model, "
                          f"a file.py:Class or a checkpoint.{hint}")
    if input_size is None:
        try:
            crop = torchvision.models.get_model_weights(name).DEFAULT.transforms().crop_size
            input_size = (3, *crop) if len(crop) == 2 else (3, crop[0], crop[0])
        except (ValueError, AttributeError, TypeError):
            input_size = (3, 224, 224)
    kwargs = {"num_classes": num_classes} if num_classes else {}
    return torchvision.models.get_model(name, weights=None, **kwargs), input_size


def _from_file(path: Path, cls: str) -> nn.Module:
    """Import ``path`` as a module (its folder on ``sys.path`` for sibling imports) and build ``cls()``."""
    if not path.is_file():
        raise CnnlabError(f"{path}: no such file")
    spec = importlib.util.spec_from_file_location(f"cnnlab_user_model_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any error in the user's file is reported in one line
        raise CnnlabError(f"{path} cannot be imported: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.pop(0)
    found = getattr(module, cls, None)
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        classes = sorted(n for n, v in vars(module).items()
                         if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module.__name__)
        raise CnnlabError(f"{path} has no nn.Module class {cls!r} (it defines: {', '.join(classes) or 'none'})")
    try:
        return found()
    except Exception as exc:  # noqa: BLE001
        raise CnnlabError(f"{path}:{cls}() failed (the class needs a no-argument constructor): "
                          f"{type(exc).__name__}: {exc}") from exc
