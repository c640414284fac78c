"""The software a run was made with, recorded in its config.json and in every checkpoint.

A result that does not reproduce later often differs by a library version; a run folder or a
checkpoint that names its cnnlab, PyTorch and Python versions shows that at once. PyTorch is
imported only when the versions are asked for (the CLI's parser stays torch-free).
"""
from __future__ import annotations

import platform

from cnnlab import __version__


def software_versions() -> dict[str, str]:
    """``{"cnnlab": ..., "torch": ..., "python": ...}``; torch's with its build tag (``2.5.1+cu124``)."""
    import torch

    # str(): torch.__version__ is a TorchVersion, which weights_only checkpoint loading refuses
    return {"cnnlab": __version__, "torch": str(torch.__version__), "python": platform.python_version()}
