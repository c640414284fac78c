"""000 Q6, 001 Sec.1b: why residual shortcuts let deep networks train (gradient flow, degradation).

For a residual block ``a_{l+2} = g(a_l + F(a_l))`` the chain rule gives
``dL/da_l = dL/da_{l+2} · g' · (I + dF/da_l)``: the identity term carries the gradient back unchanged,
however small ``dF/da_l`` becomes, so the product over many blocks does not vanish (or blow up) the way
a product of plain layers' Jacobians does. The lab builds plain and residual networks of the same depth
(6n + 2 layers: a stem conv, three stages of n two-conv blocks at 8/16/32 channels, a linear head; the
CIFAR ResNets of He et al. 2016, narrower) and measures (1) each conv's gradient norm at initialization
and (2) training and validation curves: the *degradation problem* is a deeper plain net reaching a
higher training loss than a shallower one, which is not overfitting but failed optimization.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.core.text import markdown_table, spread
from cnnlab.labs.frame import LabContext, LabResult, as_float, lab_data, register_lab, resized, train_seeds
from cnnlab.models.layers import BasicBlock, ConvBNAct
from cnnlab.models.resnet import ResNet
from cnnlab.core.seeding import seed_everything

WIDTHS = [8, 16, 32]
IMAGE_SIZE = 14  # Fashion-MNIST at half size: a 56-layer net trains 4x faster, still ~85% accurate


def _plain_block(c_in: int, c_out: int, stride: int, _stage: int) -> nn.Module:
    return nn.Sequential(ConvBNAct(c_in, c_out, 3, stride), ConvBNAct(c_out, c_out, 3))


def _residual_block(c_in: int, c_out: int, stride: int, _stage: int) -> nn.Module:
    return BasicBlock(c_in, c_out, stride)


BLOCKS = {"plain": _plain_block, "residual": _residual_block}


def build(kind: str, n: int, in_chans: int, classes: int) -> ResNet:
    """A 6n+2-layer CIFAR-style network, plain or residual (same convs; residual adds 1x1 projections)."""
    return ResNet(BLOCKS[kind], [n] * 3, WIDTHS, classes, in_chans, stem="cifar", stem_width=WIDTHS[0])


def conv_grad_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """``|dL/dW|`` of every 3x3 conv in forward order (shortcut projections left out), at the current weights."""
    model.train()
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    return [float(m.weight.grad.norm()) for m in model.modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]


@register_lab("residual-gradient-flow", "000 Q6, 001 Sec.1b",
              "Plain vs residual nets of equal depth: gradient norms per layer at init, and the degradation problem")
def run(ctx: LabContext) -> LabResult:
    ns = ctx.pick([1, 2], [1, 3, 9])
    data = resized(lab_data(ctx, n_train=ctx.pick(256, 3000), n_test=ctx.pick(200, 2000), n_val=ctx.pick(100, 1000)),
                   IMAGE_SIZE)
    epochs, probe = ctx.pick(1, 6), ctx.pick(64, 256)
    train_seeds_used = ctx.seeds[:1]  # gradients at init: every seed; training 6 nets: one seed fits 3 minutes
    x = as_float(data.train, data.mean, data.std)[:probe]
    y = data.train.labels[:probe]
    numbers: dict = {"depths": [6 * n + 2 for n in ns], "init": {}, "train": {}}
    rows = []
    for kind in BLOCKS:
        numbers["init"][kind], numbers["train"][kind] = {}, {}
        for n in ns:
            depth = str(6 * n + 2)
            norms = []
            for seed in ctx.seeds:
                seed_everything(seed)
                norms.append(conv_grad_norms(build(kind, n, data.in_chans, data.num_classes), x, y))
            per_layer = [spread(v)["mean"] for v in zip(*norms)]
            first_over_last = spread(v[0] / v[-1] for v in norms)
            log_spread = spread(float(torch.tensor(v).log10().std()) for v in norms)
            numbers["init"][kind][depth] = {"per_layer": per_layer, "first_over_last": first_over_last,
                                            "log10_spread": log_spread}
            trained = train_seeds(ctx, lambda: build(kind, n, data.in_chans, data.num_classes), data,
                                  seeds=train_seeds_used, epochs=epochs, lr=0.05, weight_decay=5e-4)
            hist = trained["histories"]
            numbers["train"][kind][depth] = {
                "params": sum(p.numel() for p in trained["model"].parameters()),
                "test_accuracy": trained["accuracy"], "seconds": trained["seconds"],
                "final_train_loss": spread(h[-1]["train_loss"] for h in hist),
                "final_train_accuracy": spread(h[-1]["train_accuracy"] for h in hist),
                "curves": {key: [spread(h[e][key] for h in hist)["mean"] for e in range(epochs)]
                           for key in ("train_loss", "val_accuracy")},
            }
            t = numbers["train"][kind][depth]
            rows.append([kind, depth, t["params"], first_over_last["mean"], log_spread["mean"],
                         t["final_train_loss"]["mean"], t["test_accuracy"]["mean"], t["test_accuracy"]["std"]])
    shallow, deep = str(6 * ns[0] + 2), str(6 * ns[-1] + 2)
    numbers["deep"], numbers["shallow"] = deep, shallow
    result = LabResult(numbers, _figure(numbers, deep), settings={
        "data": data.info, "epochs": epochs, "init_seeds": ctx.seeds, "train_seeds": train_seeds_used, "widths": WIDTHS, "optimizer": "sgd lr 0.05 onecycle",
        "probe_batch": probe, "blocks": "plain: conv-BN-ReLU x2; residual: ResNet BasicBlock (1x1 projection when shapes change)"},
        table=markdown_table(["net", "layers", "params", "|g| first conv / last conv (init)",
                              "std of log10 |g| over layers (init)", "final train loss", "test acc", "test acc std"],
                             rows))
    _conclude(result, deep, shallow)
    return result


def _conclude(r: LabResult, deep: str, shallow: str) -> None:
    p, q = f"init.plain.{deep}.log10_spread.mean", f"init.residual.{deep}.log10_spread.mean"
    flatter = r.value(q) < r.value(p)
    r.conclude(f"At initialization the conv gradient norms of the {deep}-layer plain net vary over its layers by "
               f"{{p:.2f}} decades (std of log10 |g|; first/last conv ratio {{pr:.3g}}), the residual net's by {{q:.2f}} "
               f"(ratio {{qr:.3g}}): "
               + ("the shortcuts keep the gradient's size more even through depth." if flatter else
                  "here the shortcuts did NOT make the gradient's size more even."),
               p=p, q=q, pr=f"init.plain.{deep}.first_over_last.mean", qr=f"init.residual.{deep}.first_over_last.mean")
    lp_deep, lp_shallow = f"train.plain.{deep}.final_train_loss.mean", f"train.plain.{shallow}.final_train_loss.mean"
    degraded = r.value(lp_deep) > r.value(lp_shallow)
    r.conclude(f"Plain nets: {deep} layers end training at loss {{a:.3f}} vs {{b:.3f}} for {shallow} layers "
               "(test accuracy {c:.4f} vs {d:.4f}): " +
               ("the deeper plain net fits its own training data worse, the degradation problem (optimization, "
                "not overfitting)." if degraded else "no degradation at this depth and budget."),
               a=lp_deep, b=lp_shallow, c=f"train.plain.{deep}.test_accuracy.mean",
               d=f"train.plain.{shallow}.test_accuracy.mean")
    lr_deep, lr_shallow = f"train.residual.{deep}.final_train_loss.mean", f"train.residual.{shallow}.final_train_loss.mean"
    beats_plain = r.value(lr_deep) < r.value(lp_deep)
    r.conclude(f"Residual nets: {deep} layers reach training loss {{a:.3f}} ({shallow} layers: {{b:.3f}}) and test "
               f"accuracy {{c:.4f}} vs the plain {deep}-layer net's {{d:.4f}}: " +
               ("with shortcuts the deep net trains better than its plain twin." if beats_plain else
                "the shortcuts did not help the deep net within this budget."),
               a=lr_deep, b=lr_shallow, c=f"train.residual.{deep}.test_accuracy.mean",
               d=f"train.plain.{deep}.test_accuracy.mean")


def _figure(numbers: dict, deep: str):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    styles = {"plain": "--", "residual": "-"}
    for kind, style in styles.items():
        for i, depth in enumerate(numbers["init"][kind]):
            per_layer = numbers["init"][kind][depth]["per_layer"]
            axes[0].semilogy(range(1, len(per_layer) + 1), per_layer, style, color=f"C{i}", label=f"{kind} {depth}")
            curves = numbers["train"][kind][depth]["curves"]
            epochs = range(1, len(curves["train_loss"]) + 1)
            axes[1].plot(epochs, curves["train_loss"], style + "o", color=f"C{i}", ms=3, label=f"{kind} {depth}")
            axes[2].plot(epochs, curves["val_accuracy"], style + "o", color=f"C{i}", ms=3, label=f"{kind} {depth}")
    axes[0].set(title="|dL/dW| of each 3x3 conv at init (mean of seeds)", xlabel="conv layer (input -> output)",
                ylabel="gradient norm")
    axes[1].set(title="training loss (degradation: deeper plain is higher)", xlabel="epoch", ylabel="loss")
    axes[2].set(title="validation accuracy", xlabel="epoch", ylabel="accuracy")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return fig
