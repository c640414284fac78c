"""The two proofs of correctness, runnable on their own (``cnnlab scratch check``).

1. Gradient check: analytic vs finite-difference gradient of every parameter tensor, float64,
   for MLPs and CNNs (max and average pooling).
2. Twin agreement: the NumPy networks and their PyTorch twins trained side by side on the same
   batches, float64; the largest loss and weight gaps over all steps.

Both use real images (scikit-learn's embedded 8x8 digits), so nothing needs downloading.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnlab.scratch.cnn import CNN
from cnnlab.scratch.gradcheck import gradient_check
from cnnlab.scratch.mlp import MLP
from cnnlab.scratch.network import Network
from cnnlab.scratch.twin import compare_steps

GRADCHECK_NETS = [((64, 16, 10), "sigmoid"), ((64, 16, 10), "relu"), ((64, 12, 8, 8, 10), "relu"),
                  ((64, 16, 10), "identity")]  # identity: 002 Q4b's linear hidden layer
CNN_NETS = [((4, 6), "max"), ((4, 6), "avg")]
TWIN_RUNS = [("sigmoid", "sgd", 2.0), ("relu", "sgd", 0.1), ("relu", "momentum", 0.05), ("relu", "nesterov", 0.05)]


def digits_arrays(dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.data / 16.0).astype(dtype), bunch.target.astype(np.int64)


def nonzero_biases(model: Network, seed: int = 0) -> Network:
    """Small random biases, to keep a gradient check off ReLU's kink.

    With zero biases a conv over the digits' blank background outputs exactly 0, where ReLU has no
    derivative: a finite difference there measures a one-sided slope (relative errors ~1e-2) that
    says nothing about the backward formulas.
    """
    rng = np.random.default_rng(seed)
    for name, value, _ in model.named_parameters():
        if name.endswith(".b"):
            value[:] = rng.normal(0, 0.1, value.shape)
    return model


def seeded_batches(x: np.ndarray, y: np.ndarray, batch_size: int, steps: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        idx = rng.choice(len(y), batch_size, replace=False)
        yield x[idx], y[idx]


def run_checks(out: str | Path | None = None, seed: int = 0, steps: int = 50, verbose: bool = False) -> dict:
    x, y = digits_arrays()
    results = {"gradient_check": [], "twin": []}
    for sizes, act in GRADCHECK_NETS:
        model = MLP(sizes, act, seed=seed, dtype=np.float64)
        errors = gradient_check(model, x[:16], y[:16])
        results["gradient_check"].append({"sizes": list(sizes), "activation": act, "relative_errors": errors,
                                          "max_relative_error": max(errors.values())})
    for channels, pool in CNN_NETS:
        model = nonzero_biases(CNN((1, 8, 8), channels, hidden=(16,), pool=pool, seed=seed, dtype=np.float64), seed)
        errors = gradient_check(model, x[:8], y[:8])
        results["gradient_check"].append({"sizes": ["cnn", *channels, 16, 10], "activation": f"relu, {pool}-pool",
                                          "relative_errors": errors, "max_relative_error": max(errors.values())})
    twins = [(MLP((64, 32, 16, 10), act, seed=seed, dtype=np.float64), act, opt, lr) for act, opt, lr in TWIN_RUNS]
    twins.append((CNN((1, 8, 8), (4, 6), hidden=(16,), seed=seed, dtype=np.float64), "cnn relu", "momentum", 0.05))
    for model, act, opt, lr in twins:
        rows = compare_steps(model, seeded_batches(x, y, 32, steps, seed), opt, lr)
        results["twin"].append({"activation": act, "optimizer": opt, "lr": lr, "steps": steps,
                                "first_loss": rows[0]["loss_numpy"], "last_loss": rows[-1]["loss_numpy"],
                                "max_loss_diff": max(r["loss_diff"] for r in rows),
                                "max_weight_diff": max(r["max_weight_diff"] for r in rows)})
    if verbose:
        for r in results["gradient_check"]:
            errs = ", ".join(f"{k} {v:.1e}" for k, v in r["relative_errors"].items())
            print(f"gradient check {'-'.join(map(str, r['sizes']))} {r['activation']}: {errs}")
        for r in results["twin"]:
            print(f"NumPy vs PyTorch, {r['activation']} {r['optimizer']} lr={r['lr']}, {r['steps']} steps "
                  f"(loss {r['first_loss']:.3f} -> {r['last_loss']:.3f}): max loss gap {r['max_loss_diff']:.1e}, "
                  f"max weight gap {r['max_weight_diff']:.1e}")
    if out is not None:
        from cnnlab.core import output
        from cnnlab.core.fileio import write_json

        write_json(output.output_folder(out, ("checks.json",)) / "checks.json", results)
    return results
