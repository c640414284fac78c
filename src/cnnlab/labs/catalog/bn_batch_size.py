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
train-test gap, mean and spread over seeds.
"""
from __future__ import annotations

import math

import torch

from cnnlab.core.text import markdown_table, seed_gap, spread, verdict, verdict_sentence
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
            runs[norm].append({"batch_size": b, "lr": BASE_LR * b / BASE_BATCH, "test_accuracy": test,
                               "gap": gap})
    numbers = {"noise": noise, "noise_slope": {k: loglog_slope([r["batch_size"] for r in noise],
                                                                [r[k] for r in noise])
                                                for k in ("mean_error", "std_error")},
               "runs": runs, **_summary(runs, batch_sizes, len(data.train), epochs)}
    rows = [[b, *(f"{runs[n][i]['test_accuracy']['mean']:.3f} ± {runs[n][i]['test_accuracy']['std']:.3f}"
                  for n in NORMS), *(f"{runs[n][i]['gap']['mean']:+.3f}" for n in NORMS)]
            for i, b in enumerate(batch_sizes)]
    table = markdown_table(["batch", *(f"{LABEL[n]} test acc" for n in NORMS),
                            *(f"{LABEL[n]} train-test gap" for n in NORMS)], rows)
    result = LabResult(numbers, _figure(noise, runs), table=table, settings={
        "data": data.info, "model": f"simple-cnn width {width}, dropout 0, norm batch|group|none",
        "epochs": epochs, "lr": f"{BASE_LR} * B / {BASE_BATCH} (linear scaling), one-cycle",
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


def _summary(runs: dict, batch_sizes: list[int], n_train: int, epochs: int) -> dict:
    small, large = batch_sizes[0], batch_sizes[-1]
    out = {"smallest": small, "largest": large, "steps_largest": epochs * -(-n_train // large),
           "steps_smallest": epochs * -(-n_train // small), "epochs": epochs}
    for norm in NORMS:
        by_b = {r["batch_size"]: r for r in runs[norm]}
        best = max(by_b, key=lambda b: by_b[b]["test_accuracy"]["mean"])
        out[norm] = {"acc_small": by_b[small]["test_accuracy"]["mean"], "values_small": by_b[small]["test_accuracy"]["values"],
                     "acc_large": by_b[large]["test_accuracy"]["mean"], "gap_small": by_b[small]["gap"]["mean"],
                     "gap_large": by_b[large]["gap"]["mean"], "best_batch": best,
                     "best_acc": by_b[best]["test_accuracy"]["mean"]}
    out["bn_vs_gn_small"] = seed_gap(out["batch"]["values_small"], out["group"]["values_small"])
    return out


def _conclude(result: LabResult, n: dict) -> None:
    last = len(n["noise"]) - 1
    result.conclude("The batch mean of a conv channel misses the data mean by {a:.3f} standard deviations at B = {b} "
                    "and {c:.3f} at B = {d}: the noise BatchNorm injects falls as B^{s:.2f} (1/sqrt(B) would be "
                    "B^-0.5): a larger batch injects less noise (whether that regularises less is what the gaps below measure).",
                    a="noise.0.mean_error", b="noise.0.batch_size", c=f"noise.{last}.mean_error",
                    d=f"noise.{last}.batch_size", s="noise_slope.mean_error")
    meaning = verdict_sentence({"lower": "BatchNorm lost accuracy to the batch-independent GroupNorm at the tiny batch.",
                                "higher": "BatchNorm beat GroupNorm even at the tiny batch.",
                                "same": "BatchNorm did not measurably suffer from the tiny batch here."},
                               n["bn_vs_gn_small"]["difference"], n["bn_vs_gn_small"]["se"])
    result.conclude("Test accuracy at batch size {b}: " + verdict("BatchNorm", n["batch"]["values_small"], "GroupNorm",
                                                                  n["group"]["values_small"]) + "; " + meaning,
                    b="smallest", d="bn_vs_gn_small.difference")  # d: the difference verdict() prints
    result.conclude("BatchNorm's best batch size was {b} ({x:.3f}); GroupNorm's {c} ({y:.3f}); without normalisation "
                    "{d} ({z:.3f}).", b="batch.best_batch", x="batch.best_acc", c="group.best_batch",
                    y="group.best_acc", d="none.best_batch", z="none.best_acc")
    trend = ("larger at the large batch, as less batch noise would predict"
             if n["batch"]["gap_large"] > n["batch"]["gap_small"] else
             "not larger at the large batch: these runs do not show the noisier small batch regularising more")
    result.conclude("With BatchNorm the train-test gap was {a:+.3f} at B = {b} and {c:+.3f} at B = {d} (" + trend +
                    "); with GroupNorm {e:+.3f} and {f:+.3f}.",
                    a="batch.gap_small", b="smallest", c="batch.gap_large", d="largest",
                    e="group.gap_small", f="group.gap_large")
    result.conclude("With the epochs fixed ({e}), B = {b} made {k} optimizer steps against {k2} at B = {b2}: its "
                    "test accuracy ({x:.3f} with BatchNorm, {y:.3f} with GroupNorm) measures too few steps as much as "
                    "the batch statistics.", e="epochs", b="largest", k="steps_largest", k2="steps_smallest",
                    b2="smallest", x="batch.acc_large", y="group.acc_large")


def _figure(noise: list[dict], runs: dict):
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
    axes[1].set_title("test accuracy (lr scaled with B)")
    axes[2].set_title("train accuracy - test accuracy")
    for ax in axes:
        ax.set_xscale("log", base=2)
    finish_axes(axes, "batch size B")
    return fig
