"""cnnlab's messages about work in progress, through ``logging`` (results stay on stdout).

A command's result (the test accuracy, the run folder, a table) is printed: it is what a script
pipes on. What a command says while it works (an epoch's numbers, early stopping, streaming
data, a heartbeat within a long epoch) goes to the ``cnnlab`` logger: stderr, ``-q`` for warnings
only, ``-v`` for debug detail, and a ``train.log`` in each run folder. Under ``torchrun`` each line
carries ``[rank N]``; ranks other than 0 say only warnings unless ``-v`` (every process would
otherwise print every epoch).
"""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

log = logging.getLogger("cnnlab")
PROGRESS_EVERY = 30.0  # seconds between progress lines within an epoch when stderr is not a terminal


def _rank_prefix() -> str:
    return f"[rank {os.environ.get('RANK', '0')}] " if int(os.environ.get("WORLD_SIZE", "1")) > 1 else ""


class _Stderr(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when a line is written (pytest and notebooks
    replace it), not to the stream of when the handler was made."""

    cnnlab_stderr = True

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup(verbosity: int = 0) -> None:
    """stderr logging for a command: ``verbosity`` -1 (``-q``) warnings, 0 info (on rank 0), 1 (``-v``) debug."""
    rank = int(os.environ.get("RANK", "0"))
    level = logging.WARNING if verbosity < 0 or (rank and verbosity < 1) else logging.DEBUG if verbosity > 0 \
        else logging.INFO
    log.setLevel(level)
    log.propagate = False
    for handler in [h for h in log.handlers if getattr(h, "cnnlab_stderr", False)]:
        log.removeHandler(handler)
    handler = _Stderr()
    handler.setFormatter(logging.Formatter(_rank_prefix() + "%(message)s"))
    log.addHandler(handler)


def ensure() -> None:
    """Messages reach stderr also when cnnlab is used from Python (a notebook), where no CLI set them up."""
    if not any(getattr(h, "cnnlab_stderr", False) for h in log.handlers):
        setup(0)


@contextmanager
def to_file(path: Path) -> Iterator[Path]:
    """Also write every message, debug detail included, with times, to ``path`` for the block (a run's
    ``train.log``), whatever ``-q``/``-v`` let through to stderr."""
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)  # made by the first line: a run refused
    # before its first message leaves no file behind
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s " + _rank_prefix() + "%(levelname)s %(message)s"))
    previous = log.getEffectiveLevel()
    screens = [h for h in log.handlers if getattr(h, "cnnlab_stderr", False)]
    levels = [h.level for h in screens]
    for screen in screens:  # stderr keeps the level the command chose ...
        screen.setLevel(max(previous, screen.level))
    log.setLevel(logging.DEBUG)  # ... while the file hears everything
    log.addHandler(handler)
    try:
        yield path
    finally:
        log.removeHandler(handler)
        handler.close()
        log.setLevel(previous)
        for screen, level in zip(screens, levels):
            screen.setLevel(level)


def interactive() -> bool:
    """Whether stderr is a terminal (progress bars) or a pipe/file (a progress line every 30 s)."""
    return sys.stderr.isatty()
