"""Images and boxes for matching: files or ``skimage:<name>`` photos, ``x,y,w,h`` boxes."""
from __future__ import annotations

from pathlib import Path

from torch import Tensor

from cnnlab.core.errors import CnnlabError
from cnnlab.data import images


def load_image(spec: str | Path) -> Tensor:
    """``3 x H x W`` float in [0, 1] at the image's own size (boxes are in its pixels), from an image file
    or ``skimage:<name>`` (grey becomes RGB)."""
    return images.load_image(spec, 3).float() / 255


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"x,y,w,h"`` -> four floats; one clear line naming the text otherwise."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or any(v != v for v in values):
        raise CnnlabError(f"--box {text!r}: expected x,y,w,h (four numbers, e.g. 10,20,64,48)")
    return values  # type: ignore[return-value]
