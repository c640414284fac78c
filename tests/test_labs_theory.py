"""The identities behind the theory labs, asserted exactly (the generic quick run is in test_labs.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.cli.main import main
from cnnlab.core.errors import CnnlabError
from cnnlab.labs import run_lab
from cnnlab.scratch.checks import digits_arrays
from cnnlab.scratch.mlp import MLP


def test_zero_init_units_output_half_and_stay_identical():
    from cnnlab.labs.catalog.zero_init_symmetry import min_unit_distance, train_steps, unit_spread

    x, y = digits_arrays(np.float64)
    keep = np.isin(y, (0, 6))
    x, y = x[keep], (y[keep] == 6).astype(np.int64)
    zero = MLP([64, 4, 3, 2], "sigmoid", init="zero", dtype=np.float64)
    assert all((h == 0.5).all() for h in zero.hidden_outputs(x))  # sigmoid(0), exactly
    rows = train_steps(zero, x, y, steps=200, lr=0.5, seed=0)
    moved = rows[0]["moved"]
    assert moved["dense2_W"] > 0 and moved["dense2_b"] > 0  # only the output layer moves in step 1
    assert moved["dense0_W"] == moved["dense0_b"] == moved["dense1_W"] == moved["dense1_b"] == 0.0
    assert rows[1]["moved"]["dense1_W"] > 0 and rows[1]["moved"]["dense0_W"] == 0.0  # layer 2 at step 2
    assert rows[2]["moved"]["dense0_W"] > 0  # layer 1 at step 3
    assert all(s == 0.0 for r in rows for s in r["spread"]) and unit_spread(zero) == [0.0, 0.0]
    assert np.abs(zero.layers[0].params["W"]).max() > 0  # the units did learn, together
    rand = MLP([64, 4, 3, 2], "sigmoid", init="xavier", seed=0, dtype=np.float64)
    train_steps(rand, x, y, steps=20, lr=0.5, seed=0)
    assert min(min_unit_distance(rand)) > 0.1


def test_noise_trained_regression_converges_to_ridge_with_lambda_n_s2():
    from cnnlab.labs.catalog.noise_equals_ridge import (noisy_least_squares, regression_data, relative_distance,
                                                ridge_solution)
    from cnnlab.scratch.linreg import fit_closed_form

    x, y = regression_data()
    n, s = len(x), 0.5
    ridge = ridge_solution(x, y, s)
    np.testing.assert_allclose((x.T @ x + n * s * s * np.eye(x.shape[1])) @ ridge, x.T @ y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ridge_solution(x, y, 0.0), fit_closed_form(x, y), rtol=1e-10)

    def distance(k: int) -> float:
        return float(np.mean([relative_distance(noisy_least_squares(x, y, s, k, np.random.default_rng(seed)), ridge)
                              for seed in range(3)]))

    d = {k: distance(k) for k in (4, 64, 1024)}
    # the tolerance shrinks like 1/sqrt(samples): 16x the copies must cut the distance by well over 2x
    assert d[64] < d[4] / 2.5 and d[1024] < d[64] / 2.5
    assert d[1024] < 0.01 * 2  # about 1/sqrt(n K) = 1.5e-3 times a constant of order 1
    assert relative_distance(noisy_least_squares(x, y, s, 1024, np.random.default_rng(0)), fit_closed_form(x, y)) > 0.2


def test_adam_lab_moments_match_the_formulas(tmp_path):
    from cnnlab.labs.catalog.adam_bias_correction import step_multiplier

    assert step_multiplier(np.array(1.0)) == pytest.approx(0.1 / math.sqrt(0.001), rel=1e-12)
    numbers = run_lab("adam-bias-correction", tmp_path, quick=True, progress=False)["numbers"]
    assert numbers["m_over_g_1"] == pytest.approx(0.1, rel=1e-5)  # float32 state
    assert numbers["v_over_g2_1"] == pytest.approx(math.sqrt(0.001), rel=1e-5)
    assert numbers["m_hat_over_g_1"] == pytest.approx(1.0, rel=1e-5)
    assert numbers["v_hat_over_g2_1"] == pytest.approx(1.0, rel=1e-5)
    assert numbers["multiplier"]["peak"] > 6 and 5 <= numbers["multiplier"]["peak_step"] <= 20


def test_gradient_descent_on_the_ravine_follows_the_closed_form():
    """On 0.5(x² + 100y²) a gradient step multiplies x by (1 - lr) and y by (1 - 100 lr), exactly."""
    from cnnlab.labs.catalog.optimisers import descend, ravine

    lr, steps = 0.015, 40
    run = descend(ravine, (-4.0, 1.0), "SGD", lr, steps)
    x, y = run["path"][-1]
    assert x == pytest.approx(-4.0 * (1 - lr) ** steps, rel=1e-12)
    assert y == pytest.approx((1 - 100 * lr) ** steps, rel=1e-9, abs=1e-300)
    assert descend(ravine, (-4.0, 1.0), "SGD", 0.03, 50)["diverged"]  # |1 - 100 lr| > 1


def test_batch_statistics_noise_falls_as_one_over_sqrt_batch():
    from cnnlab.labs.catalog.bn_batch_size import batch_stat_noise, loglog_slope

    features = torch.randn(20000, 4, 1, 1, generator=torch.Generator().manual_seed(0))  # independent values
    rows = batch_stat_noise(features, [2, 8, 32, 128], draws=400, seed=0)
    assert loglog_slope([r["batch_size"] for r in rows], [r["mean_error"] for r in rows]) == pytest.approx(-0.5, abs=0.05)
    assert rows[0]["mean_error"] == pytest.approx(1 / math.sqrt(2), rel=0.1)


def test_per_feature_batchnorm_counts_and_breaks_translation_equivariance():
    from cnnlab.labs.catalog.bn_dense_vs_conv import equivariance_error, norm_parameters, per_feature_batchnorm
    from cnnlab.models import create_model

    torch.manual_seed(0)
    x = torch.randn(8, 1, 28, 28)
    conv = create_model("simple-cnn", 10, 1, width=4, dropout=0.0)
    feature = per_feature_batchnorm(create_model("simple-cnn", 10, 1, width=4, dropout=0.0), x[:2])
    assert norm_parameters(conv)[0] == 2 * (4 + 4 + 8 + 8)
    assert norm_parameters(feature)[0] == 2 * (4 * 784 * 2 + 8 * 196 * 2)
    assert feature(x).shape == (8, 10)
    for bn in [m for m in feature.modules() if isinstance(m, nn.BatchNorm1d)]:  # give each position its own affine
        nn.init.normal_(bn.weight)
        nn.init.normal_(bn.bias)
    assert equivariance_error(conv[0], x) < 1e-6
    assert equivariance_error(feature[0], x) > 0.05


def test_norm_switch_on_the_shared_conv_block():
    from cnnlab.models import create_model
    from cnnlab.models.layers import ConvBNAct

    default = ConvBNAct(3, 16)
    assert isinstance(default[1], nn.BatchNorm2d) and default[0].bias is None
    assert ConvBNAct(3, 16, bn=False)[0].bias is not None and len(ConvBNAct(3, 16, bn=False)) == 2
    group = ConvBNAct(3, 16, norm="group")[1]
    assert isinstance(group, nn.GroupNorm) and group.num_groups == 8
    assert ConvBNAct(3, 12, norm="group")[1].num_groups == 4 and ConvBNAct(3, 12, norm="layer")[1].num_groups == 1
    keys = list(create_model("simple-cnn", 10, 1).state_dict())
    assert "0.1.running_mean" in keys and "0.0.bias" not in keys  # the default model is unchanged
    plain = create_model("simple-cnn", 10, 1, norm="none")
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in plain.modules())
    assert all(m.bias is not None for m in plain.modules() if isinstance(m, nn.Conv2d))
    assert any(isinstance(m, nn.GroupNorm) for m in create_model("vgg-small", 10, 3, norm="group").modules())
    with pytest.raises(CnnlabError, match="norm='bn'"):
        create_model("simple-cnn", 10, 1, norm="bn")


def test_lab_threads_option_is_checked(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["lab", "optimisers", "--threads", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--threads" in err
