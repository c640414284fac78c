"""Joint image/mask augmentation and the batch loader, both on the training device.

Geometry (flip, scale, rotation, crop position) must move image and mask together, so each
sample's transform is one affine map sampled once and applied twice with ``grid_sample``:
bilinear for the image, nearest for the mask (a blend of two labels is no label). Pixels the
map pulls from outside the image become ``IGNORE`` in the mask, so no loss is spent on padding.
Colour jitter touches the image only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from cnnlab.data.segmentation import IGNORE, SegSet
from cnnlab.core import distributed as dist


@dataclass
class JointAugment:
    hflip: bool = True
    vflip: bool = False
    scale: tuple[float, float] = (0.75, 1.5)  # zoom factor range (log-uniform); > 1 zooms in
    rotate: float = 10.0  # maximum rotation in degrees
    jitter: float = 0.2  # brightness/contrast/saturation factors in [1 - jitter, 1 + jitter]

    @classmethod
    def crop_only(cls) -> "JointAugment":
        return cls(hflip=False, vflip=False, scale=(1.0, 1.0), rotate=0.0, jitter=0.0)

    def affine(self, n: int, in_size: tuple[int, int], out_size: tuple[int, int], g: torch.Generator,
               focus: Tensor | None = None) -> Tensor:
        """``n x 2 x 3`` maps from output-crop coordinates to input coordinates (``affine_grid`` units).

        In pixels: input = centre + R(angle) @ flip * (output offset from the crop centre) / scale.
        The centre is drawn so the crop stays inside the image whenever it fits; ``focus``
        (``n x 2`` pixel (x, y), NaN for none) puts it near a given pixel instead.
        """
        (H, W), (h, w) = in_size, out_size
        u = lambda: torch.rand(n, generator=g, dtype=torch.float64)  # noqa: E731
        lo, hi = math.log(self.scale[0]), math.log(self.scale[1])
        s = torch.exp(lo + (hi - lo) * u())
        angle = (2 * u() - 1) * math.radians(self.rotate)
        fx = torch.where(u() < 0.5, -1.0, 1.0) if self.hflip else torch.ones(n, dtype=torch.float64)
        fy = torch.where(u() < 0.5, -1.0, 1.0) if self.vflip else torch.ones(n, dtype=torch.float64)
        room_x, room_y = (W / 2 - w / (2 * s)).clamp(min=0), (H / 2 - h / (2 * s)).clamp(min=0)
        cx, cy = W / 2 + (2 * u() - 1) * room_x, H / 2 + (2 * u() - 1) * room_y
        if focus is not None:  # near the focus pixel (within a quarter crop), still inside the image
            f = focus.double()
            fx_, fy_ = f[:, 0] + (2 * u() - 1) * w / (4 * s), f[:, 1] + (2 * u() - 1) * h / (4 * s)
            has = ~torch.isnan(f[:, 0])
            cx = torch.where(has, torch.maximum(torch.minimum(fx_, W / 2 + room_x), W / 2 - room_x), cx)
            cy = torch.where(has, torch.maximum(torch.minimum(fy_, H / 2 + room_y), H / 2 - room_y), cy)
        # whole-pixel crop offsets: without zoom or rotation a crop is then an exact copy (no blur)
        cx = (torch.round(cx - w / (2 * s)) + w / (2 * s)).clamp(W / 2 - room_x, W / 2 + room_x)
        cy = (torch.round(cy - h / (2 * s)) + h / (2 * s)).clamp(H / 2 - room_y, H / 2 + room_y)
        c, sn = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([
            torch.stack([c * fx * w / (s * W), -sn * fy * h / (s * W), 2 * cx / W - 1], 1),
            torch.stack([sn * fx * w / (s * H), c * fy * h / (s * H), 2 * cy / H - 1], 1)], 1)
        return theta.float()

    def colour(self, x: Tensor, g: torch.Generator) -> Tensor:
        """Brightness, contrast and (RGB) saturation jitter on 0..255 images."""
        if self.jitter <= 0:
            return x
        n = len(x)

        def factor() -> Tensor:
            return (1 + self.jitter * (2 * torch.rand(n, 1, 1, 1, generator=g) - 1)).to(x.device)

        x = x * factor()
        mean = x.mean((1, 2, 3), keepdim=True)
        x = (x - mean) * factor() + mean
        if x.shape[1] == 3:
            grey = (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
            x = (x - grey) * factor() + grey
        return x.clamp(0, 255)

    def __call__(self, x: Tensor, y: Tensor, out_size: tuple[int, int], g: torch.Generator,
                 focus: Tensor | None = None) -> tuple[Tensor, Tensor]:
        theta = self.affine(len(x), x.shape[-2:], out_size, g, focus).to(x.device)
        grid = F.affine_grid(theta, [len(x), 1, *out_size], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        # shift labels by one so that 0 marks "outside the image" after zero padding
        y = F.grid_sample((y.float() + 1).unsqueeze(1), grid, mode="nearest", padding_mode="zeros",
                          align_corners=False)[:, 0].long()
        y = torch.where(y == 0, IGNORE, y - 1)
        return self.colour(x, g), y


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
    uniform crops would rarely show the network one. Seeded and resumable like ``TensorLoader``.
    """

    def __init__(self, data: SegSet, batch_size: int, mean, std, *, shuffle: bool = False,
                 augment: JointAugment | None = None, crop: tuple[int, int] | None = None,
                 device: str | torch.device = "cpu", seed: int = 0, drop_last: bool = False,
                 repeat: int = 1, focus: float = 0.0, samples: int | None = None) -> None:
        if not 0 <= focus <= 1:
            raise ValueError(f"focus must be a fraction in [0, 1], got {focus}")
        self.device = torch.device(device)
        self.images, self.masks = data.images.to(self.device), data.masks.to(self.device)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.repeat, self.focus, self.samples = repeat, focus, samples
        self.augment = augment if augment is not None or crop is None else JointAugment.crop_only()
        self.crop = tuple(crop) if crop is not None else tuple(self.images.shape[-2:])
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1) * 255
        self.generator = torch.Generator().manual_seed(seed)

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
        """A random foreground pixel (x, y) of each mask marked in ``pick`` that has one, NaN elsewhere."""
        n, h, w = y.shape
        fg = ((y > 0) & (y != IGNORE)).flatten(1).float()
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
