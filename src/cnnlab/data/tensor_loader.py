"""Mini-batches from uint8 tensors that stay on the training device.

Small image datasets fit in memory (CIFAR-10 is 150 MB as uint8), so instead of a
``DataLoader`` with worker processes decoding and collating, the whole set is moved to the
device once; each batch is an index, a cast, augmentation and normalization on that device.
:class:`TensorLoader` serves classification (image, label), :class:`SegLoader` segmentation
(image, mask, with crops).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from cnnlab.data.augment import Augment, JointAugment, alternating_flip
from cnnlab.data.base import ImageSet
from cnnlab.data.segmentation import IGNORE, SegSet
from cnnlab.data.streaming import FileImageSet
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
        self.images = self._resident(data)
        self.flip_base = None
        if augment is not None and augment.hflip and augment.alternate_flip:
            self.flip_base = torch.rand(len(self.labels), generator=self.generator, device=self.device) < 0.5

    def _resident(self, data: ImageSet) -> Tensor:
        """The images as they stay on the device for the whole run (normalised once, or uint8)."""
        images = data.images.to(self.device)
        return torch.cat([self._normalize(part) for part in images.split(4096)]) if self.prenormalized else images

    def _shard_size(self) -> int:
        """This process's share of an epoch. Training (shuffled) shards are equal, padded as
        ``DistributedSampler`` pads (a few images twice an epoch): DDP's processes must take the same
        number of steps, or the one with a step more waits forever for the others' gradients.
        Evaluation shards are exact (metrics sum over processes once, at the end)."""
        n, world = len(self.labels), dist.world_size()
        return math.ceil(n / world) if self.shuffle else math.ceil((n - dist.rank()) / world)

    def __len__(self) -> int:
        n = self._shard_size()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def batch_sizes(self) -> list[int]:
        """The size of each batch of an epoch (the last one may be short)."""
        n = self._shard_size()
        return [min(self.batch_size, n - i * self.batch_size) for i in range(len(self))]

    def _epoch(self) -> tuple[Tensor, Tensor | None]:
        """This epoch's order (this process's shard) and which images to mirror; counts the epoch."""
        n = len(self.labels)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator, device=self.device)
        else:
            order = torch.arange(n, device=self.device)
        if self.shuffle and n % dist.world_size():
            order = torch.cat([order, order[:dist.world_size() - n % dist.world_size()]])
        order = order[dist.rank()::dist.world_size()]
        flips = alternating_flip(self.flip_base, self.epoch) if self.flip_base is not None else None
        self.epoch += 1
        return order, flips

    def __iter__(self):
        order, flips = self._epoch()
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


class StreamingLoader(TensorLoader):
    """:class:`TensorLoader` over a :class:`~cnnlab.data.streaming.FileImageSet`: the same order,
    shards, augmentation and normalisation, each batch's files decoded by ``DataLoader`` workers
    (``workers`` processes, prefetching ahead of the training step) instead of indexed in memory."""

    def __init__(self, data: FileImageSet, batch_size: int, mean, std, *, workers: int = 1, **kwargs) -> None:
        self.data, self.workers = data, workers
        super().__init__(data, batch_size, mean, std, **{**kwargs, "prenormalize": False})

    def _resident(self, data: FileImageSet) -> None:  # type: ignore[override]
        return None  # nothing stays: the pixels are read from the files each epoch

    def __iter__(self):
        from torch.utils.data import DataLoader

        from cnnlab.data.streaming import FileDataset

        order, flips = self._epoch()
        batches = [order[i * self.batch_size:(i + 1) * self.batch_size] for i in range(len(self))]
        decoded = DataLoader(FileDataset(self.data), batch_sampler=[b.tolist() for b in batches],
                             num_workers=self.workers, pin_memory=self.device.type == "cuda")
        for idx, images in zip(batches, decoded):
            images = images.to(self.device, non_blocking=True)
            yield self.transform(images, None if flips is None else flips[idx]), self.labels[idx]

    def sample(self, n: int) -> Tensor:
        return self._normalize(self.data.take(torch.arange(min(n, len(self.data)))).to(self.device))


class SegLoader:
    """``(x, y)`` batches: ``x`` float normalized ``N x C x h x w``, ``y`` int64 ``N x h x w``.

    The whole set lives on ``device`` as uint8; training batches get ``augment`` and, with
    ``crop``, a random ``crop``-sized window (a crop-only transform when ``augment`` is None).
    Without either, batches are whole images. An epoch visits every image ``repeat`` times (many
    random crops of few large images), or draws exactly ``samples`` crops when given: an epoch
    then costs the same whatever the size of the set (nnU-Net's fixed iterations per epoch), so
    a recipe's run time does not grow with the data. ``focus`` is the fraction of the epoch's
    crops centred near a random foreground pixel (exactly ``round(focus * crops)`` of them, at
    random places in the epoch; nnU-Net forces a third): with lesions under 1% of the image,
    uniform crops would rarely show the network one. ``focus_weights`` (one per class) makes the
    centre pixel's draw proportional to its class's weight instead: ``1 / frequency`` makes every
    class equally likely at the centre (rare-class sampling for scenes whose thin classes, poles and
    bicyclists, uniform crops barely show); None weighs every non-zero class 1 and class 0 (the
    background) 0. Seeded and resumable like ``TensorLoader``.
    """

    def __init__(self, data: SegSet, batch_size: int, mean, std, *, shuffle: bool = False,
                 augment: JointAugment | None = None, crop: tuple[int, int] | None = None,
                 device: str | torch.device = "cpu", seed: int = 0, drop_last: bool = False,
                 repeat: int = 1, focus: float = 0.0, samples: int | None = None,
                 focus_weights: Sequence[float] | None = None) -> None:
        if not 0 <= focus <= 1:
            raise ValueError(f"focus must be a fraction in [0, 1], got {focus}")
        if focus_weights is not None and (len(focus_weights) == 0 or min(focus_weights) < 0):
            raise ValueError(f"focus_weights must be one non-negative weight per class, got {list(focus_weights)}")
        self.device = torch.device(device)
        self.images, self.masks = data.images.to(self.device), data.masks.to(self.device)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.repeat, self.focus, self.samples = repeat, focus, samples
        self.augment = augment if augment is not None or crop is None else JointAugment.crop_only()
        self.crop = tuple(crop) if crop is not None else tuple(self.images.shape[-2:])
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1) * 255
        self.generator = torch.Generator().manual_seed(seed)
        self.focus_weights = None if focus_weights is None else torch.tensor(
            [*map(float, focus_weights), 0.0], device=self.device)  # the extra 0 weighs ignored pixels

    def _epoch_size(self) -> int:
        return self.samples if self.samples else len(self.masks) * self.repeat

    def _shard_size(self) -> int:
        return math.ceil((self._epoch_size() - dist.rank()) / dist.world_size())

    def __len__(self) -> int:
        n = self._shard_size()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self) -> Tensor:
        """The epoch's image indices: whole shuffled passes over the set, cut to the epoch size."""
        n, total = len(self.masks), self._epoch_size()
        passes = [torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
                  for _ in range(math.ceil(total / n))]
        return torch.cat(passes)[:total]

    def __iter__(self):
        order = self._order()
        focused = torch.zeros(len(order), dtype=torch.bool)
        if self.focus > 0:
            focused[torch.randperm(len(order), generator=self.generator)[:round(self.focus * len(order))]] = True
        order = order[dist.rank()::dist.world_size()].to(self.device)
        focused = focused[dist.rank()::dist.world_size()]
        for i in range(len(self)):
            batch = slice(i * self.batch_size, (i + 1) * self.batch_size)
            idx = order[batch]
            x, y = self.images[idx].float(), self.masks[idx].long()
            if self.augment is not None:
                focus = self._focus(y, focused[batch]) if self.focus > 0 else None
                x, y = self.augment(x, y, self.crop, self.generator, focus)
            yield (x - self.mean) / self.std, y

    def _focus(self, y: Tensor, pick: Tensor) -> Tensor:
        """A random pixel (x, y), drawn by ``focus_weights`` (default: foreground), of each mask marked
        in ``pick`` that has one of non-zero weight; NaN elsewhere."""
        n, h, w = y.shape
        if self.focus_weights is None:
            fg = ((y > 0) & (y != IGNORE)).flatten(1).float()
        else:
            # IGNORE (and any index past the classes) lands on the trailing 0
            fg = self.focus_weights[y.clamp(0, len(self.focus_weights) - 1)].flatten(1)
        pick = pick.to(y.device) & (fg.sum(1) > 0)
        weights = fg + (fg.sum(1, keepdim=True) == 0).float()
        # the loader's seeded generator on a CPU run (repeatable); the device's own on a GPU
        generator = self.generator if weights.device.type == "cpu" else None
        flat = torch.multinomial(weights, 1, generator=generator)[:, 0]
        xy = torch.stack([flat % w, flat // w], 1).double() + 0.5
        return torch.where(pick[:, None], xy, torch.full_like(xy, float("nan"))).cpu()

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
