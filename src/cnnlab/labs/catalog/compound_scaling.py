"""004 Ex1: EfficientNet's compound scaling against scaling one dimension, at equal MACs.

A CNN's MACs grow linearly with depth and quadratically with width and resolution, so scaling
depth by alpha, width by beta and resolution by gamma multiplies them by about ``alpha beta² gamma²``.
Tan & Le fix ``alpha beta² gamma² ≈ 2`` (alpha = 1.2, beta = 1.1, gamma = 1.15, the registry's
``efficientnet`` constants) and scale all three by ``phi``; scaling one dimension alone to the same
MACs gives a deeper, a wider or a higher-resolution net. The registry's EfficientNet is far too slow
to train nine times on a CPU, so the lab applies the same rule (and the same rounding of blocks
and channels) to a small plain CNN on Fashion-MNIST whose base sees 16x16 images, and trains every
variant with three seeds.
"""
from __future__ import annotations

import math

from torch import nn

from cnnlab.core.text import judged, markdown_table, seed_gap
from cnnlab.labs.frame import LabContext, LabResult, lab_data, register_lab, resized, train_seeds
from cnnlab.analysis.complexity import count_macs
from cnnlab.models.efficientnet import ALPHA, BETA, GAMMA, scale_repeats
from cnnlab.models.layers import ClassifierHead, ConvBNAct, make_divisible

BASE_WIDTHS, BASE_REPEATS, BASE_RESOLUTION = (8, 16, 32), (2, 2, 2), 16
TARGET = ALPHA * BETA ** 2 * GAMMA ** 2  # MACs factor per unit of phi (~1.92)
METHODS = {  # (depth, width, resolution) multipliers for compound coefficient phi, all aiming at TARGET**phi MACs
    "depth": lambda phi: (TARGET ** phi, 1.0, 1.0),
    "width": lambda phi: (1.0, TARGET ** (phi / 2), 1.0),
    "resolution": lambda phi: (1.0, 1.0, TARGET ** (phi / 2)),
    "compound": lambda phi: (ALPHA ** phi, BETA ** phi, GAMMA ** phi),
}


def scaled_net(depth: float, width: float, in_chans: int, classes: int) -> nn.Module:
    """Three stages of 3x3 conv-BN-ReLU (stride 2 between stages), blocks and channels scaled and rounded
    the EfficientNet way (``scale_repeats``, ``make_divisible`` to multiples of 4)."""
    layers: list[nn.Module] = []
    c_in = in_chans
    for i, (w, n) in enumerate(zip(BASE_WIDTHS, BASE_REPEATS)):
        c_out = make_divisible(w * width, 4)
        for j in range(scale_repeats(n, depth)):
            layers.append(ConvBNAct(c_in, c_out, 3, 2 if (i > 0 and j == 0) else 1))
            c_in = c_out
    return nn.Sequential(*layers, ClassifierHead(c_in, classes))


@register_lab("compound-scaling", "004 Ex1",
              "Scaling depth, width, resolution or all three (alpha*beta^2*gamma^2 ~ 2) to equal MACs: accuracy vs MACs")
def run(ctx: LabContext) -> LabResult:
    phis = ctx.pick((1,), (1, 2))
    full = lab_data(ctx, n_train=ctx.pick(300, 2500), n_test=ctx.pick(300, 2000))
    epochs = ctx.pick(1, 3)
    base_macs = count_macs(scaled_net(1, 1, full.in_chans, full.num_classes), (full.in_chans, BASE_RESOLUTION,
                                                                               BASE_RESOLUTION))
    numbers: dict = {"alpha": ALPHA, "beta": BETA, "gamma": GAMMA, "target_per_phi": TARGET, "base_macs": base_macs,
                     "variants": {}}
    rows = []
    cases = [("base", 0, (1.0, 1.0, 1.0))] + [(m, phi, METHODS[m](phi)) for phi in phis for m in METHODS]
    for method, phi, (d, w, r) in cases:
        resolution = round(BASE_RESOLUTION * r)
        data = resized(full, resolution)
        trained = train_seeds(ctx, lambda: scaled_net(d, w, data.in_chans, data.num_classes), data, epochs=epochs,
                              lr=0.05, weight_decay=5e-4)
        net = trained["model"]
        macs = count_macs(net, (data.in_chans, resolution, resolution))
        key = "base" if phi == 0 else f"{method}_phi{phi}"
        numbers["variants"][key] = {
            "method": method, "phi": phi, "depth_mult": d, "width_mult": w, "resolution": resolution,
            "blocks": sum(isinstance(m, ConvBNAct) for m in net), "macs": macs, "macs_vs_base": macs / base_macs,
            "target_vs_base": TARGET ** phi, "params": sum(p.numel() for p in net.parameters()),
            "accuracy": trained["accuracy"], "train_seconds": trained["seconds"]}
        v = numbers["variants"][key]
        rows.append([key, f"{d:.2f}", f"{w:.2f}", resolution, v["blocks"], v["macs"], v["macs_vs_base"],
                     v["accuracy"]["mean"], v["accuracy"]["std"]])
    top = phis[-1]
    v = numbers["variants"]
    singles = ("depth", "width", "resolution")
    best_single = max(singles, key=lambda m: v[f"{m}_phi{top}"]["accuracy"]["mean"])
    numbers.update(top_phi=top, best_single=best_single,
                   compound_minus_best_single=v[f"compound_phi{top}"]["accuracy"]["mean"]
                   - v[f"{best_single}_phi{top}"]["accuracy"]["mean"],
                   compound_vs_best_single=seed_gap(v[f"compound_phi{top}"]["accuracy"]["values"],
                                                    v[f"{best_single}_phi{top}"]["accuracy"]["values"]),
                   worst_mac_mismatch_factor=math.exp(max(abs(math.log(x["macs_vs_base"] / x["target_vs_base"]))
                                                          for x in v.values())))
    result = LabResult(numbers, _figure(numbers), settings={
        "data": full.info, "epochs": epochs, "seeds": ctx.seeds, "base": {"widths": BASE_WIDTHS,
                                                                          "repeats": BASE_REPEATS,
                                                                          "resolution": BASE_RESOLUTION},
        "phis": list(phis), "resolution": "Fashion-MNIST (28x28) resized to each variant's resolution"},
        table=markdown_table(["variant", "depth x", "width x", "resolution", "conv layers", "MACs", "MACs / base",
                              "test acc", "std"], rows))
    result.conclude("alpha·beta²·gamma² = {t:.3f}: each step of phi nearly doubles the MACs; after rounding blocks, "
                    "channels and pixels the variants land within a factor {e:.2f} of their MAC target.",
                    t="target_per_phi", e="worst_mac_mismatch_factor")
    wording = {"higher": "compound scaling wins beyond seed noise, as Tan & Le found.",
               "same": "compound and the best single dimension are within seed noise on this small task.",
               "lower": "here one dimension alone does better than compound scaling."}
    verdict = judged("compound", v[f"compound_phi{top}"]["accuracy"]["values"], f"{best_single} only",
                     v[f"{best_single}_phi{top}"]["accuracy"]["values"], wording)
    result.conclude(f"At phi = {top} (about {{m:.2f}}x the base MACs): depth only {{d:.4f}}, width only {{w:.4f}}, "
                    f"resolution only {{r:.4f}}, compound {{c:.4f}} (base {{b:.4f}}); compound against the best single "
                    f"dimension: " + verdict,
                    m=f"variants.compound_phi{top}.macs_vs_base", d=f"variants.depth_phi{top}.accuracy.mean",
                    w=f"variants.width_phi{top}.accuracy.mean", r=f"variants.resolution_phi{top}.accuracy.mean",
                    c=f"variants.compound_phi{top}.accuracy.mean", b="variants.base.accuracy.mean",
                    g="compound_minus_best_single")
    return result


def _figure(numbers: dict):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    v = numbers["variants"]
    base = v["base"]
    for i, method in enumerate(METHODS):
        pts = [base] + sorted((x for x in v.values() if x["method"] == method), key=lambda x: x["phi"])
        ax.errorbar([p["macs"] for p in pts], [p["accuracy"]["mean"] for p in pts],
                    yerr=[p["accuracy"]["std"] for p in pts], fmt="o-", capsize=3, color=f"C{i}", label=method)
    ax.set(xscale="log", title="test accuracy vs MACs (mean ± std over seeds)", xlabel="MACs per image",
           ylabel="test accuracy")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return fig
