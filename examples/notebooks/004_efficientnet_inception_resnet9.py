# %% [markdown]
# # 004 — A student's report: EfficientNet compound scaling, Inception, a ResNet9 classifier
#
# Course document `004`. `QUICK` (set by the tests) shrinks every run to seconds. Each heading names the
# questions it answers by the report's exercises (`004 Ex2a-e` is exercise 2), as in `docs/course.md`,
# which gives every question's lab and its measured answer.

# %%
from pathlib import Path

from IPython.display import Markdown, display

from cnnlab.report.notebook import DATA, QUICK, have, output_folder, show

OUT = output_folder("004")

# %% [markdown]
# ## 004 Ex1a-e — EfficientNet compound scaling
#
# `phi` scales depth by `alpha^phi`, width by `beta^phi` and resolution by `gamma^phi` (alpha = 1.2,
# beta = 1.1, gamma = 1.15), so each step costs about twice the MACs of the one before.

# %%
from cnnlab.analysis.summary import summarize
from cnnlab.models import create_model, list_models

sizes = {e.name: e.default_input for e in list_models()}
rows = ["| model | input | parameters | MACs | MACs / previous |", "|---|---|---|---|---|"]
previous = None
for name in ("efficientnet-b0", "efficientnet-b1", "efficientnet-b2", "efficientnet-b3")[: 2 if QUICK else 4]:
    s = summarize(create_model(name, num_classes=1000), sizes[name])
    ratio = f"{s.macs / previous:.2f}" if previous else "-"
    rows.append(f"| {name} | {'x'.join(map(str, sizes[name]))} | {s.params:,} | {s.macs / 1e9:.2f} G | {ratio} |")
    previous = s.macs
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## 004 Ex2a-e — Inception v1, v3, v4 and Inception-ResNet-v2
#
# GoogLeNet (v1) runs nine Inception modules of 1x1, 3x3, 5x5 convolutions and a pooling side by side,
# with 1x1 reductions keeping the cost down; v3 factorises the larger kernels (5x5 into two 3x3, n x n
# into 1 x n and n x 1) and adds BatchNorm (v2's change); v4 makes the stem and the modules uniform;
# Inception-ResNet-v2 adds each module's output to its input, scaled down before the addition. All are in
# the model registry (`cnnlab models`); their sizes, counted by tracing one forward pass at their
# ImageNet resolution:

# %%
rows = ["| model | input | parameters | MACs |", "|---|---|---|---|"]
for name in ("googlenet", "inception-v3", "inception-v4", "inception-resnet-v2"):
    s = summarize(create_model(name, num_classes=1000), sizes[name])
    rows.append(f"| {name} | {'x'.join(map(str, sizes[name]))} | {s.params:,} | {s.macs / 1e9:.2f} G |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## 004 Ex3 — A ResNet9 image classifier
#
# The report trained a ResNet9 on Intel Image Classification (not among the datasets here; it is an
# `imagefolder` dataset: `train_classifier("imagefolder", data_dir=...)` reads Kaggle's nested layout).
# Stand-in: CIFAR-10's JPEG tree when present (quick mode: 20 images per class, linked, not copied);
# otherwise the embedded digits. Every `train_classifier` / `train_segmenter` run writes a run folder with `report.html`, one self-contained page (open it in any browser, or mail it); `cnnlab report A B` compares runs.

# %%
from cnnlab.classify.api import train_classifier

if have("cifar10"):
    root = OUT / "cifar-subset"
    for split, n in (("train", 20 if QUICK else 500), ("test", 10 if QUICK else 100)):
        for folder in sorted((Path(DATA) / "cifar10" / split).iterdir()):
            (root / split / folder.name).mkdir(parents=True, exist_ok=True)
            for f in sorted(folder.iterdir())[:n]:
                link = root / split / folder.name / f.name
                if not link.exists():
                    link.symlink_to(f)
    m = train_classifier("imagefolder", data_dir=str(root), model="resnet9", epochs=1 if QUICK else 10,
                         model_kwargs={"width": 16} if QUICK else {}, out=OUT / "resnet9", progress=False)
else:
    m = train_classifier("digits", model="simple-cnn", epochs=1, out=OUT / "resnet9", progress=False)
print(f"test accuracy {m['test_accuracy']:.4f}")
show(OUT / "resnet9" / "confusion_matrix.png", 480)

# %% [markdown]
# ## 004 Ex1a-e, Ex2a-e — the labs with the measured comparisons
#
# Each is one command (`cnnlab lab NAME`); `docs/course.md` quotes their default runs.
#
# | ids | lab |
# |---|---|
# | 004 Ex1a-e | `compound-scaling`: accuracy against MACs when depth, width, resolution or all three grow |
# | 004 Ex2a-e | `residual-scaling`: Inception-ResNet's residuals with and without scaling, and how fast each converges |
