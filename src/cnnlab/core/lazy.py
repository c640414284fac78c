"""Package attributes imported on first use, so that ``cnnlab --help`` never loads torch.

The CLI imports every capability's ``commands`` module to build its parser, and importing
``cnnlab.data.commands`` runs ``cnnlab/data/__init__.py`` first. A package whose ``__init__``
re-exports torch-heavy names therefore declares them with :func:`lazy_exports` instead of
importing them: ``from cnnlab.data import load_dataset`` still works, and loads torch only then.
"""
from __future__ import annotations

import importlib
import sys
from typing import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list]]:
    """``(__getattr__, __dir__)`` for ``package``: each name in ``exports`` comes from the module it maps to."""
    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__() -> list:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
