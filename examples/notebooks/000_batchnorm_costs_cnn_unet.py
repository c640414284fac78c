# %% [markdown]
# # 000 — Assignment 2: BatchNorm, costs of the course's blocks, a Fashion-MNIST CNN, a U-Net
#
# The assignment (course document `000`, in Persian) walked through the Python API of cnnlab with small
# settings. `QUICK` (set by the tests) shrinks every run to seconds; unset, the runs are the real ones
# (minutes on a 2-core CPU). Each heading names the questions it answers by the course document's own
# numbering (`000 Q1b` is question 1, part b), as in `docs/course.md`, which gives every question's lab
# and its measured answer.

# %%
from IPython.display import Markdown, display

from cnnlab.report.notebook import QUICK, have, output_folder, show

OUT = output_folder("000")

# %% [markdown]
# ## 000 Q1b — BatchNorm: scaling the weights before a BatchNorm
#
# The lab measures what happens to the output and the gradients when the weights feeding a BatchNorm are
# multiplied by `a`; its conclusions are generated from the numbers it measured.

# %%
from cnnlab.labs import run_lab

record = run_lab("bn-scale-invariance", OUT / "bn", quick=QUICK, progress=False)
display(Markdown("\n".join(f"- {c}" for c in record["conclusion"])))
show(OUT / "bn" / "figure.png")

# %% [markdown]
# ## 000 Q2a-c, Q4a-b, Q5a-c — Dilated convolutions, squeeze-and-excitation, Inception and MobileNet: what they cost
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
# ## 000 Q3a-b — Backpropagation through a convolution, by hand
#
# `cnnlab.scratch` holds a NumPy CNN whose convolution is written out: forward by im2col and one matrix
# product, backward as dL/dW'[m,n,c] = Σ_ij dL/dz[i,j]·X[i+m, j+n, c] (the input's windows times the
# incoming gradient) and dL/dX as a full convolution of dL/dz with the rotated kernel (col2im). Here one
# layer's hand-written gradients against PyTorch's autograd, in float64, with stride, padding and dilation.
# `cnnlab scratch cnn` trains the whole NumPy CNN on Fashion-MNIST ([docs/scratch.md](../docs/scratch.md)).

# %%
import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.scratch.conv import Conv2D

rng = np.random.default_rng(0)
for stride, padding, dilation in [(1, 0, 1), (2, 1, 1), (1, 2, 2)]:
    layer = Conv2D(3, 4, 3, stride=stride, padding=padding, dilation=dilation, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 9, 9, 3))  # channels last, as the NumPy CNN stores images
    z = layer.forward(x)
    upstream = rng.standard_normal(z.shape)  # dL/dz from the layers above
    dx = layer.backward(upstream)
    xt = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    wt = torch.tensor(layer.params["W"].transpose(3, 2, 0, 1), requires_grad=True)
    zt = F.conv2d(xt, wt, torch.tensor(layer.params["b"]), stride=stride, padding=padding, dilation=dilation)
    zt.backward(torch.tensor(upstream.transpose(0, 3, 1, 2)))
    gaps = {"z": np.abs(z.transpose(0, 3, 1, 2) - zt.detach().numpy()).max(),
            "dL/dW": np.abs(layer.grads["W"].transpose(3, 2, 0, 1) - wt.grad.numpy()).max(),
            "dL/dX": np.abs(dx.transpose(0, 3, 1, 2) - xt.grad.numpy()).max()}
    print(f"stride {stride}, padding {padding}, dilation {dilation}: output {z.shape[1]}x{z.shape[2]}; "
          + ", ".join(f"max |NumPy - PyTorch| {k} {v:.1e}" for k, v in gaps.items()))

# %% [markdown]
# ## 000 Q6a-b — Gradients through residual blocks
#
# Plain and residual networks of the same depth: each conv's gradient norm at initialisation and the
# training curves (the lab's quick setting is a few layers and one short run; its default run is quoted in
# `docs/course.md`).

# %%
record = run_lab("residual-gradient-flow", OUT / "residual", quick=QUICK, progress=False)
display(Markdown("\n".join(f"- {c}" for c in record["conclusion"])))
show(OUT / "residual" / "figure.png")

# %% [markdown]
# ## 000 Q7 — A CNN on Fashion-MNIST
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
# ## 000 Q8 — A U-Net for semantic segmentation
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
# ## 000 Q1a, Q1c-d, Q2a-c, Q4a-b, Q5a-c — the labs that answer the other parts
#
# Each is one command (`cnnlab lab NAME`, or `run_lab(NAME)` as above) that trains and measures what the
# question asks; `docs/course.md` quotes their default runs.
#
# | ids | lab |
# |---|---|
# | 000 Q1a | `bn-learning-rate`: accuracy over learning rates with and without BatchNorm |
# | 000 Q1c | `bn-batch-size`: noise of the batch statistics, accuracy and train-test gap over batch sizes |
# | 000 Q1d | `bn-dense-vs-conv`: per-channel vs per-feature statistics |
# | 000 Q2a-c | `dilation`: receptive field, gridding and output size of stacked dilated convolutions |
# | 000 Q4a-b | `se-ratio`: SE's cost and accuracy over the ratio r, class-specificity by depth |
# | 000 Q5a-b | `bottleneck-1x1`: an Inception module with and without 1x1 reductions |
# | 000 Q5c | `depthwise-separable`: MobileNet's layer against a standard convolution |
