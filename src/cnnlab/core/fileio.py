"""Writes that never leave a half-written file: a temporary file beside the target, then a rename.

A crash, a kill or Ctrl-C during the write leaves the old file (or none), never a truncated one;
the temporary file is removed on any error. Files get the permissions the user's umask gives any new
file (``mkstemp`` alone would leave them 0600: a report nobody else could read).
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from cnnlab.core import output


# what atomic_path's temporary files are called: .<target name>.<8 random characters>.cnnlab-tmp
# (hidden, and with a suffix no other program writes, so a cleanup never takes a user's own file)
_TEMP_SUFFIX = ".cnnlab-tmp"
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}" + re.escape(_TEMP_SUFFIX) + "$")
_UMASK = os.umask(0o022)  # read once, at import (os.umask is the only portable way to read it) ...
os.umask(_UMASK)  # ... and put back at once


@contextmanager
def atomic_path(path: str | Path, cache: bool = False) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path``.

    An output is first claimed from the running command's guard (:mod:`cnnlab.core.output`), which
    refuses to replace a user's file; ``cache`` marks a file cnnlab keeps for itself, never a user's.
    """
    path = Path(path)
    if not cache:
        output.claim(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TEMP_SUFFIX, dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_torch(path: str | Path, obj: Any, cache: bool = False) -> Path:
    """``torch.save`` written atomically: checkpoints and caches are never left half-written.

    torch is imported here, on first save, so that the CLI's parser (which imports this module) stays torch-free.
    """
    import torch

    with atomic_path(path, cache) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """A text file (a table, a summary) written atomically and through the output guard."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def read_json(path: str | Path, what: str = "file") -> Any:
    """A JSON file's content; a missing or malformed file is one :class:`CnnlabError` line naming it."""
    from cnnlab.core.errors import CnnlabError

    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CnnlabError(f"{what} {path} not found") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise CnnlabError(f"{what} {path} is not valid JSON ({exc})") from None


NOT_FINITE = "_not_finite"
"""Suffix of the key that says why a value is null: ``{"eps": null, "eps_not_finite": "Infinity"}``."""


def _word(x: float) -> str:
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def _finite(value: Any) -> tuple[Any, Any]:
    """``value`` with NaN and infinities as None, and what they were: a word for a number, ``{"index":
    word}`` for a list (``"2.0"`` in nested lists), None when nothing was replaced."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, _word(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out[key], why = _finite(item)
            if why is not None:
                out[f"{key}{NOT_FINITE}"] = why
        return out, None
    if isinstance(value, (list, tuple)):
        items = [_finite(v) for v in value]
        why = {}
        for i, (_, note) in enumerate(items):
            if isinstance(note, dict):
                why.update({f"{i}.{k}": w for k, w in note.items()})
            elif note is not None:
                why[str(i)] = note
        return [clean for clean, _ in items], why or None
    return value, None


def standard_json(obj: Any) -> Any:
    """``obj`` with NaN and infinities as null and ``<key>_not_finite`` beside them (see :func:`write_json`)."""
    return _finite(obj)[0]


def write_json(path: str | Path, obj: Any, indent: int = 1) -> Path:
    """Standard JSON written atomically (``default=str`` for paths and other plain values).

    NaN and infinities are not JSON (strict parsers, JavaScript's included, reject them): each is
    written as null, and the key beside it, ``<key>_not_finite``, says what it was (``"NaN"``,
    ``"Infinity"`` or ``"-Infinity"``; for a list, a map from the index to that word). A number
    straight inside a top-level list has no key beside it and is a bare null.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(standard_json(obj), indent=indent, default=str, allow_nan=False))
    return Path(path)


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete the temporary files a killed :func:`atomic_path` left in ``folder`` (``kill -9``
    skips its cleanup); returns what was removed. Only names of its pattern are touched."""
    removed = [p for p in Path(folder).iterdir() if p.is_file() and _TEMP_NAME.match(p.name)]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


def refuse_overwriting_inputs(targets: Iterable[str | Path], inputs: Iterable[str | Path], option: str = "--out") -> None:
    """Stop before writing when an output file would replace one of the input files, or (in a
    command, :mod:`cnnlab.core.output`) any existing file without ``--overwrite``."""
    from cnnlab.core.errors import CnnlabError

    targets = list(targets)
    sources = {Path(p).resolve() for p in inputs}
    hits = [Path(t) for t in targets if Path(t).resolve() in sources]
    if hits:
        more = f" (and {len(hits) - 1} more)" if len(hits) > 1 else ""
        raise CnnlabError(f"{option} {hits[0].parent}: writing {hits[0].name} would overwrite the input file "
                          f"{hits[0]}{more}; choose another {option}")
    output.refuse_existing(targets, option)
