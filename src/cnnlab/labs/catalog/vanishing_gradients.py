"""002 Q2a and 001 Sec. 1a: vanishing gradients, measured layer by layer in deep MLPs.

Backpropagation multiplies, for every layer passed, by the layer's weights and by the
derivative of its activation. A sigmoid's derivative is at most 1/4 (and far less where it
saturates), so each layer shrinks the gradient: the first layers of a deep sigmoid network get
almost no signal and do not learn. tanh's derivative reaches 1 at zero, ReLU's is exactly 1
wherever a unit is active, so with a matching initialisation (Xavier, He) the product of
factors stays near 1. The lab measures |dL/dW| of every layer of 10- and 20-layer NumPy MLPs
(``cnnlab.scratch``) at initialisation and after training, on real images.
"""
from __future__ import annotations

import math

import numpy as np

from cnnlab.core.errors import Diverged
from cnnlab.core.text import markdown_table, spread
from cnnlab.labs.frame import LabContext, LabResult, lab_arrays, register_lab, trained_bar
from cnnlab.scratch.experiments import MLPConfig, train
from cnnlab.scratch.mlp import DEFAULT_INIT, MLP

ACTIVATIONS = ("sigmoid", "tanh", "relu")


def layer_gradient_norms(model: MLP, x: np.ndarray, y: np.ndarray) -> list[float]:
    """Root mean square of the entries of dL/dW for each dense layer, input side first, on one batch.

    Per entry, so that a 784 x 64 layer and a 64 x 10 one compare on the same footing.
    """
    model.loss_and_grads(x, y)
    return [float(np.sqrt(np.mean(np.square(g, dtype=np.float64))))
            for name, _, g in model.named_parameters() if name.endswith(".W")]


def attenuation(norms: list[float]) -> float:
    """The first layer's gradient over the last layer's: 1 means no vanishing, 1e-6 a millionfold loss."""
    return norms[0] / norms[-1] if norms[-1] > 0 else math.nan


@register_lab("vanishing-gradients", "002 Q2a, 001 Sec.1a",
              "Vanishing gradients: per-layer gradient norms of 10- and 20-layer sigmoid, tanh and ReLU MLPs")
def run(ctx: LabContext) -> LabResult:
    data, info = lab_arrays(ctx, n_train=ctx.pick(512, 6000), n_test=ctx.pick(256, 2000))
    depths, width, epochs = ctx.pick((4, 8), (10, 20)), ctx.pick(32, 64), ctx.pick(1, 2)
    probe = (data.x_train[:512], data.y_train[:512])
    nets: dict[str, dict] = {}
    for act in ACTIVATIONS:
        for depth in depths:
            init_norms, trained_norms, accs, diverged = [], [], [], 0
            for seed in ctx.seeds:
                cfg = MLPConfig(hidden=(width,) * (depth - 1), activation=act, optimizer="momentum", lr=0.01,
                                epochs=epochs, seed=seed)
                sizes = [data.x_train.shape[1], *cfg.hidden, len(data.classes)]
                init_norms.append(layer_gradient_norms(MLP(sizes, act, seed=seed), *probe))
                try:
                    runner, history = train(cfg, data, progress=False)
                except Diverged:
                    diverged += 1
                    continue
                trained_norms.append(layer_gradient_norms(runner.model, *probe))
                accs.append(history[-1]["test_accuracy"])
            nets[f"{act}-{depth}"] = _summarise(act, depth, init_norms, trained_norms, accs, diverged)
    numbers = {"nets": nets, "depths": list(depths), "classes": len(data.classes)}
    deep = depths[-1]
    numbers["deepest"] = {act: nets[f"{act}-{deep}"] for act in ACTIVATIONS}
    table = markdown_table(
        ["network", "init", "first/last layer gradient at init", "per-layer factor", "after training", "test accuracy"],
        [[k, r["init"], r["attenuation_init"], r["per_layer_factor_init"],
          r["attenuation_trained"] if r["attenuation_trained"] is not None else "-",
          f"{r['test_accuracy']['mean']:.3f} ± {r['test_accuracy']['std']:.3f}" if r["test_accuracy"] else "diverged"]
         for k, r in nets.items()])
    result = LabResult(numbers, _figure(nets, depths), table=table, settings={
        "data": info, "hidden_width": width, "depths": list(depths), "init": {a: DEFAULT_INIT[a] for a in ACTIVATIONS},
        "optimizer": "momentum 0.9, lr 0.01 decaying linearly, batch 64", "epochs": epochs, "seeds": ctx.seeds,
        "probe": "gradients on the first 512 training images", "implementation": "cnnlab.scratch NumPy MLP"})
    _conclude(result, numbers, deep)
    return result


def _summarise(act: str, depth: int, init_norms, trained_norms, accs, diverged: int) -> dict:
    mean_init = np.exp(np.log(np.array(init_norms)).mean(0)).tolist()  # geometric mean over seeds per layer
    mean_trained = np.exp(np.log(np.array(trained_norms)).mean(0)).tolist() if trained_norms else None
    a_init = attenuation(mean_init)
    return {"activation": act, "depth": depth, "init": DEFAULT_INIT[act], "grad_norms_init": mean_init,
            "grad_norms_trained": mean_trained, "attenuation_init": a_init,
            "per_layer_factor_init": a_init ** (1 / (depth - 1)),
            "attenuation_trained": attenuation(mean_trained) if mean_trained else None,
            "test_accuracy": spread(accs) if accs else None, "diverged": diverged}


def _conclude(result: LabResult, n: dict, deep: int) -> None:
    d = n["deepest"]
    order = sorted(d, key=lambda a: d[a]["attenuation_init"])
    result.conclude(f"At initialisation, in the {deep}-layer networks the first layer's gradient is {{s:.1e}} of the "
                    "last layer's with sigmoid, {t:.1e} with tanh and {r:.1e} with ReLU (He init): "
                    f"{order[0]} vanishes most.", s="deepest.sigmoid.attenuation_init",
                    t="deepest.tanh.attenuation_init", r="deepest.relu.attenuation_init")
    result.conclude("Each sigmoid layer multiplies the gradient by {f:.3f} on average (its derivative is at most 0.25); "
                    "each tanh layer by {g:.3f}, each ReLU layer by {h:.3f}.", f="deepest.sigmoid.per_layer_factor_init",
                    g="deepest.tanh.per_layer_factor_init", h="deepest.relu.per_layer_factor_init")
    accs = {a: (d[a]["test_accuracy"] or {"mean": math.nan})["mean"] for a in d}
    for a in d:
        d[a]["accuracy_mean"] = accs[a]
    bar = trained_bar(max(accs.values()), 1 / n["classes"])
    learned = [a for a in d if accs[a] >= bar]
    result.conclude(f"After training, the {deep}-layer nets reached test accuracy {{s:.3f}} (sigmoid), {{t:.3f}} (tanh) "
                    "and {r:.3f} (ReLU): " + (f"only {', '.join(learned)} learned." if learned and len(learned) < 3 else
                                              "all three learned." if learned else "none learned."),
                    s="deepest.sigmoid.accuracy_mean", t="deepest.tanh.accuracy_mean", r="deepest.relu.accuracy_mean")


def _figure(nets: dict, depths):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ACTIVATIONS), figsize=(15, 4), sharey=True)
    for ax, act in zip(axes, ACTIVATIONS):
        for depth, color in zip(depths, ("C0", "C1")):
            r = nets[f"{act}-{depth}"]
            layers = range(1, depth + 1)
            ax.semilogy(layers, r["grad_norms_init"], "o-", color=color, ms=3, label=f"{depth} layers, at init")
            if r["grad_norms_trained"]:
                ax.semilogy(layers, r["grad_norms_trained"], "s--", color=color, ms=3, label=f"{depth} layers, trained")
        ax.set_title(f"{act} ({nets[f'{act}-{depths[0]}']['init']} init)")
        ax.set_xlabel("layer (1 = input side)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("RMS of dL/dW entries")
    return fig
