# %% [markdown]
# # 003 — Assignment 2 (another course): Grad-CAM vs Shap-CAM, BatchNorm folding, labels in file names, class-model visualization and FGSM, a ResU-Net with noisy labels
#
# Course document `003`. Explanations and attacks run on the offline ImageNet EfficientNet-Lite0 and
# scikit-image's photographs, so they need no download. `QUICK` (set by the tests) shrinks every run.
# Each heading names the questions it answers by the assignment's own numbering (`003 Q2c` is question 2,
# part c), as in `docs/course.md`, which gives every question's lab and its measured answer.

# %%
from pathlib import Path

from IPython.display import Markdown, display

from cnnlab.report.notebook import DATA, QUICK, have, output_folder, show

OUT = output_folder("003")

# %% [markdown]
# ## 003 Q1a — Grad-CAM vs Shap-CAM
#
# Both maps for the top-1 class, with their deletion/insertion AUC (faithfulness) and their stability under
# noise. Shap-CAM's cost is `samples x channels` forward passes of the layer's head.

# %%
from cnnlab.explain.api import compare_files, markdown_table

# quick mode: Grad-CAM++ stands in for Shap-CAM, whose 1280 channels x 16 orders take minutes on a CPU
rows = compare_files(["skimage:chelsea"] if QUICK else ["skimage:chelsea", "skimage:coffee"],
                     methods=["gradcam", "gradcam++" if QUICK else "shapcam"], out=OUT / "cams",
                     steps=5 if QUICK else 20, repeats=1 if QUICK else 3)
display(Markdown(markdown_table(rows)))
show(OUT / "cams" / "compare.png")

# %% [markdown]
# ## 003 Q2c — Folding BatchNorm into the convolution before it
#
# For a conv with weights W and bias b followed by a BatchNorm (γ, β, running mean μ and variance σ²),
# W' = W·γ/√(σ² + ε) and b' = (b - μ)·γ/√(σ² + ε) + β give the same outputs in inference with one layer
# fewer. Checked on resnet18-cifar with random BatchNorm statistics:

# %%
import torch

from cnnlab.analysis.fold import fold_batchnorm, randomize_batchnorm
from cnnlab.analysis.summary import summarize
from cnnlab.models import create_model

net = randomize_batchnorm(create_model("resnet18-cifar", num_classes=10, in_chans=3)).eval()
x = torch.rand(4, 3, 32, 32)
with torch.no_grad():
    before = net(x)
    folded = fold_batchnorm(net)
    print(f"max |folded - original| = {(folded(x) - before).abs().max():.2e}")
print(f"BatchNorm layers: {sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())} before folding, "
      f"{sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())} after")

# %% [markdown]
# ## 003 Q3 — Parameters, MACs and receptive field of the assignment's network
#
# The network of the question, layer by layer as the assignment writes it (no activations are given;
# they change neither the counts nor the receptive field), on 3x256x256 colour images. `summarize`
# traces one forward pass: each row's output shape, parameters, multiply-accumulates and the receptive
# field of one output unit. PyTorch rounds output sizes down, as the question asks.

# %%
from torch import nn

q3 = nn.Sequential()
for name, layer in [
    ("Layer1", nn.Conv2d(3, 32, (7, 7), stride=1, padding="same")), ("bn1", nn.BatchNorm2d(32)),
    ("Layer2", nn.Conv2d(32, 64, (5, 5), stride=2, padding="valid")), ("bn2", nn.BatchNorm2d(64)),
    ("Layer3", nn.AvgPool2d((2, 2), stride=2)),
    ("Layer4", nn.Conv2d(64, 128, (3, 3), stride=1, dilation=2, padding="valid")), ("bn3", nn.BatchNorm2d(128)),
    ("Layer5", nn.Conv2d(128, 128, (3, 3), stride=1, dilation=1, padding="valid")), ("bn4", nn.BatchNorm2d(128)),
    ("Layer6", nn.AvgPool2d((2, 2), stride=2)),
    ("Layer7", nn.Conv2d(128, 256, (3, 3), stride=1, padding="valid")), ("bn5", nn.BatchNorm2d(256)),
    ("Layer8", nn.AvgPool2d((2, 2), stride=2)),
    ("flatten", nn.Flatten()),  # 256 x 13 x 13 = 43,264, the in_features the question gives fc1
    ("fc1", nn.Linear(43264, 1024)), ("fc2", nn.Linear(1024, 1024)), ("dropout", nn.Dropout(0.5)),
    ("fc3", nn.Linear(1024, 10)),
]:
    q3.add_module(name, layer)
q3_summary = summarize(q3.eval(), (3, 256, 256))
print(q3_summary.format("table"))
print(f"total: {q3_summary.params:,} parameters, {q3_summary.macs:,} MACs")

# %% [markdown]
# ## 003 Q4 — Template matching with CNN features
#
# `cnnlab.match` finds a template in a search image by comparing deep features (DIM, its default, on a
# pretrained network's feature maps), not pixels. One pair of the BBS benchmark when `$CNNLAB_DATA` has it (the
# template cut from one video frame, searched in a later frame, scored by the overlap with the true box);
# otherwise a crop of a photograph searched in a darker, noisier copy of it.
# `cnnlab match benchmark` scores every method over all 105 BBS pairs.

# %%
import numpy as np
from PIL import Image

from cnnlab.match.api import match_files
from cnnlab.match.matcher import iou

if have("template-matching"):
    from cnnlab.match.bbs import read_pairs

    pair = read_pairs(Path(DATA) / "template-matching" / "bbs")[0]
    template, box, search, truth = str(pair.template_image), pair.template_box, str(pair.search_image), pair.true_box
else:
    from skimage.data import chelsea

    photo = chelsea()
    (OUT / "match-data").mkdir(parents=True, exist_ok=True)
    noisy = photo * 0.7 + np.random.default_rng(0).normal(0, 12, photo.shape)
    Image.fromarray(photo).save(OUT / "match-data" / "template.png")
    Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(OUT / "match-data" / "search.png")
    template, search = str(OUT / "match-data" / "template.png"), str(OUT / "match-data" / "search.png")
    box = truth = (140.0, 60.0, 120.0, 100.0)
found = match_files(template, search, OUT / "match", box=box)
best = found["matches"][0]
print(f"{Path(search).name}: found {tuple(best['box'])} (true {tuple(truth)}), IoU {iou(best['box'], truth):.3f}")
show(OUT / "match" / "boxes.png")

# %% [markdown]
# ## 003 Q5 — Colour digits 1-4 with the label in the file name
#
# The `filename` dataset reads the label from each file name with a regular expression. Stand-in data:
# the embedded digits 1-4, coloured, saved as `img<index>_<label>.png`. The graded version, 64x64 images in the course's
# layout made from real handwritten digits, is `cnnlab train --recipe colour-digits` (its measured run is in
# `docs/course.md`).

# %%
import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from cnnlab.classify.api import train_classifier

digits, rng = load_digits(), np.random.default_rng(0)
folder = OUT / "colour-digits"
folder.mkdir(parents=True, exist_ok=True)
for i in np.flatnonzero(np.isin(digits.target, [1, 2, 3, 4])):
    grey = digits.images[i] / 16
    colour = grey[..., None] * rng.uniform(0.3, 1, 3)
    Image.fromarray((colour * 255).astype(np.uint8)).save(folder / f"img{i:04d}_{digits.target[i]}.png")
m = train_classifier("filename", data_dir=str(folder), dataset_kwargs={"label_regex": r"_(\d)\.png$"},
                     model="simple-cnn", model_kwargs={"width": 8}, epochs=2 if QUICK else 10,
                     out=OUT / "colour-digits-run", progress=False)
print(f"classes {m['classes']}: test accuracy {m['test_accuracy']:.4f}")

# %% [markdown]
# ## 003 Q7a-b — Class-model visualization and FGSM
#
# Gradient ascent on the input for one class score (with decay, jitter and blur), then the smallest FGSM
# step that changes the model's answer on a photograph.

# %%
from cnnlab.attack.api import attack_files
from cnnlab.explain.api import visualize_class

v = visualize_class("flamingo", out=OUT / "visualize", steps=5 if QUICK else 200)
print(f"flamingo: probability {v['final_probability']:.3f} after {v['steps']} steps")
show(v["image"], 300)
rows = attack_files(["skimage:chelsea", "skimage:coffee"], smallest=True, out=OUT / "fgsm")
for r in rows:
    print(f"{r['image']}: {r['clean']} -> {r['adversarial']} at eps {r['eps']:.4f}")
show(OUT / "fgsm" / "panels.png")

# %% [markdown]
# ## 003 Q8 — A ResU-Net for dental caries with noisy labels
#
# DC1000 (when present): the ResU-Net the question asks for (a U-Net whose encoder stages are residual
# blocks, `model="resunet"`) with BCE + Dice, and small-loss selection that leaves out the highest-loss
# images of each batch once training has warmed up. Quick mode: a narrow ResU-Net, small images, one epoch.

# %%
from cnnlab.segment.api import train_segmenter

if have("dc1000"):
    # the dataset's recipe with the question's network; quick: a narrow ResU-Net on small images
    seg = train_segmenter("dc1000", out=OUT / "caries", model="resunet", epochs=1 if QUICK else None, noisy_drop=0.2,
                          progress=False, model_kwargs={"width": 8 if QUICK else 32},
                          **({"size": (96, 192), "crop": None, "repeat": 1, "samples": 0,
                              "tta": "", "train_eval_images": 8} if QUICK else {}))
    print(f"resunet: caries Dice {seg['dice']:.4f}, IoU {seg['iou']:.4f} ({seg['split']} split)")
    show(OUT / "caries" / "predictions.png")
else:
    print("DC1000 not under $CNNLAB_DATA: skipped")

# %% [markdown]
# ## 003 Q1b, Q2a-b, Q6 — the commands that answer the other questions
#
# Each is one command; `docs/course.md` quotes their measured answers.
#
# | ids | command |
# |---|---|
# | 003 Q1b | `cnnlab lab cam-robustness`: Grad-CAM and Shap-CAM on a clean and an adversarially trained model |
# | 003 Q2a | `cnnlab lab parameter-sharing`: a conv layer against a locally connected one |
# | 003 Q2b | `cnnlab lab cnn-for-other-data`: a 1-D CNN on signals, tables and text |
# | 003 Q6 | `cnnlab train --recipe resnext29 --data-dir DIR`: the ResNeXt of the question on CIFAR |
