"""Hand-derived values for each from-scratch layer, initializer and optimizer update."""
from __future__ import annotations

import numpy as np
import pytest

from cnnlab.core.errors import CnnlabError
from cnnlab.scratch.layers import Dense, ReLU, Sigmoid, SoftmaxCrossEntropy, Tanh, init_weights
from cnnlab.scratch.mlp import MLP
from cnnlab.scratch.optim import SGD, Adam, Momentum, make_optimizer


def test_sigmoid_values_and_derivative():
    act = Sigmoid()
    s = act.forward(np.array([[0.0, np.log(3.0), -800.0, 800.0]]))
    np.testing.assert_allclose(s, [[0.5, 0.75, 0.0, 1.0]], atol=1e-15)  # no overflow at ±800
    g = act.backward(np.ones((1, 4)))
    np.testing.assert_allclose(g, [[0.25, 0.75 * 0.25, 0.0, 0.0]], atol=1e-15)


def test_tanh_values_and_derivative():
    act = Tanh()
    t = act.forward(np.array([[0.0, np.log(3.0), -800.0]]))
    np.testing.assert_allclose(t, [[0.0, 0.8, -1.0]], atol=1e-15)  # tanh(log 3) = (9-1)/(9+1)
    np.testing.assert_allclose(act.backward(np.ones((1, 3))), [[1.0, 1 - 0.64, 0.0]], atol=1e-15)


def test_relu_passes_gradient_only_where_positive():
    act = ReLU()
    np.testing.assert_array_equal(act.forward(np.array([[-2.0, 0.0, 3.0]])), [[0.0, 0.0, 3.0]])
    np.testing.assert_array_equal(act.backward(np.array([[5.0, 5.0, 5.0]])), [[0.0, 0.0, 5.0]])


def test_dense_forward_and_backward_by_hand():
    layer = Dense(2, 1, "zero", np.random.default_rng(0), np.float64)
    layer.params["W"][:] = [[2.0], [-1.0]]
    layer.params["b"][:] = [0.5]
    x = np.array([[1.0, 3.0], [2.0, 0.0]])
    np.testing.assert_allclose(layer.forward(x), [[2 - 3 + 0.5], [4 + 0.5]])
    dx = layer.backward(np.array([[1.0], [10.0]]))
    np.testing.assert_allclose(layer.grads["W"], [[1 + 20], [3 + 0]])  # xᵀ g
    np.testing.assert_allclose(layer.grads["b"], [11.0])
    np.testing.assert_allclose(dx, [[2.0, -1.0], [20.0, -10.0]])  # g Wᵀ


def test_softmax_cross_entropy_by_hand_and_stable():
    loss_fn = SoftmaxCrossEntropy()
    # two equal logits: p = 1/2 each, loss = log 2; shifting logits by 1000 changes nothing
    for shift in (0.0, 1000.0):
        loss = loss_fn.forward(np.array([[0.0, 0.0], [np.log(3.0), 0.0]]) + shift, np.array([0, 0]))
        assert loss == pytest.approx((np.log(2.0) + np.log(4.0 / 3.0)) / 2)
        np.testing.assert_allclose(loss_fn.backward(), [[-0.25, 0.25], [-0.125, 0.125]])
    # a hopeless prediction: the loss is large but finite, not inf/nan
    assert loss_fn.forward(np.array([[0.0, 2000.0]]), np.array([0])) == pytest.approx(2000.0)


def test_init_scales():
    rng = np.random.default_rng(0)
    he = init_weights(2000, 500, "he", rng, np.float64)
    assert he.std() == pytest.approx(np.sqrt(2 / 2000), rel=0.01)
    xavier = init_weights(300, 100, "xavier", rng, np.float32)
    assert xavier.dtype == np.float32
    assert np.abs(xavier).max() <= np.sqrt(6 / 400) and xavier.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert init_weights(10, 10, "normal", rng, np.float64).std() < 0.02
    assert init_weights(400, 400, "unit-normal", rng, np.float64).std() == pytest.approx(1.0, rel=0.01)
    assert not init_weights(10, 10, "zero", rng, np.float64).any()


def test_zero_init_keeps_hidden_units_identical():
    """The symmetry problem: identical units get identical gradients forever."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 5)), rng.integers(0, 3, 32)
    model = MLP([5, 4, 3], "sigmoid", init="zero", dtype=np.float64)
    opt = make_optimizer("sgd", model.named_parameters(), lr=0.5)
    for _ in range(20):
        model.loss_and_grads(x, y)
        opt.step()
    w0 = model.layers[0].params["W"]
    np.testing.assert_allclose(w0, np.repeat(w0[:, :1], 4, axis=1))


def test_momentum_and_nesterov_updates_by_hand():
    w, g = np.array([1.0]), np.array([1.0])  # constant gradient 1, lr 0.1, mu 0.5
    opt = Momentum([("w", w, g)], lr=0.1, momentum=0.5)
    opt.step()  # b = 1, w = 1 - 0.1 = 0.9
    opt.step()  # b = 0.5 + 1 = 1.5, w = 0.9 - 0.15 = 0.75
    assert w[0] == pytest.approx(0.75)
    w2 = np.array([1.0])
    nest = Momentum([("w", w2, g)], lr=0.1, momentum=0.5, nesterov=True)
    nest.step()  # b = 1, w = 1 - 0.1·(1 + 0.5·1) = 0.85
    assert w2[0] == pytest.approx(0.85)
    w3 = np.array([1.0])
    SGD([("w", w3, g)], lr=0.1).step()
    assert w3[0] == pytest.approx(0.9)


def test_penalties_add_their_gradients_to_weights_only_unless_biases_too():
    # constant data gradient 1 on a weight matrix and a bias, lr 0.1: l2 adds 0.5·w, l1 adds 0.2·sign(w)
    w, gw = np.array([[2.0, -1.0]]), np.ones((1, 2))
    b, gb = np.array([3.0]), np.ones(1)
    SGD([("W", w, gw), ("b", b, gb)], lr=0.1, l2=0.5, l1=0.2).step()
    np.testing.assert_allclose(w, [[2 - 0.1 * (1 + 1.0 + 0.2), -1 - 0.1 * (1 - 0.5 - 0.2)]])
    np.testing.assert_allclose(b, [3 - 0.1])  # the bias sees the data gradient only
    b2 = np.array([3.0])
    SGD([("b", b2, gb)], lr=0.1, l2=0.5, decay_biases=True).step()
    np.testing.assert_allclose(b2, [3 - 0.1 * (1 + 1.5)])
    np.testing.assert_array_equal(gw, 1.0)  # the stored gradients are not modified


def test_adam_moments_and_bias_correction_by_hand():
    """m_t = (1-β1^t)·g for a steady g: m̂ = g exactly; v̂ = g²; so the corrected step is lr·g/(|g|+eps)."""
    g = np.array([0.5, -2.0])
    w = np.zeros(2)
    opt = Adam([("w", w, g)], lr=0.01)
    for t in (1, 2, 3):
        opt.step()
        np.testing.assert_allclose(opt.m[0], (1 - 0.9 ** t) * g, rtol=1e-14)
        np.testing.assert_allclose(opt.v[0], (1 - 0.999 ** t) * g * g, rtol=1e-12)
        c1, c2 = opt.corrections()
        np.testing.assert_allclose(opt.m[0] / c1, g, rtol=1e-14)
        np.testing.assert_allclose(opt.v[0] / c2, g * g, rtol=1e-12)
    np.testing.assert_allclose(w, -3 * 0.01 * np.sign(g), rtol=1e-7)  # eps = 1e-8 against |g| >= 0.5
    raw = np.zeros(2)
    plain = Adam([("w", raw, g)], lr=0.01, bias_correction=False)
    plain.step()  # m = 0.1 g, v = 0.001 g²: a first step sqrt(1000)/10 = 3.16x too large
    assert plain.corrections() == (1.0, 1.0)
    np.testing.assert_allclose(raw, -0.01 * 0.1 * g / (np.sqrt(0.001) * np.abs(g) + 1e-8))


def test_bad_architecture_and_optimizer_are_named():
    with pytest.raises(CnnlabError, match="--hidden"):
        MLP([4, 0, 3])
    with pytest.raises(CnnlabError, match="--hidden"):
        MLP([4, -5, 3])
    with pytest.raises(CnnlabError, match="--activation"):
        MLP([4, 5, 3], activation="softplus")
    with pytest.raises(CnnlabError, match="--init"):
        MLP([4, 5, 3], init="orthogonal")
    with pytest.raises(CnnlabError, match="--optimizer"):
        make_optimizer("rmsprop", [], 0.1)
    with pytest.raises(CnnlabError, match="--lr"):
        make_optimizer("sgd", [], -1.0)
