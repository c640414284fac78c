"""The exact parts of the architecture labs: cost ratios, receptive fields, output sizes, helpers.

Every lab also runs in ``tests/test_labs.py`` (quick, files, schema, quoted numbers); these check
the formulas the labs' conclusions rest on against hand values and PyTorch itself.
"""
from __future__ import annotations

from fractions import Fraction

import pytest
import torch
from torch import nn

from cnnlab.labs.catalog.bottleneck_1x1 import MODULE_3A, formula_macs
from cnnlab.core.text import spread, versus
from cnnlab.labs.frame import shift
from cnnlab.labs.catalog.depthwise_separable import GRID, conv_weights, ratios
from cnnlab.labs.catalog.dilation import (footprint_stats, formula_field, gradient_footprint, output_size_check,
                                  summary_field)
from cnnlab.labs.catalog.unet_skips import boundary_f1, edges
from cnnlab.analysis.complexity import count_macs
from cnnlab.models.layers import DepthwiseSeparable, InceptionModule
from cnnlab.scratch.conv import conv_output_size


@pytest.mark.parametrize("c_in,c_out,k", GRID)
def test_depthwise_separable_ratio_is_exactly_one_over_c_out_plus_one_over_k_squared(c_in, c_out, k):
    r = ratios(c_in, c_out, k)
    assert r["exact"], r
    assert r["macs_ratio"] == float(Fraction(1, c_out) + Fraction(1, k * k))


def test_depthwise_separable_weights_by_hand():
    layer = DepthwiseSeparable(64, 128, kernel=5)
    assert conv_weights(layer) == 5 * 5 * 64 + 64 * 128
    assert count_macs(layer, (64, 10, 10)) == 100 * (25 * 64 + 64 * 128)


@pytest.mark.parametrize("reduce,expected", [(False, 303_464_448), (True, 128_049_152)])
def test_inception_3a_macs_match_the_hand_count(reduce, expected):
    """28·28·(192·64 + 9·192·128 + 25·192·32) naive; with the 1x1 reductions 28·28·163,328."""
    module = InceptionModule(*MODULE_3A, reduce=reduce)
    assert count_macs(module, (192, 28, 28)) == formula_macs(28, *MODULE_3A, reduce=reduce) == expected
    out = module(torch.zeros(1, 192, 28, 28))
    assert out.shape == (1, 64 + 128 + 32 + (32 if reduce else 192), 28, 28) and module.out_channels == out.shape[1]


@pytest.mark.parametrize("dilations,field,coverage", [((1, 1, 1), 7, 1.0), ((1, 2, 4), 15, 1.0), ((1, 2, 3), 13, 1.0),
                                                      ((2, 2, 2), 13, (7 / 13) ** 2), ((3, 3, 3), 19, (7 / 19) ** 2),
                                                      ((1,), 3, 1.0), ((5,), 11, (3 / 11) ** 2)])
def test_receptive_field_formula_is_exact(dilations, field, coverage):
    """R = 1 + (k-1)·Σd, measured from the gradient footprint and from cnnlab summary; gridding by hand."""
    assert formula_field(dilations) == field
    stats = footprint_stats(gradient_footprint(dilations))
    assert stats["measured_field"] == stats["width"] == field
    assert summary_field(dilations) == field
    assert stats["coverage"] == pytest.approx(coverage)


def test_receptive_field_of_5x5_kernels():
    assert formula_field((1, 2), k=5) == 13
    assert footprint_stats(gradient_footprint((1, 2), k=5))["measured_field"] == 13


def test_output_size_formula_matches_conv2d_everywhere():
    check = output_size_check()
    assert check["cases"] > 100 and check["mismatches"] == 0
    # 000 Q2c: I x I input, K x K filters, dilation d, no padding, stride 1 -> (I - d(K-1)) per side
    assert conv_output_size(32, 3, dilation=2) == 32 - 2 * 2
    assert conv_output_size(7, 3, stride=2, padding=1, dilation=1) == 4


def test_shift_moves_pixels_and_fills_the_background():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    fill = torch.tensor([-1.0])
    moved = shift(x, 1, -2, fill)
    assert moved[0, 0, 1, 0] == x[0, 0, 0, 2] and moved[0, 0, 3, 1] == x[0, 0, 2, 3]
    assert (moved[0, 0, 0] == -1).all() and (moved[0, 0, :, 2:] == -1).all()
    assert torch.equal(shift(x, 0, 0, fill), x)


def test_spread_and_versus():
    s = spread([0.9, 0.8, 0.7])
    assert s["mean"] == pytest.approx(0.8) and s["std"] == pytest.approx(0.1) and s["values"] == [0.9, 0.8, 0.7]
    assert spread([0.5])["std"] == 0.0
    assert versus(0.05, 0.01) == "higher" and versus(-0.05, 0.01) == "lower" and versus(0.015, 0.01) == "same"


def test_boundary_f1_and_edges():
    mask = torch.zeros(1, 8, 8, dtype=torch.long)
    mask[:, :, 4:] = 1
    assert edges(mask)[0, 0].tolist() == [False] * 3 + [True, True] + [False] * 3
    assert boundary_f1(mask, mask) == 1.0
    far = torch.zeros_like(mask)
    far[:, :, 1:] = 1  # edge 3 pixels away: outside the 1-pixel tolerance
    assert boundary_f1(far, mask) == 0.0


def test_naive_inception_and_kernel_options_keep_the_defaults():
    """The new switches leave the registry's models unchanged by default."""
    assert isinstance(InceptionModule(16, 4, 4, 8, 2, 4, 4).branch_pool, nn.Sequential)
    assert DepthwiseSeparable(8, 8)[0][0].kernel_size == (3, 3)


# ---------------------------------------------------------------- compound-grid (004 Ex1d)

def test_compound_grid_constraint_keeps_exactly_the_triples_within_tolerance():
    from cnnlab.labs.catalog.compound_grid import constrained_triples, grid_values, within_tolerance

    assert grid_values(0.05, 1.2) == [1.0, 1.05, 1.1, 1.15, 1.2]  # no 1.1500000000000001
    kept = constrained_triples(0.05)
    # by hand: 1.2·1.1²·1.15² = 1.920 (paper), 1.4·1.2² = 2.016, 1.5·1.1²·1.05² = 2.001, 1.4² = 1.96 (in);
    # 1.3·1.2² = 1.872 < 1.9 and 1.45² = 2.1025 > 2.1 (out); factors < 1 never appear
    for t in [(1.2, 1.1, 1.15), (1.4, 1.0, 1.2), (1.5, 1.1, 1.05), (1.0, 1.4, 1.0), (1.0, 1.0, 1.4), (2.0, 1.0, 1.0)]:
        assert t in kept, t
    for t in [(1.3, 1.0, 1.2), (1.0, 1.0, 1.45), (1.0, 1.45, 1.0), (1.2, 1.2, 1.2), (1.0, 1.0, 1.0)]:
        assert t not in kept and not within_tolerance(t), t
    # every grid triple is kept exactly when its product is within 5% of 2
    values = grid_values(0.05, 2.5)
    everything = {(a, b, g) for a in values for b in values for g in values}
    assert set(kept) == {t for t in everything if abs(t[0] * t[1] ** 2 * t[2] ** 2 - 2) <= 0.1 + 1e-9}
    assert (1.9, 1.0, 1.0) in kept and (2.1, 1.0, 1.0) in kept  # exactly 5% off: the tolerance is inclusive
    assert len(kept) == len(set(kept)) == 111
    assert len(constrained_triples(0.25)) == 3 and len(constrained_triples(0.1)) == 22


def test_compound_grid_dedupes_triples_that_build_the_same_network():
    from cnnlab.labs.catalog.compound_grid import constrained_triples, distinct_networks, network_shape, representative

    # 2·1.4 = 2.8 and 2·1.45 = 2.9 both round to 3 blocks; 16·1.2 = 19.2 pixels -> 19: one network
    assert network_shape((1.4, 1.0, 1.2)) == network_shape((1.45, 1.0, 1.2)) == (3, (8, 16, 32), 19)
    # the paper's triple: 2·1.2 = 2.4 -> 2 blocks, 8.8 -> 8, 17.6 -> 16, 35.2 -> 36 channels, 18.4 -> 18 pixels
    assert network_shape((1.2, 1.1, 1.15)) == (2, (8, 16, 36), 18)
    groups = distinct_networks(constrained_triples(0.05))
    assert len(groups) == 32 and sum(len(v) for v in groups.values()) == 111
    assert all(network_shape(t) == shape for shape, ts in groups.items() for t in ts)
    together = groups[(3, (8, 16, 32), 19)]
    assert (1.4, 1.0, 1.2) in together and (1.45, 1.0, 1.2) in together
    # 2.5 -> 3 blocks and 8.4 -> 8, 16.8 -> 16, 33.6 -> 32 channels: the same network, and its
    # 1.25·1.05²·1.2² = 1.9845 is nearer 2 than 1.4·1.2² = 2.016 or 1.45·1.2² = 2.088
    assert (1.25, 1.05, 1.2) in together and representative(together) == (1.25, 1.05, 1.2)


def test_compound_grid_quick_run_writes_files_that_parse(tmp_path):
    import json

    from cnnlab.cli.main import main

    assert main(["lab", "compound-grid", "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    saved = json.loads((tmp_path / "result.json").read_text())
    n = saved["numbers"]
    assert n["candidates"] == 3 and n["distinct_networks"] == 3 and n["grid_triples"] == 5 * 2 * 2
    assert n["paper"] == "2x8-16-36@18" and not n["paper_on_grid"] and len(n["networks"]) == 4
    # MACs of the paper's network by hand: 18² (1·8 + 8·8) 9 + 9² (8·16 + 16·16) 9 + 5² (16·36 + 36·36) 9 + 36·10
    assert n["networks"]["2x8-16-36@18"]["macs"] == 911_448
    found = n["networks"][n["found"]]
    assert found["on_grid"] and found["val_accuracy"]["mean"] == max(
        v["val_accuracy"]["mean"] for v in n["networks"].values() if v["on_grid"])
    assert n["macs_ratio"] == pytest.approx(found["macs"] / 911_448)
    assert (tmp_path / "figure.png").read_bytes()[:4] == b"\x89PNG" and "004 Ex1d" in (tmp_path / "summary.md").read_text()
