# %% [markdown]
# # 002 — Assignment 1: linear regression, backprop by hand, a NumPy MLP on Fashion-MNIST
#
# Course document `002`. The from-scratch code (`cnnlab.scratch`) is NumPy with hand-written
# backpropagation, checked against PyTorch. `QUICK` (set by the tests) shrinks every run to seconds.
# Each heading names the questions it answers by the assignment's own numbering (`002 Q4b` is problem 4,
# part b), as in `docs/course.md`, which gives every question's lab and its measured answer.

# %%
from IPython.display import Markdown, display

from cnnlab.report.notebook import QUICK, have, output_folder, show

OUT = output_folder("002")

# %% [markdown]
# ## 002 Q1a-c — Linear regression: closed form vs gradient descent
#
# Time and error of both as the number of samples `n` and of features `d` grow.

# %%
from cnnlab.scratch.linreg import linreg_table, run_linreg

rows = run_linreg(OUT / "linreg", n_values=(500, 2000) if QUICK else (2000, 8000, 32000),
                  d_values=(10, 40) if QUICK else (25, 100, 400), n_fixed=2000 if QUICK else 8000,
                  d_fixed=40 if QUICK else 100, repeats=1 if QUICK else 3)
display(Markdown(linreg_table(rows)))
show(OUT / "linreg" / "linreg.png")

# %% [markdown]
# ## 002 Q4a — A sigmoid network initialised with zeros
#
# Every hidden unit starts equal; the lab trains the network and counts the distinct units per layer
# (the lab's quick setting; its default run is quoted in `docs/course.md`).

# %%
from cnnlab.labs import run_lab

record = run_lab("zero-init-symmetry", OUT / "zero-init", quick=QUICK, progress=False)
display(Markdown("\n".join(f"- {c}" for c in record["conclusion"])))

# %% [markdown]
# ## 002 Q4b — h = Wᵀx, u = W'ᵀh, ŷ = softmax(u): the updates by hand
#
# With L = -yᵀ log ŷ and a one-hot y, the softmax and the log cancel into dL/du = ŷ - y. The chain rule
# then gives
#
# - dL/dW' = h (ŷ - y)ᵀ, so W' ← W' - η h (ŷ - y)ᵀ
# - dL/dh = W' (ŷ - y), and since h = Wᵀx is linear, dL/dW = x (W' (ŷ - y))ᵀ, so W ← W - η x (W' (ŷ - y))ᵀ
#
# The cell computes both by these formulas in NumPy and compares them with PyTorch's autograd (float64).

# %%
import numpy as np
import torch

rng = np.random.default_rng(0)
d = 5
x, W, W2 = rng.standard_normal(d), rng.standard_normal((d, d)), rng.standard_normal((d, d))
y = np.eye(d)[2]
h = W.T @ x
u = W2.T @ h
y_hat = np.exp(u - u.max()) / np.exp(u - u.max()).sum()
dW2 = np.outer(h, y_hat - y)  # the formulas above
dW = np.outer(x, W2 @ (y_hat - y))

Wt, W2t = torch.tensor(W, requires_grad=True), torch.tensor(W2, requires_grad=True)
loss = -(torch.tensor(y) * torch.log_softmax(W2t.T @ (Wt.T @ torch.tensor(x)), 0)).sum()
loss.backward()
print(f"loss {loss.item():.4f}; max |formula - autograd|: dL/dW' {np.abs(dW2 - W2t.grad.numpy()).max():.1e}, "
      f"dL/dW {np.abs(dW - Wt.grad.numpy()).max():.1e}")

# %% [markdown]
# ## 002 Q5a — Four random training images
#
# The assignment's first step: a function that shows four random images with their class each time it
# runs (`save_grid(data, path, seed)`: another seed, another four). Quick mode uses the embedded 8x8 digits, a full run
# Fashion-MNIST when `$CNNLAB_DATA` has it.

# %%
from cnnlab.scratch.experiments import load_arrays, save_grid

data = load_arrays("fashion-mnist" if have("fashion-mnist") and not QUICK else "digits")
show(save_grid(data, OUT / "four-images.png", seed=0), 360)

# %% [markdown]
# ## 002 Q5b-f — The MLP's hand-written backpropagation, checked
#
# Every layer's hand-written gradient against finite differences (float64), and whole training runs of
# the NumPy networks step by step against the same networks in PyTorch.

# %%
from cnnlab.scratch.checks import run_checks

checks = run_checks(OUT / "checks", steps=5 if QUICK else 50)
table = ["| network | activation | largest relative error, hand vs finite differences |", "|---|---|---|"]
table += [f"| {'-'.join(map(str, r['sizes']))} | {r['activation']} | {r['max_relative_error']:.1e} |"
          for r in checks["gradient_check"]]
table += ["", "| network | optimizer | lr | steps | loss first → last | largest loss gap | largest weight gap |",
          "|---|---|---|---|---|---|---|"]
table += [f"| {r['activation']} | {r['optimizer']} | {r['lr']} | {r['steps']} | {r['first_loss']:.3f} → "
          f"{r['last_loss']:.3f} | {r['max_loss_diff']:.1e} | {r['max_weight_diff']:.1e} |" for r in checks["twin"]]
display(Markdown("\n".join(table)))

# %% [markdown]
# ## 002 Q5b-f — The NumPy MLP on Fashion-MNIST
#
# Sigmoid vs ReLU, plain SGD vs momentum, a deeper net (128-64-64), and the same net in PyTorch. Quick
# mode: the embedded digits and one epoch.

# %%
from cnnlab.scratch.experiments import run_suite, suite_table

rows = run_suite(data, OUT / "mlp", epochs=1 if QUICK else 10, progress=False)
display(Markdown(suite_table(rows)))
show(OUT / "mlp" / "curves.png")

# %% [markdown]
# ## 002 Q2a-c, Q3a-d — the labs that answer the other questions
#
# Each is one command (`cnnlab lab NAME`, or `run_lab(NAME)` as above); `docs/course.md` quotes their
# default runs.
#
# | ids | lab |
# |---|---|
# | 002 Q2a | `vanishing-gradients`: gradient ratios through deep sigmoid, tanh and ReLU networks |
# | 002 Q2b-c | `initialisation`: Xavier, He, N(0,1) and N(0,0.01²) weights in a sigmoid network |
# | 002 Q3a | `l1-vs-l2`: sparsity of L1 against L2, and decaying the biases |
# | 002 Q3b | `noise-equals-ridge`: inputs with N(0, s²I) noise against ridge regression with λ = n s² |
# | 002 Q3c | `bn-batch-size`: BatchNorm over batch sizes |
# | 002 Q3d | `adam-bias-correction`: Adam's moment estimates with and without the correction |
