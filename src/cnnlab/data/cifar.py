"""CIFAR-10/100 from the official python-pickle release, or from an image-folder tree.

The pickle release (``cifar-10-batches-py/`` with ``data_batch_1..5`` and ``test_batch``;
``cifar-100-python/`` with ``train`` and ``test``) is what torchvision downloads; it is
downloaded here too when missing and a network exists. A ``train/<class>/``,
``test/<class>/`` tree (e.g. a JPEG re-encoding) is read by the image-folder reader instead.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.base import DatasetSplits, ImageSet, data_root
from cnnlab.data.imagefolder import load_image_folder
from cnnlab.errors import CnnlabError

RELEASES = {
    "cifar10": ("cifar-10-batches-py", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta", "label_names", b"labels"),
    "cifar100": ("cifar-100-python", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                 ["train"], ["test"], "meta", "fine_label_names", b"fine_labels"),
}


def _read_batches(folder: Path, names: list[str], label_key: bytes) -> ImageSet:
    images, labels = [], []
    for name in names:
        path = folder / name
        try:
            with open(path, "rb") as f:
                batch = pickle.load(f, encoding="bytes")
        except (OSError, pickle.UnpicklingError, EOFError) as exc:
            raise CnnlabError(f"{path}: cannot read CIFAR batch ({exc})") from exc
        images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels += list(batch[label_key])
    return ImageSet(torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.long))


def load_cifar(name: str, data_dir=None, download: bool = True, image_size: int | None = None) -> DatasetSplits:
    folder_name, url, train_names, test_names, meta_name, names_key, label_key = RELEASES[name]
    root = data_root(name, data_dir)
    pickles = next((p for p in (root / folder_name, root) if (p / train_names[0]).exists()), None)
    if pickles is None and (root / "train").is_dir():
        splits = load_image_folder(root, image_size=image_size, name=name)
        splits.augment = "cifar"
        return splits
    if pickles is None and download:
        try:
            from torchvision.datasets.utils import download_and_extract_archive

            download_and_extract_archive(url, str(root))
            pickles = root / folder_name
        except OSError as exc:
            raise CnnlabError(_missing(name, root, f" (download from {url} failed: {exc})")) from exc
    if pickles is None:
        raise CnnlabError(_missing(name, root, ""))
    with open(pickles / meta_name, "rb") as f:
        classes = [c.decode() for c in pickle.load(f, encoding="bytes")[names_key.encode()]]
    return DatasetSplits(name, classes, _read_batches(pickles, train_names, label_key),
                         _read_batches(pickles, test_names, label_key), augment="cifar",
                         info={"root": str(root), "format": "pickle"})


def _missing(name: str, root: Path, why: str) -> str:
    folder_name, url = RELEASES[name][:2]
    return (f"{name}: no data in {root}{why}. Either extract {url} there (giving {root / folder_name}/), "
            f"or provide an image-folder tree {root}/train/<class>/*.png and {root}/test/<class>/*.png; "
            f"or pass --data-dir DIR / set CNNLAB_DATA to a folder holding {name}/.")
