"""000 Q1a: why BatchNorm lets a network train with a larger learning rate.

The same CNN (simple-cnn) with and without BatchNorm is trained at each learning rate of a log
grid, from the full rate on (a cosine decay, no warm-up that would hide an unstable start).
Without normalisation a large step multiplies the weights of every layer at once and the
activations and gradients grow layer after layer until the loss overflows; with BatchNorm each
layer's output is re-standardised, so its scale cannot run away, and a larger weight only
shrinks its own gradient (see ``bn-scale-invariance``). The lab reports the final accuracy per
learning rate (mean and spread over seeds) and the largest rate that still trained.
"""
from __future__ import annotations

from cnnlab.core.text import markdown_table
from cnnlab.labs.frame import LabContext, LabResult, lab_data, register_lab, train_seeds, trained_bar
from cnnlab.models import create_model

NORMS = ("none", "batch")
LABEL = {"none": "without BatchNorm", "batch": "with BatchNorm"}
NET = {"none": "the network without BatchNorm", "batch": "the network with BatchNorm"}


@register_lab("bn-learning-rate", "000 Q1a", "Why BatchNorm allows a larger learning rate: accuracy vs LR with and without BN")
def run(ctx: LabContext) -> LabResult:
    lrs = ctx.pick([0.03, 0.3, 3.0], [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0])
    data = lab_data(ctx, n_train=ctx.pick(512, 2500), n_test=ctx.pick(256, 2000))
    epochs, width = ctx.pick(1, 2), 8
    chance = 1.0 / data.num_classes
    per_norm: dict[str, list[dict]] = {}
    for norm in NORMS:
        rows = []
        for lr in lrs:
            res = train_seeds(ctx, lambda: _model(data, width, norm), data, epochs=epochs, lr=lr, batch_size=64,
                              schedule="cosine")
            rows.append({"lr": lr, "accuracy": res["accuracy"], "diverged": sum(r["diverged"] for r in res["runs"])})
        per_norm[norm] = rows
    best = max(r["accuracy"]["mean"] for rows in per_norm.values() for r in rows)
    threshold = trained_bar(best, chance)
    numbers: dict = {"chance": chance, "trained_threshold": threshold, "runs": per_norm}
    for norm, rows in per_norm.items():
        ok = [r for r in rows if r["accuracy"]["mean"] >= threshold]
        top = max(rows, key=lambda r: r["accuracy"]["mean"])
        numbers[norm] = {"largest_lr": ok[-1]["lr"] if ok else None,
                         "accuracy_at_largest": ok[-1]["accuracy"]["mean"] if ok else None,
                         "best_lr": top["lr"], "best_accuracy": top["accuracy"]["mean"],
                         "diverged_runs": sum(r["diverged"] for r in rows),
                         "first_diverged_lr": next((r["lr"] for r in rows if r["diverged"]), None)}
    table = markdown_table(["lr", *(f"{LABEL[n]}: accuracy (mean ± std)" for n in NORMS),
                            *(f"{LABEL[n]}: diverged" for n in NORMS)],
                           [[lr, *(f"{per_norm[n][i]['accuracy']['mean']:.3f} ± {per_norm[n][i]['accuracy']['std']:.3f}"
                                   for n in NORMS), *(per_norm[n][i]["diverged"] for n in NORMS)]
                            for i, lr in enumerate(lrs)])
    result = LabResult(numbers, _figure(per_norm, threshold, chance), table=table, settings={
        "data": data.info, "model": f"simple-cnn width {width}, dropout 0, norm none|batch", "epochs": epochs,
        "batch_size": 64, "optimizer": "SGD, Nesterov momentum 0.9", "schedule": "cosine from the full lr, no warm-up",
        "lrs": lrs, "seeds": ctx.seeds, "trained": "mean accuracy >= chance + half of the best gain over chance"})
    _conclude(result, numbers)
    return result


def _model(data, width: int, norm: str):
    return create_model("simple-cnn", data.num_classes, data.in_chans, width=width, dropout=0.0, norm=norm)


def _conclude(result: LabResult, n: dict) -> None:
    plain, bn = n["none"]["largest_lr"], n["batch"]["largest_lr"]
    if plain is None or bn is None:
        who = "neither network" if plain is None and bn is None else NET["none" if plain is None else "batch"]
        result.conclude(f"At no learning rate of the grid did {who} reach the 'trained' bar of accuracy {{t:.3f}}.",
                        t="trained_threshold")
    else:
        if bn > plain:
            verdict = "BatchNorm tolerated a {ratio:g}x larger learning rate."
        elif bn == plain:
            verdict = "on this grid BatchNorm did not extend the usable range."
        else:
            verdict = "here the plain network tolerated the larger rate."
        n["ratio_largest_lr"] = bn / plain
        result.conclude("Without BatchNorm the largest learning rate that still trained was {a:g} (accuracy {x:.3f}); "
                        "with it, {b:g} ({y:.3f}): " + verdict,
                        a="none.largest_lr", x="none.accuracy_at_largest", b="batch.largest_lr",
                        y="batch.accuracy_at_largest", ratio="ratio_largest_lr")
    for norm in NORMS:
        if n[norm]["first_diverged_lr"] is not None:
            result.conclude(f"For {NET[norm]} the loss overflowed (NaN) from lr = {{d:g}} on "
                            f"({{k}} diverged runs in all).", d=f"{norm}.first_diverged_lr", k=f"{norm}.diverged_runs")
        else:
            result.conclude(f"For {NET[norm]} no run's loss overflowed ({{k}} diverged runs), even at "
                            f"the largest rate tried.", k=f"{norm}.diverged_runs")
    result.conclude("Best accuracy: {a:.3f} at lr {la:g} without BatchNorm, {b:.3f} at lr {lb:g} with it.",
                    a="none.best_accuracy", la="none.best_lr", b="batch.best_accuracy", lb="batch.best_lr")


def _figure(per_norm: dict, threshold: float, chance: float):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for norm, rows in per_norm.items():
        lrs = [r["lr"] for r in rows]
        ax.errorbar(lrs, [r["accuracy"]["mean"] for r in rows], yerr=[r["accuracy"]["std"] for r in rows],
                    fmt="o-", capsize=3, label=LABEL[norm])
        bad = [r for r in rows if r["diverged"]]
        ax.plot([r["lr"] for r in bad], [r["accuracy"]["mean"] for r in bad], "kx", ms=9)
    ax.axhline(threshold, color="grey", ls="--", lw=1, label="'trained' bar")
    ax.axhline(chance, color="grey", ls=":", lw=1, label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (x: a seed diverged)")
    ax.set_ylabel("test accuracy")
    ax.set_title("simple-cnn: final accuracy vs learning rate")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig
