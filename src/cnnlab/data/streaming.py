"""Image folders larger than memory: decoded on the fly through a ``DataLoader`` with workers.

cnnlab's default keeps a decoded dataset in memory as one uint8 tensor (:class:`TensorLoader`):
fastest while it fits. When the decoded training set would exceed the memory budget (half the
memory available now, or ``$CNNLAB_MEMORY_BUDGET``, e.g. ``512M``/``8G``), the folder loaders
return a :class:`FileImageSet` instead: the file list, labels and target size. Its
:class:`StreamingLoader` draws the same order as ``TensorLoader`` (same seeded generator, same
shards under ``torchrun``) and applies the same augmentation to each batch; only where the pixels
come from differs: ``torch.utils.data.DataLoader`` worker processes decode each batch's files.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cnnlab.core.bounds import env_size
from cnnlab.core.errors import CnnlabError

BUDGET_ENV = "CNNLAB_MEMORY_BUDGET"

def memory_budget() -> int:
    """Bytes a decoded dataset may take: ``$CNNLAB_MEMORY_BUDGET`` (``123``, ``512M``, ``8G``), else half
    of the memory available now (the rest is the model's, the optimizer's and the batches')."""
    size = env_size(BUDGET_ENV)
    if size is None:
        import psutil

        return psutil.virtual_memory().available // 2
    return size


def header_shape(files: list[Path], image_size: int | None) -> tuple[int, tuple[int, int]]:
    """Channels and ``(H, W)`` the decoded set will have, from the files' headers alone (PIL reads no
    pixels to open a file): the rules of ``decode_files`` (grey only if every file is grey; the
    ``image_size`` square, else the most common size)."""
    from PIL import Image

    from cnnlab.data.decode import GREY_MODES

    modes, sizes = set(), Counter()
    for path in files:
        try:
            with Image.open(path) as im:
                modes.add(im.mode in GREY_MODES)
                sizes[(im.height, im.width)] += 1
        except Exception:  # noqa: BLE001  (unreadable files are skipped when decoded, named then)
            continue
    if not sizes:
        raise CnnlabError(f"none of the {len(files)} image files could be decoded (first: {files[0]})")
    channels = 1 if modes == {True} else 3
    return channels, ((image_size, image_size) if image_size else sizes.most_common(1)[0][0])


def decoded_bytes(files: list[Path], image_size: int | None) -> tuple[int, int, tuple[int, int]]:
    """Bytes of ``files`` decoded as uint8, with the channels and size that gives."""
    channels, size = header_shape(files, image_size)
    return len(files) * channels * size[0] * size[1], channels, size


@dataclass
class FileImageSet:
    """An ``ImageSet`` whose pixels stay in their files: ``labels`` in memory, images decoded on demand."""

    files: list[Path]
    labels: Tensor
    size: tuple[int, int]
    channels: int

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), self.channels, *self.size)

    def subset(self, index: Tensor) -> "FileImageSet":
        return FileImageSet([self.files[i] for i in index.tolist()], self.labels[index], self.size, self.channels)

    def decode(self, i: int) -> Tensor:
        """Image ``i`` as uint8 ``C x H x W`` at the set's size and channels."""
        from cnnlab.data.decode import read_image

        return torch.from_numpy(np.array(read_image(self.files[i], self.channels, self.size))).permute(2, 0, 1)

    def take(self, index: Tensor) -> Tensor:
        """The images at ``index``, decoded in this process (a few: sample panels, statistics)."""
        if len(index) == 0:
            return torch.zeros(0, self.channels, *self.size, dtype=torch.uint8)
        return torch.stack([self.decode(i) for i in index.tolist()])

    @property
    def images(self) -> Tensor:
        """Every image decoded (what code written for in-memory sets reads); the training loop never
        calls it, it streams (:class:`StreamingLoader`)."""
        return self.take(torch.arange(len(self)))


class FileDataset(torch.utils.data.Dataset):
    """Image ``i`` of a :class:`FileImageSet`, decoded in a ``DataLoader`` worker."""

    def __init__(self, data: FileImageSet) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> Tensor:
        return self.data.decode(i)


def sample_stats(data: FileImageSet, n: int = 2048, seed: int = 0) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std from a seeded sample of ``n`` training images (not all: they don't fit)."""
    from cnnlab.data.base import channel_stats

    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return channel_stats(data.take(pick))


def workers() -> int:
    """Decoding processes: one per core but one (the main process trains), at least one."""
    return max(1, (os.cpu_count() or 2) - 1)
