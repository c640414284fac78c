"""000 Q5c: a standard convolution vs a depthwise-separable one (MobileNetV1).

A k x k conv from C_in to C_out channels holds ``k² C_in C_out`` weights and does that many
multiply-adds per output pixel. Depthwise (one k x k filter per input channel, ``k² C_in``) then
pointwise (1x1, ``C_in C_out``) holds ``k² C_in + C_in C_out``: the ratio is exactly
``1/C_out + 1/k²``, for parameters and for MACs alike. The lab checks that ratio on the registry's
``DepthwiseSeparable`` over a grid of widths and kernels, times both on the CPU (MACs are not
seconds: a depthwise conv does little arithmetic per byte it reads), and trains the same small
network with either kind of layer.
"""
from __future__ import annotations

from fractions import Fraction

import torch
from torch import nn

from cnnlab.core.text import judged, markdown_table, seed_gap
from cnnlab.labs.frame import LabContext, LabResult, lab_data, register_lab, train_seeds, train_step_seconds
from cnnlab.analysis.complexity import count_macs
from cnnlab.models.layers import ClassifierHead, ConvBNAct, DepthwiseSeparable

GRID = [(c_in, c_out, k) for c_in in (16, 64) for c_out in (16, 64, 256) for k in (3, 5)]
WIDTHS = (16, 32, 64)


def conv_weights(module: nn.Module) -> int:
    """Weights of the module's convolutions only (BatchNorm's scale and shift are not the question)."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))


def ratios(c_in: int, c_out: int, k: int, size: int = 8) -> dict:
    """Parameter and MAC ratios, depthwise-separable over standard, as exact fractions and the formula's."""
    standard, separable = ConvBNAct(c_in, c_out, k), DepthwiseSeparable(c_in, c_out, kernel=k)
    macs = Fraction(count_macs(separable, (c_in, size, size)), count_macs(standard, (c_in, size, size)))
    params = Fraction(conv_weights(separable), conv_weights(standard))
    formula = Fraction(1, c_out) + Fraction(1, k * k)
    return {"c_in": c_in, "c_out": c_out, "k": k, "params_ratio": float(params), "macs_ratio": float(macs),
            "formula": float(formula), "exact": params == formula and macs == formula}


def network(separable: bool, in_chans: int, classes: int) -> nn.Module:
    """A standard first conv (as MobileNet), then three 3x3 layers, standard or depthwise-separable."""
    layers: list[nn.Module] = [ConvBNAct(in_chans, WIDTHS[0], 3)]
    for c_in, c_out, stride in ((WIDTHS[0], WIDTHS[1], 2), (WIDTHS[1], WIDTHS[2], 2), (WIDTHS[2], WIDTHS[2], 1)):
        layers.append(DepthwiseSeparable(c_in, c_out, stride) if separable else ConvBNAct(c_in, c_out, 3, stride))
    return nn.Sequential(*layers, ClassifierHead(WIDTHS[2], classes))


@register_lab("depthwise-separable", "000 Q5c",
              "Standard vs depthwise-separable convolution: parameters, MACs (1/C_out + 1/k^2), CPU time, accuracy")
def run(ctx: LabContext) -> LabResult:
    grid = [ratios(*g) for g in GRID]
    numbers: dict = {"grid": grid, "grid_size": len(grid), "all_exact": all(g["exact"] for g in grid),
                     "layer": {}, "network": {}}
    x = torch.randn(ctx.pick(4, 32), 128, 28, 28)
    y = torch.randint(0, 2, (len(x),))
    for name, layer in (("standard", ConvBNAct(128, 128, 3)), ("separable", DepthwiseSeparable(128, 128))):
        probe = nn.Sequential(layer, ClassifierHead(128, 2))
        numbers["layer"][name] = {"macs": count_macs(layer, (128, 28, 28)), "params": conv_weights(layer),
                                  "step_cpu_seconds": train_step_seconds(probe, x, y, repeats=ctx.pick(1, 3))}
    lay = numbers["layer"]
    lay["macs_ratio"] = lay["separable"]["macs"] / lay["standard"]["macs"]
    lay["time_ratio"] = lay["separable"]["step_cpu_seconds"] / lay["standard"]["step_cpu_seconds"]
    lay["time_per_mac_ratio"] = lay["time_ratio"] / lay["macs_ratio"]

    data = lab_data(ctx, n_train=ctx.pick(300, 3000), n_test=ctx.pick(300, 2000))
    epochs = ctx.pick(1, 3)
    rows = []
    for separable, name in ((False, "standard"), (True, "separable")):
        trained = train_seeds(ctx, lambda: network(separable, data.in_chans, data.num_classes), data, epochs=epochs,
                              lr=0.05, weight_decay=5e-4)
        net = trained["model"]
        numbers["network"][name] = {"params": sum(p.numel() for p in net.parameters()),
                                    "macs": count_macs(net, (data.in_chans, *data.image_size)),
                                    "accuracy": trained["accuracy"], "train_seconds": trained["seconds"]}
        n = numbers["network"][name]
        rows.append([name, n["params"], n["macs"], n["accuracy"]["mean"], n["accuracy"]["std"], n["train_seconds"]["mean"]])
    net = numbers["network"]
    net["params_ratio"] = net["separable"]["params"] / net["standard"]["params"]
    net["accuracy_gap"] = net["separable"]["accuracy"]["mean"] - net["standard"]["accuracy"]["mean"]
    net["accuracy_seed_gap"] = seed_gap(net["separable"]["accuracy"]["values"], net["standard"]["accuracy"]["values"])
    net["time_ratio"] = net["separable"]["train_seconds"]["mean"] / net["standard"]["train_seconds"]["mean"]
    grid_rows = [[g["c_in"], g["c_out"], g["k"], g["params_ratio"], g["macs_ratio"], g["formula"]] for g in grid]
    result = LabResult(numbers, _figure(numbers), settings={
        "data": data.info, "epochs": epochs, "seeds": ctx.seeds, "widths": WIDTHS,
        "layer_timing": f"128->128 channels, 3x3, 28x28, batch {len(x)}, forward+backward, one thread, CPU seconds"},
        table=markdown_table(["C_in", "C_out", "k", "params ratio", "MACs ratio", "1/C_out + 1/k^2"], grid_rows) + "\n\n"
        + markdown_table(["network", "params", "MACs", "test acc", "std", "train s"], rows))
    result.conclude("Over {n} layer shapes the depthwise-separable/standard ratio of parameters and of MACs equals "
                    "1/C_out + 1/k² exactly: " + ("true for every shape." if numbers["all_exact"] else
                                                  "NOT for every shape (see the table)."),
                    n="grid_size")
    result.conclude("A 128->128 3x3 layer on 28x28: separable needs {m:.3f} of the MACs but {t:.3f} of the CPU time of a "
                    "training step, so each of its MACs costs {s:.2f}x a standard MAC's time: " +
                    ("the depthwise conv does little arithmetic per byte it moves, so the saving in time is much "
                     "smaller than in arithmetic."
                     if lay["time_ratio"] > 2 * lay["macs_ratio"] else "time falls about as much as arithmetic."),
                    m="layer.macs_ratio", t="layer.time_ratio", s="layer.time_per_mac_ratio")
    wording = {"higher": "separable layers are even more accurate here.",
               "same": "no difference beyond seed noise for the saving.",
               "lower": "the saving costs accuracy here."}
    verdict = judged("separable", net["separable"]["accuracy"]["values"], "standard", net["standard"]["accuracy"]["values"],
                     wording)
    result.conclude("The small network with separable layers has {p:.3f} of the parameters and reaches {a:.4f} test "
                    "accuracy vs {b:.4f}: " + verdict,
                    p="network.params_ratio", a="network.separable.accuracy.mean", b="network.standard.accuracy.mean",
                    d="network.accuracy_gap")
    return result


def _figure(numbers: dict):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    grid = numbers["grid"]
    for k, marker in ((3, "o"), (5, "s")):
        sel = [g for g in grid if g["k"] == k]
        axes[0].scatter([g["formula"] for g in sel], [g["macs_ratio"] for g in sel], marker=marker, label=f"k = {k}")
    axes[0].plot([0, 0.3], [0, 0.3], "k--", lw=1, label="measured = 1/C_out + 1/k²")
    axes[0].set(title="MACs ratio, separable / standard", xlabel="1/C_out + 1/k²", ylabel="measured")
    lay = numbers["layer"]
    names = ("standard", "separable")
    axes[1].bar([f"{n}\nMACs" for n in names], [lay[n]["macs"] / lay["standard"]["macs"] for n in names], color="C0")
    axes[1].bar([f"{n}\nCPU time" for n in names],
                [lay[n]["step_cpu_seconds"] / lay["standard"]["step_cpu_seconds"] for n in names], color="C1")
    axes[1].set(title="128->128 3x3 layer, relative to standard", ylabel="ratio")
    net = numbers["network"]
    axes[2].bar(names, [net[n]["accuracy"]["mean"] for n in names], yerr=[net[n]["accuracy"]["std"] for n in names],
                capsize=4, color=["C3", "C0"])
    lo = min(net[n]["accuracy"]["mean"] for n in names)
    axes[2].set(title="small network test accuracy (mean ± std)", ylim=(max(0.0, lo - 0.1), 1.0))
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return fig
