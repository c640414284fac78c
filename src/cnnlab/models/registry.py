"""Model registry: every model is a lowercase hyphenated name created by one factory.

The timm convention: ``create_model(name, num_classes=..., in_chans=..., **kwargs)``.
A model family registers a builder with :func:`register_model`; the builder takes
``num_classes`` and ``in_chans`` plus its own keyword arguments and returns an ``nn.Module``.
Names of the form ``prefix:arg`` (e.g. ``transfer:resnet18``) are routed to a builder
registered for ``prefix:`` that receives ``arg`` as its first positional argument.
The families register themselves on import; every lookup here first imports them all
(``families.py``), so the registry is always complete when it is read.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from cnnlab.errors import CnnlabError

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Builder
    description: str
    default_input: tuple[int, int, int]  # (C, H, W) the model is designed for
    tags: tuple[str, ...] = field(default_factory=tuple)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    description: str = "",
    default_input: tuple[int, int, int] = (3, 32, 32),
    tags: tuple[str, ...] = (),
) -> Callable[[Builder], Builder]:
    """Decorator adding a builder under ``name`` (use a trailing ``:`` for prefix families)."""

    def wrap(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        doc = description or ((fn.__doc__ or "").strip().splitlines() or [""])[0]
        _REGISTRY[name] = ModelEntry(name, fn, doc, default_input, tuple(tags))
        return fn

    return wrap


def _load_families() -> None:
    import cnnlab.models.families  # noqa: F401  (each family module registers its models)


def get_entry(name: str) -> tuple[ModelEntry, tuple[str, ...]]:
    """Resolve ``name`` (or ``prefix:arg``) to its entry and the positional args it implies."""
    _load_families()
    key = name.strip().lower()
    if key in _REGISTRY:
        return _REGISTRY[key], ()
    if ":" in key:
        prefix, arg = key.split(":", 1)
        entry = _REGISTRY.get(prefix + ":")
        if entry is not None and arg:
            return entry, (name.split(":", 1)[1],)
    close = difflib.get_close_matches(key, list(_REGISTRY), n=3)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise CnnlabError(f"unknown model {name!r}.{hint} Run `cnnlab models` to list them.")


def create_model(name: str, num_classes: int = 10, in_chans: int = 3, **kwargs) -> nn.Module:
    """Build a registered model; ``num_classes``/``in_chans`` adapt it to the dataset."""
    entry, args = get_entry(name)
    return entry.builder(*args, num_classes=num_classes, in_chans=in_chans, **kwargs)


def list_models(tag: str | None = None) -> list[ModelEntry]:
    """All registered entries, sorted by name (optionally only those carrying ``tag``)."""
    _load_families()
    entries = sorted(_REGISTRY.values(), key=lambda e: e.name)
    return [e for e in entries if tag is None or tag in e.tags]
