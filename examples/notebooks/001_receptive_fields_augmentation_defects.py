# %% [markdown]
# # 001 — A student's report: parameters and receptive fields, augmentation, a defect detector, a MobileNetV2 U-Net
#
# Course document `001` answered its questions by hand; here the same questions go through cnnlab's API.
# `QUICK` (set by the tests) shrinks every run to seconds. Each heading names the questions it answers by
# the report's own numbering (`001 Sec.4b` is section 4, part b), as in `docs/course.md`, which gives
# every question's lab and its measured answer.

# %%
from IPython.display import Markdown, display

from cnnlab.report.notebook import QUICK, have, output_folder, show

OUT = output_folder("001")

# %% [markdown]
# ## 001 Sec.1a-b — Vanishing gradients
#
# Deep MLPs at initialisation with sigmoid, tanh and ReLU: how the gradient shrinks from the last layer to
# the first (the lab's quick setting; its default run is quoted in `docs/course.md`).

# %%
from cnnlab.labs import run_lab

record = run_lab("vanishing-gradients", OUT / "vanishing", quick=QUICK, progress=False)
display(Markdown("\n".join(f"- {c}" for c in record["conclusion"])))
show(OUT / "vanishing" / "figure.png")

# %% [markdown]
# ## 001 Sec.2b — Parameters and receptive fields, conv vs locally connected
#
# A convolution shares its filter across positions; a locally connected layer has one filter per position.
# Same input, very different parameter counts:

# %%
from cnnlab.analysis.summary import summarize
from cnnlab.models import create_model

for name in ("simple-cnn", "locally-connected"):
    s = summarize(create_model(name, num_classes=10, in_chans=1), (1, 28, 28))
    print(f"{name:18s} {s.params:>9,} parameters  {s.macs / 1e6:8.2f} M MACs")
print()
print(summarize(create_model("resnet18-cifar", num_classes=10, in_chans=3), (3, 32, 32)).format("table")[:3000])

# %% [markdown]
# ## 001 Sec.3a, Sec.3d — A CIFAR-style CNN with augmentation; transfer learning
#
# `vgg-small` with the CIFAR augmentation preset (random crops and flips). Quick mode: one epoch on the
# embedded digits (with the digits' own preset). Transfer learning is `model="transfer:efficientnet-lite0"`
# (offline ImageNet weights; `model_kwargs={"freeze": True}` trains the head only). Every `train_classifier` / `train_segmenter` run writes a run folder with `report.html`, one self-contained page (open it in any browser, or mail it); `cnnlab report A B` compares runs.

# %%
from cnnlab.classify.api import train_classifier

if have("cifar10") and not QUICK:
    m = train_classifier("cifar10", model="vgg-small", augment="cifar", epochs=10, out=OUT / "cifar", progress=False)
else:
    m = train_classifier("digits", model="vgg-small", epochs=1, out=OUT / "cifar", progress=False)
print(f"test accuracy {m['test_accuracy']:.4f}")
show(OUT / "cifar" / "curves.png")

# %% [markdown]
# ## 001 Sec.4b — A binary defect classifier that must not miss defects
#
# Two classes, and a decision threshold chosen on the validation split so that recall reaches 95%: the test
# split then reports the precision paid for it. The stand-in data: digit 8 as "defect", digit 0 as "ok".

# %%
import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

digits = load_digits()
root = OUT / "defects-data"
for label, name in ((0, "ok"), (8, "defect")):
    (root / name).mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(digits.images[digits.target == label]):
        Image.fromarray((img * 255 / 16).astype(np.uint8)).save(root / name / f"{i}.png")
m = train_classifier("imagefolder", data_dir=str(root), model="simple-cnn", model_kwargs={"width": 8},
                     epochs=2 if QUICK else 8, target_recall=0.95, val_fraction=0.3, out=OUT / "defects", progress=False)
b = m["binary"]
print(f"threshold {b['threshold']:.3f}: test recall {b['test_recall']:.3f}, precision {b['test_precision']:.3f}")
show(OUT / "defects" / "pr_curve.png", 420)

# %% [markdown]
# ## 001 Sec.5 — A MobileNetV2 U-Net
#
# A MobileNetV2 encoder (ImageNet weights where they can be downloaded, random otherwise) under a U-Net
# decoder, on ISBI 2012 when present.

# %%
from cnnlab.segment.api import train_segmenter

if have("isbi2012"):
    seg = train_segmenter("isbi2012", model="mobilenetv2-unet", out=OUT / "mnv2-unet", epochs=1 if QUICK else 20,
                          size=(64, 64) if QUICK else None, crop=None if QUICK else (256, 256), progress=False,
                          model_kwargs={"pretrained": not QUICK},  # quick: no download attempt
                          samples=0 if QUICK else None,  # quick: each image once, not the recipe's 192 crops
                          **({"tta": "", "train_eval_images": 8} if QUICK else {}))
    print(f"pixel error {seg['pixel_error']:.4f}, pretrained encoder loaded: {seg['pretrained_loaded']}")
    show(OUT / "mnv2-unet" / "predictions.png")
else:
    print("ISBI 2012 not under $CNNLAB_DATA: skipped")

# %% [markdown]
# ## 001 Sec.2a, Sec.3b-c, Sec.4a, Sec.4c, Sec.4d — the commands that answer the other parts
#
# Each is one command (`cnnlab lab NAME`, or `run_lab(NAME)` as above); `docs/course.md` quotes their
# default runs.
#
# | ids | command |
# |---|---|
# | 001 Sec.1b | `cnnlab lab residual-gradient-flow`: gradients through plain and residual nets of 8-56 layers |
# | 001 Sec.2a | `cnnlab summary MODEL --input C,H,W`: each layer's parameters, MACs and receptive field, to check a hand count |
# | 001 Sec.3b-c | `cnnlab lab dropout-augmentation`: train and validation curves with and without dropout and augmentation |
# | 001 Sec.4a | `cnnlab lab stride-vs-pooling`: strided convolution vs max and average pooling |
# | 001 Sec.4c | `cnnlab lab cnn-for-other-data`: a 1-D CNN on signals, tables and text, against positions shuffled |
# | 001 Sec.4d | `cnnlab lab cnn-weaknesses`: accuracy under shifts, rotations, scaling and occlusion |
