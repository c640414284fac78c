"""Image files to NumPy pixels, torch-free: what every reader of single images shares.

``cnnlab predict --backend onnx`` runs without importing torch (an exported model is for machines
without it), so decoding lives here, below the torch-based loaders that reuse it
(:mod:`cnnlab.data.imagefolder`, :mod:`cnnlab.data.images`). Files are turned upright by their
EXIF orientation (a phone stores a portrait photo as a landscape one plus a tag), 16-bit and
float images are scaled to 8 bits, never clipped.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from cnnlab.core.errors import CnnlabError

SKIMAGE = "skimage:"


def upright(im):
    """``im`` as it is meant to be seen: rotated/mirrored by its EXIF orientation tag, if it has one."""
    from PIL import ImageOps

    return ImageOps.exif_transpose(im) if im.getexif().get(0x0112, 1) != 1 else im


GREY_MODES = ("L", "LA", "1", "I", "F")  # PIL modes holding one grey channel (I;16* are "I" here)


def eight_bit(im):
    """A PIL image with 8-bit pixels: 16-bit, 32-bit and float greys *scaled* to 0..255.

    PIL's own ``convert("L")`` clips them (a 16-bit PNG turns almost white). 16-bit files
    (``I;16``, and PNGs PIL opens as ``I``) use their full 0..65535 range; other integer or
    float images use the smallest of 0..1, 0..255, 0..65535 holding their values (else their maximum).
    """
    from PIL import Image

    mode = "I" if im.mode.startswith("I;16") else im.mode
    if mode not in ("I", "F"):
        return im
    arr = np.asarray(im, dtype=np.float64)
    high = float(arr.max()) if arr.size else 0.0
    if im.mode.startswith("I;16") or (mode == "I" and im.format == "PNG"):
        top = 65535.0
    else:
        top = next((t for t in ((1.0,) if mode == "F" else ()) + (255.0, 65535.0) if high <= t), high)
    scaled = np.clip(np.rint(np.nan_to_num(arr) * (255.0 / max(top, 1e-12))), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, "L")


def read_image(path: str | Path, channels: int | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """``H x W x C`` uint8; ``channels`` 1 (grey) or 3 (RGB), None keeps grey files grey.

    16-bit and float images are scaled to 8 bits (:func:`eight_bit`), never clipped.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = eight_bit(upright(im))
            if channels is None:
                channels = 1 if im.mode in GREY_MODES else 3
            im = im.convert("L" if channels == 1 else "RGB")
            if size is not None:
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise CnnlabError(f"{path}: no such image file") from None
    except Exception as exc:  # noqa: BLE001  (corrupt files raise many types, huge ones DecompressionBombError)
        reason = str(exc) if isinstance(exc, (UnidentifiedImageError, OSError)) else f"{type(exc).__name__}: {exc}"
        raise CnnlabError(f"{path}: cannot read image ({reason})") from None
    return arr[..., None] if arr.ndim == 2 else arr


def skimage_photo(name: str, channels: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """A ``skimage.data`` photo as uint8 ``H x W x C`` (like :func:`read_image`), resized to ``size`` when given."""
    import skimage.data
    from PIL import Image

    loader = getattr(skimage.data, name, None)
    if loader is None or not callable(loader):
        raise CnnlabError(f"skimage:{name}: not an image in skimage.data (try chelsea, coffee, astronaut, rocket)")
    arr = np.asarray(loader())
    if arr.ndim != 2 and (arr.ndim != 3 or arr.shape[2] not in (3, 4)):
        raise CnnlabError(f"skimage:{name}: not a 2-D photo (shape {arr.shape})")
    im = Image.fromarray(arr.astype(np.uint8)).convert("L" if channels == 1 else "RGB")
    arr = np.asarray(im.resize((size[1], size[0]), Image.BILINEAR) if size else im)
    return arr[..., None] if arr.ndim == 2 else arr


def read_pixels(specs: Sequence[str | Path], input_size: Sequence[int]) -> np.ndarray:
    """Files or ``skimage:<name>`` photos as float32 ``N x C x H x W`` in [0, 1] at ``input_size`` (C, H, W)."""
    c, h, w = (int(v) for v in input_size)
    arrays = [skimage_photo(str(s)[len(SKIMAGE):], c, (h, w)) if str(s).startswith(SKIMAGE) else read_image(s, c, (h, w))
              for s in specs]
    return np.stack([a.transpose(2, 0, 1) for a in arrays]).astype(np.float32) / 255
