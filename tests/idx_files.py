"""Write IDX files (the MNIST format) for tests: good ones and every way one can be wrong."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
         np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}
NAMES = {"train_images": "train-images-idx3-ubyte.gz", "train_labels": "train-labels-idx1-ubyte.gz",
         "test_images": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz"}


def idx_bytes(array: np.ndarray) -> bytes:
    array = np.asarray(array)
    if array.dtype.kind == "f" or array.dtype.itemsize > 1:
        array = array.astype(array.dtype.newbyteorder(">"))
    header = bytes([0, 0, CODES[array.dtype], array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx_set(folder: Path, gz: bool = True, **changes: np.ndarray) -> Path:
    """A small Fashion-MNIST-like folder (40 train, 20 test 8x8 images); ``changes`` replace any array."""
    rng = np.random.default_rng(0)
    arrays = {"train_images": rng.integers(0, 256, (40, 8, 8), dtype=np.uint8),
              "train_labels": (np.arange(40) % 10).astype(np.uint8),
              "test_images": rng.integers(0, 256, (20, 8, 8), dtype=np.uint8),
              "test_labels": (np.arange(20) % 10).astype(np.uint8), **changes}
    folder.mkdir(parents=True, exist_ok=True)
    for key, name in NAMES.items():
        data = idx_bytes(arrays[key])
        (folder / name).write_bytes(gzip.compress(data) if gz else data)
    return folder
