"""Dataset contract: decoded images as uint8 tensors, with class names and statistics.

Every loader returns :class:`DatasetSplits`: ``train``/``val``/``test`` as :class:`ImageSet`
(``images`` uint8 ``N x C x H x W``, ``labels`` int64 ``N``). Keeping raw uint8 tensors (not
PIL images) is what lets small datasets live on the GPU and be augmented there in batches.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from cnnlab.core.errors import CnnlabError
from cnnlab.core.places import cache_dir  # noqa: F401  (this module's API too: builtin, imagefolder)


@dataclass
class ImageSet:
    images: Tensor  # uint8, N x C x H x W
    labels: Tensor  # int64, N
    # the file each image was decoded from (image folders): what a run pins its splits by
    files: list[str] | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 N x C x H x W, got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        if self.files is not None and len(self.files) != len(self.labels):
            raise ValueError(f"{len(self.files)} file names but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, ...]:
        """``N x C x H x W`` (a set streamed from files answers it without decoding)."""
        return tuple(self.images.shape)

    def subset(self, index: Tensor) -> "ImageSet":
        files = None if self.files is None else [self.files[i] for i in index.tolist()]
        return ImageSet(self.images[index], self.labels[index], files)


@dataclass
class DatasetSplits:
    name: str
    classes: list[str]
    train: ImageSet
    test: ImageSet
    val: ImageSet | None = None
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    augment: str = "none"  # name of the training augmentation preset (see cnnlab.data.augment)
    info: dict = field(default_factory=dict)  # provenance: paths, split seed, skipped files

    def __post_init__(self) -> None:
        if not self.mean:
            self.mean, self.std = channel_stats(self.train.images)

    @property
    def in_chans(self) -> int:
        return self.train.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.train.shape[2:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std of uint8 images in [0, 1] units (computed on the training split only)."""
    x = images[: 20000].float().div_(255)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())


def seeded_split(data: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Split off ``fraction`` of ``data``, stratified by class; the same seed gives the same split.

    Stratification keeps rare classes in both parts (a plain random cut can empty them).
    """
    if not 0.0 < fraction < 1.0:
        raise CnnlabError(f"split fraction must be in (0, 1), got {fraction}")
    g = torch.Generator().manual_seed(seed)
    keep, held = [], []
    for c in torch.unique(data.labels):
        idx = torch.nonzero(data.labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_held = int(round(len(idx) * fraction))
        if len(idx) > 1:
            n_held = min(max(n_held, 1), len(idx) - 1)
        held.append(idx[:n_held])
        keep.append(idx[n_held:])
    keep_idx, held_idx = torch.cat(keep).sort().values, torch.cat(held).sort().values
    return data.subset(keep_idx), data.subset(held_idx)


def data_root(name: str, data_dir: str | os.PathLike | None) -> Path:
    """Where dataset ``name`` lives: ``--data-dir`` wins, else ``$CNNLAB_DATA/<name>``, else a user cache.

    ``--data-dir`` may point at the dataset folder itself or at a folder holding ``<name>/``.
    """
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if root.exists() and not root.is_dir():
            raise CnnlabError(f"--data-dir {root} is a file; expected the dataset folder (or one holding {name}/)")
        return root / name if (root / name).is_dir() and not _looks_like_dataset(root) else root
    env = os.environ.get("CNNLAB_DATA")
    if env:
        root = Path(env).expanduser()
        if root.exists() and not root.is_dir():
            raise CnnlabError(f"CNNLAB_DATA={env} is a file; expected a folder holding {name}/")
        return root / name
    return cache_dir() / "data" / name


def has_files(name: str, data_dir: str | os.PathLike | None) -> bool:
    """Whether dataset ``name`` has files where :func:`data_root` looks (callers fall back to embedded data if not)."""
    root = data_root(name, data_dir)
    return root.is_dir() and any(root.iterdir())


def _looks_like_dataset(root: Path) -> bool:
    return any(root.glob("*.gz")) or (root / "train").is_dir() or any(root.glob("*-ubyte*"))
