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

import inspect
import warnings
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from cnnlab.core.errors import CnnlabError
from cnnlab.core.names import Registry
from cnnlab.models.layers import resolve_stem

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Builder
    description: str
    default_input: tuple[int, int, int]  # (C, H, W) the model is designed for
    tags: tuple[str, ...] = field(default_factory=tuple)


def register_model(
    name: str,
    description: str = "",
    default_input: tuple[int, int, int] = (3, 32, 32),
    tags: tuple[str, ...] = (),
) -> Callable[[Builder], Builder]:
    """Decorator adding a builder under ``name`` (use a trailing ``:`` for prefix families)."""

    def wrap(fn: Builder) -> Builder:
        doc = description or ((fn.__doc__ or "").strip().splitlines() or [""])[0]
        MODELS.register(name, ModelEntry(name, fn, doc, default_input, tuple(tags)))
        return fn

    return wrap


def _load_families() -> None:
    import cnnlab.models.families  # noqa: F401  (each family module registers its models)


MODELS: Registry[ModelEntry] = Registry("model", _load_families, "Run `cnnlab models` to list them.")

# Until issue 26 these torchvision names built cnnlab's CIFAR-stem variants (their "auto" stem at the
# default 32 px); now they mean torchvision's architecture, ImageNet stem. For one release the old
# ways of getting the CIFAR variant (a ``stem``/``image_size`` argument, a checkpoint holding its
# weights) still get it, and small inputs given the ImageNet one are told the new name.
RENAMED_CIFAR = {name: f"{name}-cifar" for name in ("resnet18", "resnet34", "resnet50", "googlenet")}


def warn_renamed(name: str, why: str, stacklevel: int = 3) -> None:
    """One line: the CIFAR-stem model ``name`` used to mean is now ``name-cifar`` (``stacklevel``:
    the frame the warning points at, the caller of the public function by default)."""
    warnings.warn(f"{why}: the CIFAR-stem {name} is now {RENAMED_CIFAR[name]!r} ({name!r} is torchvision's "
                  f"ImageNet-stem architecture); the old form is deprecated and goes in the next release",
                  FutureWarning, stacklevel=stacklevel)


def _legacy_stem(name: str, kwargs: dict) -> tuple[str, dict]:
    """``name`` and ``kwargs`` with a renamed model's old ``stem``/``image_size`` arguments resolved
    as they were (``"auto"``: CIFAR up to 64 px, default 32) into the model they now name."""
    key = name.strip().lower()
    if key not in RENAMED_CIFAR or not {"stem", "image_size"} & set(kwargs):
        return name, kwargs
    kwargs = dict(kwargs)
    stem = resolve_stem(kwargs.pop("stem", "auto"), kwargs.pop("image_size", 32))
    warn_renamed(key, f"model {key!r} with a stem/image_size argument", stacklevel=4)
    return (RENAMED_CIFAR[key] if stem == "cifar" else key), kwargs


def get_entry(name: str) -> tuple[ModelEntry, tuple[str, ...]]:
    """Resolve ``name`` (or ``prefix:arg``) to its entry and the positional args it implies."""
    entry = MODELS.find(name)
    if entry is not None:
        return entry, ()
    prefix, _, arg = name.strip().partition(":")
    family = MODELS.find(prefix + ":") if arg else None
    if family is not None:
        return family, (arg,)
    return MODELS.get(name), ()


def create_model(name: str, num_classes: int = 10, in_chans: int = 3, **kwargs) -> nn.Module:
    """Build a registered model; ``num_classes``/``in_chans`` adapt it to the dataset.

    ``kwargs`` come from the user (``--model-kwargs``): an argument the model does not take, or a
    value it cannot be built with (``{"width": "x"}``), is one :class:`CnnlabError` naming both.
    """
    name, kwargs = _legacy_stem(name, kwargs)
    entry, args = get_entry(name)
    params = inspect.signature(entry.builder).parameters
    named = [p for p in list(params)[len(args):] if params[p].kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                                      inspect.Parameter.KEYWORD_ONLY)]
    unknown = [k for k in kwargs if k not in named]
    if unknown and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        takes = ", ".join(p for p in named if p not in ("num_classes", "in_chans")) or "nothing"
        raise CnnlabError(f"model {name!r} has no argument {', '.join(map(repr, unknown))} (it takes: {takes})")
    try:
        return entry.builder(*args, num_classes=num_classes, in_chans=in_chans, **kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        if not kwargs:
            raise  # the registry's own defaults failing is a bug, not bad input
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CnnlabError(f"model {name!r} cannot be built with {kwargs}: {type(exc).__name__}: {first}") from None


def check_weights(name: str, num_classes: int, in_chans: int, kwargs: dict) -> None:
    """Build the model on the meta device (shapes only, nothing allocated) and refuse it when its
    weights alone exceed the memory free (core.bounds): ``--model-kwargs '{"width": 100000000}'`` is
    one line, not an out-of-memory kill. For the user's kwargs (commands call it before
    :func:`create_model`); a model that cannot be built on meta is left to the real build."""
    import torch

    from cnnlab.core import bounds

    if not kwargs:  # the registry's own sizes fit
        return
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # loading weights into meta tensors says it is a no-op
            shadow = create_model(name, num_classes=num_classes, in_chans=in_chans, **kwargs)
    except Exception:  # noqa: BLE001 - the real build reports what is wrong with kwargs
        return
    nbytes = sum(t.numel() * t.element_size() for t in [*shadow.parameters(), *shadow.buffers()])
    limit = bounds.over(nbytes)
    if limit:
        raise CnnlabError(f"model {name!r} with {kwargs}: its weights alone need {bounds.human(nbytes)}, {limit}")


def check_input(model: nn.Module, input_size: tuple[int, ...], name: str) -> None:
    """Run one blank image through ``model``: an input it cannot take (too small for its pooling,
    wrong channels) fails here in one line, before a run folder exists, not in the first batch.
    A renamed torchvision name given small images (<= 64 px) says which model it used to mean.
    (Whether a batch of them fits memory is :func:`cnnlab.analysis.memory.check_step`.)"""
    import torch

    if name.strip().lower() in RENAMED_CIFAR and max(input_size[1:]) <= 64:
        warn_renamed(name.strip().lower(), f"{'x'.join(map(str, input_size))} inputs to model {name!r}")

    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CnnlabError(f"model {name!r} cannot take {'x'.join(map(str, input_size))} inputs ({first}); "
                          f"use larger images or another model") from None
    finally:
        model.train(training)


def list_models(tag: str | None = None) -> list[ModelEntry]:
    """All registered entries, sorted by name (optionally only those carrying ``tag``)."""
    return [e for e in MODELS.entries() if tag is None or tag in e.tags]
