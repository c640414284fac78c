"""Colour handwritten digits 1-4 with the label in the file name (the layout of 003 Q5), made from real digits.

The course's own folder (64x64 colour images of the digits 1 to 4, labelled only through their
file names) is not public; this writes a folder in the same layout from scikit-learn's real 8x8
handwritten digits (1,797 images by 43 writers, UCI "Optical Recognition of Handwritten Digits"),
so the file-name loader and the 003 Q5 recipe run on real handwriting offline. Each source image
is used once (no near-duplicates across the 80/20 split): it is scaled up to a random size,
placed at a random position, inked in a random colour on a random background of clearly
different brightness, and given a little sensor noise.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab.core.errors import CnnlabError

FILE_PATTERN = "img_{index:04d}_label_{label}.png"
LABEL_REGEX = r"_label_(\d+)\."
DIGITS = (1, 2, 3, 4)


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Ink and background RGB colours whose brightness differs by at least 90 of 255."""
    while True:
        ink, paper = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        if abs(ink.mean() - paper.mean()) >= 90:
            return ink.astype(np.float32), paper.astype(np.float32)


def colourise(digit: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """One 8x8 digit (0..16) as a ``size x size x 3`` uint8 colour image."""
    side = int(rng.integers(int(size * 0.6), size + 1))
    ink_mask = Image.fromarray((digit * (255 / 16)).astype(np.uint8)).resize((side, side), Image.BICUBIC)
    mask = np.zeros((size, size), np.float32)
    top, left = rng.integers(0, size - side + 1, 2)
    # faint strokes below a tenth of full ink are paper: no visible box around the scaled-up 8x8 grid
    mask[top:top + side, left:left + side] = np.clip((np.asarray(ink_mask, np.float32) / 255 - 0.1) / 0.9, 0, 1)
    ink, paper = _colours(rng)
    image = paper * (1 - mask[..., None]) + ink * mask[..., None] + rng.normal(0, 6, (size, size, 3))
    return np.clip(image, 0, 255).round().astype(np.uint8)


def write_colour_digits(out: str | Path, size: int = 64, seed: int = 0, digits: tuple[int, ...] = DIGITS) -> Path:
    """Write ``img_NNNN_label_D.png`` files for every real digit in ``digits``; returns the folder.

    The files go to a ``.partial`` folder renamed to ``out`` at the end, so an interrupted run never
    leaves a half-filled dataset behind; an existing ``out`` is never written into.
    """
    from sklearn.datasets import load_digits

    out = Path(out).expanduser()
    if out.exists():
        raise CnnlabError(f"{out}: already exists; colour digits are written only into a new folder")
    if size < 8:
        raise CnnlabError(f"colour digits: size must be at least 8 pixels, got {size}")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    bunch = load_digits()
    rng = np.random.default_rng(seed)
    chosen = [(image, int(label)) for image, label in zip(bunch.images, bunch.target) if int(label) in digits]
    for index, (image, label) in enumerate(chosen):
        Image.fromarray(colourise(image, size, rng)).save(partial / FILE_PATTERN.format(index=index, label=label))
    partial.rename(out)
    return out
