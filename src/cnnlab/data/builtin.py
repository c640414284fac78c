"""The built-in datasets, each registered by name (see ``cnnlab datasets``)."""
from __future__ import annotations

from pathlib import Path

import torch

from cnnlab.data.base import DatasetSplits, ImageSet, cache_dir, seeded_split
from cnnlab.data.cifar import load_cifar
from cnnlab.data.colour_digits import LABEL_REGEX, write_colour_digits
from cnnlab.data.idx import load_idx_dataset
from cnnlab.data.imagefolder import filename_listing, load_filename_labels, load_image_folder, pinned_splits
from cnnlab.data.registry import register_dataset
from cnnlab.core.errors import CnnlabError


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


@register_dataset("imagefolder", "any <root>/<class>/*.jpg|png tree, with or without train/val/test folders")
def imagefolder(data_dir=None, image_size: int | None = None, seed: int = 42, test_fraction: float = 0.2,
                pinned: dict | None = None, **_) -> DatasetSplits:
    if data_dir is None:
        raise CnnlabError("the imagefolder dataset needs --data-dir pointing at <root>/<class>/... images")
    return load_image_folder(Path(data_dir).expanduser(), image_size, "imagefolder", seed, test_fraction, pinned)


@register_dataset("filename", "images whose label is in the file name (--label-regex, first group)")
def filename(data_dir=None, label_regex: str = r"_(\d+)_", image_size: int | None = None, seed: int = 42,
             test_fraction: float = 0.2, pinned: dict | None = None, **_) -> DatasetSplits:
    if data_dir is None:
        raise CnnlabError("the filename dataset needs --data-dir pointing at a folder of images")
    return _filename_splits("filename", Path(data_dir).expanduser(), label_regex, image_size, seed, test_fraction,
                            pinned)


def _filename_splits(name: str, root: Path, label_regex: str, image_size: int | None, seed: int,
                     test_fraction: float, pinned: dict | None = None) -> DatasetSplits:
    """The seeded train/test cut of a file-name dataset; with ``pinned`` (a run's ``data_files``), that run's splits."""
    if pinned:
        return pinned_splits(name, root, filename_listing(root, label_regex), pinned, {"label_regex": label_regex})
    pool, classes, skipped = load_filename_labels(root, label_regex, image_size)
    train, test = seeded_split(pool, test_fraction, seed)
    return DatasetSplits(name, classes, train, test, augment="natural",
                         info={"root": str(root), "label_regex": label_regex, "skipped": skipped})


@register_dataset("colour-digits", "64x64 colour handwritten digits 1-4 labelled in their file names (003 Q5's "
                  "layout), written on first use from scikit-learn's real digits", needs_files=False)
def colour_digits(data_dir=None, image_size: int | None = None, seed: int = 42, test_fraction: float = 0.2,
                  pinned: dict | None = None, **_) -> DatasetSplits:
    """The file-name loader on a folder made by ``write_colour_digits`` (``--data-dir``, else the user cache)."""
    root = Path(data_dir).expanduser() if data_dir else cache_dir() / "data" / "colour-digits"
    if not root.exists():
        write_colour_digits(root)
    return _filename_splits("colour-digits", root, LABEL_REGEX, image_size, seed, test_fraction, pinned)


@register_dataset("cifar10", "CIFAR-10, 60,000 32x32 colour images, 10 classes (pickle release or image-folder tree)")
def cifar10(data_dir=None, download: bool = True, image_size: int | None = None, **_) -> DatasetSplits:
    return load_cifar("cifar10", data_dir, download, image_size)


@register_dataset("cifar100", "CIFAR-100, 60,000 32x32 colour images, 100 classes (pickle release or image-folder tree)")
def cifar100(data_dir=None, download: bool = True, image_size: int | None = None, **_) -> DatasetSplits:
    return load_cifar("cifar100", data_dir, download, image_size)
