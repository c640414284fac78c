"""Import a script of ``benchmarks/`` in a test as the scripts import each other: their folder on ``sys.path``.

The scripts are not a package; each is run as ``python benchmarks/NAME.py``, which puts that folder
first on ``sys.path``, and some import a sibling (``from fmnist_cpu_profile import ...``). The module
is registered under its name while it runs, as an import would (dataclasses look their module up).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/NAME.py`` as a fresh module, its siblings importable while it loads."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module
