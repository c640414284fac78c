"""002 Q3d: why Adam divides its moment estimates by 1 - β^t.

m_t = β1·m_{t-1} + (1-β1)·g_t starts at m_0 = 0, so m_t = (1-β1) Σ_{i≤t} β1^{t-i} g_i: a weighted
average whose weights sum to 1 - β1^t, not 1. For gradients with a steady mean, E[m_t] =
(1-β1^t)·E[g]: at t = 1 only 10% of the gradient (β1 = 0.9), and v_t (β2 = 0.999) only 0.1% of
E[g²]. Dividing by 1 - β^t makes the weights sum to 1: m̂_t and v̂_t are unbiased from the first
step. Without the correction the step m_t/sqrt(v_t) is (1-β1^t)/sqrt(1-β2^t) times the intended
one: about 3x too large at t = 1 and up to ~6.5x near t = 10, because v's bias is the larger.
The lab runs the NumPy Adam (``cnnlab.scratch.optim.Adam``) with and without the correction.
"""
from __future__ import annotations

import numpy as np

from cnnlab.core.text import markdown_table, spread
from cnnlab.labs.frame import LabContext, LabResult, finish_axes, lab_arrays, register_lab
from cnnlab.scratch.experiments import MLPConfig, make_runner

BETA1, BETA2 = 0.9, 0.999


def step_multiplier(t: np.ndarray) -> np.ndarray:
    """How much larger the uncorrected step is than the corrected one, for a steady gradient: (1-β1^t)/sqrt(1-β2^t)."""
    return (1 - BETA1 ** t) / np.sqrt(1 - BETA2 ** t)


def moment_trace(runner, x: np.ndarray, y: np.ndarray, steps: int, batch: int, seed: int) -> list[dict]:
    """Train with Adam for ``steps`` steps; per step, the first layer's mean |g|, |m|, |m̂| and RMS of v, v̂."""
    opt = runner.opt
    rng = np.random.default_rng(seed)
    rows = []
    for t in range(1, steps + 1):
        idx = rng.choice(len(y), batch, replace=False)
        loss, _ = runner.step(x[idx], y[idx])
        c1, c2 = (1 - BETA1 ** t), (1 - BETA2 ** t)  # the correction whether the optimizer applies it or not
        g, m, v = opt.params[0][1], opt.m[0], opt.v[0]
        rows.append({"step": t, "loss": loss, "g": float(np.abs(g).mean()), "g_rms": float(np.sqrt((g * g).mean())),
                     "m": float(np.abs(m).mean()),
                     "m_hat": float(np.abs(m).mean() / c1), "v": float(np.sqrt(v.mean())),
                     "v_hat": float(np.sqrt(v.mean() / c2))})
    return rows


def step_losses(cfg: MLPConfig, data, steps: int, batch: int) -> list[float] | None:
    """Mini-batch training losses of the first ``steps`` steps (None if the run diverged)."""
    runner = make_runner(cfg, data)
    rng = np.random.default_rng(cfg.seed)
    losses = []
    for _ in range(steps):
        idx = rng.choice(len(data.y_train), batch, replace=False)
        with np.errstate(over="ignore", invalid="ignore"):
            loss, _ = runner.step(data.x_train[idx], data.y_train[idx])
        if not np.isfinite(loss) or loss > 100:
            return None
        losses.append(loss)
    test_loss, test_acc = runner.evaluate(data.x_test, data.y_test)
    return losses + [test_acc]


@register_lab("adam-bias-correction", "002 Q3d",
              "Adam's bias correction: m_t and v_t with and without it over the first steps; training with and without")
def run(ctx: LabContext) -> LabResult:
    data, info = lab_arrays(ctx, n_train=ctx.pick(1000, 10000), n_test=ctx.pick(500, 2000))
    hidden, batch = ctx.pick((32,), (128, 64)), 64
    trace_steps, train_steps = ctx.pick(30, 200), ctx.pick(60, 600)
    lrs = ctx.pick([0.003], [0.001, 0.003, 0.01])
    cfg = MLPConfig(hidden=hidden, optimizer="adam", lr=0.001, seed=ctx.seed)
    trace = moment_trace(make_runner(cfg, data), data.x_train, data.y_train, trace_steps, batch, ctx.seed)
    t = np.arange(1, trace_steps + 1)
    numbers: dict = {"trace": trace, "first": trace[0], "at_10": trace[min(9, trace_steps - 1)],
                     "m_over_g_1": trace[0]["m"] / trace[0]["g"], "m_hat_over_g_1": trace[0]["m_hat"] / trace[0]["g"],
                     "v_over_g2_1": trace[0]["v"] / trace[0]["g_rms"], "v_hat_over_g2_1": trace[0]["v_hat"] / trace[0]["g_rms"],
                     "multiplier": {"t1": float(step_multiplier(np.array(1.0))),
                                    "peak": float(step_multiplier(t).max()), "peak_step": int(t[step_multiplier(t).argmax()]),
                                    "at_last": float(step_multiplier(np.array(float(trace_steps))))}}
    runs: list[dict] = []
    window = max(1, train_steps // 10)
    for lr in lrs:
        row: dict = {"lr": lr}
        for corrected in (True, False):
            early, final, accs, diverged = [], [], [], 0
            for seed in ctx.seeds:
                out = step_losses(MLPConfig(hidden=hidden, optimizer="adam", lr=lr, seed=seed, bias_correction=corrected),
                                  data, train_steps, batch)
                if out is None:
                    diverged += 1
                    continue
                losses, acc = out[:-1], out[-1]
                early.append(float(np.mean(losses[:window])))
                final.append(float(np.mean(losses[-window:])))
                accs.append(acc)
            row["corrected" if corrected else "raw"] = {
                "diverged": diverged, "early_loss": spread(early) if early else None,
                "final_loss": spread(final) if final else None, "test_accuracy": spread(accs) if accs else None}
        runs.append(row)
    numbers["runs"] = runs
    numbers["window"] = window
    table = markdown_table(["lr", "bias correction", f"loss, first {window} steps", f"loss, last {window} steps",
                            "test accuracy", "diverged"],
                           [[row["lr"], "yes" if kind == "corrected" else "no",
                             *(f"{r[k]['mean']:.4f} ± {r[k]['std']:.4f}" if r[k] else "-"
                               for k in ("early_loss", "final_loss", "test_accuracy")), r["diverged"]]
                            for row in runs for kind, r in (("corrected", row["corrected"]), ("raw", row["raw"]))])
    result = LabResult(numbers, _figure(trace), table=table, settings={
        "data": info, "sizes": [data.x_train.shape[1], *hidden, len(data.classes)], "activation": "relu (He init)",
        "betas": [BETA1, BETA2], "eps": 1e-8, "batch": batch, "trace": f"first layer's weights, lr 0.001, {trace_steps} steps",
        "training": f"{train_steps} steps per run at each lr", "lrs": lrs, "seeds": ctx.seeds,
        "implementation": "cnnlab.scratch.optim.Adam (checked step by step against torch.optim.Adam)"})
    _conclude(result, numbers)
    return result


def _conclude(result: LabResult, n: dict) -> None:
    result.conclude("After the first step the optimizer's m_1 is {a:.4f} of the gradient it saw (1-β1 = 0.1) and "
                    "sqrt(v_1) {b:.4f} of its RMS (sqrt(1-β2) = 0.0316): both moments start biased towards 0; the "
                    "corrected m̂_1 and sqrt(v̂_1) are {c:.4f} and {d:.4f} of them.",
                    a="m_over_g_1", b="v_over_g2_1", c="m_hat_over_g_1", d="v_hat_over_g2_1")
    result.conclude("At step 10 the first layer's mean |g| is {g:.2e}, mean |m| {m:.2e} and mean |m̂| {h:.2e}.",
                    g="at_10.g", m="at_10.m", h="at_10.m_hat")
    result.conclude("Without the correction each step is (1-β1^t)/sqrt(1-β2^t) times too large: {a:.2f}x at t = 1, "
                    "{p:.2f}x at its peak (t = {k}), still {e:.2f}x at t = {last}: v's bias outweighs m's.",
                    a="multiplier.t1", p="multiplier.peak", k="multiplier.peak_step", e="multiplier.at_last",
                    last="trace.{}.step".format(len(n["trace"]) - 1))
    for i, row in enumerate(n["runs"]):
        key = f"runs.{i}"
        if row["corrected"]["early_loss"] and row["raw"]["early_loss"]:
            better = "lower" if row["raw"]["final_loss"]["mean"] < row["corrected"]["final_loss"]["mean"] else "higher"
            result.conclude("At lr {lr:g}: mean training loss over the first {w} steps {a:.3f} with the correction "
                            "and {b:.3f} without; over the last {w} steps {c:.3f} and {d:.3f} (" + better +
                            " without); test accuracy {e:.3f} and {f:.3f}.", lr=f"{key}.lr", w="window",
                            a=f"{key}.corrected.early_loss.mean", b=f"{key}.raw.early_loss.mean",
                            c=f"{key}.corrected.final_loss.mean", d=f"{key}.raw.final_loss.mean",
                            e=f"{key}.corrected.test_accuracy.mean", f=f"{key}.raw.test_accuracy.mean")
        else:
            result.conclude("At lr {lr:g} {a} corrected and {b} uncorrected runs diverged.", lr=f"{key}.lr",
                            a=f"{key}.corrected.diverged", b=f"{key}.raw.diverged")


def _figure(trace: list[dict]):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    t = np.array([r["step"] for r in trace])
    axes[0].plot(t, [r["g"] for r in trace], color="grey", lw=0.8, label="mean |g_t|")
    axes[0].plot(t, [r["m"] for r in trace], label="mean |m_t| (raw)")
    axes[0].plot(t, [r["m_hat"] for r in trace], label="mean |m̂_t| (corrected)")
    axes[0].set_title("first moment, first layer")
    axes[1].plot(t, [r["v"] for r in trace], label="sqrt(mean v_t) (raw)")
    axes[1].plot(t, [r["v_hat"] for r in trace], label="sqrt(mean v̂_t) (corrected)")
    axes[1].set_yscale("log")
    axes[1].set_title("second moment, first layer")
    long = np.arange(1, 5001)
    axes[2].semilogx(long, step_multiplier(long), label="(1-β1^t)/sqrt(1-β2^t)")
    axes[2].axhline(1, color="k", lw=0.8)
    axes[2].set_title("uncorrected step / corrected step")
    finish_axes(axes, "step t")
    return fig
