"""One call that makes a run repeatable: seed every generator before anything random happens.

Model creation draws initial weights, so the seed must be set before the model is built, not only
before the training loop; Python's ``random`` and NumPy are seeded too for the data pipeline and
the NumPy networks.
"""
from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and every CUDA device)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
