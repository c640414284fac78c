"""Mini-batches from uint8 tensors that stay on the training device.

Small image datasets fit in memory (CIFAR-10 is 150 MB as uint8), so instead of a
``DataLoader`` with worker processes decoding and collating, the whole set is moved to the
device once; each batch is an index, a cast, augmentation and normalization on that device.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from cnnlab.data.augment import Augment, alternating_flip
from cnnlab.data.base import ImageSet
from cnnlab.core import distributed as dist


class TensorLoader:
    """Iterate ``(x, y)`` batches: ``x`` float normalized ``N x C x H x W``, ``y`` int64, on ``device``.

    Shuffling and augmentation use the loader's own seeded generator, on the loader's device
    (on a GPU no random number crosses from the host), so a run is repeatable and a resumed run
    can restore the exact order (``state_dict``/``load_state_dict``). Under ``torchrun`` every
    process draws the same order and takes every ``world_size``-th sample of it (its shard).

    ``prenormalize`` stores the images already normalised in ``dtype`` (a batch is then only an
    index and the augmentation: no cast or normalisation per step). It costs ``dtype``-sized
    memory per pixel instead of one byte, so it suits small datasets. Each ``iter()`` is one
    epoch; the loader counts them, which is what ``alternate_flip`` augmentation needs.
    """

    def __init__(
        self,
        data: ImageSet,
        batch_size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        *,
        shuffle: bool = False,
        augment: Augment | None = None,
        device: str | torch.device = "cpu",
        drop_last: bool = False,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        prenormalize: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.labels = data.labels.to(self.device)
        self.batch_size, self.shuffle, self.augment, self.drop_last = batch_size, shuffle, augment, drop_last
        self.dtype, self.prenormalized = dtype, prenormalize
        self.mean = torch.tensor(mean, device=self.device, dtype=torch.float32).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device, dtype=torch.float32).view(1, -1, 1, 1) * 255
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.epoch = 0
        images = data.images.to(self.device)
        self.images = torch.cat([self._normalize(part) for part in images.split(4096)]) if prenormalize else images
        self.flip_base = None
        if augment is not None and augment.hflip and augment.alternate_flip:
            self.flip_base = torch.rand(len(self.labels), generator=self.generator, device=self.device) < 0.5

    def _shard_size(self) -> int:
        return math.ceil((len(self.labels) - dist.rank()) / dist.world_size())

    def __len__(self) -> int:
        n = self._shard_size()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def batch_sizes(self) -> list[int]:
        """The size of each batch of an epoch (the last one may be short)."""
        n = self._shard_size()
        return [min(self.batch_size, n - i * self.batch_size) for i in range(len(self))]

    def __iter__(self):
        n = len(self.labels)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator, device=self.device)
        else:
            order = torch.arange(n, device=self.device)
        order = order[dist.rank()::dist.world_size()]
        flips = alternating_flip(self.flip_base, self.epoch) if self.flip_base is not None else None
        self.epoch += 1
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.transform(self.images[idx], None if flips is None else flips[idx]), self.labels[idx]

    def _normalize(self, images: Tensor) -> Tensor:
        return ((images.float() - self.mean) / self.std).to(self.dtype)

    def transform(self, images: Tensor, hflip: Tensor | None = None) -> Tensor:
        """Augmentation (training only) and normalization (unless done once up front) of a batch."""
        x = images if self.prenormalized else images.to(self.dtype)
        if self.augment is not None:
            back_to_pixels = self.prenormalized and self.augment.recolours  # colour operations want 0..255
            x = self.augment(x.float() * self.std + self.mean if back_to_pixels else x, self.generator, hflip)
            x = self._normalize(x) if back_to_pixels else x
        return x if self.prenormalized else ((x - self.mean) / self.std).to(self.dtype)

    def sample(self, n: int) -> Tensor:
        """The first ``n`` images, normalised and not augmented (for data-dependent initialisation)."""
        images = self.images[:n]
        return images if self.prenormalized else self._normalize(images)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.epoch = state.get("epoch", self.epoch)
