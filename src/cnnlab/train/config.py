"""What a training setting may be: checked when a ``TrainConfig`` is made, so a bad value (from
the API, a recipe or a resumed config.json) stops before a run folder exists, not epochs later.

The CLI's typed checkers (:mod:`cnnlab.cli.types`) refuse the same values one option at a time;
this is the rule for every other way in.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from cnnlab.core.errors import CnnlabError


def _holds(rule: Callable[[Any], bool], value: Any) -> bool:
    try:
        return bool(rule(value))
    except (TypeError, ValueError):
        return False


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


RULES: tuple[tuple[str, str, Callable[[Any], bool]], ...] = (
    ("epochs", "an integer >= 1", lambda v: _is_int(v) and v >= 1),
    ("batch_size", "an integer >= 1", lambda v: _is_int(v) and v >= 1),
    ("optimizer", "sgd, adam or adamw", lambda v: str(v).lower() in ("sgd", "adam", "adamw")),
    ("lr", "a number > 0", lambda v: _finite(v) and v > 0),
    ("momentum", "a number in [0, 1)", lambda v: _finite(v) and 0 <= v < 1),
    ("weight_decay", "a number >= 0", lambda v: _finite(v) and v >= 0),
    ("schedule", "onecycle, cosine, step, plateau or none",
     lambda v: str(v).lower() in ("onecycle", "cosine", "step", "plateau", "none")),
    ("step_size", "an integer >= 1", lambda v: _is_int(v) and v >= 1),
    ("gamma", "a number in (0, 1]", lambda v: _finite(v) and 0 < v <= 1),
    ("warmup", "a number in [0, 1]", lambda v: _finite(v) and 0 <= v <= 1),
    ("label_smoothing", "a number in [0, 1)", lambda v: _finite(v) and 0 <= v < 1),
    ("patience", "an integer >= 0", lambda v: _is_int(v) and v >= 0),
    ("seed", "an integer >= 0", lambda v: _is_int(v) and v >= 0),
)


def check_settings(cfg: Any) -> None:
    """Raise one :class:`CnnlabError` listing every setting of ``cfg`` outside its rule."""
    bad = [f"{name}={getattr(cfg, name)!r} (expected {rule})" for name, rule, ok in RULES
           if hasattr(cfg, name) and not _holds(ok, getattr(cfg, name))]
    if bad:
        raise CnnlabError(f"invalid training settings: {'; '.join(bad)}")
