"""002 Q4a: a 4-3 sigmoid network whose weights and biases all start at zero.

Forward: every pre-activation is 0, so every hidden unit outputs sigmoid(0) = 0.5 and the output
is 0.5 whatever the input. Backward: the gradient reaching a hidden layer is (upstream gradient)
times the weights above it, which are zero, so in the first SGD step only the output layer
moves; the second layer starts to move at step 2 and the first at step 3. Worse, the units of a
layer start equal and receive equal gradients, so they stay equal forever: the network keeps
the capacity of one unit per layer. A random initialisation breaks the symmetry.

The course's binary output unit is written here as a two-way softmax (the same model: a
sigmoid of the difference of two logits), float64, on two real classes.
"""
from __future__ import annotations

import numpy as np

from cnnlab.core.text import markdown_table
from cnnlab.labs.frame import LabContext, LabResult, finish_axes, lab_arrays, register_lab
from cnnlab.scratch.mlp import MLP
from cnnlab.scratch.optim import make_optimizer

HIDDEN = (4, 3)
CLASSES = (0, 6)  # Fashion-MNIST T-shirt/top vs Shirt (digits: 0 vs 6): a pair that needs more than one unit


def unit_spread(model: MLP) -> list[float]:
    """Per hidden layer, the largest difference between two units' incoming weights and bias (0: identical)."""
    spreads = []
    for layer in [layer for layer in model.layers if layer.params][:-1]:
        units = np.vstack([layer.params["W"], layer.params["b"][None, :]])  # one column per unit
        spreads.append(float(np.abs(units - units[:, :1]).max()))
    return spreads


def min_unit_distance(model: MLP) -> list[float]:
    """Per hidden layer, the smallest distance between two units' incoming weights and bias (> 0: all differ)."""
    out = []
    for layer in [layer for layer in model.layers if layer.params][:-1]:
        units = np.vstack([layer.params["W"], layer.params["b"][None, :]]).T
        d = np.linalg.norm(units[:, None, :] - units[None, :, :], axis=-1)
        out.append(float(d[np.triu_indices(len(units), 1)].min()))
    return out


def train_steps(model: MLP, x: np.ndarray, y: np.ndarray, steps: int, lr: float, seed: int) -> list[dict]:
    """Mini-batch SGD; per step, how much each parameter moved and whether the units are still identical."""
    opt = make_optimizer("sgd", model.named_parameters(), lr)
    rng = np.random.default_rng(seed)
    rows = []
    for step in range(1, steps + 1):
        before = model.state()
        idx = rng.choice(len(y), 64, replace=False)
        loss, _ = model.loss_and_grads(x[idx], y[idx])
        opt.step()
        after = model.state()
        rows.append({"step": step, "loss": loss, "spread": unit_spread(model),
                     "moved": {k.replace(".", "_"): float(np.abs(after[k] - before[k]).max()) for k in after}})
    return rows


def accuracy(model: MLP, x: np.ndarray, y: np.ndarray) -> float:
    return float((model.forward(x).argmax(1) == y).mean())


@register_lab("zero-init-symmetry", "002 Q4a",
              "A 4-3 sigmoid net with zero weights: output 0.5, which weights one SGD step changes, units that stay identical")
def run(ctx: LabContext) -> LabResult:
    data, info = lab_arrays(ctx, n_train=ctx.pick(2000, 30000), n_test=ctx.pick(1000, 10000))
    pick = lambda x, y: (x[np.isin(y, CLASSES)].astype(np.float64), (y[np.isin(y, CLASSES)] == CLASSES[1]).astype(np.int64))  # noqa: E731
    (x, y), (xt, yt) = pick(data.x_train, data.y_train), pick(data.x_test, data.y_test)
    steps, lr = ctx.pick(60, 3000), 0.5
    sizes = [x.shape[1], *HIDDEN, 2]
    zero = MLP(sizes, "sigmoid", init="zero", seed=ctx.seed, dtype=np.float64)
    hidden = zero.hidden_outputs(x[:256])
    p = np.exp(zero.forward(x[:256]))
    p /= p.sum(1, keepdims=True)
    numbers: dict = {"initial": {"max_hidden_minus_half": max(float(np.abs(h - 0.5).max()) for h in hidden),
                                 "output_probability": float(p[:, 1].mean()),
                                 "max_output_minus_half": float(np.abs(p - 0.5).max())}}
    zero_rows = train_steps(zero, x, y, steps, lr, ctx.seed)
    first_move = {name: next((r["step"] for r in zero_rows if r["moved"][name] > 0), None)
                  for name in zero_rows[0]["moved"]}
    numbers["zero"] = {"moved_step1": zero_rows[0]["moved"], "first_step_moved": first_move,
                       "max_spread": [max(r["spread"][i] for r in zero_rows) for i in range(len(HIDDEN))],
                       "distinct_units": _distinct(zero), "test_accuracy": accuracy(zero, xt, yt),
                       "final_loss": zero_rows[-1]["loss"]}
    numbers["zero"]["max_spread_all"] = max(numbers["zero"]["max_spread"])
    rand = MLP(sizes, "sigmoid", init="xavier", seed=ctx.seed, dtype=np.float64)
    rand_rows = train_steps(rand, x, y, steps, lr, ctx.seed)
    numbers["random"] = {"min_unit_distance": min_unit_distance(rand), "distinct_units": _distinct(rand),
                         "test_accuracy": accuracy(rand, xt, yt), "final_loss": rand_rows[-1]["loss"]}
    numbers["random"]["min_unit_distance_all"] = min(numbers["random"]["min_unit_distance"])
    numbers["steps"] = steps
    table = markdown_table(["parameter", "moved in step 1 (max |Δ|)", "first step it moved"],
                           [[k, v, first_move[k]] for k, v in numbers["zero"]["moved_step1"].items()])
    result = LabResult(numbers, _figure(zero_rows, rand_rows), table=table, settings={
        "data": info, "classes": list(CLASSES), "train_images": len(y), "test_images": len(yt), "sizes": sizes,
        "output": "two-way softmax (= sigmoid of the logit difference)", "optimizer": f"SGD lr {lr}, batch 64",
        "steps": steps, "dtype": "float64", "random_init": "Xavier"})
    _conclude(result, numbers)
    return result


def _distinct(model: MLP) -> list[int]:
    """Per hidden layer, how many different units it really has (columns equal to the last bit count once)."""
    return [len({tuple(c) for c in np.vstack([layer.params["W"], layer.params["b"][None, :]]).T})
            for layer in [layer for layer in model.layers if layer.params][:-1]]


def _conclude(result: LabResult, n: dict) -> None:
    result.conclude("With all weights and biases zero every hidden unit outputs exactly 0.5 (largest deviation {d:g}) "
                    "and the network outputs p = {p:g} for every input.",
                    d="initial.max_hidden_minus_half", p="initial.output_probability")
    m = n["zero"]["moved_step1"]
    moved, still = [k for k, v in m.items() if v > 0], [k for k, v in m.items() if v == 0]
    result.conclude(f"After one SGD step {', '.join(moved) or 'nothing'} changed (output layer: max |ΔW| {{w:.2e}}, "
                    f"|Δb| {{b:.2e}}) and {', '.join(still) or 'nothing'} stayed exactly 0; the second layer's weights "
                    "first moved at step {s2}, the first layer's at step {s1}.",
                    w="zero.moved_step1.dense2_W", b="zero.moved_step1.dense2_b",
                    s2="zero.first_step_moved.dense1_W", s1="zero.first_step_moved.dense0_W")
    same = n["zero"]["max_spread_all"] == 0
    result.conclude("Over {t} steps the units of each layer stayed " + ("identical" if same else "NOT identical") +
                    " (largest difference between two units' weights {s:g}; distinct units per layer: {u}), "
                    "so the net never has more than one unit per layer.",
                    t="steps", s="zero.max_spread_all", u="zero.distinct_units")
    result.conclude("With Xavier initialisation the units differ from the start and stay different (smallest distance "
                    "between two units after training {d:.3f}); test accuracy {r:.3f} against {z:.3f} from zeros.",
                    d="random.min_unit_distance_all", r="random.test_accuracy", z="zero.test_accuracy")


def _figure(zero_rows: list[dict], rand_rows: list[dict]):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    steps = [r["step"] for r in zero_rows]
    show = min(6, len(zero_rows))
    names = list(zero_rows[0]["moved"])
    for name in names:
        axes[0].semilogy(steps[:show], [max(r["moved"][name], 1e-20) for r in zero_rows[:show]], "o-", label=name)
    axes[0].set_title("zero init: |Δ| per step (1e-20 = did not move)")
    for i in range(len(HIDDEN)):
        axes[1].plot(steps, [max(r["spread"][i], 1e-20) for r in zero_rows], label=f"zero init, layer {i + 1}")
        axes[1].plot(steps, [r["spread"][i] for r in rand_rows], "--", label=f"Xavier, layer {i + 1}")
    axes[1].set_yscale("log")
    axes[1].set_title("largest difference between two units of a layer")
    axes[2].plot(steps, [r["loss"] for r in zero_rows], label="zero init")
    axes[2].plot(steps, [r["loss"] for r in rand_rows], label="Xavier")
    axes[2].set_title("training loss (mini-batch)")
    finish_axes(axes, "SGD step", fontsize=7)
    return fig
