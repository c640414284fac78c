"""003 Q2a, 001 Sec.2b: what sharing a filter across positions buys (conv vs locally connected).

A convolution applies the same k x k x C_in filters at every position; a locally connected layer of
the same shape has its own filters at each of the H_out x W_out positions: the same arithmetic,
H_out·W_out times the weights, and no built-in translation equivariance: a pattern learned at one
place is not recognised at another. The lab builds the same two-layer network with either layer
(the registry's ``LocallyConnected2d``), counts parameters, trains both, and tests them on images
shifted by a few pixels.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnlab.core.text import judged, markdown_table, seed_gap, spread, verdict
from cnnlab.labs.frame import (LabContext, LabResult, as_float, background, lab_data, predict, register_lab, shift,
                                 train_seeds)
from cnnlab.analysis.complexity import count_macs
from cnnlab.models.local import LocallyConnected2d
from cnnlab.scratch.conv import conv_output_size

SHIFTS = (0, 1, 2, 3, 4)
WIDTH = 8


def network(shared: bool, in_chans: int, classes: int, size: int) -> nn.Module:
    """5x5/2 then 3x3/2 filters (8 and 16 channels), ReLUs, a linear classifier: the registry's
    ``locally-connected`` model, or the same shapes as convolutions."""
    mid = conv_output_size(size, 5, 2, 2)
    if shared:
        first, second = nn.Conv2d(in_chans, WIDTH, 5, 2, 2), nn.Conv2d(WIDTH, 2 * WIDTH, 3, 2, 1)
    else:
        first = LocallyConnected2d(in_chans, WIDTH, 5, size, stride=2, padding=2)
        second = LocallyConnected2d(WIDTH, 2 * WIDTH, 3, mid, stride=2, padding=1)
    side = conv_output_size(mid, 3, 2, 1)
    return nn.Sequential(first, nn.ReLU(inplace=True), second, nn.ReLU(inplace=True), nn.Flatten(),
                         nn.Linear(2 * WIDTH * side * side, classes))


@torch.no_grad()
def shifted_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, fill: torch.Tensor, pixels: int) -> float:
    """Accuracy on ``x`` moved by ``pixels`` in each of the 4 axis directions (mean)."""
    if pixels == 0:
        return float((predict(model, x).argmax(1) == y).float().mean())
    accs = [float((predict(model, shift(x, dy, dx, fill)).argmax(1) == y).float().mean())
            for dy, dx in ((pixels, 0), (-pixels, 0), (0, pixels), (0, -pixels))]
    return sum(accs) / len(accs)


@register_lab("parameter-sharing", "003 Q2a, 001 Sec.2b",
              "Convolution vs a locally connected layer of the same shape: parameters, accuracy, shifted test images")
def run(ctx: LabContext) -> LabResult:
    data = lab_data(ctx, n_train=ctx.pick(300, 6000), n_test=ctx.pick(300, 2000))
    size = data.image_size[0]
    epochs = ctx.pick(1, 5)
    x, y = as_float(data.test, data.mean, data.std), data.test.labels
    fill = background(data)
    numbers: dict = {"layers": {}}
    rows = []
    for shared, name in ((True, "conv"), (False, "local")):
        per_shift: dict[int, list[float]] = {p: [] for p in SHIFTS}
        for seed in ctx.seeds:
            trained = train_seeds(ctx, lambda: network(shared, data.in_chans, data.num_classes, size), data,
                                  seeds=[seed], epochs=epochs, optimizer="adam", lr=3e-3)
            for p in SHIFTS:
                per_shift[p].append(shifted_accuracy(trained["model"], x, y, fill, p))
        net = trained["model"]
        numbers["layers"][name] = {
            "params": sum(p.numel() for p in net.parameters()),
            "feature_params": sum(p.numel() for m in list(net)[:3] for p in m.parameters()),
            "macs": count_macs(net, (data.in_chans, size, size)),
            "accuracy_by_shift": {str(p): spread(v) for p, v in per_shift.items()}}
        n = numbers["layers"][name]
        rows.append([name, n["params"], n["feature_params"], n["macs"],
                     *(n["accuracy_by_shift"][str(p)]["mean"] for p in SHIFTS)])
    lay = numbers["layers"]
    far = str(SHIFTS[-1])
    numbers["param_ratio"] = lay["local"]["feature_params"] / lay["conv"]["feature_params"]
    for name in lay:
        acc = lay[name]["accuracy_by_shift"]
        lay[name]["drop_at_max_shift"] = acc["0"]["mean"] - acc[far]["mean"]
        lay[name]["drops_by_seed"] = [a - b for a, b in zip(acc["0"]["values"], acc[far]["values"])]
    numbers["max_shift"] = SHIFTS[-1]
    result = LabResult(numbers, _figure(numbers), settings={
        "data": data.info, "epochs": epochs, "seeds": ctx.seeds, "optimizer": "adam 3e-3 onecycle",
        "layers": "5x5 stride 2 pad 2 -> 8 channels, 3x3 stride 2 pad 1 -> 16 channels, ReLU, linear",
        "shift": "4 axis directions, uncovered pixels set to the background"},
        table=markdown_table(["layer", "params", "feature-layer params", "MACs",
                              *(f"acc, shift {p}px" for p in SHIFTS)], rows))
    result.conclude("Same shapes, same MACs ({m}): the locally connected layers hold {a:,} weights, {r:.0f}x the "
                    "convolutions' {b:,} (every output position has its own filters).",
                    m="layers.conv.macs", a="layers.local.feature_params", r="param_ratio", b="layers.conv.feature_params")
    result.conclude("On unshifted test images (seed std {cs:.4f} and {ls:.4f}): "
                    + verdict("conv", lay["conv"]["accuracy_by_shift"]["0"]["values"], "locally connected",
                              lay["local"]["accuracy_by_shift"]["0"]["values"]) + ".",
                    c="layers.conv.accuracy_by_shift.0.mean", l="layers.local.accuracy_by_shift.0.mean",
                    cs="layers.conv.accuracy_by_shift.0.std", ls="layers.local.accuracy_by_shift.0.std")
    numbers["drop_difference"] = lay["local"]["drop_at_max_shift"] - lay["conv"]["drop_at_max_shift"]
    numbers["drop_seed_gap"] = seed_gap(lay["local"]["drops_by_seed"], lay["conv"]["drops_by_seed"])
    wording = {"higher": "weight sharing makes what is learned at one place usable at another.",
               "same": "a shift this large costs both nets about the same, and sharing alone does not make this "
                       "network shift-robust.",
               "lower": "here the locally connected net held up better than the conv net."}
    fall = judged("locally connected", lay["local"]["drops_by_seed"], "conv", lay["conv"]["drops_by_seed"], wording)
    result.conclude("Shifted by {p} pixels, accuracy falls by {c:.4f} for the conv net and by {l:.4f} for the locally "
                    "connected one; the fall, locally connected against conv: " + fall,
                    p="max_shift", c="layers.conv.drop_at_max_shift", l="layers.local.drop_at_max_shift",
                    d="drop_difference")
    return result


def _figure(numbers: dict):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    lay = numbers["layers"]
    for i, name in enumerate(lay):
        acc = lay[name]["accuracy_by_shift"]
        axes[0].errorbar(SHIFTS, [acc[str(p)]["mean"] for p in SHIFTS], yerr=[acc[str(p)]["std"] for p in SHIFTS],
                         fmt="o-", capsize=3, color=f"C{i}", label=f"{name} ({lay[name]['params']:,} params)")
    axes[0].set(title="test accuracy vs shift of the test images", xlabel="shift (pixels)", ylabel="accuracy")
    axes[0].legend()
    axes[1].bar(list(lay), [lay[n]["feature_params"] for n in lay], color=["C0", "C1"])
    axes[1].set(title="weights of the two feature layers", yscale="log")
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig
