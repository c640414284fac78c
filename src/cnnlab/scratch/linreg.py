"""Linear regression two ways: gradient descent on the squared error, and the closed form.

Model ``y ≈ X w`` (a column of ones in ``X`` carries the bias), cost ``J(w) = |X w - y|² / (2n)``,
the course's (002 Q1): the 1/2 cancels the square's 2 in the gradient, so ``J`` is half the MSE.

* Gradient descent: ``w <- w - lr · (1/n) Xᵀ(X w - y)``; each step is two matrix-vector products,
  so ``m`` steps cost ``O(m·n·d)``.
* Closed form: ``∇J = 0`` gives the normal equations ``XᵀX w = Xᵀy``. Forming ``XᵀX`` costs
  ``O(n·d²)`` and solving the ``d x d`` system ``O(d³)``. We never invert ``XᵀX``: a Cholesky
  solve is backward stable for this symmetric positive definite matrix (and when ``X`` has
  dependent columns, so that ``XᵀX`` is singular, we fall back to the SVD-based least squares).

So GD wins when ``d`` is large and few steps suffice; the closed form wins for small ``d``.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import scipy.linalg

POWER_ITERS = 30  # power-iteration steps used to pick GD's learning rate, each as costly as a GD step


def add_bias(x: np.ndarray) -> np.ndarray:
    return np.hstack([x, np.ones((len(x), 1), x.dtype)])


def fit_closed_form(x: np.ndarray, y: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """Solve ``XᵀX w = Xᵀy`` by Cholesky; least squares when ``XᵀX`` is singular.

    ``ridge`` = λ solves ``(XᵀX + λI) w = Xᵀy`` instead: the minimiser of ``|Xw - y|² + λ|w|²``.
    """
    try:
        return scipy.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1], dtype=x.dtype), x.T @ y, assume_a="pos")
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(x, y, rcond=None)[0]


def largest_curvature(x: np.ndarray, iters: int = POWER_ITERS, seed: int = 0) -> float:
    """``λmax`` of the Hessian ``(1/n) XᵀX`` of ``J`` by power iteration, ``O(iters·n·d)``: it never forms ``XᵀX``.

    GD on a quadratic converges for ``lr < 2/λmax``; ``lr = 1/λmax`` is the classic safe choice.
    """
    v = np.random.default_rng(seed).standard_normal(x.shape[1])
    lam = 0.0
    for _ in range(iters):
        hv = (x.T @ (x @ v)) / len(x)
        lam = float(np.linalg.norm(hv))
        v = hv / lam
    return lam


def fit_gradient_descent(x: np.ndarray, y: np.ndarray, steps: int = 100, lr: float | None = None) -> np.ndarray:
    """``steps`` full-batch GD steps from ``w = 0``; ``lr`` defaults to ``1/λmax``."""
    lr = lr if lr is not None else 1.0 / largest_curvature(x)
    w = np.zeros(x.shape[1], x.dtype)
    for _ in range(steps):
        w -= lr / len(x) * (x.T @ (x @ w - y))
    return w


def cost(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """The course's ``J(w) = |X w - y|² / (2n)`` (half the mean squared error)."""
    return float(np.mean((x @ w - y) ** 2)) / 2


def make_problem(n: int, d: int, seed: int = 0, noise: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian features (well conditioned when ``n >> d``), true weights, noisy targets."""
    rng = np.random.default_rng(seed)
    x = add_bias(rng.standard_normal((n, d)))
    w_true = rng.standard_normal(d + 1)
    return x, x @ w_true + noise * rng.standard_normal(n), w_true


def _best_time(fn, repeats: int) -> tuple[float, np.ndarray]:
    """Fastest of ``repeats`` runs: the least disturbed by other processes on a shared CPU."""
    best, result = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def compare(sizes: list[tuple[int, int]], steps: int = 100, repeats: int = 3, seed: int = 0) -> list[dict]:
    """For each ``(n, d)``: both fits' weights, cost ``J`` and seconds, next to the predicted seconds.

    The predictions are the operation counts ``m·n·d`` (``m`` = GD steps plus the power-iteration
    steps that chose the learning rate) and ``n·d² + d³`` times one constant per
    method, fitted over all sizes (geometric mean of seconds / count): the complexity formula
    fixes the *shape* of the growth, the constant is the machine's speed.
    """
    rows = []
    for n, d in sizes:
        x, y, _ = make_problem(n, d, seed)
        t_gd, w_gd = _best_time(lambda: fit_gradient_descent(x, y, steps), repeats)
        t_cf, w_cf = _best_time(lambda: fit_closed_form(x, y), repeats)
        rows.append({"n": n, "d": d, "steps": steps, "gd_seconds": t_gd, "closed_seconds": t_cf,
                     "gd_ops": (steps + POWER_ITERS) * n * d, "closed_ops": n * d * d + d ** 3,
                     "max_weight_diff": float(np.abs(w_gd - w_cf).max()),
                     "gd_cost": cost(x, y, w_gd), "closed_cost": cost(x, y, w_cf)})
    for method in ("gd", "closed"):
        c = math.exp(np.mean([math.log(r[f"{method}_seconds"] / r[f"{method}_ops"]) for r in rows]))
        for r in rows:
            r[f"{method}_predicted_seconds"] = c * r[f"{method}_ops"]
    return rows


def linreg_table(rows: list[dict]) -> str:
    lines = ["|     n |    d | GD s (measured) | GD s (O(m·n·d)) | closed s (measured) | closed s (O(n·d²+d³)) "
             "| max |w_gd - w_cf| | J = |Xw-y|²/(2n) gd / closed |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['n']:6d} | {r['d']:4d} | {r['gd_seconds']:.4f} | {r['gd_predicted_seconds']:.4f} | "
                     f"{r['closed_seconds']:.4f} | {r['closed_predicted_seconds']:.4f} | {r['max_weight_diff']:.2e} | "
                     f"{r['gd_cost']:.5f} / {r['closed_cost']:.5f} |")
    return "\n".join(lines)


def plot_linreg(rows: list[dict], path: Path, n_fixed: int, d_fixed: int) -> Path:
    """Seconds against n (d fixed) and against d (n fixed): measured points, predicted lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cnnlab.report.plots import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (var, fixed_key, fixed) in zip(axes, (("n", "d", d_fixed), ("d", "n", n_fixed))):
        sel = sorted((r for r in rows if r[fixed_key] == fixed), key=lambda r: r[var])
        xs = [r[var] for r in sel]
        for method, label, color in (("gd", "gradient descent, O(m·n·d)", "C0"),
                                     ("closed", "normal equations, O(n·d²+d³)", "C1")):
            ax.loglog(xs, [r[f"{method}_seconds"] for r in sel], "o", color=color, label=f"{label} measured")
            ax.loglog(xs, [r[f"{method}_predicted_seconds"] for r in sel], "--", color=color, label="predicted")
        ax.set_xticks(xs, [str(v) for v in xs], minor=False)
        ax.set_xticks([], minor=True)
        ax.set_xlabel(var)
        ax.set_ylabel("seconds")
        ax.set_title(f"{fixed_key} = {fixed}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def run_linreg(out: str | Path, n_values=(2000, 8000, 32000), d_values=(25, 100, 400), n_fixed: int = 8000,
               d_fixed: int = 100, steps: int = 100, repeats: int = 3, seed: int = 0) -> list[dict]:
    """``cnnlab scratch linreg``: the n-sweep and the d-sweep, ``linreg.json`` and ``linreg.png``."""
    from cnnlab.core import output
    from cnnlab.core.fileio import write_json

    out = output.output_folder(out, ("linreg.json", "linreg.png"))
    sizes = sorted({(n, d_fixed) for n in n_values} | {(n_fixed, d) for d in d_values})
    rows = compare(sizes, steps, repeats, seed)
    write_json(out / "linreg.json", {"steps": steps, "rows": rows})
    plot_linreg(rows, out / "linreg.png", n_fixed, d_fixed)
    return rows
