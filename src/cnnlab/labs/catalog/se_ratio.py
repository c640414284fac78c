"""000 Q4a-b: squeeze-and-excitation, its reduction ratio r, and what the excitation does by depth.

The excitation ``s = sigmoid(W2 relu(W1 z))`` with ``W1: C/r x C`` and ``W2: C x C/r`` costs ``2C²/r``
weights: r trades parameters (and the capacity to model channel interactions) for cost. Hu et al.
found accuracy flat over a wide range of r and early-layer excitations alike for every class
(generic features), later ones class-specific. The lab trains the same small SE-ResNet with
r in {2, 4, 8, 16, 32} and without SE, and measures, in the trained r = 4 network, how much of
each SE block's excitation variance is explained by the class (eta², between-class variance of
the class means over the total variance, averaged over channels).
"""
from __future__ import annotations

import torch
from torch import nn

from cnnlab.core.text import markdown_table, seed_gap, verdict, verdict_sentence
from cnnlab.labs.frame import LabContext, LabResult, as_float, lab_data, register_lab, resized, train_seeds
from cnnlab.models.layers import SqueezeExcite
from cnnlab.models.resnet import ResNet, _basic

RATIOS = (2, 4, 8, 16, 32)
PROBE_RATIO = 4
WIDTHS = [16, 32, 64]


def build(r: int | None, in_chans: int, classes: int) -> ResNet:
    """A 3-stage SE-ResNet (one basic block per stage, 16/32/64 channels); ``r=None``: no SE."""
    return ResNet(_basic(r), [1, 1, 1], WIDTHS, classes, in_chans, stem="cifar", stem_width=WIDTHS[0])


@torch.no_grad()
def excitations(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Each SE block's excitation ``s`` (N x C, in (0, 1)) for the images ``x``, blocks in depth order."""
    found: list[torch.Tensor] = []
    hooks = [m.expand.register_forward_hook(lambda _m, _i, out: found.append(torch.sigmoid(out.flatten(1))))
             for m in model.modules() if isinstance(m, SqueezeExcite)]
    try:
        model.eval()(x)
    finally:
        for h in hooks:
            h.remove()
    return found


def class_specificity(s: torch.Tensor, labels: torch.Tensor, classes: int) -> float:
    """eta² per channel (between-class variance of the class means / total variance), averaged."""
    total = s.var(0, unbiased=False)
    means = torch.stack([s[labels == c].mean(0) for c in range(classes) if (labels == c).any()])
    counts = torch.stack([(labels == c).sum() for c in range(classes) if (labels == c).any()]).to(s.dtype)
    between = ((means - s.mean(0)) ** 2 * counts[:, None]).sum(0) / counts.sum()
    return float((between / total.clamp_min(1e-12)).mean())


@register_lab("se-ratio", "000 Q4a-b",
              "Squeeze-and-excitation: reduction ratio r vs parameters and accuracy; excitations by depth")
def run(ctx: LabContext) -> LabResult:
    data = resized(lab_data(ctx, n_train=ctx.pick(300, 4000), n_test=ctx.pick(300, 2000)), 14)
    epochs = ctx.pick(1, 5)
    numbers: dict = {"variants": {}}
    rows, probe_model = [], None
    ratios = ctx.pick((2, 4, 32), RATIOS)
    for r in (None, *ratios):
        name = "none" if r is None else f"r{r}"
        trained = train_seeds(ctx, lambda: build(r, data.in_chans, data.num_classes), data, epochs=epochs, lr=0.05,
                              weight_decay=5e-4)
        params = sum(p.numel() for p in trained["model"].parameters())
        se_params = sum(p.numel() for m in trained["model"].modules() if isinstance(m, SqueezeExcite)
                        for p in m.parameters())
        numbers["variants"][name] = {"r": r, "params": params, "se_params": se_params,
                                     "accuracy": trained["accuracy"], "seconds": trained["seconds"]}
        rows.append([name, params, se_params, trained["accuracy"]["mean"], trained["accuracy"]["std"]])
        if r == PROBE_RATIO:
            probe_model = trained["model"]
    x = as_float(data.test, data.mean, data.std)
    labels = data.test.labels
    per_block = excitations(probe_model, x)
    numbers["excitation"] = {
        "eta2_by_depth": [class_specificity(s, labels, data.num_classes) for s in per_block],
        "class_means": [[s[labels == c].mean(0).tolist() for c in range(data.num_classes)] for s in per_block],
        "mean_by_depth": [float(s.mean()) for s in per_block],
    }
    v = numbers["variants"]
    best = max(ratios, key=lambda r: v[f"r{r}"]["accuracy"]["mean"])
    numbers["best_r"] = best
    numbers["best_vs_none"] = seed_gap(v[f"r{best}"]["accuracy"]["values"], v["none"]["accuracy"]["values"])
    numbers["se_share_r2"] = v["r2"]["se_params"] / v["r2"]["params"]
    result = LabResult(numbers, _figure(numbers, data.classes), settings={
        "data": data.info, "epochs": epochs, "seeds": ctx.seeds, "widths": WIDTHS, "probe_r": PROBE_RATIO,
        "model": "stem conv + 3 basic blocks (SE before the addition), GAP, linear"},
        table=markdown_table(["SE", "params", "SE params", "test acc", "std over seeds"], rows))
    numbers["formula_r32"] = sum(2 * c * c // 32 for c in WIDTHS)
    result.conclude("SE adds 2C²/r weights per block plus C/r + C biases (C/r rounded down, at least 1): {a} parameters "
                    "at r = 2 ({s:.1%} of the network) down to {b} at r = 32, where 2C²/r alone gives {f}.",
                    a="variants.r2.se_params", s="se_share_r2", b="variants.r32.se_params", f="formula_r32")
    meaning = verdict_sentence(
        {"higher": "SE helps.", "lower": "even the best SE variant is worse than none.",
         "same": "no difference shown: at this size SE and its r may hardly matter (Hu et al. found accuracy flat "
                 "over a wide range of r)."},
        numbers["best_vs_none"]["difference"], numbers["best_vs_none"]["se"])
    result.conclude("Test accuracy of the best ratio, r = {r}, against no SE: " + verdict(f"r = {best}", v[f"r{best}"]["accuracy"]["values"],
                                                          "no SE", v["none"]["accuracy"]["values"]) + "; " + meaning,
                    r="best_r", d="best_vs_none.difference")  # d: the difference verdict() prints
    eta = numbers["excitation"]["eta2_by_depth"]
    rising = eta[-1] > eta[0]
    result.conclude("In the trained r = 4 network the class explains {a:.3f} of the excitation variance in the first "
                    "SE block and {b:.3f} in the last: " + (
                        "the excitations grow more class-specific with depth (SE's role changes with depth), "
                        "though the class already shapes the early ones." if rising else "the excitations did NOT become more class-specific with depth here."),
                    a="excitation.eta2_by_depth.0", b=f"excitation.eta2_by_depth.{len(eta) - 1}")
    return result


def _figure(numbers: dict, classes: list[str]):
    import matplotlib.pyplot as plt

    v = numbers["variants"]
    ex = numbers["excitation"]
    fig, axes = plt.subplots(1, 2 + len(ex["class_means"]), figsize=(5 * (2 + len(ex["class_means"])), 4.2))
    names = list(v)
    axes[0].errorbar([v[n]["params"] for n in names], [v[n]["accuracy"]["mean"] for n in names],
                     yerr=[v[n]["accuracy"]["std"] for n in names], fmt="o", capsize=3)
    for n in names:
        axes[0].annotate(n, (v[n]["params"], v[n]["accuracy"]["mean"]), fontsize=8, xytext=(3, 3),
                         textcoords="offset points")
    axes[0].set(title="test accuracy vs parameters (mean ± std over seeds)", xlabel="parameters", ylabel="accuracy")
    axes[1].bar(range(1, len(ex["eta2_by_depth"]) + 1), ex["eta2_by_depth"])
    axes[1].set(title="class-specificity of excitations (eta²)", xlabel="SE block (depth)", ylabel="eta²")
    for i, means in enumerate(ex["class_means"]):
        ax = axes[2 + i]
        for c, m in enumerate(means):
            ax.plot(m, lw=1, label=classes[c])
        ax.set(title=f"SE block {i + 1}: mean excitation per class", xlabel="channel", ylabel="s")
    axes[-1].legend(fontsize=6)
    for ax in axes[:2]:
        ax.grid(alpha=0.3)
    return fig
