"""004 Ex2: Inception-ResNet's residual scaling, and whether Inception-ResNet trains faster than Inception-v4.

Szegedy et al. (2017) report that Inception-ResNet variants with more than ~1000 filters "died" early
in training (the last layers before the pooling output only zeros) unless each residual branch was
multiplied by 0.1-0.3 before the addition. The reason is visible in the block
``a = relu(x + s * W(concat(branches(x))))``: the branch ends in a *linear* 1x1 conv with no
BatchNorm after it, and nothing normalises the sum, so every block adds its full-size output to
the stream; with wide branches and a large learning rate the stream's magnitude grows block after
block and step after step. The lab trains the same wide Inception-ResNet-v2 (``-cifar`` stem, every
width halved) with scale 1.0 and scale 0.2 at a large learning rate, and records the training loss
and the RMS of the stream after every residual block, at initialisation and after training.

The second claim: Inception-ResNet-v2 converges faster than Inception-v4 of similar cost. Both are
built at a quarter / a fifth of their widths so that their multiply-accumulates per image match
within a few percent, then trained identically; the lab compares their training-loss curves.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from cnnlab.core.text import markdown_table
from cnnlab.labs.frame import LabContext, LabResult, as_float, lab_data, register_lab, resized, train_small
from cnnlab.models import create_model
from cnnlab.analysis.complexity import count_macs, count_params
from cnnlab.models.layers import ScaledResidual
from cnnlab.core.seeding import seed_everything

IMAGE_SIZE = 8  # Fashion-MNIST at 8x8: the -cifar stems keep 8x8 into the first blocks, 3x3 and 1x1 after
WIDE = dict(width=0.5, blocks=(1, 1, 1))  # streams of 160, 544 and 1040 channels: past the paper's ~1000
TINY = dict(width=0.125, blocks=(1, 1, 1))  # --quick: the same shapes, a CPU-second of work
SCALES = {"unscaled": 1.0, "scaled": 0.2}  # the paper: 0.1-0.3
# Matched cost: Inception-ResNet-v2 at width 0.25 vs Inception-v4 at width 0.2, two blocks per stage
# (24.9M vs 25.1M MACs per 12x12 image; 1.19M vs 0.91M parameters).
MATCHED = {"inception-resnet-v2-cifar": dict(width=0.25, blocks=(2, 2, 2)),
           "inception-v4-cifar": dict(width=0.2, blocks=(2, 2, 2))}


def stream_rms(model: nn.Module, x: torch.Tensor) -> list[float]:
    """RMS of the activations after every residual block (the stream the next block adds to), eval mode."""
    rms: list[float] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: rms.append(float(out.float().pow(2).mean().sqrt())))
             for m in model.modules() if isinstance(m, ScaledResidual)]
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return rms


def _unstable(run: dict, chance: float) -> bool:
    """Diverged to NaN, ended worse than guessing (loss above ln K), or the stream grew 100x over its initial size."""
    if run["diverged"] or run["final_train_loss"] is None or run["final_train_loss"] > chance:
        return True
    trained = run["max_stream_rms_trained"]
    return trained is None or trained > 100 * max(run["stream_rms_init"])


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _scaling_run(ctx: LabContext, data, scale: float, probe: torch.Tensor, epochs: int, lr: float) -> dict:
    seed_everything(ctx.seed)
    model = create_model("inception-resnet-v2-cifar", num_classes=data.num_classes, in_chans=data.in_chans,
                         residual_scale=scale, **ctx.pick(TINY, WIDE))
    before = stream_rms(model, probe)
    run = train_small(ctx, model, data, epochs=epochs, lr=lr, schedule="none", batch_size=32)
    after = stream_rms(model, probe) if not run["diverged"] else []
    losses = [h["train_loss"] for h in run["history"]]
    return {"scale": scale, "diverged": run["diverged"], "train_loss": losses,
            "final_train_loss": losses[-1] if losses else None, "test_accuracy": run["test_accuracy"],
            "stream_rms_init": before, "stream_rms_trained": [_finite(v) for v in after],
            "max_stream_rms_trained": _finite(max(after)) if after else None,
            "stream_growth": _finite(max(after) / max(before)) if after else None,
            "last_over_first_init": before[-1] / before[0], "seconds": run["seconds"]}


def _matched_run(ctx: LabContext, data, name: str, epochs: int, lr: float) -> dict:
    seed_everything(ctx.seed)
    kw = dict(MATCHED[name], width=MATCHED[name]["width"] / 2) if ctx.quick else MATCHED[name]
    model = create_model(name, num_classes=data.num_classes, in_chans=data.in_chans, **kw)
    cost = {"params": count_params(model), "macs": count_macs(model, (data.in_chans, IMAGE_SIZE, IMAGE_SIZE))}
    run = train_small(ctx, model, data, epochs=epochs, lr=lr, batch_size=32)
    losses = [h["train_loss"] for h in run["history"]]
    return {**cost, "train_loss": losses, "val_accuracy": [h["val_accuracy"] for h in run["history"]],
            "test_accuracy": run["test_accuracy"], "diverged": run["diverged"], "seconds": run["seconds"]}


@register_lab("residual-scaling", "004 Ex2",
              "Inception-ResNet: residual scaling 1.0 vs 0.2 at a large learning rate (stream norms, loss), "
              "and Inception-ResNet-v2 vs Inception-v4 of equal cost")
def run(ctx: LabContext) -> LabResult:
    data = resized(lab_data(ctx, n_train=ctx.pick(32, 384), n_test=ctx.pick(32, 500), n_val=ctx.pick(16, 200)),
                   IMAGE_SIZE)
    probe = as_float(data.train, data.mean, data.std)[:64]
    epochs, big_lr, lr = ctx.pick(1, 3), 0.5, 0.05
    scaling = {key: _scaling_run(ctx, data, s, probe, epochs, big_lr) for key, s in SCALES.items()}
    matched = {name: _matched_run(ctx, data, name, epochs, lr) for name in MATCHED}
    numbers = {"epochs": epochs, "big_lr": big_lr, "chance_loss": math.log(data.num_classes), "scaling": scaling, "matched": matched}
    rows = [[f"IRv2 wide, scale {r['scale']}", r["diverged"], r["final_train_loss"], r["test_accuracy"],
             r["stream_rms_init"][-1], r["max_stream_rms_trained"]] for s, r in scaling.items()]
    rows += [[name, r["diverged"], r["train_loss"][-1] if r["train_loss"] else None, r["test_accuracy"], None, None]
             for name, r in matched.items()]
    result = LabResult(numbers, _figure(numbers), settings={
        "data": data.info, "epochs": epochs, "seed": ctx.seed,
        "wide_model": {k: list(v) if isinstance(v, tuple) else v for k, v in ctx.pick(TINY, WIDE).items()},
        "scaling_optimizer": f"sgd momentum 0.9, constant lr {big_lr}, batch 32",
        "matched_models": {k: {"width": v["width"], "blocks": list(v["blocks"])} for k, v in MATCHED.items()},
        "matched_optimizer": f"sgd momentum 0.9, onecycle peak lr {lr}, batch 32", "probe_images": len(probe)},
        table=markdown_table(["run", "diverged", "final train loss", "test acc", "stream RMS last block (init)",
                              "max stream RMS (trained)"], rows))
    _conclude(result)
    return result


def _conclude(r: LabResult) -> None:
    r.conclude("At initialisation the stream's RMS after the last residual block is {a:.3g} with scale 1.0 and "
               "{b:.3g} with scale 0.2 (growth over the blocks: x{ga:.3g} vs x{gb:.3g}).",
               a="scaling.unscaled.stream_rms_init.-1", b="scaling.scaled.stream_rms_init.-1", ga="scaling.unscaled.last_over_first_init",
               gb="scaling.scaled.last_over_first_init")
    chance = r.numbers["chance_loss"]
    unstable = {key: _unstable(run, chance) for key, run in r.numbers["scaling"].items()}
    r.numbers["unstable"] = unstable
    growth = ("the largest stream RMS after training was {c:.3g} (scale 1.0) vs {d:.3g} (scale 0.2), x{gc:.3g} vs "
              "x{gd:.3g} its largest value at initialisation")
    if unstable["unscaled"] and not unstable["scaled"]:
        verdict = "only the unscaled network became unstable: scaling the residuals kept it trainable, as the paper reports."
    elif unstable["unscaled"]:
        verdict = "both became unstable at this learning rate: scaling did not prevent it."
    elif unstable["scaled"]:
        verdict = "only the scaled network became unstable: the claim does not hold in this setting."
    else:
        verdict = "neither became unstable: at this width and depth the unscaled network trained too."
    if any(run["diverged"] for run in r.numbers["scaling"].values()):
        r.conclude("At learning rate {lr:g} the loss became NaN (scale 1.0: {na}, scale 0.2: {nb}): " + verdict,
                   lr="big_lr", na="scaling.unscaled.diverged", nb="scaling.scaled.diverged")
    else:
        r.conclude("After {e} epochs at learning rate {lr:g} the final training loss was {a:.3g} (scale 1.0) vs "
                   "{b:.3g} (scale 0.2; chance level {ch:.3f}) and " + growth + ": " + verdict,
                   e="epochs", lr="big_lr", a="scaling.unscaled.final_train_loss", b="scaling.scaled.final_train_loss",
                   ch="chance_loss", c="scaling.unscaled.max_stream_rms_trained",
                   d="scaling.scaled.max_stream_rms_trained", gc="scaling.unscaled.stream_growth",
                   gd="scaling.scaled.stream_growth")
    irv2, v4 = r.numbers["matched"]["inception-resnet-v2-cifar"], r.numbers["matched"]["inception-v4-cifar"]
    if irv2["diverged"] or v4["diverged"]:
        r.conclude("A matched-cost run diverged (Inception-ResNet-v2: {a}, Inception-v4: {b}); no convergence "
                   "comparison.", a="matched.inception-resnet-v2-cifar.diverged", b="matched.inception-v4-cifar.diverged")
        return
    lower = sum(a < b for a, b in zip(irv2["train_loss"], v4["train_loss"]))
    r.numbers["matched"]["epochs_irv2_lower_loss"] = lower
    r.conclude("At equal cost ({m1:.3g} vs {m2:.3g} MACs per image), Inception-ResNet-v2's training loss was lower "
               "than Inception-v4's in {k} of {n} epochs (first epoch {a:.3f} vs {b:.3f}, last {c:.3f} vs {d:.3f}; "
               "test accuracy {e:.4f} vs {f:.4f}): "
               + ("the residual version converged faster, as its authors report." if lower > len(irv2["train_loss"]) / 2
                  else "the residual version did NOT converge faster in this budget."),
               m1="matched.inception-resnet-v2-cifar.macs", m2="matched.inception-v4-cifar.macs",
               k="matched.epochs_irv2_lower_loss", n="epochs",
               a="matched.inception-resnet-v2-cifar.train_loss.0", b="matched.inception-v4-cifar.train_loss.0",
               c="matched.inception-resnet-v2-cifar.train_loss.-1", d="matched.inception-v4-cifar.train_loss.-1",
               e="matched.inception-resnet-v2-cifar.test_accuracy", f="matched.inception-v4-cifar.test_accuracy")


def _figure(numbers: dict):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    for i, r in enumerate(numbers["scaling"].values()):
        scale = r["scale"]
        axes[0].semilogy(range(1, len(r["stream_rms_init"]) + 1), r["stream_rms_init"], "--o", color=f"C{i}", ms=3,
                         label=f"scale {scale}, init")
        trained = [v if v is not None else float("nan") for v in r["stream_rms_trained"]]
        if trained:
            axes[0].semilogy(range(1, len(trained) + 1), trained, "-o", color=f"C{i}", ms=3,
                             label=f"scale {scale}, trained")
        axes[1].plot(range(1, len(r["train_loss"]) + 1), r["train_loss"], "-o", color=f"C{i}", ms=3,
                     label=f"scale {scale}" + (" (diverged)" if r["diverged"] else ""))
    for i, (name, r) in enumerate(numbers["matched"].items()):
        if isinstance(r, dict):
            axes[2].plot(range(1, len(r["train_loss"]) + 1), r["train_loss"], "-o", color=f"C{i + 2}", ms=3,
                         label=f"{name} ({r['macs'] / 1e6:.1f}M MACs)")
    axes[0].set(title="stream RMS after each residual block (wide IRv2)", xlabel="residual block", ylabel="RMS")
    axes[1].set(title="training loss, large lr", xlabel="epoch", ylabel="loss")
    axes[2].set(title="equal cost: training loss", xlabel="epoch", ylabel="loss")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
