"""002 Q3a: why L1 drives weights to exactly zero while L2 only shrinks them, and why biases are
usually left out of the penalty.

The penalty's pull on a weight: L2 (λ/2)·w² pulls with force λ·w, which fades as w nears 0,
so weights shrink in proportion and rarely reach zero. L1 λ·|w| pulls with the constant force
λ·sign(w): a weight whose data gradient is weaker than λ is pushed all the way to zero (and
jitters there, by about the step size). A bias adds a constant to a unit's input; it does not
make the output more sensitive to the input, so penalising it simplifies nothing and only
fights the offsets the data need. The lab trains the NumPy MLP with none, L2, L1 and L2 on
biases too, and measures the weights.
"""
from __future__ import annotations

import numpy as np

from cnnlab.core.text import markdown_table, spread
from cnnlab.labs.frame import LabContext, LabResult, lab_arrays, register_lab
from cnnlab.scratch.experiments import MLPConfig, train

NEAR_ZERO = 1e-3
DARK = 0.01  # a pixel whose mean intensity over the training images is below 1% of white
L2, L1 = 1e-2, 1e-3  # equal pulls (l2·|w| = l1) on a weight of 0.1, about the largest weights here
STRONG = 10  # the bias question is asked again at a 10x stronger L2
VARIANTS = {"none": {}, "l2": {"l2": L2}, "l1": {"l1": L1}, "l2-biases": {"l2": L2, "decay_biases": True},
            "l2-strong": {"l2": STRONG * L2}, "l2-biases-strong": {"l2": STRONG * L2, "decay_biases": True}}
LABEL = {"none": "no penalty", "l2": f"L2 {L2:g}", "l1": f"L1 {L1:g}", "l2-biases": f"L2 {L2:g} on biases too",
         "l2-strong": f"L2 {STRONG * L2:g}", "l2-biases-strong": f"L2 {STRONG * L2:g} on biases too"}


def weight_stats(model, dark: np.ndarray) -> dict:
    """Over all weight matrices (not biases): fraction near zero, fraction exactly zero, mean |w|, and bias size;
    and the first layer's weights from ``dark`` pixels (almost never lit: their data gradient is almost 0)."""
    weights = np.concatenate([v.ravel() for name, v, _ in model.named_parameters() if name.endswith(".W")])
    biases = np.concatenate([v.ravel() for name, v, _ in model.named_parameters() if name.endswith(".b")])
    first = model.layers[0].params["W"]
    return {"near_zero": float((np.abs(weights) < NEAR_ZERO).mean()), "exact_zero": float((weights == 0).mean()),
            "mean_abs": float(np.abs(weights).mean()), "bias_rms": float(np.sqrt((biases ** 2).mean())),
            "first_layer_near_zero": float((np.abs(first) < NEAR_ZERO).mean()),
            "dark_pixel_near_zero": float((np.abs(first[dark]) < NEAR_ZERO).mean()) if dark.any() else None}


@register_lab("l1-vs-l2", "002 Q3a",
              "L1 vs L2: weight histograms and the fraction of near-zero weights; what decaying the biases too does")
def run(ctx: LabContext) -> LabResult:
    data, info = lab_arrays(ctx, n_train=ctx.pick(1000, 10000), n_test=ctx.pick(500, 2000))
    hidden, epochs = ctx.pick((32,), (128, 64)), ctx.pick(2, 4)
    dark = data.x_train.mean(0) < DARK
    numbers: dict = {"variants": {}, "near_zero_threshold": NEAR_ZERO, "dark_pixels": int(dark.sum()),
                     "strong_factor": STRONG}
    samples, maps = {}, {}
    for name, penalty in VARIANTS.items():
        stats, accs, gaps = [], [], []
        for seed in ctx.seeds:
            cfg = MLPConfig(hidden=hidden, activation="relu", optimizer="momentum", epochs=epochs, seed=seed, **penalty)
            runner, history = train(cfg, data, progress=False)
            stats.append(weight_stats(runner.model, dark))
            accs.append(history[-1]["test_accuracy"])
            gaps.append(history[-1]["train_accuracy"] - history[-1]["test_accuracy"])
        model = runner.model
        samples[name] = np.concatenate([v.ravel() for n, v, _ in model.named_parameters() if n.endswith(".W")])
        maps[name] = np.abs(model.layers[0].params["W"]).sum(1)  # how much each pixel is still used
        numbers["variants"][name] = {**{k: None if stats[0][k] is None else float(np.mean([s[k] for s in stats]))
                                        for k in stats[0]},
                                     "test_accuracy": spread(accs), "gap": spread(gaps), "penalty": penalty}
    v = numbers["variants"]
    numbers["l1_over_l2_near_zero"] = v["l1"]["near_zero"] / max(v["l2"]["near_zero"], 1e-12)
    table = markdown_table(["penalty", f"weights with |w| < {NEAR_ZERO:g}", "exactly 0", "mean |w|", "bias RMS",
                            "test accuracy", "train - test"],
                           [[LABEL[k], r["near_zero"], r["exact_zero"], r["mean_abs"], r["bias_rms"],
                             f"{r['test_accuracy']['mean']:.4f} ± {r['test_accuracy']['std']:.4f}",
                             f"{r['gap']['mean']:+.4f}"] for k, r in v.items()])
    side = int(round(np.sqrt(data.x_train.shape[1])))
    result = LabResult(numbers, _figure(samples, maps, side), table=table, settings={
        "data": info, "sizes": [data.x_train.shape[1], *hidden, len(data.classes)], "activation": "relu (He init)",
        "optimizer": "momentum 0.9, lr 0.05 decaying linearly, batch 64", "epochs": epochs, "seeds": ctx.seeds,
        "penalties": {k: LABEL[k] for k in VARIANTS}, "loss": "mean cross-entropy + (l2/2)|W|² + l1|W|₁ (subgradient)",
        "implementation": "cnnlab.scratch NumPy MLP and optimizer"})
    _conclude(result, numbers)
    return result


def _conclude(result: LabResult, n: dict) -> None:
    v = n["variants"]
    more = v["l1"]["near_zero"] > v["l2"]["near_zero"]
    result.conclude("With L1 {a:.1%} of the weights end within 1e-3 of zero, with L2 {b:.1%} and without a penalty {c:.1%}: "
                    + ("L1's constant pull sets weights to (about) zero, L2's proportional pull only shrinks them."
                       if more else "L1 did not give more zeros than L2 here."),
                    a="variants.l1.near_zero", b="variants.l2.near_zero", c="variants.none.near_zero")
    result.conclude("In the first layer {a:.1%} of the weights are near zero with L1 against {b:.1%} with L2.",
                    a="variants.l1.first_layer_near_zero", b="variants.l2.first_layer_near_zero")
    if v["l1"]["dark_pixel_near_zero"] is not None:
        result.conclude("Of the weights leaving the {k} pixels that are almost always dark (mean intensity < 1%: "
                        "almost no data gradient), L1 set {a:.1%} within 1e-3 of zero, L2 {b:.1%}, no penalty {c:.1%}.",
                        k="dark_pixels", a="variants.l1.dark_pixel_near_zero", b="variants.l2.dark_pixel_near_zero",
                        c="variants.none.dark_pixel_near_zero")
    d = v["l2-biases"]["test_accuracy"]["mean"] - v["l2"]["test_accuracy"]["mean"]
    n["bias_decay_effect"] = d
    ds = v["l2-biases-strong"]["test_accuracy"]["mean"] - v["l2-strong"]["test_accuracy"]["mean"]
    n["bias_decay_effect_strong"] = ds
    result.conclude("Decaying the biases too shrank their RMS from {a:.3f} to {b:.3f} and changed test accuracy by "
                    "{d:+.4f}; at a {x}x stronger L2 from {c:.3f} to {e:.3f}, accuracy {f:+.4f}: " +
                    ("pulling the offsets the data need towards 0 cost accuracy." if ds < 0 else
                     "decaying the biases did not cost accuracy here."),
                    a="variants.l2.bias_rms", b="variants.l2-biases.bias_rms", d="bias_decay_effect",
                    c="variants.l2-strong.bias_rms", e="variants.l2-biases-strong.bias_rms",
                    f="bias_decay_effect_strong", x="strong_factor")
    result.conclude("Test accuracy (mean over seeds): {a:.4f} without a penalty, {b:.4f} with L2, {c:.4f} with L1.",
                    a="variants.none.test_accuracy.mean", b="variants.l2.test_accuracy.mean",
                    c="variants.l1.test_accuracy.mean")


def _figure(samples: dict, maps: dict, side: int):
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(15, 7.5))
    ax = fig.add_subplot(2, 1, 1)
    bins = np.logspace(-8, 0, 65)
    for name in ("none", "l2", "l1"):
        ax.hist(np.abs(samples[name]) + 1e-9, bins=bins, histtype="step", lw=1.5, label=LABEL[name])
    ax.axvline(NEAR_ZERO, color="k", ls="--", lw=1, label=f"|w| = {NEAR_ZERO:g}")
    ax.set_xscale("log")
    ax.set_xlabel("|w| (all weight matrices; 1e-9 added to show exact zeros)")
    ax.set_title("weight magnitudes after training")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    for i, name in enumerate(("none", "l2", "l1")):
        sub = fig.add_subplot(2, 3, 4 + i)
        img = sub.imshow(maps[name].reshape(side, side), cmap="viridis")
        sub.set_title(f"{LABEL[name]}: sum of |w| leaving each pixel")
        sub.axis("off")
        fig.colorbar(img, ax=sub, fraction=0.046)
    return fig
