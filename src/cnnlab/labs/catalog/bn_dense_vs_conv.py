"""000 Q1d: BatchNorm in fully connected vs convolutional layers (Ioffe & Szegedy 2015, Sec. 3.2).

In a fully connected layer every unit is a feature with its own mean, variance, scale and shift,
estimated over the B samples of the batch. In a conv layer the paper normalises per *channel*:
all B·H·W values of a feature map share one mean/variance and one (γ, β), so the normalisation
obeys the convolutional property (the same filter response is treated the same at every
position) and each statistic is estimated from H·W times more values. The lab trains the same
CNN with BatchNorm2d (per channel), with BatchNorm1d on the flattened conv features (per
position, the fully connected recipe) and without normalisation, and measures parameters,
values per statistic, accuracy over seeds and the translation equivariance of the first block.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnlab.core.text import judged, markdown_table, seed_gap, spread
from cnnlab.labs.frame import LabContext, LabResult, as_float, lab_data, register_lab, train_small
from cnnlab.models import create_model
from cnnlab.models.layers import FeatureBatchNorm

VARIANTS = ("per-channel", "per-feature", "none")
LABEL = {"per-channel": "BatchNorm2d (per channel)", "per-feature": "BatchNorm1d on flattened features (per position)",
         "none": "no normalisation"}


def per_feature_batchnorm(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """Replace every BatchNorm2d of ``model`` by a :class:`FeatureBatchNorm` for the map it sees on ``example``."""
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: shapes.__setitem__(name, tuple(inp[0].shape[1:])))
             for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        model.eval()(example)
    for h in hooks:
        h.remove()
    for name, shape in shapes.items():
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, FeatureBatchNorm(shape))
    return model.train()


def norm_parameters(model: nn.Module) -> tuple[int, int]:
    """Learned scale+shift parameters and running-statistic values of the model's normalisation layers."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    params = sum(p.numel() for m in norms for p in m.parameters())
    buffers = sum(m.running_mean.numel() + m.running_var.numel() for m in norms)
    return params, buffers


def equivariance_error(block: nn.Module, x: torch.Tensor, shift: int = 2) -> float:
    """|block(shift(x)) - shift(block(x))| / |block(x)| away from the borders, in eval mode.

    A conv followed by a per-channel affine map and ReLU commutes with translation (up to the
    borders); a per-position affine map does not.
    """
    block.eval()
    with torch.no_grad():
        a = block(torch.roll(x, shift, dims=3))
        b = torch.roll(block(x), shift, dims=3)
    m = 2 * shift + 1
    a, b = a[..., m:-m, m:-m], b[..., m:-m, m:-m]
    return float((a - b).norm() / b.norm())


def _model(variant: str, data, width: int, seed: int, example: torch.Tensor) -> nn.Module:
    torch.manual_seed(seed)
    model = create_model("simple-cnn", data.num_classes, data.in_chans, width=width, dropout=0.0,
                         norm="none" if variant == "none" else "batch")
    return per_feature_batchnorm(model, example) if variant == "per-feature" else model


@register_lab("bn-dense-vs-conv", "000 Q1d",
              "BatchNorm in dense vs conv layers: per-feature vs per-channel statistics, parameters and accuracy")
def run(ctx: LabContext) -> LabResult:
    data = lab_data(ctx, n_train=ctx.pick(256, 4000), n_test=ctx.pick(256, 2000))
    epochs, width, batch = ctx.pick(1, 3), 8, 64
    x_test = as_float(data.test, data.mean, data.std)
    example = x_test[:2]
    numbers: dict = {"variants": {}}
    for variant in VARIANTS:
        accs, equi = [], []
        for seed in ctx.seeds:
            model = _model(variant, data, width, seed, example)
            res = train_small(ctx, model, data, epochs=epochs, lr=0.05, batch_size=batch, seed=seed)
            accs.append(res["test_accuracy"])
            equi.append(equivariance_error(model[0], x_test[:256]))
        params, buffers = norm_parameters(model)
        first = next((m for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d))), None)
        pooled = None if first is None else batch * (data.image_size[0] * data.image_size[1]
                                                      if isinstance(first, nn.BatchNorm2d) else 1)
        numbers["variants"][variant] = {"norm_parameters": params, "running_statistics": buffers,
                                        "values_per_statistic": pooled, "test_accuracy": spread(accs),
                                        "equivariance_error": spread(equi)}
    v = numbers["variants"]
    numbers["parameter_ratio"] = v["per-feature"]["norm_parameters"] / v["per-channel"]["norm_parameters"]
    numbers["accuracy_difference"] = v["per-channel"]["test_accuracy"]["mean"] - v["per-feature"]["test_accuracy"]["mean"]
    numbers["accuracy_seed_gap"] = seed_gap(v["per-channel"]["test_accuracy"]["values"],
                                            v["per-feature"]["test_accuracy"]["values"])
    table = markdown_table(["normalisation", "γ,β parameters", "running stats", "values per statistic (first layer)",
                            "test accuracy (mean ± std)", "translation error of block 1"],
                           [[LABEL[k], r["norm_parameters"], r["running_statistics"], r["values_per_statistic"] or "-",
                             f"{r['test_accuracy']['mean']:.3f} ± {r['test_accuracy']['std']:.3f}",
                             f"{r['equivariance_error']['mean']:.2e}"] for k, r in v.items()])
    result = LabResult(numbers, _figure(v), table=table, settings={
        "data": data.info, "model": f"simple-cnn width {width}, dropout 0", "epochs": epochs, "batch_size": batch,
        "lr": 0.05, "optimizer": "SGD, Nesterov momentum 0.9, one-cycle", "seeds": ctx.seeds,
        "equivariance": "first conv block in eval mode, input rolled 2 pixels, borders cropped"})
    _conclude(result, numbers)
    return result


def _conclude(result: LabResult, n: dict) -> None:
    result.conclude("Per-channel BatchNorm learns {a} scale/shift parameters in this CNN; BatchNorm1d on the "
                    "flattened conv features learns {b} ({r:.0f}x more), one pair per position.",
                    a="variants.per-channel.norm_parameters", b="variants.per-feature.norm_parameters",
                    r="parameter_ratio")
    result.conclude("Each per-channel statistic of the first layer averages {a} values (batch x positions); each "
                    "per-feature one only {b} (the batch).",
                    a="variants.per-channel.values_per_statistic", b="variants.per-feature.values_per_statistic")
    wording = {"higher": "the convolutional form of BatchNorm did better, beyond seed noise.",
               "same": "the two forms are within seed noise of each other on accuracy.",
               "lower": "the per-feature form did better here, beyond seed noise."}
    v = n["variants"]
    verdict = judged("per channel", v["per-channel"]["test_accuracy"]["values"], "per feature",
                     v["per-feature"]["test_accuracy"]["values"], wording)
    result.conclude("Test accuracy: {a:.3f} ± {sa:.3f} per channel, {b:.3f} ± {sb:.3f} per feature, {c:.3f} ± {sc:.3f} "
                    "without normalisation: " + verdict,
                    a="variants.per-channel.test_accuracy.mean", sa="variants.per-channel.test_accuracy.std",
                    b="variants.per-feature.test_accuracy.mean", sb="variants.per-feature.test_accuracy.std",
                    c="variants.none.test_accuracy.mean", sc="variants.none.test_accuracy.std")
    kept = n["variants"]["per-channel"]["equivariance_error"]["mean"] < n["variants"]["per-feature"]["equivariance_error"]["mean"]
    result.conclude("Shifting the input by 2 pixels shifts the first block's output with a relative error of {a:.1e} "
                    "per channel and {b:.1e} per feature: " +
                    ("per-position statistics break the convolution's translation equivariance." if kept else
                     "both kept it equally here."),
                    a="variants.per-channel.equivariance_error.mean", b="variants.per-feature.equivariance_error.mean")


def _figure(v: dict):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    names = list(v)
    labels = ["per channel\n(BatchNorm2d)", "per feature\n(BatchNorm1d)", "none"]
    axes[0].bar(labels, [v[k]["norm_parameters"] for k in names], color=["C0", "C1", "C2"])
    axes[0].set_yscale("symlog")
    axes[0].set_title("normalisation parameters (γ, β)")
    axes[1].bar(labels, [v[k]["test_accuracy"]["mean"] for k in names], yerr=[v[k]["test_accuracy"]["std"] for k in names],
                capsize=4, color=["C0", "C1", "C2"])
    axes[1].set_ylim(min(v[k]["test_accuracy"]["mean"] for k in names) - 0.1, 1)
    axes[1].set_title("test accuracy (mean ± std over seeds)")
    axes[2].bar(labels, [max(v[k]["equivariance_error"]["mean"], 1e-9) for k in names], color=["C0", "C1", "C2"])
    axes[2].set_yscale("log")
    axes[2].set_title("translation error of block 1 (eval mode)")
    for ax in axes:
        ax.grid(alpha=0.3, axis="y")
    return fig
