"""Where cnnlab keeps things of its own: the user cache and the data folder the environment names.

One place for these paths, so that every reader (downloads, the decoded-image cache) and every
check that keeps outputs out of them (an ``--out`` inside the data or the cache would be read
back as data, or wiped with the cache) agree on where they are.
"""
from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "CNNLAB_CACHE"
DATA_ENV = "CNNLAB_DATA"


def cache_dir() -> Path:
    """The user cache (downloads, decoded-image caches): ``$CNNLAB_CACHE`` or ``~/.cache/cnnlab``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cnnlab").expanduser()


def decoded_cache_dir() -> Path:
    """Decoded image folders (``cnnlab.data.imagefolder.decode_files``), one file per key."""
    return cache_dir() / "decoded"


def env_data_dir() -> Path | None:
    """The folder ``$CNNLAB_DATA`` names (None when unset or empty)."""
    value = os.environ.get(DATA_ENV)
    return Path(value).expanduser() if value else None


def existing_folder(path: str | os.PathLike, option: str = "--data-dir") -> Path:
    """``path`` when it exists; a folder that does not is refused, even where the data needs none (the
    embedded digits): a mistyped path would otherwise be ignored, or the data looked for elsewhere."""
    folder = Path(path).expanduser()
    if not folder.exists():
        from cnnlab.core.errors import CnnlabError

        raise CnnlabError(f"{option} {path} does not exist; give the folder that holds the data, or leave {option} "
                          f"out")
    return folder
