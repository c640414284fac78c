"""MNIST-family IDX files: the official ``*-idx3-ubyte.gz`` format, read with NumPy.

IDX layout: 2 zero bytes, a dtype code (0x08 = uint8), the number of dimensions, then each
dimension as a big-endian uint32, then the data in C order.
"""
from __future__ import annotations

import gzip
import urllib.request
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.base import DatasetSplits, ImageSet, data_root
from cnnlab.core.errors import CnnlabError

FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
MIRRORS = {
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
}
CLASSES = {
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "mnist": [str(i) for i in range(10)],
}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzip'd or not, told by its first bytes, not its name) into an array of its
    declared shape."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        with (gzip.open if gzipped else open)(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise CnnlabError(f"{path}: cannot read IDX file ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise CnnlabError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise CnnlabError(f"{path}: truncated IDX file: header says {dims} ({expected} bytes), found {len(raw) - offset}")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(dims)


def check_idx_arrays(arrays: dict[str, np.ndarray], paths: dict[str, Path], classes: int) -> None:
    """What the four files must hold, each fault named with its file: images N x H x W uint8, labels
    1-D integers within the classes, as many labels as images, test images the size of train's.

    Without these checks a swapped pair, a float file or a label of 12 surfaced as a traceback deep
    in training, or as silently truncated or wrapped-around data."""
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        image_file, label_file = paths[f"{split}_images"], paths[f"{split}_labels"]
        if images.ndim == 1 and labels.ndim == 3:
            raise CnnlabError(f"{image_file} holds labels and {label_file} holds images: the two files are swapped")
        if images.ndim != 3 or images.dtype != np.uint8:
            raise CnnlabError(f"{image_file}: expected N x H x W uint8 images (an idx3-ubyte file), found "
                              f"{images.dtype} of shape {list(images.shape)}")
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise CnnlabError(f"{label_file}: expected N integer labels (an idx1-ubyte file), found "
                              f"{labels.dtype} of shape {list(labels.shape)}")
        if len(images) != len(labels):
            raise CnnlabError(f"{image_file} holds {len(images)} images but {label_file} holds {len(labels)} labels")
        if not len(images):
            raise CnnlabError(f"{image_file}: the header says 0 images; the official {split} file holds "
                              f"{'60,000' if split == 'train' else '10,000'}")
        bad = np.flatnonzero((labels < 0) | (labels >= classes))
        if len(bad):
            raise CnnlabError(f"{label_file}: label {int(labels[bad[0]])} at position {int(bad[0])} is not one of the "
                              f"{classes} classes (0..{classes - 1}); {len(bad)} such label(s)")
    train, test = arrays["train_images"].shape[1:], arrays["test_images"].shape[1:]
    if train != test:
        raise CnnlabError(f"{paths['test_images']} holds {test[0]}x{test[1]} images but {paths['train_images']} "
                          f"holds {train[0]}x{train[1]}: a model trained on one cannot be tested on the other")


def _fetch(name: str, root: Path, download: bool) -> dict[str, Path]:
    """Find the four files under ``root``; download the missing ones, or say exactly what to put where."""
    paths = {k: root / f for k, f in FILES.items()}
    missing = [k for k, p in paths.items() if not p.exists() and not p.with_suffix("").exists()]
    if missing and download:
        root.mkdir(parents=True, exist_ok=True)
        try:
            for k in missing:
                tmp = paths[k].with_suffix(".part")
                urllib.request.urlretrieve(MIRRORS[name] + FILES[k], tmp)
                tmp.replace(paths[k])
            missing = []
        except OSError as exc:
            download_error = f" (download from {MIRRORS[name]} failed: {exc})"
        else:
            download_error = ""
    else:
        download_error = ""
    if missing:
        wanted = ", ".join(FILES[k] for k in missing)
        raise CnnlabError(
            f"{name}: missing {wanted} in {root}{download_error}. Put the four official IDX files "
            f"({', '.join(FILES.values())}) from {MIRRORS[name]} in that folder, or pass --data-dir DIR "
            f"(or set CNNLAB_DATA to a folder holding {name}/)."
        )
    return {k: p if p.exists() else p.with_suffix("") for k, p in paths.items()}


def load_idx_dataset(name: str, data_dir=None, download: bool = True) -> DatasetSplits:
    """Fashion-MNIST or MNIST from the official IDX files (official train/test split)."""
    root = data_root(name, data_dir)
    paths = _fetch(name, root, download)
    arrays = {k: read_idx(p) for k, p in paths.items()}
    check_idx_arrays(arrays, paths, len(CLASSES[name]))

    def to_set(split: str) -> ImageSet:
        images = torch.from_numpy(arrays[f"{split}_images"].copy()).unsqueeze(1)
        return ImageSet(images, torch.from_numpy(arrays[f"{split}_labels"].astype(np.int64)))

    return DatasetSplits(name, CLASSES[name], to_set("train"), to_set("test"),
                         augment="mnist" if name == "mnist" else "fashion", info={"root": str(root)})
