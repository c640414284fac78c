"""CIFAR-10/100 from the official python-pickle release, or from an image-folder tree.

The pickle release (``cifar-10-batches-py/`` with ``data_batch_1..5`` and ``test_batch``;
``cifar-100-python/`` with ``train`` and ``test``) is what torchvision downloads; it is
downloaded here too when missing and a network exists. It is read with a restricted unpickler
(dicts, lists, strings, numbers, NumPy arrays): a crafted file cannot run code. A ``train/<class>/``,
``test/<class>/`` tree (e.g. a JPEG re-encoding) is read by the image-folder reader instead.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.base import DatasetSplits, ImageSet, data_root
from cnnlab.data.imagefolder import load_image_folder
from cnnlab.core.errors import CnnlabError

RELEASES = {
    "cifar10": ("cifar-10-batches-py", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta", "label_names", b"labels"),
    "cifar100": ("cifar-100-python", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                 ["train"], ["test"], "meta", "fine_label_names", b"fine_labels"),
}


# Everything the official batches reference: NumPy's array reconstruction (numpy.core before
# NumPy 2, numpy._core after), and the codec and bytes constructor Python 3 pickles of bytes use
# (``__builtin__`` is Python 2's name for ``builtins``). Nothing else loads.
SAFE_GLOBALS = frozenset({
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("builtins", "bytes"), ("__builtin__", "bytes"), ("builtins", "bytearray"), ("__builtin__", "bytearray"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
})


class RefusedGlobal(pickle.UnpicklingError):
    """The file names a function or class no CIFAR batch needs (e.g. ``os.system``)."""


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds only dicts, lists, strings, numbers and NumPy arrays.

    ``pickle.load`` calls whatever callable a file names (``__reduce__``), so a crafted
    ``data_batch_1`` could run any code; here any name outside ``SAFE_GLOBALS`` stops the load.
    """

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        raise RefusedGlobal(f"{module}.{name}")


def load_pickle(path: Path) -> object:
    """One CIFAR pickle file's content, read with the restricted unpickler."""
    try:
        with open(path, "rb") as f:
            return _CifarUnpickler(f, encoding="bytes").load()
    except RefusedGlobal as exc:
        raise CnnlabError(f"{path}: refused: the file asks to call {exc}, which no CIFAR batch needs "
                          f"(a crafted or foreign file)") from None
    except OSError as exc:
        raise CnnlabError(f"{path}: cannot read CIFAR file ({exc.strerror or exc})") from None
    except Exception as exc:  # noqa: BLE001  (truncated or foreign bytes raise many types)
        raise CnnlabError(f"{path}: not a CIFAR python-pickle file ({type(exc).__name__})") from None


def _read_batch(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, list[int]]:
    """``(N x 3 x 32 x 32 uint8, N labels)`` from one batch, its structure checked."""
    batch = load_pickle(path)
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise CnnlabError(f"{path}: not a CIFAR batch (expected a dict with {b'data'!r} and {label_key!r})")
    data, labels = batch[b"data"], batch[label_key]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        found = f"{data.dtype} of shape {list(data.shape)}" if isinstance(data, np.ndarray) else type(data).__name__
        raise CnnlabError(f"{path}: {b'data'!r} is not N rows of 3072 uint8 pixels (3 x 32 x 32); found {found}")
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu":
        labels = labels.tolist()
    if not isinstance(labels, list) or not all(isinstance(v, (int, np.integer)) and 0 <= v < num_classes
                                               for v in labels):
        raise CnnlabError(f"{path}: {label_key!r} is not a list of class indices 0..{num_classes - 1}")
    images = data.reshape(-1, 3, 32, 32)
    if len(images) != len(labels):
        raise CnnlabError(f"{path}: {len(images)} images but {len(labels)} labels")
    return images, labels


def _read_batches(folder: Path, names: list[str], label_key: bytes, num_classes: int) -> ImageSet:
    parts = [_read_batch(folder / name, label_key, num_classes) for name in names]
    images = np.concatenate([p[0] for p in parts])
    labels = [int(v) for p in parts for v in p[1]]
    return ImageSet(torch.from_numpy(images), torch.tensor(labels, dtype=torch.long))


def read_class_names(path: Path, key: str) -> list[str]:
    """The class names in ``batches.meta`` (CIFAR-10) or ``meta`` (CIFAR-100)."""
    meta = load_pickle(path)
    names = meta.get(key.encode()) if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, (bytes, str)) for n in names):
        raise CnnlabError(f"{path}: not a CIFAR meta file (expected a dict whose {key!r} lists the class names)")
    try:
        decoded = [n.decode() if isinstance(n, bytes) else n for n in names]
    except UnicodeDecodeError:
        raise CnnlabError(f"{path}: class names are not text") from None
    repeated = sorted({n for n in decoded if decoded.count(n) > 1})
    if repeated:  # two classes of one name would be merged by every report and prediction
        raise CnnlabError(f"{path}: class name(s) {', '.join(map(repr, repeated))} appear more than once; "
                          f"each class needs its own name")
    return decoded


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
    classes = read_class_names(pickles / meta_name, names_key)
    return DatasetSplits(name, classes, _read_batches(pickles, train_names, label_key, len(classes)),
                         _read_batches(pickles, test_names, label_key, len(classes)), augment="cifar",
                         info={"root": str(root), "format": "pickle"})


def _missing(name: str, root: Path, why: str) -> str:
    folder_name, url = RELEASES[name][:2]
    return (f"{name}: no data in {root}{why}. Either extract {url} there (giving {root / folder_name}/), "
            f"or provide an image-folder tree {root}/train/<class>/*.png and {root}/test/<class>/*.png; "
            f"or pass --data-dir DIR / set CNNLAB_DATA to a folder holding {name}/.")
