# %% [markdown]
# # 002 — Assignment 1: linear regression, backprop by hand, a NumPy MLP on Fashion-MNIST
#
# Course document `002`. The from-scratch code (`cnnlab.scratch`) is NumPy with hand-written
# backpropagation, checked against PyTorch. `QUICK` (set by the tests) shrinks every run to seconds.

# %%
import os
from pathlib import Path

import IPython.display as ipd
from IPython.display import Markdown, display

QUICK = os.environ.get("CNNLAB_QUICK") == "1"  # the tests run every notebook in seconds with this set
DATA = os.environ.get("CNNLAB_DATA")  # the real datasets (see the data README), when present
OUT = Path(os.environ.get("CNNLAB_EXAMPLES_OUT", "runs/examples")) / "002"


def have(name: str) -> bool:
    """Is the real dataset ``name`` under $CNNLAB_DATA?"""
    return bool(DATA) and (Path(DATA) / name).is_dir()


def show(path, width: int = 720) -> None:
    display(ipd.Image(filename=str(path), width=width))

# %% [markdown]
# ## Q1 — Linear regression: closed form vs gradient descent
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
# ## Q8 — Backpropagation by hand, checked
#
# Every layer's hand-written gradient against finite differences, and the whole MLP step against PyTorch.

# %%
from cnnlab.scratch.checks import run_checks

checks = run_checks(OUT / "checks", steps=5 if QUICK else 50)
print({k: v for k, v in checks.items() if not isinstance(v, (list, dict))})

# %% [markdown]
# ## Q9 (b)-(f) — The NumPy MLP on Fashion-MNIST
#
# Sigmoid vs ReLU, plain SGD vs momentum, a deeper net, and the same net in PyTorch. Quick mode: the
# embedded digits and one epoch.

# %%
from cnnlab.scratch.experiments import load_arrays, run_suite, suite_table

data = load_arrays("fashion-mnist" if have("fashion-mnist") and not QUICK else "digits")
rows = run_suite(data, OUT / "mlp", epochs=1 if QUICK else 10, progress=False)
display(Markdown(suite_table(rows)))
show(OUT / "mlp" / "curves.png")

# %% [markdown]
# ## Still to come here
#
# Q2-Q7 (activations and vanishing gradients, initialisation, L1/L2 and input noise, BatchNorm, Adam) are
# course labs of issue 13; they appear here (`run_lab(NAME)`) once they land.
