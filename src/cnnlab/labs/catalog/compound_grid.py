"""004 Ex1d: step 1 of EfficientNet, the grid search for alpha, beta and gamma under alpha·beta²·gamma² ≈ 2.

Tan & Le fix phi = 1 (twice the MACs) and search a small grid for the depth, width and resolution
multipliers of their base network: MACs grow like ``alpha beta² gamma²``, so the constraint keeps
every candidate at about twice the base cost, and the best one (1.2, 1.1, 1.15 for B0) is then
scaled by phi. This lab runs that step on the small plain CNN and Fashion-MNIST task of
``compound-scaling``: every triple of a grid (all factors >= 1) whose product is within a stated
tolerance of 2 is a candidate. On a small network many triples round to the same network (blocks
are whole, channels multiples of 4, images whole pixels), so candidates are grouped by the network
they build and each network is trained once per seed. The triple is chosen on held-out validation
images (choosing on the test set would flatter it) and reported on the test set beside the paper's
triple trained the same way: accuracy ± seed spread, MACs, and the difference by the verdict rule.
"""
from __future__ import annotations

import math

from cnnlab.analysis.complexity import count_macs
from cnnlab.core.text import markdown_table, seed_gap, spread, verdict
from cnnlab.labs.catalog.compound_scaling import BASE_REPEATS, BASE_RESOLUTION, BASE_WIDTHS, scaled_net
from cnnlab.labs.frame import LabContext, LabResult, finish_axes, lab_data, register_lab, resized, train_seeds
from cnnlab.models.efficientnet import ALPHA, BETA, GAMMA, scale_repeats
from cnnlab.models.layers import make_divisible

TARGET = 2.0       # alpha·beta²·gamma² at phi = 1: twice the MACs
TOLERANCE = 0.05   # a triple is a candidate when |alpha·beta²·gamma² / 2 - 1| <= 5%
BATCH = 32         # ~30 steps an epoch on 1,000 images (at 128 a 3-epoch run made 24 steps and its seeds spread widely)
PAPER = (ALPHA, BETA, GAMMA)  # Tan & Le's B0 triple: 1.2 · 1.1² · 1.15² = 1.920, inside the tolerance


def grid_values(step: float, top: float) -> list[float]:
    """1, 1 + step, 1 + 2·step, ... up to ``top``, rounded to 4 decimals so that 1.15 is 1.15, not 1.1500000000000001."""
    n = int(math.floor((top - 1) / step + 1e-9))
    return [round(1 + i * step, 4) for i in range(n + 1)]


def cost_factor(triple: tuple[float, float, float]) -> float:
    """alpha·beta²·gamma²: the factor by which depth, width and resolution multiply a CNN's MACs."""
    alpha, beta, gamma = triple
    return alpha * beta ** 2 * gamma ** 2


def within_tolerance(triple: tuple[float, float, float], target: float = TARGET, tol: float = TOLERANCE) -> bool:
    """Is the triple's cost factor within ``tol`` (relative) of ``target``? (tiny slack for float rounding)"""
    return abs(cost_factor(triple) / target - 1) <= tol + 1e-12


def constrained_triples(step: float, target: float = TARGET, tol: float = TOLERANCE) -> list[tuple[float, float, float]]:
    """Every grid triple with all factors >= 1 whose cost factor is within ``tol`` of ``target``.

    No factor can exceed ``target·(1 + tol)`` (alpha) or its square root (beta, gamma) while the
    others are >= 1, so the grid stops there.
    """
    top = target * (1 + tol)
    alphas, others = grid_values(step, top), grid_values(step, math.sqrt(top))
    return [(a, b, g) for a in alphas for b in others for g in others if within_tolerance((a, b, g), target, tol)]


def network_shape(triple: tuple[float, float, float]) -> tuple[int, tuple[int, ...], int]:
    """What the triple builds from the base: blocks per stage, channels per stage, image side in pixels.

    The same rounding as ``compound-scaling`` (``scale_repeats``, channels to multiples of 4, whole pixels).
    """
    alpha, beta, gamma = triple
    blocks = scale_repeats(BASE_REPEATS[0], alpha)
    return blocks, tuple(make_divisible(w * beta, 4) for w in BASE_WIDTHS), round(BASE_RESOLUTION * gamma)


def distinct_networks(triples: list[tuple[float, float, float]]) -> dict[tuple, list[tuple[float, float, float]]]:
    """The triples grouped by the network they round to (first appearance order): each group is trained once."""
    groups: dict[tuple, list[tuple[float, float, float]]] = {}
    for t in triples:
        groups.setdefault(network_shape(t), []).append(t)
    return groups


def representative(triples: list[tuple[float, float, float]], target: float = TARGET) -> tuple[float, float, float]:
    """The triple of a group whose cost factor is nearest the target: the one to name for that network."""
    return min(triples, key=lambda t: abs(cost_factor(t) - target))


def _name(shape: tuple) -> str:
    blocks, widths, res = shape
    return f"{blocks}x{'-'.join(map(str, widths))}@{res}"


@register_lab("compound-grid", "004 Ex1d",
              "EfficientNet step 1: grid search of alpha, beta, gamma under alpha*beta^2*gamma^2 ~ 2 vs the paper's 1.2/1.1/1.15")
def run(ctx: LabContext) -> LabResult:
    step = ctx.pick(0.25, 0.1)
    full = lab_data(ctx, n_train=ctx.pick(300, 1000), n_test=ctx.pick(300, 2000), n_val=ctx.pick(200, 500))
    epochs = ctx.pick(1, 2)
    triples = constrained_triples(step)
    groups = distinct_networks(triples)
    paper_shape = network_shape(PAPER)
    shapes = list(groups) + ([paper_shape] if paper_shape not in groups else [])
    base_macs = count_macs(scaled_net(1, 1, full.in_chans, full.num_classes),
                           (full.in_chans, BASE_RESOLUTION, BASE_RESOLUTION))
    sized: dict[int, object] = {}
    nets: dict[str, dict] = {}
    for shape in shapes:
        members = groups.get(shape, [PAPER])
        alpha, beta, gamma = representative(members)
        data = sized.setdefault(shape[2], resized(full, shape[2]))
        trained = train_seeds(ctx, lambda: scaled_net(alpha, beta, data.in_chans, data.num_classes), data,
                              epochs=epochs, lr=0.05, weight_decay=5e-4, batch_size=BATCH)
        macs = count_macs(trained["model"], (data.in_chans, shape[2], shape[2]))
        nets[_name(shape)] = {
            "blocks_per_stage": shape[0], "widths": list(shape[1]), "resolution": shape[2],
            "triples": [list(t) for t in members], "triple": [alpha, beta, gamma],
            "cost_factor": cost_factor((alpha, beta, gamma)), "on_grid": shape in groups, "macs": macs,
            "macs_vs_base": macs / base_macs, "params": sum(p.numel() for p in trained["model"].parameters()),
            "val_accuracy": spread(h[-1]["val_accuracy"] for h in trained["histories"]),
            "test_accuracy": trained["accuracy"]}
    ranked = sorted((k for k in nets if nets[k]["on_grid"]), key=lambda k: -nets[k]["val_accuracy"]["mean"])
    found, runner_up = ranked[0], (ranked[1] if len(ranked) > 1 else None)
    paper = _name(paper_shape)
    numbers = {
        "grid_step": step, "tolerance": TOLERANCE, "target": TARGET, "base_macs": base_macs,
        "grid_triples": len(grid_values(step, TARGET * (1 + TOLERANCE)))
        * len(grid_values(step, math.sqrt(TARGET * (1 + TOLERANCE)))) ** 2,
        "candidates": len(triples), "distinct_networks": len(groups), "networks": nets,
        "found": found, "runner_up": runner_up, "found_triple": nets[found]["triple"], "paper": paper,
        "paper_triple": list(PAPER),
        "paper_on_grid": paper_shape in groups, "same_network": found == paper,
        "found_vs_paper": seed_gap(nets[found]["test_accuracy"]["values"], nets[paper]["test_accuracy"]["values"]),
        "macs_ratio": nets[found]["macs"] / nets[paper]["macs"]}
    cheaper = [k for k, v in nets.items() if v["on_grid"] and k != paper and v["macs"] <= nets[paper]["macs"]]
    numbers["found_within_paper_macs"] = (max(cheaper, key=lambda k: nets[k]["val_accuracy"]["mean"])
                                          if cheaper else None)
    rows = [[k, " ".join(f"{x:g}" for x in v["triple"]), len(v["triples"]), f"{v['cost_factor']:.3f}", v["macs"],
             f"{v['macs_vs_base']:.2f}", f"{v['val_accuracy']['mean']:.4f}",
             f"{v['test_accuracy']['mean']:.4f} ± {v['test_accuracy']['std']:.4f}",
             ("found " if k == found else "") + ("paper" if k == paper else "")]
            for k, v in sorted(nets.items(), key=lambda kv: -kv[1]["val_accuracy"]["mean"])]
    result = LabResult(numbers, _figure(numbers), settings={
        "data": full.info, "epochs": epochs, "seeds": ctx.seeds, "batch_size": BATCH,
        "lr": "0.05, SGD Nesterov, one-cycle, weight decay 5e-4",
        "base": {"widths": BASE_WIDTHS, "repeats": BASE_REPEATS, "resolution": BASE_RESOLUTION},
        "grid": f"alpha, beta, gamma in 1, 1+{step:g}, ...; candidates: |alpha·beta²·gamma² / {TARGET:g} - 1| <= {TOLERANCE:g}",
        "selection": "best mean validation accuracy (last epoch) over seeds; reported on the test images",
        "resolution": "Fashion-MNIST (28x28) resized to each network's resolution"},
        table=markdown_table(["network (blocks x widths @ pixels)", "triple", "triples -> network", "alpha·beta²·gamma²",
                              "MACs", "MACs / base", "val acc", "test acc ± std", ""], rows))
    _conclude(result, numbers)
    return result


def _conclude(result: LabResult, n: dict) -> None:
    result.conclude("The grid (step {s:g}, all factors >= 1) holds {g} triples; {c} have alpha·beta²·gamma² within "
                    "{t:.0%} of {x:g}, and after rounding blocks, channels and pixels they build {d} distinct networks, "
                    "each trained once per seed.", s="grid_step", g="grid_triples", c="candidates", t="tolerance",
                    x="target", d="distinct_networks")
    found, paper = n["found"], n["paper"]
    result.conclude("Chosen on validation accuracy: alpha = {a:g}, beta = {b:g}, gamma = {c:g} (network " + found +
                    ", {m:.2f}x the base MACs): test accuracy {acc:.4f} ± {sd:.4f} (seed std).",
                    a="found_triple.0", b="found_triple.1", c="found_triple.2", m=f"networks.{found}.macs_vs_base",
                    acc=f"networks.{found}.test_accuracy.mean", sd=f"networks.{found}.test_accuracy.std")
    if n["runner_up"] is not None:
        nets, second = n["networks"], n["runner_up"]
        result.conclude("How clearly it was chosen, validation accuracy against the runner-up " + second + " ({m:.2f}x "
                        "the base MACs): " + verdict(found, nets[found]["val_accuracy"]["values"], second,
                                                     nets[second]["val_accuracy"]["values"]) + ".",
                        m=f"networks.{second}.macs_vs_base", v=f"networks.{found}.val_accuracy.mean")
    where = "a network of the grid" if n["paper_on_grid"] else "trained beside the grid"
    result.conclude("The paper's 1.2 / 1.1 / 1.15 builds " + paper + " here (" + where + ", {m:.2f}x the base MACs: "
                    f"{BASE_REPEATS[0]} x {ALPHA:g} = {BASE_REPEATS[0] * ALPHA:g} blocks per stage round to {{k}}): "
                    "test accuracy {acc:.4f} ± {sd:.4f}.",
                    m=f"networks.{paper}.macs_vs_base", k=f"networks.{paper}.blocks_per_stage",
                    acc=f"networks.{paper}.test_accuracy.mean", sd=f"networks.{paper}.test_accuracy.std")
    if n["same_network"]:
        result.conclude("The search chose the paper's own network: there is no difference to judge (MACs ratio {r:.2f}).",
                        r="macs_ratio")
        return
    nets = n["networks"]
    result.conclude("Found vs paper on the test images: " + verdict(
        "found " + found, nets[found]["test_accuracy"]["values"], "paper " + paper, nets[paper]["test_accuracy"]["values"])
        + "; the found network costs {r:.2f}x the paper's MACs, so the comparison is not at equal cost.",
        r="macs_ratio", d="found_vs_paper.difference")
    cheap = n["found_within_paper_macs"]
    if cheap is None:
        result.conclude("No network of the grid costs as little as the paper's ({m} MACs, {x:.2f}x the base where "
                        "the constraint aims at 2x), so none can be compared with it at equal cost.",
                        m=f"networks.{paper}.macs", x=f"networks.{paper}.macs_vs_base")
        return
    result.conclude("At no more than the paper's MACs, the best on validation is " + cheap + " ({m} MACs against {p}): "
                    + verdict(cheap, nets[cheap]["test_accuracy"]["values"], "paper " + paper,
                              nets[paper]["test_accuracy"]["values"]) + ".",
                    m=f"networks.{cheap}.macs", p=f"networks.{paper}.macs")


def _figure(n: dict):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    nets = n["networks"]
    grid = [v for v in nets.values() if v["on_grid"]]
    ax.errorbar([v["macs"] for v in grid], [v["test_accuracy"]["mean"] for v in grid],
                yerr=[v["test_accuracy"]["std"] for v in grid], fmt="o", color="C0", capsize=2, alpha=0.7,
                label=f"grid networks ({len(grid)}), |αβ²γ²/2 - 1| <= {n['tolerance']:g}")
    for key, marker, color, label in ((n["found"], "s", "C2", "found (best validation accuracy)"),
                                      (n["paper"], "*", "C3", "paper's 1.2 / 1.1 / 1.15")):
        v = nets[key]
        ax.errorbar([v["macs"]], [v["test_accuracy"]["mean"]], yerr=[v["test_accuracy"]["std"]], fmt=marker,
                    color=color, markersize=14 if marker == "*" else 9, capsize=3, label=f"{label}: {key}")
    ax.axvline(n["base_macs"] * n["target"], color="0.5", ls="--", lw=1, label="2x the base MACs")
    ax.set(title="test accuracy vs MACs of the alpha-beta-gamma grid (mean ± std over seeds)",
           xlabel="MACs per image", ylabel="test accuracy")
    finish_axes(ax)
    return fig
