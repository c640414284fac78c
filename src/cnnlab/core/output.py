"""One guard for everything a command writes: nothing a user made is replaced without ``--overwrite``.

Every file cnnlab writes goes through :func:`cnnlab.core.fileio.atomic_path`, which asks
:func:`claim` first. While a command runs (:func:`guarded`, entered by the CLI for every command
that has ``--overwrite``), a claim on a file that already exists is refused unless the command
wrote it itself earlier, ``--overwrite`` was given, or it lies in a folder the command owns (a run
folder that ``runs.rundir`` checked for ``--resume``). That is the backstop; the checks below
(:func:`check_file`, :func:`check_folder`, :func:`check_distinct`) let a command refuse a bad
``--out`` before its first byte, so a refused command leaves nothing behind.

Outside a command (the Python API, a notebook) no guard is active: the caller chose the path,
and only the shape checks (extension, folder vs file, inside the data) apply.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from cnnlab.core.errors import CnnlabError


@dataclass
class Guard:
    """What one command may replace: its own files, those in folders it owns, anything with ``overwrite``."""

    overwrite: bool
    written: set[Path] = field(default_factory=set)
    owned: list[Path] = field(default_factory=list)

    def may_replace(self, path: Path) -> bool:
        return self.overwrite or path in self.written or any(path.is_relative_to(f) for f in self.owned)

    def claim(self, path: Path) -> None:
        if path.exists() and not self.may_replace(path):
            raise CnnlabError(f"{path} exists and was not written by this command; pass --overwrite to "
                              f"replace it, or choose another --out")
        self.written.add(path)


_ACTIVE: ContextVar[Guard | None] = ContextVar("cnnlab_output_guard", default=None)


def _absolute(path: str | Path) -> Path:
    """The path as the guard compares it: absolute and normalised, symlinks not followed."""
    return Path(os.path.abspath(path))


@contextmanager
def guarded(overwrite: bool) -> Iterator[Guard]:
    """Run the block as one command whose writes are guarded (``overwrite``: its ``--overwrite``)."""
    token = _ACTIVE.set(Guard(overwrite))
    try:
        yield _ACTIVE.get()
    finally:
        _ACTIVE.reset(token)


def claim(path: str | Path) -> None:
    """Called before a file is written: refuse to replace one this command may not replace."""
    guard = _ACTIVE.get()
    if guard is not None:
        guard.claim(_absolute(path))


def own(folder: str | Path) -> None:
    """Let this command replace files under ``folder`` (a run folder it was told to continue)."""
    guard = _ACTIVE.get()
    if guard is not None:
        guard.owned.append(_absolute(folder))


def replaceable(path: str | Path) -> bool:
    """Whether the running command was allowed to replace ``path`` (``--overwrite``, its own folder);
    False outside a command, where a writer keeps its own rule."""
    guard = _ACTIVE.get()
    return guard is not None and guard.may_replace(_absolute(path))


def refuse_existing(paths: Iterable[str | Path], option: str = "--out") -> None:
    """Before writing: refuse when one of ``paths`` exists and this command may not replace it."""
    guard = _ACTIVE.get()
    if guard is None:
        return
    taken = [Path(p) for p in paths if Path(p).exists() and not guard.may_replace(_absolute(p))]
    if taken:
        more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
        raise CnnlabError(f"{option} {taken[0]} already exists{more}; pass --overwrite to replace it, "
                          f"or choose another {option}")


def refuse_file_parents(path: Path, option: str = "--out",
                        consequence: str = "nothing can be written under it") -> None:
    """Refuse a path one of whose parents is a file (nothing can be made below a file)."""
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise CnnlabError(f"{option} {path}: {blocking} is a file, so {consequence}")


def refuse_empty(path: str | Path, option: str = "--out") -> None:
    """An empty ``--out ""`` would write into the current folder: refuse it rather than guess."""
    if not str(path).strip():
        raise CnnlabError(f"{option} is empty; give a path (leave {option} out for the default)")


def refuse_inside_data(path: str | Path, data_dir: str | Path | None, option: str = "--out",
                       data_option: str = "--data-dir") -> None:
    """Refuse an output inside a data folder: it would become a class or an image of the next run,
    so not even ``--overwrite`` allows it."""
    if data_dir is not None and _absolute(path).resolve().is_relative_to(_absolute(data_dir).resolve()):
        raise CnnlabError(f"{option} {path} is inside {data_option} {data_dir}: what is written there would "
                          f"become data of the next run; choose a place outside it")


def check_file(path: str | Path, suffixes: Iterable[str], option: str = "--out") -> Path:
    """Refuse an output file of the wrong kind or one already there, before anything is written.

    ``suffixes`` are the extensions the command can write (``.png``; ``""``: a name without one);
    the check of the extension comes first, so ``--overwrite`` never replaces a file the command
    would then refuse.
    """
    path = Path(path)
    allowed = tuple(s.lower() for s in suffixes)
    if path.is_dir():
        raise CnnlabError(f"{option} {path} is a folder; expected a file such as {path / ('out' + max(allowed))}")
    if path.suffix.lower() not in allowed:
        named = " or ".join(s for s in allowed if s)
        raise CnnlabError(f"{option} {path}: expected a file ending in {named}")
    refuse_file_parents(path, option)
    refuse_existing([path], option)
    return path


def check_folder(path: str | Path, names: Iterable[str] = (), option: str = "--out") -> Path:
    """Refuse an output folder that is a file, lies under a file, or holds one of ``names`` (the
    files the command will write there) that this command may not replace."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CnnlabError(f"{option} {path} is a file; expected a folder")
    refuse_file_parents(path, option)
    refuse_existing([path / name for name in names], option)
    return path


def output_folder(path: str | Path, names: Iterable[str] = (), option: str = "--out") -> Path:
    """:func:`check_folder`, then make the folder: where a command's writing starts."""
    path = check_folder(path, names, option)
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_distinct(targets: Mapping[str | Path, Path], option: str = "--out") -> None:
    """Refuse outputs of one command that would land on the same file (``targets``: input -> its output)."""
    seen: dict[Path, str | Path] = {}
    for source, target in targets.items():
        first = seen.setdefault(_absolute(target), source)
        if first != source:
            raise CnnlabError(f"{option}: {first} and {source} would both be written to {target}; "
                              f"give inputs with different names")
