"""Shared fixtures: a private cache folder per test session, and the real-data location."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Decode caches and downloads go to a temporary folder, never the user's cache."""
    os.environ["CNNLAB_CACHE"] = str(tmp_path_factory.mktemp("cnnlab-cache"))


def real_data(name: str) -> Path:
    """The real dataset folder under $CNNLAB_DATA, or skip the test when it is not there."""
    root = os.environ.get("CNNLAB_DATA")
    if not root or not (Path(root) / name).is_dir():
        pytest.skip(f"real dataset {name} not available (set CNNLAB_DATA)")
    return Path(root) / name


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """A finished classification run folder (simple-cnn width 8, 2 epochs on the embedded digits,
    with TensorBoard logging), shared by the report, export, demo and browser tests."""
    from cnnlab.classify.api import train_classifier

    out = tmp_path_factory.mktemp("digits") / "run"
    train_classifier("digits", out=out, epochs=2, model_kwargs={"width": 8}, tensorboard=True, progress=False)
    return out


@pytest.fixture(scope="session")
def _session_threads() -> int:
    import torch

    return torch.get_num_threads()


@pytest.fixture(autouse=True)
def _restore_torch_threads(_session_threads):
    """Put PyTorch's thread count back to the session's after every test: a test or fixture (or a
    CLI handler a test calls in process) that sets it would otherwise change the numerics of every
    later test."""
    import torch

    yield
    torch.set_num_threads(_session_threads)
