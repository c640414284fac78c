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
