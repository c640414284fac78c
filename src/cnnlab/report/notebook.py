"""What the example notebooks (``examples/notebooks/``) share: their quick switch, where the real data
and their outputs are, and images shown at a width that keeps a notebook committed with its outputs small.

    from cnnlab.report.notebook import DATA, QUICK, have, output_folder, show
"""
from __future__ import annotations

import os
import warnings
from io import BytesIO
from pathlib import Path

QUICK = os.environ.get("CNNLAB_QUICK") == "1"  # the tests run every notebook in seconds with this set
DATA = os.environ.get("CNNLAB_DATA")  # the real datasets (see the data README), when present
STORED_BYTES = 150_000  # a figure larger than this is stored at display width in 256 colours

# no ipywidgets in the notebooks' kernel: tqdm falls back to text bars (and would say so in every notebook)
warnings.filterwarnings("ignore", message="IProgress not found")


def output_folder(notebook: str) -> Path:
    """Where notebook ``notebook`` (``"000"``) writes: ``$CNNLAB_EXAMPLES_OUT/<notebook>``, else runs/examples/."""
    return Path(os.environ.get("CNNLAB_EXAMPLES_OUT", "runs/examples")) / notebook


def have(name: str) -> bool:
    """Is the real dataset ``name`` under $CNNLAB_DATA?"""
    return bool(DATA) and (Path(DATA) / name).is_dir()


def show(path: str | Path, width: int = 720) -> None:
    """Display an image file ``width`` pixels wide. The notebook is committed with its outputs, so a large
    file is stored at that width in 256 colours (a full-size photo panel would weigh megabytes)."""
    import IPython.display as ipd
    from PIL import Image

    data = Path(path).read_bytes()
    if len(data) > STORED_BYTES:
        image = Image.open(BytesIO(data)).convert("RGB")
        if image.width > width:
            image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
        buffer = BytesIO()
        image.quantize(256).save(buffer, format="PNG", optimize=True)
        data = buffer.getvalue()
    ipd.display(ipd.Image(data=data, format="png", width=width))
