"""000 Q2a-c: dilated convolution: receptive field, gridding, output size, and what it buys.

(b) A stack of k x k convolutions with dilations d_1..d_L (stride 1) gives output (i, j) a receptive
field of ``R = 1 + (k - 1) Σ d_l`` pixels per side: rows ``i - (R-1)/2 .. i + (R-1)/2`` of the input
(with 'same' padding; shifted by ``(R-1)/2`` without it). (c) On an I x I input with padding p and
stride s a dilated conv outputs ``floor((I + 2p - d(K-1) - 1)/s) + 1`` per side: ``I - d(K-1)`` with no
padding and stride 1, with D channels. The lab measures the receptive field as the footprint of the
gradient of one output pixel, compares it with the formula and with ``cnnlab summary``'s field,
shows the *gridding* of equal dilations (the footprint has holes: only every d-th pixel is seen),
checks the output-size formula against ``nn.Conv2d`` over a grid, and trains plain, dilated and
strided networks with the same weights.
"""
from __future__ import annotations

import itertools

import torch
from torch import nn

from cnnlab.analysis.summary import summarize
from cnnlab.core.text import judged, markdown_table, seed_gap
from cnnlab.labs.frame import LabContext, LabResult, lab_data, register_lab, train_seeds
from cnnlab.models.layers import ClassifierHead, ConvBNAct
from cnnlab.scratch.conv import conv_output_size

STACKS = {"1-1-1": (1, 1, 1), "1-2-4": (1, 2, 4), "1-2-3": (1, 2, 3), "2-2-2": (2, 2, 2), "3-3-3": (3, 3, 3)}
NETS = {"plain": ((1, 1, 1, 1), (1, 1, 1, 1)), "dilated": ((1, 2, 4, 8), (1, 1, 1, 1)),
        "strided": ((1, 1, 1, 1), (1, 2, 2, 1))}  # (dilations, strides) of four 3x3 convs


def formula_field(dilations, k: int = 3) -> int:
    return 1 + (k - 1) * sum(dilations)


def gradient_footprint(dilations, k: int = 3, size: int = 65) -> torch.Tensor:
    """|d out[centre] / d input| of a stack of single-channel dilated convs with all-one weights.

    Positive weights: no cancellation, so every input pixel that reaches the centre output shows.
    """
    layers = [nn.Conv2d(1, 1, k, padding=d * (k - 1) // 2, dilation=d, bias=False) for d in dilations]
    net = nn.Sequential(*layers)
    for conv in layers:
        nn.init.ones_(conv.weight)
    x = torch.zeros(1, 1, size, size, requires_grad=True)
    net(x)[0, 0, size // 2, size // 2].backward()
    return x.grad[0, 0].abs()


def footprint_stats(grad: torch.Tensor) -> dict:
    rows, cols = torch.nonzero(grad > 0, as_tuple=True)
    side = int(rows.max() - rows.min() + 1)
    box = grad[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    return {"measured_field": side, "width": int(cols.max() - cols.min() + 1),
            "coverage": float((box > 0).float().mean())}


def summary_field(dilations, k: int = 3) -> float:
    """The receptive field ``cnnlab summary`` derives for the same stack (first axis)."""
    net = nn.Sequential(*[nn.Conv2d(1, 1, k, padding=d * (k - 1) // 2, dilation=d) for d in dilations])
    return summarize(net, (1, 65, 65)).layers[-1].state.size[0]


def output_size_check() -> dict:
    """The output-size formula against ``nn.Conv2d`` on every combination of a grid."""
    cases = list(itertools.product((7, 16, 29), (1, 3, 5), (1, 2, 3), (0, 1, 2), (1, 2)))  # I, K, d, p, s
    mismatches = 0
    checked = 0
    for i, k, d, p, s in cases:
        if i + 2 * p - d * (k - 1) < 1:
            continue
        out = nn.Conv2d(3, 4, k, s, p, d)(torch.zeros(1, 3, i, i)).shape
        checked += 1
        mismatches += out[-1] != conv_output_size(i, k, s, p, d) or out[1] != 4
    return {"cases": checked, "mismatches": int(mismatches)}


def network(kind: str, in_chans: int, classes: int, width: int = 16) -> nn.Module:
    dilations, strides = NETS[kind]
    layers, c = [], in_chans
    for d, s in zip(dilations, strides):
        layers.append(ConvBNAct(c, width, 3, s, dilation=d))
        c = width
    return nn.Sequential(*layers, ClassifierHead(width, classes))


@register_lab("dilation", "000 Q2a-c",
              "Dilated convolution: receptive field (formula vs gradient footprint), gridding, output size, accuracy")
def run(ctx: LabContext) -> LabResult:
    numbers: dict = {"stacks": {}, "output_size": output_size_check(), "nets": {}}
    footprints = {}
    for name, dil in STACKS.items():
        grad = gradient_footprint(dil)
        footprints[name] = grad
        numbers["stacks"][name] = {"dilations": list(dil), "formula_field": formula_field(dil),
                                   "summary_field": summary_field(dil), **footprint_stats(grad)}
    numbers["field_errors"] = sum(abs(v["measured_field"] - v["formula_field"]) + abs(v["summary_field"] - v["formula_field"])
                                  for v in numbers["stacks"].values())
    data = lab_data(ctx, n_train=ctx.pick(300, 2000), n_test=ctx.pick(300, 2000))
    epochs = ctx.pick(1, 3)
    rows = []
    for kind in NETS:
        trained = train_seeds(ctx, lambda: network(kind, data.in_chans, data.num_classes), data, epochs=epochs,
                              lr=0.05, weight_decay=5e-4)
        s = summarize(trained["model"], (data.in_chans, *data.image_size))
        last_conv = [layer for layer in s.layers if layer.type == "Conv2d"][-1]
        numbers["nets"][kind] = {"params": s.params, "macs": s.macs, "field": s.field(last_conv)["receptive_field"][0],
                                 "accuracy": trained["accuracy"], "train_seconds": trained["seconds"]}
        n = numbers["nets"][kind]
        rows.append([kind, n["params"], n["macs"], n["field"], n["accuracy"]["mean"], n["accuracy"]["std"]])
    nets = numbers["nets"]
    numbers["dilated_minus_plain"] = nets["dilated"]["accuracy"]["mean"] - nets["plain"]["accuracy"]["mean"]
    numbers["dilated_vs_plain"] = seed_gap(nets["dilated"]["accuracy"]["values"], nets["plain"]["accuracy"]["values"])
    numbers["strided_vs_plain"] = seed_gap(nets["strided"]["accuracy"]["values"], nets["plain"]["accuracy"]["values"])
    numbers["strided_mac_saving"] = nets["plain"]["macs"] / nets["strided"]["macs"]
    stack_rows = [[k, v["formula_field"], v["measured_field"], v["summary_field"], v["coverage"]]
                  for k, v in numbers["stacks"].items()]
    result = LabResult(numbers, _figure(numbers, footprints), settings={
        "data": data.info, "epochs": epochs, "seeds": ctx.seeds, "nets": {k: {"dilations": d, "strides": s}
                                                                          for k, (d, s) in NETS.items()},
        "footprint": "65x65 input, 3x3 convs with all-one weights, gradient of the centre output"},
        table=markdown_table(["dilations", "formula 1+2Σd", "gradient footprint", "cnnlab summary", "coverage of the box"],
                             stack_rows) + "\n\n" +
        markdown_table(["net", "params", "MACs", "receptive field", "test acc", "std"], rows))
    result.conclude("The receptive field of three 3x3 convs is 1 + 2·Σd: 1-1-1 gives {a}, 1-2-4 gives {b} (measured from "
                    "the gradient footprint: {c} and {d}); over all stacks footprint, formula and cnnlab summary differ "
                    "by {e} pixels in total.",
                    a="stacks.1-1-1.formula_field", b="stacks.1-2-4.formula_field", c="stacks.1-1-1.measured_field",
                    d="stacks.1-2-4.measured_field", e="field_errors")
    result.conclude("Gridding: with dilations 2-2-2 only {g:.1%} of the pixels inside the {f}-pixel field reach the "
                    "output (3-3-3: {h:.1%}), while 1-2-3 and 1-2-4 cover {i:.1%} and {j:.1%}: equal dilations leave holes, "
                    "mixed ones (as in hybrid dilated convolution) fill them.",
                    g="stacks.2-2-2.coverage", f="stacks.2-2-2.formula_field", h="stacks.3-3-3.coverage",
                    i="stacks.1-2-3.coverage", j="stacks.1-2-4.coverage")
    result.conclude("The output-size formula floor((I + 2p - d(K-1) - 1)/s) + 1 (I - d(K-1) without padding) matches "
                    "nn.Conv2d in {n} cases with {m} mismatches.", n="output_size.cases", m="output_size.mismatches")
    numbers["strided_minus_plain"] = nets["strided"]["accuracy"]["mean"] - nets["plain"]["accuracy"]["mean"]
    gain = {"higher": "a gain beyond twice its standard error", "same": "no gain this run can tell apart from noise",
            "lower": "a loss beyond twice its standard error (gridding, or context it cannot use)"}
    cost = {"higher": "even above the plain net", "same": "level with the plain net within noise",
            "lower": "below the plain net, the price of its lower resolution"}
    values = {k: v["accuracy"]["values"] for k, v in nets.items()}
    result.conclude("Same weights, same resolution: the dilated net (field {fd} px) reaches {a:.4f} test accuracy vs "
                    "{b:.4f} for the plain net (field {fp} px): "
                    + judged("dilated", values["dilated"], "plain", values["plain"], gain)
                    + ". The strided net reaches {c:.4f} with {m:.2f}x fewer MACs: "
                    + judged("strided", values["strided"], "plain", values["plain"], cost) + ".",
                    fd="nets.dilated.field", a="nets.dilated.accuracy.mean", b="nets.plain.accuracy.mean",
                    fp="nets.plain.field", d="dilated_minus_plain", c="nets.strided.accuracy.mean",
                    m="strided_mac_saving")
    return result


def _figure(numbers: dict, footprints: dict):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(footprints) + 1, figsize=(3.4 * (len(footprints) + 1), 3.8))
    for ax, (name, grad) in zip(axes, footprints.items()):
        c = grad.shape[0] // 2
        r = numbers["stacks"][name]["formula_field"] // 2 + 2
        ax.imshow((grad[c - r:c + r + 1, c - r:c + r + 1] > 0).float(), cmap="gray_r")
        ax.set_title(f"dilations {name}\nfield {numbers['stacks'][name]['measured_field']}, "
                     f"coverage {numbers['stacks'][name]['coverage']:.0%}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    nets = numbers["nets"]
    names = list(nets)
    axes[-1].bar(names, [nets[n]["accuracy"]["mean"] for n in names], yerr=[nets[n]["accuracy"]["std"] for n in names],
                 capsize=4, color=["C7", "C0", "C1"])
    lo = min(nets[n]["accuracy"]["mean"] for n in names)
    axes[-1].set(title="test accuracy (mean ± std)", ylim=(max(0.0, lo - 0.1), 1.0))
    axes[-1].grid(alpha=0.3, axis="y")
    return fig
