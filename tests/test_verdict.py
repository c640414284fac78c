"""The one verdict rule (issue 24): a difference is real only beyond twice its standard error over seeds."""
from __future__ import annotations

import math

import pytest

from cnnlab.core.text import seed_gap, verdict, versus


def test_seed_gap_is_the_difference_of_means_and_its_standard_error():
    gap = seed_gap([0.9, 0.8, 0.7], [0.5, 0.5, 0.8])
    assert gap["difference"] == pytest.approx(0.2)
    assert gap["se"] == pytest.approx(math.sqrt(0.01 / 3 + 0.03 / 3)) and gap["n"] == 3
    assert seed_gap([0.9], [0.1])["se"] == math.inf


def test_verdict_calls_a_gap_beyond_two_standard_errors_real_and_names_it():
    text = verdict("BatchNorm", [0.80, 0.81, 0.82], "GroupNorm", [0.70, 0.71, 0.72])
    assert text == "BatchNorm 0.8100 vs GroupNorm 0.7100: +0.1000 ± 0.016 (2 SE, 3 seeds): BatchNorm higher"
    assert verdict("A", [0.70, 0.71, 0.72], "B", [0.80, 0.81, 0.82]).endswith("A lower")


def test_verdict_says_within_noise_inside_two_standard_errors_and_none_for_one_seed():
    # difference 0.02, standard error 0.0115: inside 2 SE
    assert verdict("A", [0.80, 0.82, 0.84], "B", [0.78, 0.80, 0.82]).endswith(": within noise")
    one = verdict("A", [0.9], "B", [0.1])  # one seed: no spread, so no verdict (issue 29's zero-evidence rule)
    assert "one seed" in one and one.endswith("no verdict: too few cases to measure the noise")
    assert versus(0.05, math.inf) == "undecided"


MEANING = {"higher": "the skips help", "lower": "the skips hurt", "same": "no difference beyond seed noise"}


def test_judged_follows_a_real_difference_with_its_meaning():
    from cnnlab.core.text import judged

    assert judged("U-Net", [0.80, 0.81, 0.82], "no skips", [0.70, 0.71, 0.72], MEANING) == (
        "U-Net 0.8100 vs no skips 0.7100: +0.1000 ± 0.016 (2 SE, 3 seeds): U-Net higher; the skips help")
    assert judged("U-Net", [0.70, 0.71, 0.72], "no skips", [0.80, 0.81, 0.82], MEANING).endswith(
        ": U-Net lower; the skips hurt")


def test_judged_inside_two_standard_errors_says_within_noise_and_draws_nothing_from_one_seed():
    from cnnlab.core.text import judged

    # difference 0.02; std 0.02 on each side, SE = 0.02·sqrt(2/3) = 0.0163, 2 SE = 0.033: within noise
    assert judged("A", [0.80, 0.82, 0.84], "B", [0.78, 0.80, 0.82], MEANING).endswith(
        "+0.0200 ± 0.033 (2 SE, 3 seeds): within noise; no difference beyond seed noise")
    one = judged("A", [0.9], "B", [0.1], MEANING)
    assert one.endswith("no verdict: too few cases to measure the noise") and "skips" not in one
    tie = judged("A", [0.5, 0.5], "B", [0.5, 0.5], MEANING)  # exact tie, no spread: nothing to conclude
    assert "no verdict" in tie and "skips" not in tie


def test_no_lab_judges_by_the_larger_seed_std_any_more():
    """Issue 24: every lab's comparison goes through seed_gap / verdict / judged (2 SE over seeds), none
    passes "twice the larger seed standard deviation" of its own to versus."""
    import re
    from pathlib import Path

    import cnnlab.labs.catalog as catalog

    own_noise = re.compile(r"max\([^)]*\[\"std\"\]")
    offenders = [f.name for f in Path(catalog.__path__[0]).glob("*.py") if own_noise.search(f.read_text())]
    assert offenders == []
