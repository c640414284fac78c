"""000 Q5a-b: what 1x1 "bottleneck" convolutions save in an Inception module.

A k x k conv from C_in to C_out channels on an H x W map costs ``H W k² C_in C_out`` multiply-adds.
Reducing the input to c channels with a 1x1 conv first costs ``H W (C_in c + k² c C_out)``: for
GoogLeNet's module 3a (28 x 28 x 192 input) the whole module drops from about 303M to 128M MACs,
while the output stays as wide. The lab counts parameters and MACs of the naive and the reduced
module (the registry's ``InceptionModule``, ``reduce=False`` or ``True``) against the hand formula,
times a training step of each, and trains the same small network with either module.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnlab.core.text import judged, markdown_table, seed_gap
from cnnlab.labs.frame import LabContext, LabResult, lab_data, register_lab, train_seeds, train_step_seconds
from cnnlab.analysis.complexity import count_macs, count_params
from cnnlab.models.layers import ClassifierHead, ConvBNAct, InceptionModule

MODULE_3A = (192, 64, 96, 128, 16, 32, 32)  # in, c1, c3 reduce, c3, c5 reduce, c5, pool proj (Szegedy et al. Table 1)
SMALL = (32, 16, 16, 32, 8, 16, 16)  # the same proportions, sized for Fashion-MNIST on a CPU


def formula_macs(hw: int, in_ch: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pp: int, reduce: bool) -> int:
    """The course's count: ``H W`` times the weights of every conv of the module (BN, pooling not counted)."""
    if reduce:
        per_pixel = in_ch * c1 + in_ch * c3r + 9 * c3r * c3 + in_ch * c5r + 25 * c5r * c5 + in_ch * pp
    else:
        per_pixel = in_ch * c1 + 9 * in_ch * c3 + 25 * in_ch * c5
    return hw * hw * per_pixel


def network(reduce: bool, in_chans: int, classes: int) -> nn.Module:
    """stem conv -> pool -> Inception -> pool -> Inception -> global pool -> linear."""
    first = InceptionModule(*SMALL, reduce=reduce)
    second = InceptionModule(first.out_channels, *SMALL[1:], reduce=reduce)
    return nn.Sequential(ConvBNAct(in_chans, SMALL[0]), nn.MaxPool2d(2), first, nn.MaxPool2d(2), second,
                         ClassifierHead(second.out_channels, classes))


@register_lab("bottleneck-1x1", "000 Q5a-b",
              "Inception module naive vs with 1x1 reductions: parameters, MACs, CPU time, accuracy")
def run(ctx: LabContext) -> LabResult:
    numbers: dict = {"module_3a": {}, "network": {}}
    x3a = torch.randn(ctx.pick(2, 8), 192, 28, 28)
    y3a = torch.randint(0, 2, (len(x3a),))
    for reduce, name in ((False, "naive"), (True, "reduced")):
        module = InceptionModule(*MODULE_3A, reduce=reduce)
        probe = nn.Sequential(module, ClassifierHead(module.out_channels, 2))
        numbers["module_3a"][name] = {
            "params": count_params(module), "macs": count_macs(module, (192, 28, 28)),
            "formula_macs": formula_macs(28, *MODULE_3A, reduce=reduce), "out_channels": module.out_channels,
            "step_cpu_seconds": train_step_seconds(probe, x3a, y3a, repeats=ctx.pick(1, 3))}
    m = numbers["module_3a"]
    numbers["module_3a"]["macs_ratio"] = m["reduced"]["macs"] / m["naive"]["macs"]
    numbers["module_3a"]["params_ratio"] = m["reduced"]["params"] / m["naive"]["params"]
    numbers["module_3a"]["time_ratio"] = m["reduced"]["step_cpu_seconds"] / m["naive"]["step_cpu_seconds"]
    numbers["module_3a"]["formula_error"] = max(abs(m[k]["macs"] - m[k]["formula_macs"]) for k in ("naive", "reduced"))

    data = lab_data(ctx, n_train=ctx.pick(300, 3000), n_test=ctx.pick(300, 2000))
    epochs = ctx.pick(1, 3)
    xs = torch.randn(64, data.in_chans, *data.image_size)
    ys = torch.randint(0, data.num_classes, (64,))
    rows = []
    for reduce, name in ((False, "naive"), (True, "reduced")):
        trained = train_seeds(ctx, lambda: network(reduce, data.in_chans, data.num_classes), data, epochs=epochs,
                              lr=0.05, weight_decay=5e-4)
        net = trained["model"]
        numbers["network"][name] = {
            "params": count_params(net), "macs": count_macs(net, (data.in_chans, *data.image_size)),
            "step_cpu_seconds": train_step_seconds(net, xs, ys, repeats=ctx.pick(1, 3)),
            "accuracy": trained["accuracy"], "train_seconds": trained["seconds"]}
    n = numbers["network"]
    numbers["network"]["macs_ratio"] = n["reduced"]["macs"] / n["naive"]["macs"]
    numbers["network"]["time_ratio"] = n["reduced"]["step_cpu_seconds"] / n["naive"]["step_cpu_seconds"]
    numbers["network"]["accuracy_gap"] = n["reduced"]["accuracy"]["mean"] - n["naive"]["accuracy"]["mean"]
    numbers["network"]["accuracy_seed_gap"] = seed_gap(n["reduced"]["accuracy"]["values"], n["naive"]["accuracy"]["values"])
    for name in ("naive", "reduced"):
        rows.append(["3a (28x28x192)", name, m[name]["params"], m[name]["macs"], m[name]["step_cpu_seconds"], "", ""])
    for name in ("naive", "reduced"):
        rows.append(["small net", name, n[name]["params"], n[name]["macs"], n[name]["step_cpu_seconds"],
                     n[name]["accuracy"]["mean"], n[name]["accuracy"]["std"]])
    result = LabResult(numbers, _figure(numbers), settings={
        "data": data.info, "epochs": epochs, "seeds": ctx.seeds, "module_3a": MODULE_3A, "small_module": SMALL,
        "timing": "CPU seconds of one forward+backward, one thread, best of repeats; 3a on a batch of "
                  f"{len(x3a)}, the small net on 64 images"},
        table=markdown_table(["where", "module", "params", "MACs", "train step CPU s", "test acc", "std"], rows))
    result.conclude("Inception 3a on 28x28x192: {a:,} MACs naive vs {b:,} with 1x1 reductions (ratio {r:.3f}; the hand "
                    "formula H·W·Σ C_in·k²·C_out agrees to {e} MACs), parameters ratio {p:.3f}.",
                    a="module_3a.naive.macs", b="module_3a.reduced.macs", r="module_3a.macs_ratio",
                    e="module_3a.formula_error", p="module_3a.params_ratio")
    result.conclude("A training step of module 3a takes {t:.3f} of the naive module's CPU time (MACs ratio {r:.3f}): "
                    "the saving in arithmetic " + ("shows up in time." if m["time_ratio"] < 0.75 else
                                                   "only partly shows up in time."),
                    t="module_3a.time_ratio", r="module_3a.macs_ratio")
    wording = {"higher": "the reduced modules are even more accurate, for less arithmetic.",
               "same": "no difference beyond seed noise for the saved arithmetic.",
               "lower": "the reductions cost accuracy here."}
    verdict = judged("reduced", n["reduced"]["accuracy"]["values"], "naive", n["naive"]["accuracy"]["values"], wording)
    result.conclude("In the small network the reduced modules reach {a:.4f} test accuracy vs {b:.4f} naive "
                    "with {r:.3f} of the MACs: " + verdict,
                    a="network.reduced.accuracy.mean", b="network.naive.accuracy.mean", d="network.accuracy_gap",
                    r="network.macs_ratio")
    return result


def _figure(numbers: dict):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    names = ("naive", "reduced")
    m, n = numbers["module_3a"], numbers["network"]
    for ax, key, title in ((axes[0], "macs", "MACs"), (axes[1], "step_cpu_seconds", "train-step CPU seconds")):
        ax.bar([f"3a {k}" for k in names], [m[k][key] / m["naive"][key] for k in names], color=["C3", "C0"])
        ax.bar([f"net {k}" for k in names], [n[k][key] / n["naive"][key] for k in names], color=["C3", "C0"], alpha=0.6)
        ax.set(title=f"{title}, relative to naive", ylabel="ratio")
    axes[2].bar(names, [n[k]["accuracy"]["mean"] for k in names], yerr=[n[k]["accuracy"]["std"] for k in names],
                color=["C3", "C0"], capsize=4)
    lo = min(n[k]["accuracy"]["mean"] for k in names)
    axes[2].set(title="small network test accuracy (mean ± std)", ylim=(max(0.0, lo - 0.1), 1.0))
    for ax in axes:
        ax.grid(alpha=0.3, axis="y")
    return fig
