"""benchmarks/match_per_layer.py: the box read off a centre map and the fusion of per-layer maps, by hand."""
from __future__ import annotations

import math

import pytest
import torch

from tests.bench_scripts import load_benchmark


@pytest.fixture(scope="module")
def per_layer():
    return load_benchmark("match_per_layer")


def test_map_box_centres_the_template_sized_box_on_the_best_pixel_and_skips_nan(per_layer):
    m = torch.full((6, 8), math.nan)
    m[1, 2], m[4, 5] = 0.5, 0.9  # pixel (row 4, col 5): centre (5.5, 4.5)
    assert per_layer.map_box(m, (3.0, 2.0)) == pytest.approx((4.0, 3.5, 3.0, 2.0))


def test_fusion_is_unit_free_and_a_window_must_score_on_every_map(per_layer):
    a = torch.tensor([[1.0, 4.0], [2.0, math.nan]])
    # each map is divided by its maximum: a map fused with itself times 7 is that map over its maximum
    for how in ("geo", "mean"):
        fused = per_layer.fused([a, 7 * a], how)
        assert torch.allclose(fused[~a.isnan()], (a / 4)[~a.isnan()]) and fused[1, 1].isnan()
    b = torch.tensor([[4.0, 0.0], [1.0, 1.0]])  # scores nothing where a peaks
    geo, mean = per_layer.fused([a, b], "geo"), per_layer.fused([a, b], "mean")
    assert geo[0, 1] == 0 and geo[0, 0] == pytest.approx(math.sqrt(0.25 * 1.0))
    assert mean[0, 1] == pytest.approx(0.5) and mean[0, 0] == pytest.approx(0.625)
