"""Batched augmentation on uint8/float tensors, on whatever device the batch lives on.

Augmenting whole batches with tensor ops (not per-image PIL transforms) is what keeps a GPU busy
(airbench's lesson): flips are a ``where``, translations are a padded crop gathered with one
index, rotations one ``affine_grid``. Presets name what suits each dataset; digits and clothes are
never flipped horizontally where that changes the class (a mirrored 2 is not a 2). Colour operations
(negatives, channel permutations) are for data whose colours carry no class information; they work on
0..255 pixels, which is what ``TensorLoader`` hands them even when it stores normalised images.

Segmentation's :class:`JointAugment` moves image and mask together: geometry (flip, scale,
rotation, crop position) is one affine map per sample, sampled once and applied twice with
``grid_sample``: bilinear for the image, nearest for the mask (a blend of two labels is no label).
Pixels the map pulls from outside the image become ``IGNORE`` in the mask, so no loss is spent on
padding. Colour jitter touches the image only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from cnnlab.core.errors import CnnlabError
from cnnlab.data.segmentation import IGNORE


@dataclass(frozen=True)
class Augment:
    hflip: bool = False
    vflip: bool = False
    translate: int = 0  # max shift in pixels (reflect-padded random crop)
    rotate: float = 0.0  # max rotation in degrees
    alternate_flip: bool = False  # hflip each image on every other epoch instead of at random (airbench)
    invert: bool = False  # half the images become their photographic negative (255 - x): ink/paper polarity
    shuffle_channels: bool = False  # each image's colour channels in a random order (red ink may turn blue)
    randaugment: int = 0  # RandAugment's ops per image (torchvision.transforms.v2.RandAugment num_ops; 0: off)
    magnitude: int = 9  # RandAugment's magnitude, 0..30 (timm's rand-m9-n2 is 9 with 2 ops)

    @property
    def recolours(self) -> bool:
        """Whether this augmentation changes colours, and so needs 0..255 pixels, not normalised ones."""
        return self.invert or self.shuffle_channels or bool(self.randaugment)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None, hflip: Tensor | None = None) -> Tensor:
        """Augment a float batch ``N x C x H x W``; each image gets its own random draw.

        ``hflip`` (a bool per image) says which images to mirror, replacing the random draw: the
        loader passes it for ``alternate_flip``, since only the loader knows images and epochs.
        """
        n = x.shape[0]
        if self.hflip and hflip is None:
            hflip = torch.rand(n, generator=generator, device=_device(x, generator)) < 0.5
        if hflip is not None:
            x = torch.where(hflip.to(x.device).view(-1, 1, 1, 1), x.flip(3), x)
        if self.vflip:
            flip = torch.rand(n, generator=generator, device=_device(x, generator)) < 0.5
            x = torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(2), x)
        if self.translate:
            x = random_translate(x, self.translate, generator)
        if self.rotate:
            x = random_rotate(x, self.rotate, generator)
        if self.invert:
            negative = torch.rand(n, generator=generator, device=_device(x, generator)) < 0.5
            x = torch.where(negative.to(x.device).view(-1, 1, 1, 1), 255 - x, x)
        if self.shuffle_channels:
            x = shuffle_channels(x, generator)
        if self.randaugment:
            x = rand_augment(x, self.randaugment, self.magnitude, generator)
        return x


def _device(x: Tensor, generator: torch.Generator | None) -> torch.device:
    """Where random numbers are drawn: on the generator's device (a CUDA generator draws on the
    GPU, so no host-to-device copy stalls the batch), else on the batch's."""
    return generator.device if generator is not None else x.device


def alternating_flip(base: Tensor, epoch: int) -> Tensor:
    """Which images to mirror in ``epoch``: ``base`` (a fixed random bool per image) on even epochs,
    its negation on odd ones. Every image is then seen mirrored on exactly every other epoch, so
    two consecutive epochs always show both views (random flips repeat a view half the time).
    """
    return base ^ bool(epoch % 2)


def random_translate(x: Tensor, pad: int, generator: torch.Generator | None = None) -> Tensor:
    """Shift each image by up to ``pad`` pixels (reflect padding, then a random crop).

    The shift never exceeds an eighth of the shorter side: a preset written for 150-pixel photos
    must not push an 8-pixel digit out of its own frame (and reflect padding needs pad < side).
    """
    n, c, h, w = x.shape
    pad = min(pad, max(1, min(h, w) // 8))
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dev = _device(x, generator)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=dev).to(x.device)
    rows = (dy.view(n, 1) + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(n, c, h, w + 2 * pad)
    out = padded.gather(2, rows)
    cols = (dx.view(n, 1) + torch.arange(w, device=x.device)).view(n, 1, 1, w).expand(n, c, h, w)
    return out.gather(3, cols)


def random_rotate(x: Tensor, degrees: float, generator: torch.Generator | None = None) -> Tensor:
    """Rotate each image by a uniform angle in [-degrees, degrees] about its centre (bilinear)."""
    n = x.shape[0]
    dev = _device(x, generator)
    angle = (torch.rand(n, generator=generator, device=dev).to(x.device) * 2 - 1) * math.radians(degrees)
    cos, sin = angle.cos(), angle.sin()
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def shuffle_channels(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Each image's channels in its own uniformly random order (one of the C! permutations)."""
    n, c = x.shape[:2]
    order = torch.rand(n, c, generator=generator, device=_device(x, generator)).argsort(1).to(x.device)
    return x.gather(1, order.view(n, c, 1, 1).expand_as(x))


def rand_augment(x: Tensor, num_ops: int, magnitude: int, generator: torch.Generator | None = None) -> Tensor:
    """torchvision's ``v2.RandAugment`` on each image of a 0..255 batch, on uint8 as it expects.

    The transform draws one op list per call, so it is called per image (on a whole batch it would
    give every image the same ops). It draws from torch's global RNG; that is seeded here from
    ``generator``, inside ``fork_rng``, so a seeded loader repeats its augmentation and a resumed
    run continues it, and the global RNG (dropout, init) is untouched.
    """
    from torchvision.transforms import v2

    transform = v2.RandAugment(num_ops=num_ops, magnitude=magnitude)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=_device(x, generator)))
    pixels = x.round().clamp(0, 255).to(torch.uint8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = torch.stack([transform(image) for image in pixels])
    return out.to(x.dtype)


PRESETS: dict[str, Augment] = {
    "none": Augment(),
    "digits": Augment(translate=1, rotate=10),
    "mnist": Augment(translate=2, rotate=10),
    "fashion": Augment(hflip=True, translate=2),
    "cifar": Augment(hflip=True, translate=4),
    "cifar-fast": Augment(hflip=True, translate=2, alternate_flip=True),  # airbench94's
    "natural": Augment(hflip=True, translate=8, rotate=10),
    # digits in random colours (003 Q5): shifts, rotations, negatives and channel orders, so every
    # digit shape is seen in both polarities and many colours
    "colour-digits": Augment(translate=4, rotate=10, invert=True, shuffle_channels=True),
    "rotate": Augment(rotate=36),
    # RandAugment (Cubuk et al. 2020) through torchvision, 2 ops at magnitude 9 (timm's rand-m9-n2)
    "randaugment": Augment(randaugment=2),
    "cifar-randaugment": Augment(hflip=True, translate=4, randaugment=2),  # Keras' RandomRotation(0.1) (001 Sec.3b; add --vflip for its vertical flips)
}


def get_augment(name: str | Augment, vflip: bool = False) -> Augment:
    """A preset by name (or an ``Augment`` as it is); ``vflip`` adds vertical flips (aerial, microscopy, defects)."""
    if not isinstance(name, Augment) and name not in PRESETS:
        raise CnnlabError(f"unknown augmentation {name!r}; expected one of {sorted(PRESETS)}")
    base = name if isinstance(name, Augment) else PRESETS[name]
    return replace(base, vflip=vflip or base.vflip)


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
