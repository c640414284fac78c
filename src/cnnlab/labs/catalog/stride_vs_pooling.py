"""001 Sec.4a: downsampling by a strided convolution, by max pooling or by average pooling.

A stride-2 conv computes a quarter of the outputs (4x fewer MACs than the conv + pool it replaces)
and learns how to downsample; max pooling keeps the strongest response of each window (small
shifts inside a window change nothing); average pooling low-pass filters first, which reduces
aliasing. All three have the same weights here. The lab trains the same network with each and
measures accuracy, MACs, CPU time per step, and shift sensitivity: how often the predicted class
changes when a test image moves by 1-3 pixels.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnlab.core.text import judged, markdown_table, seed_gap, spread
from cnnlab.labs.frame import (LabContext, LabResult, as_float, background, lab_data, predict, register_lab, shift,
                               train_seeds, train_step_seconds)
from cnnlab.analysis.complexity import count_macs
from cnnlab.models.layers import ClassifierHead, ConvBNAct

KINDS = ("strided", "maxpool", "avgpool")
WIDTHS = (8, 16, 32)
SHIFTS = (1, 2, 3)


def down(kind: str, c_in: int, c_out: int) -> list[nn.Module]:
    """A 3x3 conv that halves the resolution: by its own stride, or followed by a 2x2 pool."""
    if kind == "strided":
        return [ConvBNAct(c_in, c_out, 3, stride=2)]
    return [ConvBNAct(c_in, c_out, 3), nn.MaxPool2d(2) if kind == "maxpool" else nn.AvgPool2d(2)]


def network(kind: str, in_chans: int, classes: int) -> nn.Module:
    a, b, c = WIDTHS
    return nn.Sequential(ConvBNAct(in_chans, a), *down(kind, a, b), *down(kind, b, c), ConvBNAct(c, c),
                         ClassifierHead(c, classes))


def shift_sensitivity(model: nn.Module, x: torch.Tensor, fill: torch.Tensor, pixels: int) -> dict:
    """Share of images whose predicted class changes under a shift of ``pixels`` (mean over the 4 axis directions)."""
    base = predict(model, x).argmax(1)
    changed = [float((predict(model, shift(x, dy, dx, fill)).argmax(1) != base).float().mean())
               for dy, dx in ((pixels, 0), (-pixels, 0), (0, pixels), (0, -pixels))]
    return spread(changed)["mean"]


@register_lab("stride-vs-pooling", "001 Sec.4a",
              "Downsampling by strided conv vs max pool vs average pool: accuracy, MACs, speed, shift sensitivity")
def run(ctx: LabContext) -> LabResult:
    data = lab_data(ctx, n_train=ctx.pick(300, 3000), n_test=ctx.pick(300, 2000))
    epochs = ctx.pick(1, 3)
    x = as_float(data.test, data.mean, data.std)[:ctx.pick(100, 400)]  # shifted 12 ways per trained net
    fill = background(data)
    xs = torch.randn(64, data.in_chans, *data.image_size)
    ys = torch.randint(0, data.num_classes, (64,))
    numbers: dict = {"kinds": {}}
    rows = []
    for kind in KINDS:
        sens: dict[int, list[float]] = {p: [] for p in SHIFTS}
        accs = []
        for seed in ctx.seeds:
            trained = train_seeds(ctx, lambda: network(kind, data.in_chans, data.num_classes), data, seeds=[seed],
                                  epochs=epochs, lr=0.05, weight_decay=5e-4)
            accs.append(trained["accuracy"]["mean"])
            for p in SHIFTS:
                sens[p].append(shift_sensitivity(trained["model"], x, fill, p))
        net = trained["model"]
        numbers["kinds"][kind] = {
            "params": sum(p.numel() for p in net.parameters()), "macs": count_macs(net, (data.in_chans, *data.image_size)),
            "step_cpu_seconds": train_step_seconds(net, xs, ys, repeats=ctx.pick(1, 3)), "accuracy": spread(accs),
            "changed_by_shift": {str(p): spread(v) for p, v in sens.items()}}
        k = numbers["kinds"][kind]
        rows.append([kind, k["params"], k["macs"], k["step_cpu_seconds"], k["accuracy"]["mean"], k["accuracy"]["std"],
                     *(k["changed_by_shift"][str(p)]["mean"] for p in SHIFTS)])
    kinds = numbers["kinds"]
    best = max(KINDS, key=lambda kd: kinds[kd]["accuracy"]["mean"])
    steady = min(KINDS, key=lambda kd: kinds[kd]["changed_by_shift"]["1"]["mean"])
    numbers.update(best=best, steadiest=steady,
                   mac_ratio=kinds["strided"]["macs"] / kinds["maxpool"]["macs"],
                   time_ratio=kinds["strided"]["step_cpu_seconds"] / kinds["maxpool"]["step_cpu_seconds"])
    second = sorted(KINDS, key=lambda kd: kinds[kd]["accuracy"]["mean"])[-2]
    numbers["best_margin"] = kinds[best]["accuracy"]["mean"] - kinds[second]["accuracy"]["mean"]
    numbers["second"] = second
    numbers["best_vs_second"] = seed_gap(kinds[best]["accuracy"]["values"], kinds[second]["accuracy"]["values"])
    result = LabResult(numbers, _figure(numbers), settings={
        "data": data.info, "epochs": epochs, "seeds": ctx.seeds, "widths": WIDTHS, "shifts_px": SHIFTS,
        "shift": f"4 axis directions on {len(x)} test images, uncovered pixels set to the background; share of "
                 "images whose class changes"},
        table=markdown_table(["downsampling", "params", "MACs", "train step CPU s", "test acc", "std",
                              *(f"changed by {p}px shift" for p in SHIFTS)], rows))
    result.conclude("Same parameters ({p}): the strided convs need {m:.3f} of the MACs of conv + pool and {t:.3f} of "
                    "the CPU time per training step.", p="kinds.strided.params", m="mac_ratio", t="time_ratio")
    wording = {"higher": f"{best} is a clear winner beyond seed noise.",
               "same": f"{best} has the highest mean but is within seed noise of {second}: no winner.",
               "lower": ""}  # the best mean minus the runner-up's is never negative
    verdict = judged(best, kinds[best]["accuracy"]["values"], second, kinds[second]["accuracy"]["values"], wording)
    result.conclude("Test accuracy: strided {s:.4f}, max pool {m:.4f}, average pool {a:.4f}; best against runner-up: "
                    + verdict, s="kinds.strided.accuracy.mean", m="kinds.maxpool.accuracy.mean",
                    a="kinds.avgpool.accuracy.mean", g="best_margin")
    runner = sorted(KINDS, key=lambda kd: kinds[kd]["changed_by_shift"]["1"]["mean"])[1]
    numbers["steadiest_vs_runner_up"] = seed_gap(kinds[steady]["changed_by_shift"]["1"]["values"],
                                                 kinds[runner]["changed_by_shift"]["1"]["values"])
    steadiness = judged(steady, kinds[steady]["changed_by_shift"]["1"]["values"], runner,
                        kinds[runner]["changed_by_shift"]["1"]["values"],
                        {"lower": f"{steady} is the least shift-sensitive beyond seed noise",
                         "same": f"{steady} changed the fewest predictions, but within seed noise of {runner}",
                         "higher": ""})  # the fewest changes minus the runner-up's is never positive
    result.conclude("A 1-pixel shift changes the prediction of {s:.1%} of test images with strided convs, {m:.1%} "
                    "with max pooling and {a:.1%} with average pooling (3 pixels: {s3:.1%}, {m3:.1%}, {a3:.1%}); "
                    "share changed by 1 pixel, least against next: " + steadiness + ".",
                    s="kinds.strided.changed_by_shift.1.mean", m="kinds.maxpool.changed_by_shift.1.mean",
                    a="kinds.avgpool.changed_by_shift.1.mean", s3="kinds.strided.changed_by_shift.3.mean",
                    m3="kinds.maxpool.changed_by_shift.3.mean", a3="kinds.avgpool.changed_by_shift.3.mean")
    return result


def _figure(numbers: dict):
    import matplotlib.pyplot as plt

    kinds = numbers["kinds"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    axes[0].bar(KINDS, [kinds[k]["accuracy"]["mean"] for k in KINDS], yerr=[kinds[k]["accuracy"]["std"] for k in KINDS],
                capsize=4, color=["C0", "C1", "C2"])
    lo = min(kinds[k]["accuracy"]["mean"] for k in KINDS)
    axes[0].set(title="test accuracy (mean ± std over seeds)", ylim=(max(0.0, lo - 0.1), 1.0))
    for i, k in enumerate(KINDS):
        axes[1].errorbar(SHIFTS, [kinds[k]["changed_by_shift"][str(p)]["mean"] for p in SHIFTS],
                         yerr=[kinds[k]["changed_by_shift"][str(p)]["std"] for p in SHIFTS], fmt="o-", color=f"C{i}",
                         capsize=3, label=k)
    axes[1].set(title="share of predictions changed by a shift", xlabel="shift (pixels)", ylabel="changed")
    axes[1].legend()
    axes[2].bar(KINDS, [kinds[k]["macs"] / kinds["maxpool"]["macs"] for k in KINDS], color="C7", label="MACs")
    axes[2].plot(KINDS, [kinds[k]["step_cpu_seconds"] / kinds["maxpool"]["step_cpu_seconds"] for k in KINDS], "ko-",
                 label="train-step CPU time")
    axes[2].set(title="cost relative to max pooling")
    axes[2].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig
