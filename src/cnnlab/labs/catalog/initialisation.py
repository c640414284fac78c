"""002 Q2b-c: why Xavier (and He) initialisation, and what large initial weights do to a sigmoid net.

A unit sums n_in inputs; with weights of variance v its pre-activation has variance about
n_in·v·E[x²]. Xavier picks v = 2/(n_in + n_out) so that this stays near 1 forward and backward
for sigmoid/tanh-like units; He picks v = 2/n_in for ReLU (which zeroes half its inputs).
With N(0, 1) the pre-activations have standard deviation ~sqrt(n_in) (~11 for 128 inputs):
sigmoids sit at 0 or 1, their derivative s(1-s) is ~0, and the gradient stops (Q2c). With
N(0, 0.01²) the signal shrinks layer after layer: every unit outputs ~0.5 (sigmoid) or ~0
(ReLU) whatever the input. The lab measures the activations per layer at initialisation, the
gradient reaching the first layer, and the training curves, for NumPy MLPs on real images.
"""
from __future__ import annotations

import numpy as np

from cnnlab.core.errors import Diverged
from cnnlab.core.text import markdown_table, spread
from cnnlab.labs.frame import LabContext, LabResult, finish_axes, lab_arrays, register_lab
from cnnlab.labs.catalog.vanishing_gradients import attenuation, layer_gradient_norms
from cnnlab.scratch.experiments import MLPConfig, train
from cnnlab.scratch.mlp import MLP

INITS = ("xavier", "he", "unit-normal", "normal")
LABEL = {"xavier": "Xavier", "he": "He", "unit-normal": "N(0,1)", "normal": "N(0,0.01²)"}
ACTIVATIONS = ("sigmoid", "relu")
SATURATED = 0.01  # a sigmoid output within 0.01 of 0 or 1: derivative below 0.0099


def activation_stats(outputs: list[np.ndarray], activation: str) -> list[dict]:
    """Per hidden layer: spread of the outputs across units and samples, and how many units are stuck.

    Stuck means saturated for a sigmoid (output < 0.01 or > 0.99, so s(1-s) < 0.01) and zero for a
    ReLU (no gradient passes). ``derivative`` is the mean local gradient factor of the activation.
    """
    rows = []
    for h in outputs:
        if activation == "sigmoid":
            stuck, derivative = (h < SATURATED) | (h > 1 - SATURATED), h * (1 - h)
        else:
            stuck, derivative = h <= 0, (h > 0).astype(np.float32)
        rows.append({"std": float(h.std()), "mean": float(h.mean()), "stuck": float(stuck.mean()),
                     "derivative": float(derivative.mean()), "input_dependence": float(h.std(0).mean())})
    return rows


@register_lab("initialisation", "002 Q2b-c",
              "Xavier/He vs N(0,1) vs N(0,0.01): activations per layer, saturation of sigmoids, training curves")
def run(ctx: LabContext) -> LabResult:
    data, info = lab_arrays(ctx, n_train=ctx.pick(512, 10000), n_test=ctx.pick(256, 2000))
    hidden, epochs, lr = ctx.pick((32, 16), (128, 64)), ctx.pick(1, 5), 0.05  # the course's MLP (002 Q5)
    probe = (data.x_train[:512], data.y_train[:512])
    sizes = [data.x_train.shape[1], *hidden, len(data.classes)]
    nets: dict[str, dict] = {}
    histograms: dict[str, list[np.ndarray]] = {}
    for act in ACTIVATIONS:
        for init in INITS:
            model = MLP(sizes, act, init, seed=ctx.seed)
            outputs = model.hidden_outputs(probe[0])
            histograms[f"{act}-{init}"] = [h.ravel()[:20000] for h in outputs]
            stats = activation_stats(outputs, act)
            curves, finals, diverged = [], [], 0
            for seed in ctx.seeds:
                cfg = MLPConfig(hidden=hidden, activation=act, init=init, optimizer="momentum", lr=lr, epochs=epochs,
                                seed=seed)
                try:
                    _, history = train(cfg, data, progress=False)
                except Diverged:
                    diverged += 1
                    continue
                curves.append([r["test_accuracy"] for r in history])
                finals.append(history[-1]["test_accuracy"])
            nets[f"{act}-{init}"] = {
                "activation": act, "init": init, "layers": stats,
                "stuck_first": stats[0]["stuck"], "stuck_last": stats[-1]["stuck"],
                "derivative_first": stats[0]["derivative"], "input_dependence_last": stats[-1]["input_dependence"],
                "gradient_attenuation": attenuation(layer_gradient_norms(model, *probe)),
                "curve": np.mean(curves, 0).tolist() if curves else None,
                "test_accuracy": spread(finals) if finals else None, "diverged": diverged,
                "accuracy": float(np.mean(finals)) if finals else 1 / len(data.classes)}
    numbers = {"nets": nets, "saturation_threshold": SATURATED}
    table = markdown_table(
        ["activation", "init", "stuck units, layer 1", "stuck units, last", "mean derivative, layer 1",
         "input dependence, last layer", "first/last gradient", "test accuracy"],
        [[r["activation"], LABEL[r["init"]], r["stuck_first"], r["stuck_last"], r["derivative_first"],
          r["input_dependence_last"], r["gradient_attenuation"],
          f"{r['test_accuracy']['mean']:.3f} ± {r['test_accuracy']['std']:.3f}" if r["test_accuracy"] else
          f"diverged ({r['diverged']})"] for r in nets.values()])
    result = LabResult(numbers, _figure(nets, histograms, epochs), table=table, settings={
        "data": info, "sizes": sizes, "optimizer": f"momentum 0.9, lr {lr} decaying linearly, batch 64",
        "epochs": epochs, "seeds": ctx.seeds, "probe": "first 512 training images, pixels in [0, 1]",
        "stuck": f"sigmoid output within {SATURATED} of 0 or 1; ReLU output 0",
        "input_dependence": "std across images of a unit's output, averaged over units",
        "implementation": "cnnlab.scratch NumPy MLP"})
    _conclude(result, nets)
    return result


def _conclude(result: LabResult, nets: dict) -> None:
    result.conclude("Sigmoid net at initialisation: with N(0,1) weights {a:.0%} of the first layer's units are "
                    "saturated and their mean derivative s(1-s) is {b:.4f}; with Xavier {c:.0%} and {d:.4f} "
                    "(the maximum is 0.25).", a="nets.sigmoid-unit-normal.stuck_first",
                    b="nets.sigmoid-unit-normal.derivative_first", c="nets.sigmoid-xavier.stuck_first",
                    d="nets.sigmoid-xavier.derivative_first")
    result.conclude("With N(0,0.01²) weights the last hidden layer barely depends on the input (its outputs vary by "
                    "{a:.1e} across images, against {b:.1e} with Xavier): the signal has died on the way.",
                    a="nets.sigmoid-normal.input_dependence_last", b="nets.sigmoid-xavier.input_dependence_last")
    best = max(INITS, key=lambda i: nets[f"sigmoid-{i}"]["accuracy"])
    result.conclude("Trained the same way, the sigmoid net reached test accuracy {x:.3f} with Xavier, {h:.3f} with He, "
                    "{u:.3f} with N(0,1) and {s:.3f} with N(0,0.01²)" + f": {LABEL[best]} trained best.",
                    x="nets.sigmoid-xavier.accuracy", h="nets.sigmoid-he.accuracy",
                    u="nets.sigmoid-unit-normal.accuracy", s="nets.sigmoid-normal.accuracy")
    best = max(INITS, key=lambda i: nets[f"relu-{i}"]["accuracy"])
    result.conclude("The ReLU net reached {h:.3f} with He, {x:.3f} with Xavier, {u:.3f} with N(0,1) ({k} of its runs "
                    "diverged) and {s:.3f} with N(0,0.01²)" + f": {LABEL[best]} trained best.",
                    h="nets.relu-he.accuracy", x="nets.relu-xavier.accuracy", u="nets.relu-unit-normal.accuracy",
                    k="nets.relu-unit-normal.diverged", s="nets.relu-normal.accuracy")


def _figure(nets: dict, histograms: dict, epochs: int):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(17, 7.5))
    for ax, init in zip(axes[0], INITS):
        for i, h in enumerate(histograms[f"sigmoid-{init}"]):
            ax.hist(h, bins=50, range=(0, 1), histtype="step", density=True, label=f"layer {i + 1}")
        ax.set_title(f"sigmoid outputs at init, {LABEL[init]}")
        ax.set_yscale("log")
    for ax, act in zip(axes[1][:2], ACTIVATIONS):
        for init in INITS:
            curve = nets[f"{act}-{init}"]["curve"]
            if curve:
                ax.plot(range(1, epochs + 1), curve, "o-", label=LABEL[init])
        ax.set_title(f"{act}: test accuracy per epoch")
        ax.set_xlabel("epoch")
    for ax, key, title in ((axes[1][2], "stuck", "stuck units per layer (sigmoid: saturated)"),
                           (axes[1][3], "input_dependence", "input dependence per layer (sigmoid)")):
        for init in INITS:
            layers = nets[f"sigmoid-{init}"]["layers"]
            ax.plot(range(1, len(layers) + 1), [max(r[key], 1e-12) for r in layers], "o-", label=LABEL[init])
        ax.set_title(title)
        ax.set_xlabel("hidden layer")
    axes[1][3].set_yscale("log")
    finish_axes(axes)
    return fig
