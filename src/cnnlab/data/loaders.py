"""The built-in datasets, each registered by name (see ``cnnlab datasets``)."""
from __future__ import annotations

import torch

from cnnlab.data.base import DatasetSplits, ImageSet, seeded_split
from cnnlab.data.idx import load_idx_dataset
from cnnlab.data.registry import register_dataset


@register_dataset("digits", "scikit-learn's 1,797 real 8x8 handwritten digits (embedded, no files)", needs_files=False)
def digits(data_dir=None, seed: int = 42, test_fraction: float = 0.2, **_) -> DatasetSplits:
    """The embedded default: real data that needs no download. Pixels 0..16 are scaled to 0..255."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images * (255.0 / 16.0)).round().to(torch.uint8).unsqueeze(1)
    full = ImageSet(images, torch.from_numpy(bunch.target).long())
    train, test = seeded_split(full, test_fraction, seed)
    return DatasetSplits("digits", [str(c) for c in bunch.target_names], train, test,
                         augment="digits", info={"source": "sklearn.datasets.load_digits"})


@register_dataset("fashion-mnist", "Zalando's 70,000 28x28 grey clothing images, 10 classes (official IDX files)")
def fashion_mnist(data_dir=None, download: bool = True, **_) -> DatasetSplits:
    return load_idx_dataset("fashion-mnist", data_dir, download)


@register_dataset("mnist", "LeCun's 70,000 28x28 handwritten digits (official IDX files)")
def mnist(data_dir=None, download: bool = True, **_) -> DatasetSplits:
    return load_idx_dataset("mnist", data_dir, download)
