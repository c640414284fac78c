"""Run folders: one rule for every training command, so no run is lost or silently mixed.

- A new run needs a new or empty ``--out``: a folder already holding files is refused unless
  ``--resume`` (continue it) or ``--overwrite`` (replace it) is given. The checks run before the
  folder is made, so a refused or invalid command leaves nothing behind.
- ``--resume`` continues the run *as it was configured*: options left out come from its
  ``config.json``; options given must agree with it ("runs/x was trained as simple-cnn on digits;
  you asked for mlp"), and ``config.json`` is never rewritten, except by ``--resume --epochs N``,
  which extends a run (or a crashed one's remaining length) and records the old length under
  ``extended_from``.
- Ctrl-C during training becomes one line saying how far the run got and how to continue it.
- A kill during an atomic write can leave a ``.last.ckpt.XXXXXXXX.cnnlab-tmp``; starting or resuming
  in that folder removes such leftovers (and nothing else).
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from cnnlab.core import output
from cnnlab.core.errors import CnnlabError
from cnnlab.core.fileio import read_json, remove_stale_temps, write_json
from cnnlab.core.versions import software_versions

LOCK = ".cnnlab-run.lock"  # held while a command trains in the folder (exclusive creation, see held_run_dir)
RUN_FILES = ("config.json", "last.ckpt", "best.ckpt", "history.json", "metrics.json")
# may differ between a run and its continuation: where it runs and where the data now live
NOT_COMPARED = frozenset({"device", "amp", "data_dir"})
NESTED = ("train", "options")  # config.json sections whose keys are options too
EXTENDABLE = frozenset({"epochs"})  # --resume --epochs N extends (or trims the rest of) a run


def stored_config(out: Path) -> dict:
    """The ``config.json`` a run folder was started with, flattened to one level of options."""
    return config_options(out / "config.json")


def config_options(path: Path) -> dict:
    """A run's ``config.json`` (or a run folder holding one) flattened to one level of options;
    what a rerun (``--config``) and a continuation (``--resume``) start from."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    config = read_json(path, "run configuration")
    if not isinstance(config, dict):
        raise CnnlabError(f"{path} does not hold a run configuration (a JSON object)")
    flat = {k: v for k, v in config.items() if k not in NESTED}
    for section in NESTED:
        if isinstance(config.get(section), dict):
            flat.update(config[section])
    return flat


def _plain(value: Any) -> Any:
    """JSON's view of a value, so (1, 2) equals [1, 2] and a Path equals its string."""
    return json.loads(json.dumps(value, default=str))


def resume_options(out: str | Path | None, given: dict[str, Any]) -> dict[str, Any]:
    """The options to continue the run in ``out`` with: the stored ones, where ``given`` must agree.

    ``given`` maps option names to what the caller asked for (None: not given). Returns the same
    keys, each None replaced by the stored value. A given value that differs from the stored one
    (device and data folder aside) is refused, naming both.
    """
    if out is None:
        raise CnnlabError("--resume needs --out: the folder of the run to continue")
    out = Path(out)
    if not (out / "last.ckpt").is_file():
        raise CnnlabError(f"--resume: no last.ckpt in {out} to resume from")
    stored = stored_config(out)
    _check_extension(out, given.get("epochs"))
    conflicts = {k: (stored[k], v) for k, v in given.items() if v is not None and k in stored
                 and k not in NOT_COMPARED | EXTENDABLE and _plain(v) != _plain(stored[k])}
    if conflicts:
        raise CnnlabError(_conflict_message(out, stored, conflicts))
    return {k: stored.get(k) if v is None else v for k, v in given.items()}


def _check_extension(out: Path, epochs: int | None) -> None:
    """``--resume --epochs N`` may move the end of a run, not below the epochs it already trained."""
    if epochs is None or not (out / "history.json").is_file():
        return
    done = len(read_json(out / "history.json", "run history"))
    if epochs < done:
        raise CnnlabError(f"--resume --epochs {epochs}: {out} has already trained {done} epochs; give --epochs {done} "
                          f"or more to continue it")


def record_extension(out: Path, config: dict) -> None:
    """On ``--resume`` with another ``--epochs``: config.json takes the new length, and keeps the old
    ones under ``extended_from`` (so a later ``--resume`` knows where the run ends, and a reader why)."""
    stored = read_json(out / "config.json", "run configuration")
    old, new = stored.get("train", {}).get("epochs"), config.get("train", {}).get("epochs")
    if old is None or new is None or old == new:
        return
    write_json(out / "config.json", {**stored, "train": {**stored["train"], "epochs": new},
                                     "extended_from": [*stored.get("extended_from", []), old]})


def rerun_options(config: str | Path, given: dict[str, Any]) -> dict[str, Any]:
    """The options to rerun the run whose ``config.json`` is ``config``: each left out (None) in
    ``given`` comes from the file, each given wins (a rerun with one setting changed)."""
    stored = config_options(Path(config))
    return {k: stored.get(k) if v is None else v for k, v in given.items()}


def _conflict_message(out: Path, stored: dict, conflicts: dict[str, tuple[Any, Any]]) -> str:
    what = f"{stored.get('model')} on {stored.get('dataset') or 'folder data'}"
    parts = []
    if "model" in conflicts or "dataset" in conflicts:
        asked = conflicts["model"][1] if "model" in conflicts else stored.get("model")
        parts.append(f"{out} was trained as {what}; you asked for {asked}"
                     + (f" on {conflicts['dataset'][1]}" if "dataset" in conflicts else ""))
    others = {k: conflicts[k] for k in sorted(conflicts) if k not in ("model", "dataset")}
    if others:
        was = ", ".join(f"{k}={_plain(old)}" for k, (old, _) in others.items())
        now = ", ".join(f"{k}={_plain(new)}" for k, (_, new) in others.items())
        parts.append(f"{out} was trained with {was}; you asked for {now}")
    return "; ".join(parts) + " (--resume continues a run as it was started: leave those options out, " \
                              "or start a new run in another --out)"


def check_run_dir(out: str | Path, resume: bool = False, overwrite: bool = False) -> Path:
    """Refuse what would lose work, without touching the disk: call it before any slow step."""
    out = Path(out)
    if resume and overwrite:
        raise CnnlabError("--resume continues the run in --out and --overwrite replaces it: give one of them")
    if out.exists() and not out.is_dir():
        raise CnnlabError(f"--out {out} is a file; expected a folder for the run")
    output.refuse_file_parents(out, consequence="the run folder cannot be made there")
    if resume:
        if not (out / "last.ckpt").is_file():
            raise CnnlabError(f"--resume: no last.ckpt in {out} to resume from")
        return out
    if not overwrite and out.is_dir() and any(p.name != LOCK for p in out.iterdir()):
        found = [name for name in RUN_FILES if (out / name).exists()]
        what = f"already holds a run ({', '.join(found)})" if found else "is not empty"
        raise CnnlabError(f"--out {out} {what}: continue it with --resume, replace it with --overwrite, "
                          f"or choose another --out")
    return out


@contextmanager
def held_run_dir(out: str | Path, config: dict, resume: bool = False, overwrite: bool = False) -> Iterator[Path]:
    """Hold the run folder for the block: locked, checked again under the lock, ``config.json`` written
    with the cnnlab, torch and Python versions that started the run (``versions``).

    The lock is a file made by exclusive creation, so of two commands started at once on one
    ``--out`` one runs and the other is refused (a check-then-create would let both through).
    ``overwrite`` deletes the previous run's checkpoints, history and metrics first, so nothing
    of it can be mistaken for the new run's if the new one stops early; ``config.json`` is kept
    as it was on ``resume``.
    """
    out = check_run_dir(out, resume, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        check_run_dir(out, resume, overwrite)  # again: another run may have filled it since the first check
        remove_stale_temps(out)
        if overwrite:
            output.refuse_existing([out / name for name in RUN_FILES])  # a command's own --overwrite decides
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
        output.own(out)  # checked above: this run may replace what it finds in its folder
        if not resume:
            write_json(out / "config.json", {**config, "versions": software_versions()})
        else:
            record_extension(out, config)
        yield out


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Own ``out/LOCK`` for the block; a lock left by a process that no longer runs is taken over."""
    lock = out / LOCK
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:
        holder = _lock_holder(lock)
        if holder is not None:
            raise CnnlabError(f"--out {out} is in use by another cnnlab run ({holder}); wait for it to "
                              f"finish, or choose another --out") from None
        lock.unlink(missing_ok=True)
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _lock_holder(lock: Path) -> str | None:
    """Who holds ``lock`` ('process 123'), or None when that process has ended (killed, machine restarted)."""
    try:
        text = lock.read_text().strip()
    except OSError:  # gone meanwhile: nobody holds it
        return None
    if not text:  # made by exclusive creation, its process id not yet written
        return "a run starting"
    try:
        os.kill(int(text), 0)
    except PermissionError:  # a process of another user
        return f"process {text}"
    except (OSError, ValueError, OverflowError):  # no such process, or not a lock of ours: nobody holds it
        return None
    return f"process {text}"


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training; its text says what was saved and how to continue."""


@contextmanager
def interruptible(out: str | Path | None) -> Iterator[None]:
    """Turn Ctrl-C inside the block into :class:`Interrupted` with a one-line account of the run."""
    try:
        yield
    except Interrupted:
        raise
    except KeyboardInterrupt:
        raise Interrupted(interrupt_message(Path(out) if out is not None else None)) from None


def interrupt_message(out: Path | None) -> str:
    """'interrupted after epoch 7; continue with --resume --out runs/x' (from the saved history)."""
    done = 0
    if out is not None:
        try:
            done = len(json.loads((out / "history.json").read_text()))
        except (OSError, ValueError, TypeError):
            done = 0
    if out is None:
        return f"interrupted after epoch {done}" if done else "interrupted during the first epoch"
    if done and (out / "last.ckpt").is_file():
        return f"interrupted after epoch {done}; continue with --resume --out {out}"
    return f"interrupted during the first epoch, before anything was saved; start again with --overwrite --out {out}"
