"""The labs frame: every registered lab runs quickly, writes its three files, and quotes its numbers."""
from __future__ import annotations

import json
import math

import pytest

from cnnlab.cli.main import main
from cnnlab.labs import get_lab, list_labs, run_lab
from tests.conftest import real_data

LABS = [e.name for e in list_labs()]


def _leaf_equal(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=0)
    return a == b


@pytest.mark.parametrize("name", LABS)
def test_every_lab_runs_quick_and_quotes_its_numbers(name, tmp_path):
    data_dir = None
    for folder in get_lab(name).data:  # labs on datasets that are not embedded: skipped without them
        data_dir = str(real_data(folder).parent)
    run_lab(name, tmp_path, quick=True, progress=False, data_dir=data_dir)
    for f in ("result.json", "figure.png", "summary.md"):
        assert (tmp_path / f).stat().st_size > 0, f
    saved = json.loads((tmp_path / "result.json").read_text())
    for key in ("lab", "question", "title", "quick", "seed", "seconds", "cpu_seconds", "settings", "numbers",
                "conclusion", "quotes"):
        assert key in saved, key
    assert 0 < saved["cpu_seconds"] < 10 * saved["seconds"] + 60  # CPU time of the lab itself, not the session's
    assert saved["lab"] == name and saved["quick"] is True
    assert (tmp_path / "figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert saved["conclusion"] and len(saved["quotes"]) == len(saved["conclusion"])
    summary = (tmp_path / "summary.md").read_text()
    for quote, sentence in zip(saved["quotes"], saved["conclusion"]):
        assert quote["text"] == sentence and sentence in summary
        assert quote["numbers"], f"a conclusion of {name} quotes no number: {sentence}"
        for path, value in quote["numbers"].items():  # each quoted number is the measured one
            node = saved["numbers"]
            for key in path.split("."):
                node = node[int(key)] if isinstance(node, list) else node[key]
            assert _leaf_equal(node, value), (path, node, value)


def test_bn_scale_invariance_identities_exact(tmp_path):
    numbers = run_lab("bn-scale-invariance", tmp_path, quick=True, progress=False)["numbers"]
    assert numbers["exact"]["max_output_diff"] < 1e-5
    assert numbers["exact"]["max_grad_identity_error"] < 1e-5
    assert numbers["exact"]["max_direction_rate_error"] < 1e-5
    assert numbers["slopes"]["grad_norm"] == pytest.approx(-1, abs=1e-5)
    assert numbers["slopes"]["direction_rate"] == pytest.approx(-2, abs=1e-5)
    rows = {(r["eps"], r["a"]): r for r in numbers["per_scale"]}
    assert rows[(1e-5, 0.01)]["output_max_abs_diff"] > 1e-3  # eps breaks it at small scales


def test_unknown_lab_lists_the_labs(capsys):
    assert main(["lab", "bn-learning-rat"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown lab 'bn-learning-rat'" in err and "bn-scale-invariance" in err


def test_lab_list_and_bad_option(capsys):
    assert main(["lab", "list"]) == 0
    assert "bn-scale-invariance" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["lab", "bn-scale-invariance", "--seed", "-3"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--seed" in err and "'-3'" in err
