"""000 Q1c and 002 Q3c: what the batch size does to BatchNorm (its regularising noise, small batches).

In training, BatchNorm standardises each channel with the mean and variance of the current
batch, not of the data: every sample is shifted and scaled by amounts that depend on which other
samples share its batch. That noise is the regularisation; it shrinks as the batch grows (the
batch mean's error falls as 1/sqrt(B)). With very small batches the noise is large and, worse,
the statistics used at test time (running averages) differ from the per-batch ones the network
was trained with. GroupNorm computes statistics per sample, so it has neither effect.

Measured: (1) the noise of the batch statistics of a real conv layer against B, with its slope;
(2) the same CNN with BatchNorm, GroupNorm and no normalisation trained at batch sizes 2..512
(the same number of epochs, learning rate scaled linearly with B), test accuracy and the
train-test gap, mean and spread over seeds, with the optimizer steps each batch size made; (3)
because equal epochs give the largest batch far fewer steps (6 at B = 512 on 1,024 images in 3
epochs), BatchNorm at the largest batch again with as many steps as the next smaller batch made,
so that the batch size, not the number of updates, is what differs. Every comparison is judged by
the verdict rule (twice the standard error over seeds, else "within noise").
"""
from __future__ import annotations

import math

import torch

from cnnlab.core.text import judged, markdown_table, seed_gap, spread, verdict
from cnnlab.labs.frame import LabContext, LabResult, as_float, finish_axes, lab_data, register_lab, train_seeds
from cnnlab.models import create_model

NORMS = ("batch", "group", "none")
LABEL = {"batch": "BatchNorm", "group": "GroupNorm", "none": "no normalisation"}
BASE_LR, BASE_BATCH = 0.1, 128  # the linear scaling rule: lr = BASE_LR * B / BASE_BATCH


def batch_stat_noise(features: torch.Tensor, batch_sizes, draws: int, seed: int) -> list[dict]:
    """How far a batch's per-channel mean and standard deviation stray from the whole set's.

    ``features`` is ``N x C x H x W``. For each B: ``draws`` random batches; the error of the batch
    mean in units of the channel's standard deviation, and the relative error of the batch std,
    both as root mean squares over batches and channels. BatchNorm2d pools B·H·W values per
    channel, but positions in one image are correlated, so the error falls like 1/sqrt(B).
    """
    g = torch.Generator().manual_seed(seed)
    mu, sd = features.mean((0, 2, 3)), features.std((0, 2, 3))
    rows = []
    for b in batch_sizes:
        bm, bs = torch.empty(draws, features.shape[1]), torch.empty(draws, features.shape[1])
        for i in range(draws):
            x = features[torch.randperm(len(features), generator=g)[:b]]
            bm[i], bs[i] = x.mean((0, 2, 3)), x.std((0, 2, 3), unbiased=False)
        rows.append({"batch_size": b, "mean_error": float(((bm - mu) / sd).pow(2).mean().sqrt()),
                     "std_error": float(((bs - sd) / sd).pow(2).mean().sqrt())})
    return rows


def loglog_slope(xs, ys) -> float:
    lx, ly = torch.tensor([math.log(v) for v in xs]), torch.tensor([math.log(v) for v in ys])
    lx = lx - lx.mean()
    return float((lx * (ly - ly.mean())).sum() / (lx * lx).sum())


@register_lab("bn-batch-size", "000 Q1c, 002 Q3c",
              "BatchNorm and the batch size: noise of the batch statistics, accuracy and train-test gap for B = 2..512")
def run(ctx: LabContext) -> LabResult:
    batch_sizes = ctx.pick([4, 64], [2, 8, 32, 128, 512])
    data = lab_data(ctx, n_train=ctx.pick(256, 1024), n_test=ctx.pick(256, 2000))
    epochs, width = ctx.pick(1, 3), 8
    noise = _noise(ctx, data, width, ctx.pick([2, 8, 32], [2, 4, 8, 16, 32, 64, 128, 256, 512]))
    runs: dict[str, list[dict]] = {norm: [] for norm in NORMS}
    for norm in NORMS:
        for b in batch_sizes:
            res = train_seeds(ctx, lambda: create_model("simple-cnn", data.num_classes, data.in_chans, width=width,
                                                        dropout=0.0, norm=norm),
                              data, epochs=epochs, lr=BASE_LR * b / BASE_BATCH, batch_size=b, eval_train=True)
            test, gap = res["accuracy"], spread(r["train_accuracy"] - r["test_accuracy"] for r in res["runs"])
            runs[norm].append({"batch_size": b, "lr": BASE_LR * b / BASE_BATCH, "epochs": epochs,
                               "steps": steps_made(res), "test_accuracy": test, "gap": gap})
    equal = _equal_steps(ctx, data, width, batch_sizes, epochs)
    numbers = {"noise": noise, "noise_slope": {k: loglog_slope([r["batch_size"] for r in noise],
                                                                [r[k] for r in noise])
                                                for k in ("mean_error", "std_error")},
               "runs": runs, "equal_steps": equal, **_summary(runs, batch_sizes, len(data.train), epochs)}
    rows = [[b, runs["batch"][i]["steps"],
             *(f"{runs[n][i]['test_accuracy']['mean']:.3f} ± {runs[n][i]['test_accuracy']['std']:.3f}" for n in NORMS),
             *(f"{runs[n][i]['gap']['mean']:+.3f} ± {runs[n][i]['gap']['std']:.3f}" for n in NORMS)]
            for i, b in enumerate(batch_sizes)]
    rows.append([f"{equal['batch_size']} ({equal['epochs']} epochs)", equal["steps"],
                 f"{equal['test_accuracy']['mean']:.3f} ± {equal['test_accuracy']['std']:.3f}", "-", "-",
                 f"{equal['gap']['mean']:+.3f} ± {equal['gap']['std']:.3f}", "-", "-"])
    table = markdown_table(["batch", "optimizer steps", *(f"{LABEL[n]} test acc" for n in NORMS),
                            *(f"{LABEL[n]} train-test gap" for n in NORMS)], rows)
    result = LabResult(numbers, _figure(noise, runs, equal), table=table, settings={
        "data": data.info, "model": f"simple-cnn width {width}, dropout 0, norm batch|group|none",
        "epochs": epochs, "lr": f"{BASE_LR} * B / {BASE_BATCH} (linear scaling), one-cycle",
        "equal_steps": f"BatchNorm at B = {batch_sizes[-1]} for {equal['epochs']} epochs: as many optimizer steps as "
                       f"B = {batch_sizes[-2]} made in {epochs}",
        "optimizer": "SGD, Nesterov momentum 0.9", "batch_sizes": batch_sizes, "seeds": ctx.seeds,
        "gap": "accuracy on the training images (eval mode) minus test accuracy",
        "noise": "first conv layer of a He-initialised simple-cnn on the training images"})
    _conclude(result, numbers)
    return result


def _noise(ctx: LabContext, data, width: int, sizes: list[int]) -> list[dict]:
    """Batch-statistic noise at the first BatchNorm's input: the first conv's output on real images."""
    torch.manual_seed(ctx.seed)
    conv = create_model("simple-cnn", data.num_classes, data.in_chans, width=width)[0][0]
    with torch.no_grad():
        features = conv(as_float(data.train, data.mean, data.std))
    sizes = [b for b in sizes if b <= len(features)]
    return batch_stat_noise(features, sizes, draws=ctx.pick(50, 200), seed=ctx.seed)


def steps_made(trained: dict) -> int:
    """Optimizer steps of the first seed's run, read from its history (the engine counts them per epoch)."""
    return sum(row["steps"] for row in trained["histories"][0])


def _equal_steps(ctx: LabContext, data, width: int, batch_sizes: list[int], epochs: int) -> dict:
    """BatchNorm at the largest batch, trained for as many optimizer steps as the next smaller batch made.

    At equal epochs the largest batch makes B_large / B_next times fewer updates, so its accuracy and
    gap measure too little training as much as the batch statistics; with the epochs multiplied by
    that ratio both have taken the same number of steps (the learning rate stays the linearly scaled one).
    """
    large, nxt = batch_sizes[-1], batch_sizes[-2]
    n = len(data.train)
    scaled = max(1, round(epochs * -(-n // nxt) / -(-n // large)))
    res = train_seeds(ctx, lambda: create_model("simple-cnn", data.num_classes, data.in_chans, width=width,
                                                dropout=0.0, norm="batch"),
                      data, epochs=scaled, lr=BASE_LR * large / BASE_BATCH, batch_size=large, eval_train=True)
    return {"batch_size": large, "matched_batch": nxt, "epochs": scaled, "steps": steps_made(res),
            "test_accuracy": res["accuracy"],
            "gap": spread(r["train_accuracy"] - r["test_accuracy"] for r in res["runs"])}


def _summary(runs: dict, batch_sizes: list[int], n_train: int, epochs: int) -> dict:
    """The comparisons the conclusions judge: smallest vs largest batch, BatchNorm vs GroupNorm, equal steps.

    Every difference is a :func:`seed_gap` over the seeds' values (mean difference and its standard error).
    """
    small, large = batch_sizes[0], batch_sizes[-1]
    first = {r["batch_size"]: r for r in runs["batch"]}
    out = {"smallest": small, "largest": large, "steps_largest": first[large]["steps"],
           "steps_smallest": first[small]["steps"], "epochs": epochs, "n_train": n_train}
    for norm in NORMS:
        by_b = {r["batch_size"]: r for r in runs[norm]}
        best = max(by_b, key=lambda b: by_b[b]["test_accuracy"]["mean"])
        out[norm] = {"acc_small": by_b[small]["test_accuracy"]["mean"], "values_small": by_b[small]["test_accuracy"]["values"],
                     "acc_large": by_b[large]["test_accuracy"]["mean"], "gap_small": by_b[small]["gap"]["mean"],
                     "gap_large": by_b[large]["gap"]["mean"], "best_batch": best,
                     "best_acc": by_b[best]["test_accuracy"]["mean"],
                     "gap_small_minus_large": seed_gap(by_b[small]["gap"]["values"], by_b[large]["gap"]["values"])}
    out["bn_vs_gn_small"] = seed_gap(out["batch"]["values_small"], out["group"]["values_small"])
    return out


def _conclude(result: LabResult, n: dict) -> None:
    last = len(n["noise"]) - 1
    result.conclude("The batch mean of a conv channel misses the data mean by {a:.3f} standard deviations at B = {b} "
                    "and {c:.3f} at B = {d}: the noise BatchNorm injects falls as B^{s:.2f} (1/sqrt(B) would be "
                    "B^-0.5): a larger batch injects less noise (whether that regularises less is what the gaps below measure).",
                    a="noise.0.mean_error", b="noise.0.batch_size", c=f"noise.{last}.mean_error",
                    d=f"noise.{last}.batch_size", s="noise_slope.mean_error")
    meaning = {"lower": "BatchNorm lost accuracy to the batch-independent GroupNorm at the tiny batch.",
               "higher": "BatchNorm beat GroupNorm even at the tiny batch.",
               "same": "BatchNorm did not measurably suffer from the tiny batch here."}
    result.conclude("Test accuracy at batch size {b}: " + judged("BatchNorm", n["batch"]["values_small"], "GroupNorm",
                                                                 n["group"]["values_small"], meaning),
                    b="smallest", d="bn_vs_gn_small.difference")  # d: the difference verdict() prints
    result.conclude("BatchNorm's best batch size was {b} ({x:.3f}); GroupNorm's {c} ({y:.3f}); without normalisation "
                    "{d} ({z:.3f}).", b="batch.best_batch", x="batch.best_acc", c="group.best_batch",
                    y="group.best_acc", d="none.best_batch", z="none.best_acc")
    runs = {norm: {r["batch_size"]: r for r in n["runs"][norm]} for norm in ("batch", "group")}
    small, large = n["smallest"], n["largest"]
    for norm in ("batch", "group"):
        meaning = {"higher": "the noisier small batch did not regularise more here: its gap is the larger one",
                   "lower": "the gap grew with the batch, as less regularising batch noise would predict",
                   "same": "these runs show no regularising effect of the batch size"}
        result.conclude(f"Equal epochs ({{e}}), {LABEL[norm]}: train-test gap at B = {{b}} ({{k}} optimizer steps) vs "
                        f"B = {{b2}} ({{k2}} steps): " + judged(f"B = {small}", runs[norm][small]["gap"]["values"],
                                                                 f"B = {large}", runs[norm][large]["gap"]["values"],
                                                                 meaning) + ".",
                        e="epochs", b="smallest", k="steps_smallest", b2="largest", k2="steps_largest",
                        d=f"{norm}.gap_small_minus_large.difference")
    eq = n["equal_steps"]
    matched = runs["batch"][eq["matched_batch"]]
    acc = verdict(f"B = {eq['batch_size']}", eq["test_accuracy"]["values"], f"B = {eq['matched_batch']}",
                  matched["test_accuracy"]["values"])
    gap = judged(f"B = {eq['batch_size']}", eq["gap"]["values"], f"B = {eq['matched_batch']}", matched["gap"]["values"],
                 {"higher": "with the updates equal, the larger batch overfits more, as less batch noise would predict",
                  "lower": "even with the updates equal, the larger batch overfits less",
                  "same": "with the updates equal, the batch size changes the gap by no more than noise"})
    result.conclude("At equal epochs B = {b} made {k} steps and reached {x:.3f} with BatchNorm; given as many steps as "
                    "B = {m} ({s} steps, {e} epochs) it reached {y:.3f}. Equal steps, test accuracy: " + acc +
                    "; train-test gap: " + gap + ".", b="largest", k="steps_largest", x="batch.acc_large",
                    m="equal_steps.matched_batch", s="equal_steps.steps", e="equal_steps.epochs",
                    y="equal_steps.test_accuracy.mean")


def _figure(noise: list[dict], runs: dict, equal: dict):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    bs = [r["batch_size"] for r in noise]
    axes[0].loglog(bs, [r["mean_error"] for r in noise], "o-", label="batch mean error (in channel stds)")
    axes[0].loglog(bs, [r["std_error"] for r in noise], "s-", label="batch std relative error")
    axes[0].loglog(bs, [noise[0]["mean_error"] * math.sqrt(bs[0] / b) for b in bs], "k--", label="1/sqrt(B)")
    axes[0].set_title("noise of BatchNorm's batch statistics")
    axes[0].set_xlabel("batch size B")
    for norm, rows in runs.items():
        b = [r["batch_size"] for r in rows]
        axes[1].errorbar(b, [r["test_accuracy"]["mean"] for r in rows], yerr=[r["test_accuracy"]["std"] for r in rows],
                         fmt="o-", capsize=3, label=LABEL[norm])
        axes[2].errorbar(b, [r["gap"]["mean"] for r in rows], yerr=[r["gap"]["std"] for r in rows],
                         fmt="o-", capsize=3, label=LABEL[norm])
    for ax, key in ((axes[1], "test_accuracy"), (axes[2], "gap")):
        ax.errorbar([equal["batch_size"]], [equal[key]["mean"]], yerr=[equal[key]["std"]], fmt="*", color="C0",
                    markersize=12, capsize=3, label=f"BatchNorm, {equal['steps']} steps (as B = {equal['matched_batch']})")
    axes[1].set_title("test accuracy (lr scaled with B)")
    axes[2].set_title("train accuracy - test accuracy")
    for ax in axes:
        ax.set_xscale("log", base=2)
    finish_axes(axes, "batch size B")
    return fig
