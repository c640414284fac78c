"""benchmarks/match_probes.py: the scale choice, the re-ranking and the local search, by hand."""
from __future__ import annotations

import pytest
import torch

from tests.bench_scripts import load_benchmark


@pytest.fixture(scope="module")
def probes():
    return load_benchmark("match_probes")


def test_scale_prior_trades_score_against_distance_from_scale_one(probes):
    found, template = (10.0, 20.0, 40.0, 20.0), (0.0, 0.0, 40.0, 20.0)
    per_scale = {0.5: (0.9, 99.0, 99.0), 1.0: (0.8, 50.0, 50.0)}
    # no prior: 0.5 wins; the box keeps the found centre (30, 30) and takes the template's size times 0.5
    assert probes.rescaled(found, template, per_scale, 0.0, False) == pytest.approx((20.0, 25.0, 20.0, 10.0))
    # lam 0.2: 0.9 - 0.2 * |log2 0.5| = 0.7 < 0.8, so scale 1; re-centred on that scale's window
    assert probes.rescaled(found, template, per_scale, 0.2, True) == pytest.approx((30.0, 40.0, 40.0, 20.0))
    assert probes.rescaled(found, template, {}, 0.2, False) == found  # nothing scored: the box as found


def test_rerank_takes_a_consistent_candidate_only_within_rho(probes):
    cands = [{"score": 1.0, "iou": 0.0, "back_own": 0.3, "back_else": 0.3},  # its view back is ambiguous
             {"score": 0.6, "iou": 0.9, "back_own": 0.5, "back_else": 0.1},  # finds the template again
             {"score": 0.9, "iou": 0.2}]  # no backward check (at the border): never chosen over the top
    # rho 0.5, beta 2: 1.0 + 2 * 0 = 1.0 < 0.6 + 2 * 0.4 = 1.4
    assert probes.reranked(cands, 0.5, 2.0) == 0.9
    assert probes.reranked(cands, 0.7, 2.0) == 0.0  # 0.6 < 0.7 of the top: not a candidate
    assert probes.reranked(cands, 0.5, 0.5) == 0.0  # 1.0 > 0.6 + 0.5 * 0.4


def test_local_best_finds_the_planted_window_within_reach(probes):
    g = torch.Generator().manual_seed(0)
    grid = torch.randn(8, 12, 14, generator=g)
    cells = grid[:, 3:6, 4:8].clone()
    score, r, c = probes.local_best(grid, cells, (3.4, 4.6), reach=1)
    assert (score, r, c) == (pytest.approx(1.0, abs=1e-5), 3, 4)
    score, r, c = probes.local_best(grid, cells, (7.0, 9.0), reach=1)  # out of reach: something else, lower
    assert score < 0.9 and (r, c) != (3, 4)
