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


def test_compile_speed_interleaves_the_modes_and_takes_each_ones_median(monkeypatch):
    """Eager and compiled take turns (neither always first) and each mode's rate is its blocks' median."""
    speed = load_benchmark("compile_speed")
    calls, blocks = [], []
    eager, compiled = (lambda: calls.append("e")), (lambda: calls.append("c"))
    block_rates = iter([10.0, 1.0, 2.0, 20.0, 30.0, 3.0, 4.0, 40.0])  # eager's blocks 10, 20, 30, 40

    def fake_block(step, seconds, warmup):
        assert warmup == 0  # every call of a block is timed
        step()
        blocks.append(calls[-1])
        return next(block_rates)

    monkeypatch.setattr(speed, "timed", fake_block)
    result = speed.interleaved(eager, compiled, rounds=4, block=0.01)
    assert calls[:2] == ["c", "e"]  # the compile's call, then eager's first call, both untimed
    assert blocks == ["e", "c", "c", "e", "e", "c", "c", "e"]
    assert result["eager_block_steps_per_second"] == [10.0, 20.0, 30.0, 40.0]
    assert result["eager_steps_per_second"] == 25.0 and result["compiled_steps_per_second"] == 2.5
    assert result["compile_seconds"] >= 0
