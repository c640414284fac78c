"""benchmarks/cpu_roofline.py: the profile's split of a training step and the timing helper."""
from __future__ import annotations

import pytest

from tests.bench_scripts import load_benchmark


@pytest.fixture(scope="module")
def roofline():
    return load_benchmark("cpu_roofline")


def test_the_step_profile_splits_all_of_a_steps_cpu_time_and_finds_its_convolutions(roofline):
    split = roofline.step_profile("vgg-small", {"width": 8}, batch=4, bf16=False, steps=1)
    assert sum(split.values()) == pytest.approx(100.0, abs=0.5)
    assert split["convolution"] > 0 and all(v >= 0 for v in split.values())
    assert list(split.values()) == sorted(split.values(), reverse=True)


def test_timing_counts_the_calls_after_the_warm_up_and_reports_the_warm_ups_seconds(roofline):
    calls = []
    rate, warm = roofline.timed_after_warmup(lambda: calls.append(1), seconds=0.05, warmup=3)
    assert warm >= 0 and rate > 0
    assert len(calls) > 3 and rate == pytest.approx((len(calls) - 3) / 0.05, rel=0.5)
