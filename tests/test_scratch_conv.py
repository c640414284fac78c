"""The NumPy conv, pooling and flatten layers: finite differences, PyTorch's autograd, and training."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.cli.main import main
from cnnlab.core.errors import CnnlabError
from cnnlab.scratch.checks import digits_arrays, nonzero_biases, run_checks, seeded_batches
from cnnlab.scratch.cnn import CNN
from cnnlab.scratch.conv import AvgPool2D, Conv2D, Flatten, MaxPool2D, ToChannelsLast, conv_output_size
from cnnlab.scratch.experiments import CNNConfig, load_arrays, train
from cnnlab.scratch.gradcheck import gradient_check, relative_error
from cnnlab.scratch.layers import Dense, ReLU
from cnnlab.scratch.network import Network
from cnnlab.core.threads import compute_threads
from cnnlab.scratch.twin import compare_steps, torch_twin

CONV_CASES = [(3, 1, 1, 1), (3, 2, 1, 1), (5, 2, 2, 1), (3, 1, 2, 2), (1, 1, 0, 1), (4, 3, 0, 1), (3, 2, 0, 3)]


@pytest.fixture(scope="module")
def digits():
    return digits_arrays(np.float64)


def _nchw(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("kernel,stride,padding,dilation", CONV_CASES)
def test_conv_matches_torch_autograd(kernel, stride, padding, dilation):
    rng = np.random.default_rng(kernel * 100 + stride * 10 + padding + dilation)
    layer = Conv2D(3, 5, kernel, stride, padding, dilation, rng=rng, dtype=np.float64)
    layer.params["b"][:] = rng.standard_normal(5)
    x = rng.standard_normal((2, 11, 9, 3))
    z = layer.forward(x)
    assert z.shape == (2, conv_output_size(11, kernel, stride, padding, dilation),
                       conv_output_size(9, kernel, stride, padding, dilation), 5)
    g = rng.standard_normal(z.shape)
    dx = layer.backward(g.copy())
    xt = _nchw(x).requires_grad_(True)
    wt = torch.tensor(layer.params["W"].transpose(3, 2, 0, 1).copy(), requires_grad=True)
    bt = torch.tensor(layer.params["b"], requires_grad=True)
    zt = F.conv2d(xt, wt, bt, stride, padding, dilation)
    zt.backward(_nchw(g))
    assert relative_error(z.transpose(0, 3, 1, 2), zt.detach().numpy()) < 1e-12
    assert relative_error(dx.transpose(0, 3, 1, 2), xt.grad.numpy()) < 1e-6  # dL/dP
    assert relative_error(layer.grads["W"].transpose(3, 2, 0, 1), wt.grad.numpy()) < 1e-6  # dL/dW'
    assert relative_error(layer.grads["b"], bt.grad.numpy()) < 1e-6


@pytest.mark.parametrize("cls,fn", [(MaxPool2D, F.max_pool2d), (AvgPool2D, F.avg_pool2d)])
@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 2), (3, 1), (2, 3)])
def test_pooling_matches_torch_autograd(cls, fn, kernel, stride):
    rng = np.random.default_rng(kernel + 7 * stride)
    layer = cls(kernel, stride)
    x = rng.standard_normal((2, 9, 8, 3))
    z = layer.forward(x)
    g = rng.standard_normal(z.shape)
    dx = layer.backward(g)
    xt = _nchw(x).requires_grad_(True)
    zt = fn(xt, kernel, stride)
    zt.backward(_nchw(g))
    np.testing.assert_allclose(z.transpose(0, 3, 1, 2), zt.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert relative_error(dx.transpose(0, 3, 1, 2), xt.grad.numpy()) < 1e-6


def test_max_pool_ties_send_the_gradient_to_the_first_maximum_like_torch():
    x = np.zeros((1, 2, 2, 1))  # after a ReLU whole windows are often 0
    layer = MaxPool2D(2)
    layer.forward(x)
    dx = layer.backward(np.ones((1, 1, 1, 1)))
    xt = _nchw(x).requires_grad_(True)
    F.max_pool2d(xt, 2).sum().backward()
    np.testing.assert_array_equal(dx.transpose(0, 3, 1, 2), xt.grad.numpy())
    assert dx.sum() == 1 and dx[0, 0, 0, 0] == 1


def test_conv_by_hand():
    """A 2x2 kernel on a 3x3 image, stride 1, no padding: every number checked by hand."""
    layer = Conv2D(1, 1, 2, dtype=np.float64)
    layer.params["W"][:, :, 0, 0] = [[1.0, 2.0], [3.0, 4.0]]
    layer.params["b"][:] = 0.5
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)  # [[1 2 3] [4 5 6] [7 8 9]]
    z = layer.forward(x)
    np.testing.assert_allclose(z[0, :, :, 0], [[1 + 4 + 12 + 20 + 0.5, 2 + 6 + 15 + 24 + 0.5],
                                               [4 + 10 + 21 + 32 + 0.5, 5 + 12 + 24 + 36 + 0.5]])
    dx = layer.backward(np.ones((1, 2, 2, 1)))
    # dL/dW'_{ij} = sum over outputs of the input under tap (i, j); dL/dP is the kernel "spread back"
    np.testing.assert_allclose(layer.grads["W"][:, :, 0, 0], [[1 + 2 + 4 + 5, 2 + 3 + 5 + 6], [4 + 5 + 7 + 8, 5 + 6 + 8 + 9]])
    np.testing.assert_allclose(layer.grads["b"], [4.0])
    np.testing.assert_allclose(dx[0, :, :, 0], [[1, 3, 2], [4, 10, 6], [3, 7, 4]])


def test_flatten_and_channels_last_round_trip_in_torch_order():
    x = np.arange(2 * 3 * 4 * 5, dtype=float).reshape(2, 3 * 4 * 5)  # rows of (C=3, H=4, W=5) images
    images = ToChannelsLast((3, 4, 5)).forward(x)
    assert images.shape == (2, 4, 5, 3) and images[1, 2, 3, 1] == x[1, 1 * 20 + 2 * 5 + 3]
    flat = Flatten()
    np.testing.assert_array_equal(flat.forward(images), x)  # channel-major, as torch.flatten
    np.testing.assert_array_equal(flat.backward(x), images)


def _odd_cnn() -> Network:
    """Strides, dilation, overlapping pools of both kinds: every backward formula on one path."""
    rng = np.random.default_rng(5)
    return Network([ToChannelsLast((1, 8, 8)), Conv2D(1, 4, 3, padding=1, rng=rng, dtype=np.float64), ReLU(),
                    Conv2D(4, 5, 3, stride=2, padding=2, dilation=2, rng=rng, dtype=np.float64), ReLU(),
                    AvgPool2D(3, 1), Conv2D(5, 6, 2, rng=rng, dtype=np.float64), MaxPool2D(1, 1), Flatten(),
                    Dense(6, 10, "he", rng, np.float64)], np.float64)


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_cnn_gradient_check_every_parameter(digits, pool):
    x, y = digits
    model = nonzero_biases(CNN((1, 8, 8), channels=(3, 4), hidden=(8,), pool=pool, seed=2, dtype=np.float64))
    errors = gradient_check(model, x[:6], y[:6])
    assert set(errors) == {f"conv{i}.{k}" for i in range(2) for k in "Wb"} | {f"dense{i}.{k}" for i in range(2) for k in "Wb"}
    assert max(errors.values()) < 1e-6, errors


def test_gradient_check_strides_dilation_and_overlapping_pools(digits):
    x, y = digits
    errors = gradient_check(nonzero_biases(_odd_cnn()), x[:5], y[:5])
    assert len(errors) == 8 and max(errors.values()) < 1e-6, errors


def test_gradient_check_catches_a_wrong_conv_formula(digits, monkeypatch):
    """A tap counted twice in dW (a classic im2col indexing slip): the check must flag it."""
    x, y = digits
    original = Conv2D.backward

    def wrong(self, g):
        out = original(self, g)
        self.grads["W"] *= 2.0
        return out

    monkeypatch.setattr(Conv2D, "backward", wrong)
    model = nonzero_biases(CNN((1, 8, 8), channels=(3,), hidden=(), seed=1, dtype=np.float64))
    errors = gradient_check(model, x[:4], y[:4])
    assert errors["conv0.W"] > 0.3 and errors["dense0.W"] < 1e-6


@pytest.mark.parametrize("optimizer,lr", [("sgd", 0.1), ("momentum", 0.05), ("nesterov", 0.05)])
def test_numpy_cnn_and_pytorch_agree_step_by_step(digits, optimizer, lr):
    x, y = digits
    model = CNN((1, 8, 8), channels=(4, 6), hidden=(16,), seed=3, dtype=np.float64)
    rows = compare_steps(model, seeded_batches(x, y, 16, 20, seed=0), optimizer, lr)
    assert rows[-1]["loss_numpy"] < rows[0]["loss_numpy"] - 0.1
    assert max(r["loss_diff"] for r in rows) < 1e-8
    assert max(r["max_weight_diff"] for r in rows) < 1e-8


def test_odd_network_twin_agrees_in_float64(digits):
    x, y = digits
    rows = compare_steps(_odd_cnn(), seeded_batches(x, y, 8, 10, seed=1), "momentum", 0.05)
    assert max(r["loss_diff"] for r in rows) < 1e-8 and max(r["max_weight_diff"] for r in rows) < 1e-8


def test_float32_cnn_twin_computes_the_same_logits(digits):
    x, _ = digits
    model = CNN((1, 8, 8), channels=(4, 8), hidden=(16,), seed=0)
    x32 = x[:40].astype(np.float32)
    expected = torch_twin(model)(torch.from_numpy(x32)).detach().numpy()
    np.testing.assert_allclose(model.forward(x32), expected, atol=1e-5)


def test_numpy_cnn_learns_digits_and_its_twin_tracks_it():
    data = load_arrays("digits")
    with compute_threads(1):
        cfg = CNNConfig(channels=(8, 16), hidden=(32,), epochs=4, batch_size=32)
        _, hist_np = train(cfg, data, progress=False)
        _, hist_pt = train(CNNConfig(channels=(8, 16), hidden=(32,), epochs=4, batch_size=32, framework="torch"),
                           data, progress=False)
    assert hist_np[-1]["test_accuracy"] > 0.9
    assert hist_pt[-1]["test_accuracy"] == pytest.approx(hist_np[-1]["test_accuracy"], abs=0.01)
    assert hist_pt[-1]["train_loss"] == pytest.approx(hist_np[-1]["train_loss"], rel=1e-3)


@pytest.mark.parametrize("kwargs,arg", [(dict(channels=()), "--channels"), (dict(channels=(0,)), "--channels"),
                                        (dict(kernel=4), "--kernel"), (dict(pool="median"), "--pool"),
                                        (dict(hidden=(-1,)), "--hidden"), (dict(lr=-1.0), "--lr")])
def test_bad_cnn_config_is_named(kwargs, arg):
    with pytest.raises(CnnlabError, match=arg):
        CNNConfig(**kwargs)


def test_too_many_blocks_for_the_image_is_named():
    with pytest.raises(CnnlabError, match="4 conv blocks halve 8x8 images to nothing"):
        CNN((1, 8, 8), channels=(2, 2, 2, 2))


def test_cli_cnn_writes_metrics_and_curves(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["scratch", "cnn", "--dataset", "digits", "--channels", "4", "8", "--hidden", "16", "--epochs", "2",
               "--batch-size", "32", "--no-progress", "--out", str(out)])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 2 and metrics["config"]["channels"] == [4, 8]
    # conv 3x3: 1->4, 4->8; dense 8*2*2 -> 16 -> 10
    assert metrics["parameters"] == (9 * 4 + 4) + (9 * 4 * 8 + 8) + (32 * 16 + 16) + (16 * 10 + 10)
    assert (out / "curves.png").stat().st_size > 1000
    assert "test acc" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["scratch", "cnn", "--channels", "0", "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--channels" in err and "'0'" in err


def test_scratch_check_covers_the_cnn():
    results = run_checks(steps=5)
    cnn_checks = [r for r in results["gradient_check"] if r["sizes"][0] == "cnn"]
    assert len(cnn_checks) == 2 and max(r["max_relative_error"] for r in cnn_checks) < 1e-6
    cnn_twin = [r for r in results["twin"] if r["activation"] == "cnn relu"]
    assert cnn_twin and cnn_twin[0]["max_weight_diff"] < 1e-8
