"""Mini-batches from uint8 tensors that stay on the training device.

Small image datasets fit in memory (CIFAR-10 is 150 MB as uint8), so instead of a
``DataLoader`` with worker processes decoding and collating, the whole set is moved to the
device once; each batch is an index, a cast, augmentation and normalization on that device.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from cnnlab.data.augment import Augment
from cnnlab.data.base import ImageSet
from cnnlab.train import distributed as dist


class TensorLoader:
    """Iterate ``(x, y)`` batches: ``x`` float normalized ``N x C x H x W``, ``y`` int64, on ``device``.

    Shuffling uses its own seeded generator, so a run is repeatable and a resumed run can
    restore the exact order (``state_dict``/``load_state_dict``). Under ``torchrun`` every process
    draws the same order and takes every ``world_size``-th sample of it (its shard).
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
    ) -> None:
        self.device = torch.device(device)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.batch_size, self.shuffle, self.augment, self.drop_last = batch_size, shuffle, augment, drop_last
        self.dtype = dtype
        self.mean = torch.tensor(mean, device=self.device, dtype=dtype).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device, dtype=dtype).view(1, -1, 1, 1) * 255
        self.generator = torch.Generator().manual_seed(seed)

    def _shard_size(self) -> int:
        return math.ceil((len(self.labels) - dist.rank()) / dist.world_size())

    def __len__(self) -> int:
        n = self._shard_size()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order[dist.rank()::dist.world_size()].to(self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.transform(self.images[idx]), self.labels[idx]

    def transform(self, images: Tensor) -> Tensor:
        """uint8 -> float, augmentation (training only) and normalization."""
        x = images.to(self.dtype)
        if self.augment is not None:
            x = self.augment(x, self.generator)
        return (x - self.mean) / self.std

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
