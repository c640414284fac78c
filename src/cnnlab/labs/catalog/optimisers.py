"""002 (course): SGD, momentum, Nesterov, Adam and AdamW, on 2-D functions and on a small CNN.

On a ravine (a valley much steeper across than along) plain gradient descent must keep its
step below 2/(steepest curvature), so it crawls along the flat direction; momentum accumulates
the consistent along-valley component and damps the zig-zag across it; Nesterov evaluates the
gradient after the momentum step, which corrects overshoots earlier; Adam divides each
coordinate's step by the RMS of its gradients, so flat and steep directions move at similar
speeds; AdamW is Adam with the weight decay applied to the weights directly instead of through
the gradient. Each optimizer gets its best learning rate from the same log grid (best = the
fewest steps to f < 1e-4, then the lowest final value), so the comparison is between methods,
not between tunings. On the CNN the learning rate is chosen on a validation split.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from cnnlab.core.text import markdown_table, spread
from cnnlab.labs.frame import LabContext, LabResult, finish_axes, lab_data, register_lab, train_small
from cnnlab.models import create_model

TOL = 1e-4
START = {"rosenbrock": (-1.2, 1.0), "ravine": (-4.0, 1.0)}
MINIMUM = {"rosenbrock": (1.0, 1.0), "ravine": (0.0, 0.0)}
# (torch optimizer, its keyword arguments); AdamW with PyTorch's default decoupled decay
OPTIMISERS = {
    "SGD": (torch.optim.SGD, {}),
    "momentum": (torch.optim.SGD, {"momentum": 0.9}),
    "Nesterov": (torch.optim.SGD, {"momentum": 0.9, "nesterov": True}),
    "Adam": (torch.optim.Adam, {}),
    "AdamW": (torch.optim.AdamW, {"weight_decay": 0.01}),
}
# the same optimizers on the engine: (engine optimizer, momentum, nesterov, weight decay, learning rates to try)
CNN = {
    "SGD": ("sgd", 0.0, False, 5e-4, (0.03, 0.1, 0.3)),
    "momentum": ("sgd", 0.9, False, 5e-4, (0.01, 0.03, 0.1)),
    "Nesterov": ("sgd", 0.9, True, 5e-4, (0.01, 0.03, 0.1)),
    "Adam": ("adam", 0.0, False, 0.0, (3e-4, 1e-3, 3e-3)),
    "AdamW": ("adamw", 0.0, False, 0.01, (3e-4, 1e-3, 3e-3)),
}


def rosenbrock(p: torch.Tensor) -> torch.Tensor:
    """(1-x)² + 100(y-x²)²: a curved, narrow valley; minimum 0 at (1, 1)."""
    return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2


def ravine(p: torch.Tensor) -> torch.Tensor:
    """0.5(x² + 100y²): a straight valley with curvatures 1 and 100; minimum 0 at (0, 0)."""
    return 0.5 * (p[0] ** 2 + 100 * p[1] ** 2)


FUNCTIONS = {"rosenbrock": rosenbrock, "ravine": ravine}


def descend(fn, start, name: str, lr: float, steps: int) -> dict:
    """Run one optimizer from ``start``; the path, f per step and the first step with f < TOL (None if never)."""
    cls, kwargs = OPTIMISERS[name]
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = cls([p], lr=lr, **kwargs)
    path, values = [tuple(start)], []
    for _ in range(steps):
        opt.zero_grad()
        f = fn(p)
        if not torch.isfinite(f) or f.item() > 1e12:
            return {"lr": lr, "diverged": True, "path": path, "values": values, "reached": None}
        values.append(f.item())
        f.backward()
        opt.step()
        path.append(tuple(p.detach().tolist()))
    values.append(fn(p.detach()).item())
    reached = next((i for i, v in enumerate(values) if v < TOL), None)
    return {"lr": lr, "diverged": not math.isfinite(values[-1]), "path": path, "values": values, "reached": reached}


def best_run(runs: list[dict]) -> dict:
    """The fewest steps to f < TOL; among runs that never get there, the lowest final value."""
    ok = [r for r in runs if not r["diverged"]]
    return min(ok, key=lambda r: (r["reached"] if r["reached"] is not None else math.inf, r["values"][-1]))


@register_lab("optimisers", "002 (course)",
              "SGD, momentum, Nesterov, Adam, AdamW: trajectories on Rosenbrock and a ravine, and on a small CNN")
def run(ctx: LabContext) -> LabResult:
    steps = ctx.pick(300, 3000)
    lrs = [m * 10.0 ** e for e in range(ctx.pick(-4, -5), 1) for m in (1, 3)][:-1]  # 1e-5 (quick 1e-4), 3e-5, .., 1
    surfaces: dict = {}
    for fname, fn in FUNCTIONS.items():
        surfaces[fname] = {}
        for name in OPTIMISERS:
            best = best_run([descend(fn, START[fname], name, lr, steps) for lr in lrs])
            end = np.array(best["path"][-1])
            surfaces[fname][name] = {"lr": best["lr"], "steps_to_tol": best["reached"], "final_value": best["values"][-1],
                                     "final_distance": float(np.linalg.norm(end - np.array(MINIMUM[fname]))),
                                     "path": best["path"][:: max(1, steps // 600)], "values": best["values"]}
    cnn = _cnn(ctx)
    numbers = {"steps": steps, "tolerance": TOL, "lr_grid": lrs,
               "surfaces": {f: {k: {kk: vv for kk, vv in v.items() if kk not in ("path", "values")} for k, v in s.items()}
                            for f, s in surfaces.items()}, "cnn": cnn}
    numbers.update(_rankings(numbers))
    rows = [[f, k, v["lr"], v["steps_to_tol"] if v["steps_to_tol"] is not None else f"> {steps}", v["final_value"],
             v["final_distance"]] for f, s in numbers["surfaces"].items() for k, v in s.items()]
    table = markdown_table(["function", "optimizer", "best lr", f"steps to f < {TOL:g}", f"f after {steps}",
                            "distance to minimum"], rows)
    table += "\n\n" + markdown_table(
        ["CNN optimizer", "lr (chosen on validation)", "val accuracy", "test accuracy (mean ± std)", "final train loss"],
        [[k, v["lr"], v["val_accuracy"], f"{v['test_accuracy']['mean']:.4f} ± {v['test_accuracy']['std']:.4f}",
          v["train_loss"]] for k, v in cnn["runs"].items()])
    result = LabResult(numbers, _figure(surfaces, cnn), table=table, settings={
        "functions": {"rosenbrock": "(1-x)² + 100(y-x²)², start (-1.2, 1)", "ravine": "0.5(x² + 100y²), start (-4, 1)"},
        "steps": steps, "lr_grid": "1 and 3 times each power of 10 from 1e-5 to 1, best per optimizer", "momentum": 0.9,
        "adam": "betas (0.9, 0.999)", "adamw_weight_decay": 0.01, "cnn": cnn["settings"]})
    _conclude(result, numbers)
    return result


def _cnn(ctx: LabContext) -> dict:
    data = lab_data(ctx, n_train=ctx.pick(256, 3000), n_test=ctx.pick(256, 2000), n_val=ctx.pick(128, 1000))
    epochs, width = ctx.pick(1, 2), 8
    runs = {}

    def train(name: str, lr: float, seed: int) -> dict:
        opt, momentum, nesterov, wd, _ = CNN[name]
        torch.manual_seed(seed)
        model = create_model("simple-cnn", data.num_classes, data.in_chans, width=width, dropout=0.0)
        return train_small(ctx, model, data, epochs=epochs, lr=lr, optimizer=opt, momentum=momentum,
                           nesterov=nesterov, weight_decay=wd, batch_size=64, seed=seed)

    for name, (*_, grid) in CNN.items():
        tried = {lr: train(name, lr, ctx.seed) for lr in ctx.pick(grid[1:2], grid)}
        val = {lr: (r["history"][-1]["val_accuracy"] if r["history"] else 0.0) for lr, r in tried.items()}
        lr = max(val, key=val.get)
        seeded = [tried[lr]] + [train(name, lr, seed) for seed in ctx.seeds[1:]]
        curves = [[h["train_loss"] for h in r["history"]] for r in seeded if r["history"]]
        runs[name] = {"lr": lr, "val_accuracy": val[lr], "validation_by_lr": {f"{k:g}": v for k, v in val.items()},
                      "test_accuracy": spread([r["test_accuracy"] for r in seeded]),
                      "train_loss": float(np.mean([c[-1] for c in curves])) if curves else math.nan,
                      "loss_curve": np.mean(curves, 0).tolist() if curves else []}
    return {"runs": runs, "settings": {"data": data.info, "model": f"simple-cnn width {width}, dropout 0",
                                       "epochs": epochs, "batch": 64, "schedule": "one-cycle",
                                       "grids": {k: list(v[4]) for k, v in CNN.items()},
                                       "weight_decay": {k: v[3] for k, v in CNN.items()}, "seeds": ctx.seeds}}


def _rankings(n: dict) -> dict:
    def speed(f: str, k: str) -> float:
        s = n["surfaces"][f][k]["steps_to_tol"]
        return s if s is not None else math.inf

    out = {}
    for f in n["surfaces"]:
        order = sorted(n["surfaces"][f], key=lambda k: (speed(f, k), n["surfaces"][f][k]["final_value"]))
        out[f"fastest_{f}"] = order[0]
    cnn = n["cnn"]["runs"]
    out["best_cnn"] = max(cnn, key=lambda k: cnn[k]["test_accuracy"]["mean"])
    return out


def _steps(v) -> str:
    return f"{v} steps" if v is not None else "never"


def _conclude(result: LabResult, n: dict) -> None:
    for f, what in (("ravine", "On the ravine (curvatures 1 and 100)"), ("rosenbrock", "On Rosenbrock's valley")):
        s = n["surfaces"][f]
        reach = {k: _steps(v["steps_to_tol"]) for k, v in s.items()}
        result.conclude(what + ", each at its best learning rate, f fell below {t:g} after: SGD " + reach["SGD"] +
                        " (lr {a:g}), momentum " + reach["momentum"] + " (lr {b:g}), Nesterov " + reach["Nesterov"] +
                        " (lr {c:g}), Adam " + reach["Adam"] + " (lr {d:g}), AdamW " + reach["AdamW"] +
                        f" (lr {{e:g}}); fastest: {n[f'fastest_{f}']}.", t="tolerance",
                        a=f"surfaces.{f}.SGD.lr", b=f"surfaces.{f}.momentum.lr", c=f"surfaces.{f}.Nesterov.lr",
                        d=f"surfaces.{f}.Adam.lr", e=f"surfaces.{f}.AdamW.lr")
    adamw, adam = n["surfaces"]["rosenbrock"]["AdamW"], n["surfaces"]["rosenbrock"]["Adam"]
    paths = dict(d="surfaces.rosenbrock.AdamW.final_distance", f="surfaces.rosenbrock.AdamW.final_value",
                 a="surfaces.rosenbrock.Adam.final_distance")
    if adamw["final_distance"] > adam["final_distance"]:
        result.conclude("AdamW's decoupled decay pulls the weights towards 0, so on Rosenbrock it ends {d:.2e} from the "
                        "minimum (f = {f:.1e}) where Adam ends {a:.2e} away.", **paths)
    else:
        result.conclude("AdamW ended {d:.2e} from Rosenbrock's minimum (f = {f:.1e}) and Adam {a:.2e}: the decoupled "
                        "decay did not hold it back here.", **paths)
    c = "cnn.runs"
    result.conclude("On the CNN (learning rate chosen on validation, mean of seeds) test accuracy was {a:.4f} with SGD, "
                    "{b:.4f} with momentum, {c:.4f} with Nesterov, {d:.4f} with Adam and {e:.4f} with AdamW" +
                    f"; best: {n['best_cnn']}.", a=f"{c}.SGD.test_accuracy.mean", b=f"{c}.momentum.test_accuracy.mean",
                    c=f"{c}.Nesterov.test_accuracy.mean", d=f"{c}.Adam.test_accuracy.mean",
                    e=f"{c}.AdamW.test_accuracy.mean")


def _figure(surfaces: dict, cnn: dict):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(14, 10))
    views = {"rosenbrock": ((-2, 2), (-1, 3)), "ravine": ((-4.5, 1), (-1.2, 1.2))}
    for ax, (fname, fn) in zip(axes[0], FUNCTIONS.items()):
        (x0, x1), (y0, y1) = views[fname]
        gx, gy = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
        z = fn(torch.tensor(np.stack([gx, gy]))).numpy()
        ax.contour(gx, gy, np.log10(z + 1e-3), levels=25, cmap="Greys", linewidths=0.6)
        for name, r in surfaces[fname].items():
            path = np.array(r["path"])
            ax.plot(path[:, 0], path[:, 1], ".-", ms=2, lw=1, label=f"{name} (lr {r['lr']:.2g})")
        ax.plot(*MINIMUM[fname], "k*", ms=12)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_title(f"{fname}: trajectories at each optimizer's best lr")
    for name, r in surfaces["rosenbrock"].items():
        axes[1][0].semilogy(np.maximum(r["values"], 1e-16), label=name)
    axes[1][0].axhline(TOL, color="k", ls="--", lw=0.8)
    axes[1][0].set_xlabel("step")
    axes[1][0].set_title("Rosenbrock: f per step")
    for name, r in cnn["runs"].items():
        if r["loss_curve"]:
            axes[1][1].plot(range(1, len(r["loss_curve"]) + 1), r["loss_curve"], "o-",
                            label=f"{name} (lr {r['lr']:g}): test {r['test_accuracy']['mean']:.3f}")
    axes[1][1].set_xlabel("epoch")
    axes[1][1].set_title("simple-cnn: training loss per epoch")
    finish_axes(axes)
    return fig
