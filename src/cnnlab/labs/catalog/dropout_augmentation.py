"""001 Sec. 3b-c: train and validation curves with and without dropout and data augmentation.

The report trained a three-block CNN (conv-conv-maxpool-BatchNorm, then two dense layers: the
registry's ``vgg-small``) on CIFAR-10 with Adam, then added vertical flips and random rotations,
and read the curves: a training accuracy that keeps rising while the validation accuracy stalls
and its loss climbs is overfitting; a training accuracy that stays low is underfitting. The lab
runs the four combinations on a small training set (where overfitting shows within minutes),
with CIFAR-10 when its files are there (else Fashion-MNIST or the embedded digits), and reads
the same signs from the numbers: the train-validation gap (training images measured in eval
mode), how far the validation loss rose from its minimum, and the training accuracy itself.
"""
from __future__ import annotations


from cnnlab.data.augment import Augment
from cnnlab.core.text import markdown_table, spread
from cnnlab.labs.frame import LabContext, LabResult, finish_axes, lab_data, register_lab, train_seeds
from cnnlab.models import create_model

DROPOUT = 0.5
FLIP_ROTATE = Augment(vflip=True, rotate=30.0)  # the report's vertical flip and random rotation
VARIANTS = {"plain": (0.0, False), "dropout": (DROPOUT, False), "augment": (0.0, True), "both": (DROPOUT, True)}
LABEL = {"plain": "neither", "dropout": f"dropout {DROPOUT}", "augment": "flip + rotation", "both": "both"}


def read_curves(history: list[dict]) -> dict:
    """The overfitting signs of one run: best/final validation loss and accuracy, and the final training accuracy."""
    val_loss = [h["val_loss"] for h in history]
    best = min(range(len(val_loss)), key=val_loss.__getitem__)
    return {"val_loss_min": val_loss[best], "val_loss_min_epoch": best + 1, "val_loss_final": val_loss[-1],
            "val_loss_rise": val_loss[-1] - val_loss[best], "val_accuracy_final": history[-1]["val_accuracy"],
            "train_accuracy_epoch": history[-1]["train_accuracy"]}


@register_lab("dropout-augmentation", "001 Sec.3b-c",
              "Train/validation curves with and without dropout and flip+rotation augmentation: over- and underfitting")
def run(ctx: LabContext) -> LabResult:
    # the quick run reads Fashion-MNIST's IDX files: decoding CIFAR-10's 60,000 JPEGs the first time takes a minute
    data = lab_data(ctx, n_train=ctx.pick(256, 800), n_test=ctx.pick(256, 2000), n_val=ctx.pick(128, 500),
                    prefer=ctx.pick("fashion-mnist", "cifar10"))
    epochs, width = ctx.pick(2, 10), ctx.pick(8, 16)
    variants: dict = {}
    curves: dict = {}
    for name, (dropout, augment) in VARIANTS.items():
        res = train_seeds(ctx, lambda: create_model("vgg-small", data.num_classes, data.in_chans, width=width,
                                                    dropout=dropout),
                          data, epochs=epochs, lr=1e-3, optimizer="adam", schedule="none", batch_size=64,
                          augment=FLIP_ROTATE if augment else "none", eval_train=True)
        histories = res["histories"]
        reads = [read_curves(h) for h in histories]
        trains = [r["train_accuracy"] for r in res["runs"]]
        gaps = [t - r["val_accuracy_final"] for t, r in zip(trains, reads)]
        variants[name] = {"dropout": dropout, "augment": augment, "train_accuracy": spread(trains), "gap": spread(gaps),
                          "test_accuracy": res["accuracy"],
                          **{k: sum(r[k] for r in reads) / len(reads) for k in reads[0]}}
        curves[name] = {k: [sum(h[i][k] for h in histories) / len(histories) for i in range(epochs)]
                        for k in ("train_accuracy", "val_accuracy", "train_loss", "val_loss")}
    numbers = {"variants": variants, "curves": curves, **_reading(variants)}
    table = markdown_table(["dropout", "augmentation", "train acc (eval mode)", "val acc", "train - val",
                            "val loss rise from its minimum (epoch of minimum)", "test acc (mean ± std)"],
                           [[v["dropout"], "vflip + rotate 30°" if v["augment"] else "none",
                             v["train_accuracy"]["mean"], v["val_accuracy_final"], v["gap"]["mean"],
                             f"{v['val_loss_rise']:.3f} ({v['val_loss_min_epoch']:.1f})",
                             f"{v['test_accuracy']['mean']:.3f} ± {v['test_accuracy']['std']:.3f}"]
                            for v in variants.values()])
    result = LabResult(numbers, _figure(curves, epochs), table=table, settings={
        "data": data.info, "model": f"vgg-small width {width} (3 x conv-conv-maxpool-BN, 2 dense)",
        "dropout": f"{DROPOUT} before the last dense layer", "augmentation": "vertical flip (p 0.5) + rotation ±30°",
        "optimizer": "Adam lr 1e-3, constant", "batch": 64, "epochs": epochs, "seeds": ctx.seeds,
        "gap": "accuracy on the training images in eval mode minus final validation accuracy"})
    _conclude(result, numbers)
    return result


def _reading(v: dict) -> dict:
    plain = v["plain"]
    return {"gap_change_dropout": v["dropout"]["gap"]["mean"] - plain["gap"]["mean"],
            "gap_change_augment": v["augment"]["gap"]["mean"] - plain["gap"]["mean"],
            "train_change_augment": v["augment"]["train_accuracy"]["mean"] - plain["train_accuracy"]["mean"],
            "train_change_dropout": v["dropout"]["train_accuracy"]["mean"] - plain["train_accuracy"]["mean"],
            "best_val": max(v, key=lambda k: v[k]["val_accuracy_final"])}


def _conclude(result: LabResult, n: dict) -> None:
    p = n["variants"]["plain"]
    over = p["gap"]["mean"] > 0.1 and p["val_loss_rise"] > 0
    result.conclude("Without dropout or augmentation the network reached {t:.3f} on its training images and {v:.3f} "
                    "on validation (gap {g:.3f}); the validation loss bottomed at epoch {e:.1f} and then rose by {r:.3f}: "
                    + ("it overfits." if over else "no clear overfitting in this run."),
                    t="variants.plain.train_accuracy.mean", v="variants.plain.val_accuracy_final",
                    g="variants.plain.gap.mean", e="variants.plain.val_loss_min_epoch", r="variants.plain.val_loss_rise")
    result.conclude("Dropout changed the gap by {d:+.3f} and the training accuracy by {t:+.3f}.",
                    d="gap_change_dropout", t="train_change_dropout")
    a = n["variants"]["augment"]
    under = n["train_change_augment"] < -0.1 and a["val_accuracy_final"] <= p["val_accuracy_final"]
    result.conclude("Vertical flips and rotations changed the training accuracy by {t:+.3f} (to {x:.3f}), the gap by "
                    "{d:+.3f} and the validation accuracy from {v0:.3f} to {v1:.3f}: " +
                    ("the network now underfits (it fits its own training images worse, and validation does not gain)."
                     if under else "the augmentation regularised without underfitting."),
                    t="train_change_augment", x="variants.augment.train_accuracy.mean", d="gap_change_augment",
                    v0="variants.plain.val_accuracy_final", v1="variants.augment.val_accuracy_final")
    result.conclude("Best final validation accuracy: " + LABEL[n["best_val"]] + " ({v:.3f}; test {t:.3f}).",
                    v=f"variants.{n['best_val']}.val_accuracy_final", t=f"variants.{n['best_val']}.test_accuracy.mean")


def _figure(curves: dict, epochs: int):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(14, 4.5))
    x = range(1, epochs + 1)
    for (name, c), color in zip(curves.items(), ("C0", "C1", "C2", "C3")):
        axes[0].plot(x, c["train_accuracy"], "-", color=color, label=f"{LABEL[name]}: train")
        axes[0].plot(x, c["val_accuracy"], "--", color=color, label=f"{LABEL[name]}: validation")
        axes[1].plot(x, c["train_loss"], "-", color=color, label=f"{LABEL[name]}: train")
        axes[1].plot(x, c["val_loss"], "--", color=color, label=f"{LABEL[name]}: validation")
    axes[0].set_title("accuracy (train: during the epoch, with dropout/augmentation)")
    axes[1].set_title("loss")
    finish_axes(axes, "epoch", fontsize=7, ncol=2)
    return fig
