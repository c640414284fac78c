"""Backprop proven two ways: finite differences, and step-by-step agreement with PyTorch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab.scratch.checks import digits_arrays, seeded_batches
from cnnlab.scratch.gradcheck import gradient_check, relative_error
from cnnlab.scratch.mlp import MLP
from cnnlab.scratch.twin import compare_steps, torch_twin


@pytest.fixture(scope="module")
def digits():
    return digits_arrays(np.float64)


@pytest.mark.parametrize("sizes,activation", [((64, 10, 10), "sigmoid"), ((64, 10, 10), "relu"),
                                              ((64, 8, 6, 6, 10), "relu"), ((64, 8, 6, 10), "sigmoid"),
                                              ((64, 8, 6, 10), "tanh")])
def test_gradient_check_every_parameter(digits, sizes, activation):
    x, y = digits
    model = MLP(sizes, activation, seed=1, dtype=np.float64)
    errors = gradient_check(model, x[:12], y[:12])
    assert set(errors) == {f"dense{i}.{k}" for i in range(len(sizes) - 1) for k in "Wb"}
    assert max(errors.values()) < 1e-6, errors


def test_gradient_check_catches_a_wrong_formula(digits, monkeypatch):
    """Drop the 1/B of the softmax-CE gradient: the check must flag it (it is not vacuous)."""
    from cnnlab.scratch import layers

    x, y = digits
    original = layers.SoftmaxCrossEntropy.backward
    monkeypatch.setattr(layers.SoftmaxCrossEntropy, "backward", lambda self: original(self) * len(self.y))
    errors = gradient_check(MLP((64, 10, 10), "relu", seed=1, dtype=np.float64), x[:12], y[:12])
    assert min(errors.values()) > 0.5
    assert relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0


@pytest.mark.parametrize("activation,optimizer,lr", [("sigmoid", "sgd", 2.0), ("relu", "sgd", 0.1),
                                                     ("relu", "momentum", 0.05), ("relu", "nesterov", 0.05),
                                                     ("sigmoid", "momentum", 0.2), ("tanh", "sgd", 0.2),
                                                     ("relu", "adam", 0.003)])
def test_numpy_and_pytorch_agree_step_by_step(digits, activation, optimizer, lr):
    x, y = digits
    model = MLP((64, 32, 16, 10), activation, seed=3, dtype=np.float64)
    rows = compare_steps(model, seeded_batches(x, y, 32, 30, seed=0), optimizer, lr)
    assert len(rows) == 30
    assert rows[-1]["loss_numpy"] < rows[0]["loss_numpy"] - 0.1  # it really trained
    assert max(r["loss_diff"] for r in rows) < 1e-8
    assert max(r["max_weight_diff"] for r in rows) < 1e-8


def test_float32_twin_computes_the_same_logits(digits):
    x, _ = digits
    model = MLP((64, 20, 10), "sigmoid", seed=0)
    x32 = x[:50].astype(np.float32)
    expected = torch_twin(model)(torch.from_numpy(x32)).detach().numpy()
    np.testing.assert_allclose(model.forward(x32), expected, atol=1e-5)


@pytest.mark.parametrize("optimizer", ["momentum", "nesterov"])
def test_runners_agree_when_the_learning_rate_changes(digits, optimizer):
    """The lr schedule rescales the stored momentum the same way in both (PyTorch's form)."""
    from cnnlab.scratch.experiments import MLPConfig, NumpyRunner, TorchRunner
    from cnnlab.core.threads import compute_threads

    x, y = digits
    cfg = MLPConfig(hidden=(32, 16), optimizer=optimizer, lr=0.1)
    mine, theirs = NumpyRunner(cfg, (1, 8, 8), 10, np.float64), TorchRunner(cfg, (1, 8, 8), 10, np.float64)
    with compute_threads(1):
        for step, (xb, yb) in enumerate(seeded_batches(x, y, 32, 20, seed=1)):
            lr = 0.1 / (1 + step // 5)
            mine.set_lr(lr)
            theirs.set_lr(lr)
            assert mine.step(xb, yb)[0] == pytest.approx(theirs.step(xb, yb)[0], abs=1e-10)
        assert mine.evaluate(x, y)[0] == pytest.approx(theirs.evaluate(x, y)[0], abs=1e-10)
