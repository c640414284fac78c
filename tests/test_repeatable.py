"""Same command, same seed, same numbers: every training command run twice on the CPU gives the
exact same history (wall-clock seconds aside). And ``cnnlab --help`` needs no torch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.cli.main import main
from tests.test_segment import write_pairs

ROOT = Path(__file__).resolve().parents[1]


def _history(path: Path, key: str = "history") -> list[dict]:
    rows = json.loads(path.read_text())[key]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def _twice(tmp_path: Path, argv: list[str]) -> tuple[Path, Path]:
    outs = tmp_path / "a", tmp_path / "b"
    for out in outs:
        assert main([*argv, "--out", str(out)]) == 0
    return outs


def test_classification_runs_repeat_exactly(tmp_path):
    a, b = _twice(tmp_path, ["train", "--epochs", "2", "--batch-size", "128", "--seed", "3",
                             "--model-kwargs", '{"width": 4}', "--device", "cpu"])
    first, second = _history(a / "metrics.json"), _history(b / "metrics.json")
    assert len(first) == 2 and first == second
    assert json.loads((a / "metrics.json").read_text())["test_loss"] == \
        json.loads((b / "metrics.json").read_text())["test_loss"]


def test_segmentation_runs_repeat_exactly(tmp_path):
    images, masks = write_pairs(tmp_path / "data", 6, fmt="binary", size=(16, 16))
    a, b = _twice(tmp_path, ["segment", "train", "--images", str(images), "--masks", str(masks), "--classes", "bg,fg",
                             "--model-kwargs", '{"width": 4, "depth": 2}', "--epochs", "2", "--batch-size", "2",
                             "--seed", "5", "--device", "cpu"])
    first, second = _history(a / "metrics.json"), _history(b / "metrics.json")
    assert len(first) == 2 and first == second


@pytest.mark.parametrize("network", [["mlp", "--hidden", "16", "--framework", "torch"],
                                     ["cnn", "--channels", "4", "--hidden", "8"]], ids=["mlp-torch", "cnn-numpy"])
def test_scratch_runs_repeat_exactly(tmp_path, network):
    a, b = _twice(tmp_path, ["scratch", *network, "--dataset", "digits", "--epochs", "2", "--seed", "2",
                             "--no-progress"])
    first, second = _history(a / "metrics.json"), _history(b / "metrics.json")
    assert len(first) == 2 and first == second


@pytest.mark.slow
def test_a_lab_repeats_exactly(tmp_path):
    a, b = _twice(tmp_path, ["lab", "bn-scale-invariance", "--quick", "--seed", "1", "--no-progress"])
    assert json.loads((a / "result.json").read_text())["numbers"] == json.loads((b / "result.json").read_text())["numbers"]


def test_the_parser_loads_no_torch():
    """`cnnlab --help` builds every command's parser: it must not import torch (seconds of start-up)."""
    code = ("import sys, cnnlab.cli.main; cnnlab.cli.main.build_parser(); "
            "heavy = [m for m in ('torch', 'torchvision', 'numpy', 'PIL', 'matplotlib') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(ROOT / "src")})
