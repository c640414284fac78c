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
                                              ((64, 8, 6, 10), "tanh"), ((64, 10, 10), "identity"),
                                              ((64, 8, 6, 10), "identity")])
def test_gradient_check_every_parameter(digits, sizes, activation):
    x, y = digits
    model = MLP(sizes, activation, seed=1, dtype=np.float64)
    errors = gradient_check(model, x[:12], y[:12])
    assert set(errors) == {f"dense{i}.{k}" for i in range(len(sizes) - 1) for k in "Wb"}
    assert max(errors.values()) < 1e-6, errors


def test_identity_net_matches_the_hand_derived_update_rules(digits):
    """002 Q4b: h = W1 x + b1 (identity), p = softmax(W2 h + b2), L = -log p_y. Per sample (column
    vectors): dL/dz2 = p - y, dL/dW2 = (p - y) hᵀ, dL/dh = W2ᵀ (p - y), dL/dW1 = dL/dh xᵀ; the layers
    store W as n_in x n_out (z = x W + b), so their dW is the transpose, averaged over the batch.
    And the composition is one linear map: logits = x (W1 W2) + (b1 W2 + b2)."""
    x, y = digits
    x, y = x[:7], y[:7]
    model = MLP((64, 9, 10), "identity", seed=2, dtype=np.float64)
    loss, logits = model.loss_and_grads(x, y)
    (_, W1, dW1), (_, b1, db1), (_, W2, dW2), (_, b2, db2) = model.named_parameters()
    onehot = np.eye(10)[y]
    dW1_hand, db1_hand = np.zeros_like(W1.T), np.zeros_like(b1)
    dW2_hand, db2_hand = np.zeros_like(W2.T), np.zeros_like(b2)
    for xi, yi in zip(x, onehot):
        h = W1.T @ xi + b1
        z = W2.T @ h + b2
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        dz = p - yi
        dh = W2 @ dz  # W2ᵀ (p - y) in the column convention, where that matrix is this W2's transpose
        dW2_hand += np.outer(dz, h) / len(x)
        db2_hand += dz / len(x)
        dW1_hand += np.outer(dh, xi) / len(x)
        db1_hand += dh / len(x)
    np.testing.assert_allclose(dW2, dW2_hand.T, atol=1e-12)
    np.testing.assert_allclose(db2, db2_hand, atol=1e-12)
    np.testing.assert_allclose(dW1, dW1_hand.T, atol=1e-12)
    np.testing.assert_allclose(db1, db1_hand, atol=1e-12)
    np.testing.assert_allclose(logits, x @ (W1 @ W2) + (b1 @ W2 + b2), atol=1e-12)


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
                                                     ("relu", "adam", 0.003), ("identity", "sgd", 0.1)])
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
