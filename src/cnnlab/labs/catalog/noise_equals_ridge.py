"""002 Q3b: training linear regression on inputs with N(0, s²I) noise is ridge regression.

With x̃ = x + ε, ε ~ N(0, s²I) independent of everything, the expected cost is
E[(1/2n) Σ (y_i - x̃_iᵀw)²] = (1/2n) Σ (y_i - x_iᵀw)² + (1/2n) Σ E[(ε_iᵀw)²]
                            = (1/2n) |y - Xw|² + (s²/2) |w|²,
because E[ε] = 0 kills the cross term and E[εεᵀ] = s²I. Multiplying by 2n: the minimiser of
|y - Xw|² + λ|w|² with λ = n·s², the ridge solution (XᵀX + n s² I)⁻¹ Xᵀy. The lab checks it on a
real regression set (scikit-learn's diabetes data): least squares on K noisy copies of the data
approaches the ridge solution as K grows (the sample average of the noise terms converges at
the 1/sqrt(K) rate), and SGD that draws fresh noise every step ends there too.
"""
from __future__ import annotations

import math

import numpy as np

from cnnlab.core.text import markdown_table
from cnnlab.labs.frame import LabContext, LabResult, finish_axes, register_lab
from cnnlab.scratch.linreg import fit_closed_form


def regression_data() -> tuple[np.ndarray, np.ndarray]:
    """The diabetes data (442 patients, 10 measurements, disease progression): features standardised, y centred."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True, scaled=False)
    x = (x - x.mean(0)) / x.std(0)
    return x, (y - y.mean()) / y.std()


def ridge_solution(x: np.ndarray, y: np.ndarray, s: float) -> np.ndarray:
    """The minimiser of |y - Xw|² + λ|w|² with λ = n·s² (what input noise of std s is equivalent to)."""
    return fit_closed_form(x, y, ridge=len(x) * s * s)


def noisy_least_squares(x: np.ndarray, y: np.ndarray, s: float, copies: int, rng: np.random.Generator) -> np.ndarray:
    """Plain least squares on ``copies`` stacked copies of the data, each input with fresh N(0, s²) noise."""
    xs = np.concatenate([x + s * rng.standard_normal(x.shape) for _ in range(copies)])
    return fit_closed_form(xs, np.tile(y, copies))


def noisy_sgd(x: np.ndarray, y: np.ndarray, s: float, steps: int, rng: np.random.Generator, batch: int = 32,
              lr: float = 0.05) -> np.ndarray:
    """SGD on the squared error with fresh input noise at every step; the average of the second half of the iterates.

    The step size decays as lr/sqrt(1 + t/100) and the iterates are averaged (Polyak): the average of
    a noisy SGD run converges to the minimiser of the expected cost.
    """
    w, avg = np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for t in range(steps):
        idx = rng.integers(0, len(y), batch)
        xb = x[idx] + s * rng.standard_normal((batch, x.shape[1]))
        w -= lr / math.sqrt(1 + t / 100) * xb.T @ (xb @ w - y[idx]) / batch
        if t >= steps // 2:
            avg += w
    return avg / (steps - steps // 2)


def relative_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@register_lab("noise-equals-ridge", "002 Q3b",
              "Input noise N(0, s²I) in linear regression converges to ridge regression with λ = n·s²")
def run(ctx: LabContext) -> LabResult:
    x, y = regression_data()
    n = len(x)
    noise_levels = ctx.pick([0.3, 1.0], [0.1, 0.3, 0.6, 1.0])
    copies = ctx.pick([1, 8, 64], [1, 4, 16, 64, 256, 1024])
    sgd_steps = ctx.pick(4000, 40000)
    ols = fit_closed_form(x, y)
    levels = []
    for s in noise_levels:
        ridge = ridge_solution(x, y, s)
        rows = []
        for k in copies:
            dist = [relative_distance(noisy_least_squares(x, y, s, k, np.random.default_rng(seed)), ridge)
                    for seed in ctx.seeds]
            rows.append({"copies": k, "samples": k * n, "distance_to_ridge": float(np.mean(dist)),
                         "distance_spread": float(np.std(dist))})
        largest = noisy_least_squares(x, y, s, copies[-1], np.random.default_rng(ctx.seed))
        sgd = noisy_sgd(x, y, s, sgd_steps, np.random.default_rng(ctx.seed))
        slope = np.polyfit(np.log([r["samples"] for r in rows]), np.log([r["distance_to_ridge"] for r in rows]), 1)[0]
        levels.append({"s": s, "lambda": n * s * s, "ridge": ridge.tolist(), "noisy_fit": largest.tolist(),
                       "copies": rows, "slope": float(slope),
                       "largest_k_to_ridge": rows[-1]["distance_to_ridge"],
                       "largest_k_to_ols": relative_distance(largest, ols),
                       "ridge_to_ols": relative_distance(ridge, ols),
                       "sgd_to_ridge": relative_distance(sgd, ridge), "sgd_to_ols": relative_distance(sgd, ols)})
    numbers = {"n": n, "d": x.shape[1], "ols": ols.tolist(), "levels": levels,
               "worst_largest_k_to_ridge": max(lv["largest_k_to_ridge"] for lv in levels),
               "mean_slope": float(np.mean([lv["slope"] for lv in levels])),
               "strongest": levels[-1]}
    table = markdown_table(["noise s", "λ = n s²", *(f"|w_K - w_ridge|/|w_ridge|, K={k}" for k in copies),
                            "noisy SGD to ridge", "noisy SGD to OLS", "ridge to OLS"],
                           [[lv["s"], lv["lambda"], *(r["distance_to_ridge"] for r in lv["copies"]),
                             lv["sgd_to_ridge"], lv["sgd_to_ols"], lv["ridge_to_ols"]] for lv in levels])
    result = LabResult(numbers, _figure(levels, x, y), table=table, settings={
        "data": "sklearn diabetes: 442 x 10, features standardised, target standardised", "noise_levels": noise_levels,
        "copies": copies, "sgd": {"steps": sgd_steps, "batch": 32, "lr": "0.05/sqrt(1 + t/100)",
                                  "average": "second half of the iterates"}, "seeds": ctx.seeds})
    result.conclude("Least squares on K noisy copies approaches the ridge solution with λ = n·s²: at K = {k} the "
                    "relative distance is at most {d:.4f} over all noise levels, and it falls as (nK)^{p:.2f} "
                    "(the 1/sqrt rate of an average would be -0.5).", k=f"levels.0.copies.{len(copies) - 1}.copies",
                    d="worst_largest_k_to_ridge", p="mean_slope")
    closer = numbers["strongest"]["largest_k_to_ridge"] < numbers["strongest"]["largest_k_to_ols"]
    result.conclude("At s = {s:g} (λ = {l:.0f}) the noise-trained weights are {a:.4f} from ridge and {b:.3f} from "
                    "ordinary least squares: " + ("the noise acts as the L2 penalty, not as nothing." if closer else
                                                  "they are no closer to ridge than to least squares."),
                    s="strongest.s", l="strongest.lambda", a="strongest.largest_k_to_ridge",
                    b="strongest.largest_k_to_ols")
    result.conclude("SGD drawing fresh noise at every step (averaged iterates) ends {a:.4f} from the ridge solution "
                    "and {b:.3f} from least squares at s = {s:g}.", a="strongest.sgd_to_ridge",
                    b="strongest.sgd_to_ols", s="strongest.s")
    return result


def _figure(levels: list[dict], x: np.ndarray, y: np.ndarray):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for lv in levels:
        samples = [r["samples"] for r in lv["copies"]]
        axes[0].loglog(samples, [r["distance_to_ridge"] for r in lv["copies"]], "o-", label=f"s = {lv['s']:g}")
    first = levels[0]["copies"]
    axes[0].loglog([r["samples"] for r in first],
                   [first[0]["distance_to_ridge"] * math.sqrt(first[0]["samples"] / r["samples"]) for r in first],
                   "k--", label="1/sqrt(samples)")
    axes[0].set_xlabel("noisy samples n·K")
    axes[0].set_title("|w_noise - w_ridge(λ = n s²)| / |w_ridge|")
    grid = np.linspace(0, max(lv["s"] for lv in levels), 60)
    path = np.array([ridge_solution(x, y, s) for s in grid])
    for j in range(path.shape[1]):
        axes[1].plot(grid, path[:, j], color=f"C{j % 10}", lw=1)
        axes[1].plot([lv["s"] for lv in levels], [lv["noisy_fit"][j] for lv in levels], "o", color=f"C{j % 10}", ms=4)
    axes[1].set_xlabel("input noise s")
    axes[1].set_title("lines: ridge path, λ = n s²; dots: least squares on noisy inputs")
    finish_axes(axes)
    return fig
