"""Training runs, CLI outputs, bad input, and the linear-regression comparison (tiny, embedded data)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cnnlab.cli.main import main
from cnnlab.core.errors import CnnlabError
from cnnlab.scratch.experiments import MLPConfig, load_arrays, make_runner, run_suite, train, train_epoch
from cnnlab.scratch.linreg import POWER_ITERS, compare, cost, fit_closed_form, fit_gradient_descent, make_problem
from cnnlab.core.threads import compute_threads
from tests.conftest import real_data


@pytest.fixture(scope="module")
def digits():
    return load_arrays("digits")


@pytest.fixture(autouse=True)
def one_thread():
    with compute_threads(1):
        yield


def test_numpy_mlp_learns_digits_and_torch_twin_tracks_it(digits):
    cfg = MLPConfig(hidden=(32,), epochs=5, batch_size=32)
    _, hist_np = train(cfg, digits, progress=False)
    _, hist_pt = train(MLPConfig(hidden=(32,), epochs=5, batch_size=32, framework="torch"), digits, progress=False)
    assert hist_np[-1]["test_accuracy"] > 0.9
    assert hist_np[-1]["train_loss"] < hist_np[0]["train_loss"]
    assert [r["lr"] for r in hist_np] == pytest.approx([0.05, 0.04, 0.03, 0.02, 0.01])  # linear decay
    # same init, same batches, float32 in both: the curves coincide to rounding
    assert hist_pt[-1]["test_accuracy"] == pytest.approx(hist_np[-1]["test_accuracy"], abs=0.01)
    assert hist_pt[-1]["train_loss"] == pytest.approx(hist_np[-1]["train_loss"], rel=1e-3)


def test_same_seed_same_run_and_batches_cover_everything(digits):
    cfg = MLPConfig(hidden=(16,), epochs=2, optimizer="nesterov", schedule="constant", seed=7)
    a, b = train(cfg, digits, progress=False)[1], train(cfg, digits, progress=False)[1]
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]


def test_diverging_learning_rate_stops_naming_epoch_and_step(digits):
    with pytest.raises(CnnlabError, match=r"loss diverged to .* at epoch 1, step 2: .*--lr"):
        train(MLPConfig(hidden=(64, 32), lr=1e6, epochs=2), digits, progress=False)
    # without the divergence limit the same run overflows to nan one step later
    runner = make_runner(MLPConfig(hidden=(64, 32), lr=1e6), digits)
    with pytest.raises(CnnlabError, match=r"loss became nan at epoch 4, step 3: .*--lr"):
        train_epoch(runner, digits.x_train, digits.y_train, 64, np.random.default_rng(0), epoch=4)
    # finite but absurd (ReLUs died, sigmoids saturated): also stopped, not trained on for epochs
    with pytest.raises(CnnlabError, match=r"loss diverged to .* at epoch 1, step \d+"):
        train(MLPConfig(hidden=(32,), activation="sigmoid", lr=1e3, epochs=2), digits, progress=False)


@pytest.mark.parametrize("kwargs,arg", [(dict(hidden=(0,)), "--hidden"), (dict(activation="softplus"), "--activation"),
                                        (dict(optimizer="rmsprop"), "--optimizer"), (dict(l1=-1.0), "--l1"),
                                        (dict(optimizer="adam", framework="torch", bias_correction=False), "twin"), (dict(lr=0.0), "--lr"),
                                        (dict(lr=float("nan")), "--lr"), (dict(momentum=1.0), "--momentum"),
                                        (dict(batch_size=0), "--batch-size"), (dict(schedule="cosine"), "--schedule")])
def test_bad_config_is_named(kwargs, arg):
    with pytest.raises(CnnlabError, match=arg):
        MLPConfig(**kwargs)


def test_cli_mlp_writes_metrics_and_curves(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["scratch", "mlp", "--dataset", "digits", "--hidden", "24", "12", "--activation", "sigmoid",
               "--optimizer", "sgd", "--lr", "0.5", "--epochs", "3", "--no-progress", "--out", str(out)])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 3
    assert set(metrics["history"][0]) >= {"train_loss", "train_accuracy", "test_loss", "test_accuracy"}
    assert metrics["parameters"] == 64 * 24 + 24 + 24 * 12 + 12 + 12 * 10 + 10
    assert (out / "curves.png").stat().st_size > 1000
    assert "test acc" in capsys.readouterr().out


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:  # argparse checks the sizes
        main(["scratch", "mlp", "--dataset", "digits", "--hidden", "-3", "--out", str(tmp_path)])
    assert refused.value.code == 2 and "argument --hidden" in capsys.readouterr().err
    assert main(["scratch", "mlp", "--dataset", "digits", "--lr", "1e6", "--no-progress", "--out", str(tmp_path)]) == 2
    assert "at epoch 1, step 2" in capsys.readouterr().err


def test_suite_writes_table_figure_and_grid(digits, tmp_path):
    rows = run_suite(digits, tmp_path, epochs=1, batch_size=32, progress=False)
    assert [r["variant"] for r in rows] == list("bcdef")
    saved = json.loads((tmp_path / "suite.json").read_text())
    assert [r["variant"] for r in saved["rows"]] == list("bcdef")
    table = (tmp_path / "suite.md").read_text()
    assert table.count("\n") == 7 and "(f) | (d) in PyTorch" in table
    for png in ("curves.png", "grid.png"):
        assert (tmp_path / png).stat().st_size > 1000
    # (f) is (d) in PyTorch: same init and batches, so the same result up to float32 rounding
    d, f = rows[2], rows[4]
    assert f["test_accuracy"] == pytest.approx(d["test_accuracy"], abs=0.01)
    with pytest.raises(CnnlabError, match="--variants"):
        run_suite(digits, tmp_path, epochs=1, variants="bx", progress=False)


def test_closed_form_matches_lstsq_and_gd_converges_to_it():
    x, y, w_true = make_problem(500, 8, seed=1, noise=0.01)
    w_cf = fit_closed_form(x, y)
    np.testing.assert_allclose(w_cf, np.linalg.lstsq(x, y, rcond=None)[0], atol=1e-10)
    np.testing.assert_allclose(w_cf, w_true, atol=0.01)
    np.testing.assert_allclose(fit_gradient_descent(x, y, steps=300), w_cf, atol=1e-8)
    # dependent columns: XᵀX is singular, the solver falls back to least squares
    x2 = np.hstack([x, x[:, :1]])
    assert np.allclose(x2 @ fit_closed_form(x2, y), x @ w_cf)


def test_linreg_compare_reports_times_and_predictions():
    rows = compare([(400, 5), (800, 5), (800, 20)], steps=50, repeats=1)
    for r in rows:
        assert r["gd_ops"] == (50 + POWER_ITERS) * r["n"] * r["d"] and r["closed_ops"] == r["n"] * r["d"] ** 2 + r["d"] ** 3
        assert r["gd_seconds"] > 0 and r["closed_predicted_seconds"] > 0
        assert r["max_weight_diff"] < 1e-3
        assert r["gd_cost"] == pytest.approx(r["closed_cost"], rel=1e-6)
    # the predictions share one constant per method, so they scale exactly like the op counts
    assert rows[1]["gd_predicted_seconds"] / rows[0]["gd_predicted_seconds"] == pytest.approx(2.0)


def test_linreg_cost_is_the_courses_half_mean_square():
    x, y = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1.0, 3.0])
    w = np.zeros(2)
    assert cost(x, y, w) == pytest.approx((1 + 9) / (2 * 2))
    # GD steps on J move along -dJ/dw = Xᵀ(y - Xw)/n: one step of lr 1 from 0 lands on y/2 here
    assert fit_gradient_descent(x, y, steps=1, lr=1.0) == pytest.approx(y / 2)


def test_cli_linreg(tmp_path, capsys):
    assert main(["scratch", "linreg", "--n", "300", "600", "--d", "4", "8", "--n-fixed", "300", "--d-fixed", "4",
                 "--steps", "20", "--repeats", "1", "--out", str(tmp_path)]) == 0
    assert len(json.loads((tmp_path / "linreg.json").read_text())["rows"]) == 3
    assert (tmp_path / "linreg.png").stat().st_size > 1000
    assert "O(m·n·d)" in capsys.readouterr().out


@pytest.mark.data
@pytest.mark.slow
def test_fashion_mnist_one_epoch_on_a_subset():
    data = load_arrays("fashion-mnist", str(real_data("fashion-mnist")))
    assert data.x_train.shape == (60000, 784) and data.x_train.dtype == np.float32 and data.x_train.max() <= 1.0
    data.x_train, data.y_train = data.x_train[:10000], data.y_train[:10000]
    _, hist = train(MLPConfig(epochs=1), data, progress=False)
    assert hist[-1]["test_accuracy"] > 0.75


def test_thread_switch_restores_and_rejects_zero():
    import torch

    before = torch.get_num_threads()
    with compute_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(CnnlabError, match="--threads"):
        with compute_threads(0):
            pass
