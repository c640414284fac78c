# %% [markdown]
# # 000 — Assignment 2: BatchNorm, costs of the course's blocks, a Fashion-MNIST CNN, a U-Net
#
# The assignment (course document `000`, in Persian) walked through the Python API of cnnlab with small
# settings. `QUICK` (set by the tests) shrinks every run to seconds; unset, the runs are the real ones
# (minutes on a 2-core CPU). Question ids (`000 Q1b`) are those of `docs/course.md`.

# %%
import os
from pathlib import Path

import IPython.display as ipd
from IPython.display import Markdown, display

QUICK = os.environ.get("CNNLAB_QUICK") == "1"  # the tests run every notebook in seconds with this set
DATA = os.environ.get("CNNLAB_DATA")  # the real datasets (see the data README), when present
OUT = Path(os.environ.get("CNNLAB_EXAMPLES_OUT", "runs/examples")) / "000"


def have(name: str) -> bool:
    """Is the real dataset ``name`` under $CNNLAB_DATA?"""
    return bool(DATA) and (Path(DATA) / name).is_dir()


def show(path, width: int = 720) -> None:
    display(ipd.Image(filename=str(path), width=width))

# %% [markdown]
# ## Q1 — BatchNorm: scaling the weights before a BatchNorm
#
# The lab measures what happens to the output and the gradients when the weights feeding a BatchNorm are
# multiplied by `a`; its conclusions are generated from the numbers it measured.

# %%
from cnnlab.labs import run_lab

record = run_lab("bn-scale-invariance", OUT / "bn", quick=QUICK, progress=False)
display(Markdown("\n".join(f"- {c}" for c in record["conclusion"])))
show(OUT / "bn" / "figure.png")

# %% [markdown]
# ## Q2-Q6 — Dilated convolutions, squeeze-and-excitation, Inception and MobileNet: what they cost
#
# Parameters and multiply-accumulates per model, counted by tracing one forward pass.

# %%
from cnnlab.analysis.summary import summarize
from cnnlab.models import create_model

rows = ["| model | input | parameters | MACs |", "|---|---|---|---|"]
for name, size in [("dilated-cnn", (3, 32, 32)), ("resnet18-cifar", (3, 32, 32)), ("se-resnet18", (3, 32, 32)),
                   ("googlenet-cifar", (3, 32, 32)), ("mobilenet-v1", (3, 224, 224)), ("mobilenet-v2", (3, 224, 224))]:
    s = summarize(create_model(name, num_classes=10, in_chans=size[0]), size)
    rows.append(f"| {name} | {'x'.join(map(str, size))} | {s.params:,} | {s.macs / 1e6:,.1f} M |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## Q7 — A CNN on Fashion-MNIST
#
# `simple-cnn` (two conv blocks and a classifier) with the dataset's default recipe. In quick mode it trains
# one epoch on scikit-learn's embedded 8x8 digits instead. Every `train_classifier` / `train_segmenter` run writes a run folder with `report.html`, one self-contained page (open it in any browser, or mail it); `cnnlab report A B` compares runs.

# %%
from cnnlab.classify.api import train_classifier

dataset = "fashion-mnist" if have("fashion-mnist") and not QUICK else "digits"
metrics = train_classifier(dataset, model="simple-cnn", epochs=1 if QUICK else 6, out=OUT / "cnn", progress=False,
                           **({"model_kwargs": {"width": 8}} if QUICK else {}))
print(f"{dataset}: test accuracy {metrics['test_accuracy']:.4f} after {len(metrics['history'])} epoch(s)")
show(OUT / "cnn" / "curves.png")
show(OUT / "cnn" / "confusion_matrix.png", 480)
print("report:", OUT / "cnn" / "report.html")

# %% [markdown]
# ## Q8 — A U-Net for semantic segmentation
#
# The assignment used CARLA road scenes, which are not among the datasets here; the same U-Net trains on
# ISBI 2012 (the original U-Net data) when `$CNNLAB_DATA` has it (`cnnlab segment train --dataset carla`
# reads CARLA's folders where they exist). Quick mode: 64x64 images, one epoch, a narrow U-Net.

# %%
from cnnlab.segment.api import train_segmenter

if have("isbi2012"):
    # samples=0: `repeat` crops of every image per epoch instead of the recipe's fixed number
    seg = train_segmenter("isbi2012", out=OUT / "unet", epochs=1 if QUICK else 20, progress=False,
                          model="unet", model_kwargs={"width": 8 if QUICK else 32}, size=(64, 64) if QUICK else None,
                          crop=None if QUICK else (256, 256), repeat=1 if QUICK else 8, samples=0)
    print(f"ISBI 2012 {seg['split']} split: pixel error {seg['pixel_error']:.4f}, foreground IoU {seg['iou']:.4f}")
    show(OUT / "unet" / "predictions.png")
else:
    print("ISBI 2012 not under $CNNLAB_DATA: skipped")

# %% [markdown]
# ## Still to come here
#
# - Q3 (backpropagation through a convolution by hand) waits for the NumPy CNN (issue 14).
# - Q1's other parts and Q5-Q6's measured comparisons (dilation vs pooling, residual blocks) wait for the
#   labs of issues 13/14; `cnnlab lab list` shows the labs that exist.
