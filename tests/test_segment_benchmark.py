"""The one-shot GPU segmentation benchmark runs end to end (``--smoke``: tiny data, CPU) and writes
every group's figures: a device call must not be the first time the script runs."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from tests.test_segment import write_pairs

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "segmentation_gpu.py"


def _tiny_presets(root: Path) -> Path:
    write_pairs(root / "camvid", 4, img_dir="train", mask_dir="trainannot")
    write_pairs(root / "camvid", 2, img_dir="val", mask_dir="valannot", seed0=10)
    write_pairs(root / "dc1000", 10, fmt="binary", img_dir="images", mask_dir="labels")
    write_pairs(root / "isbi2012", 10, fmt="binary", img_dir="train/image", mask_dir="train/label")
    return root


def _smoke_run(tmp_path: Path, budget: float) -> dict:
    """The script's ``main`` with ``--smoke`` on tiny presets; its results.json."""
    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("segmentation_gpu", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = _tiny_presets(tmp_path / "data")
    out = tmp_path / "out"
    bench.main(["--data", str(data), "--out", str(out), "--runs", str(tmp_path / "runs"), "--smoke",
                "--budget", str(budget)])
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_gpu_benchmark_smoke_run_writes_every_group(tmp_path):
    r = _smoke_run(tmp_path, budget=900)
    assert "errors" not in r, r.get("errors")
    assert r["smoke"] and set(r["calibration_s_per_epoch"]) == {"dc1000", "camvid", "isbi2012"}
    assert r["dc1000"]["recipe"] == "dc1000/cpu" and 0 <= r["dc1000"]["train"]["dice"] <= 1
    assert set(r["camvid"]["per_class_iou"]) >= {"sky", "road"} and r["camvid"]["split"] == "val"
    assert 0 <= r["isbi2012"]["pixel_error"] <= 1
    assert set(r["ablation"]["rows"]) == {"default", "no skips", "plain BCE", "random-init encoder"}
    assert r["ablation"]["rows"]["plain BCE"]["loss"] == "bce"
    assert isinstance(r["noisy"]["drop_0.25"], dict)


@pytest.mark.slow
def test_gpu_benchmark_out_of_budget_skips_the_optional_groups_and_still_reports(tmp_path):
    r = _smoke_run(tmp_path, budget=1)
    assert "errors" not in r, r.get("errors")
    assert 0 <= r["dc1000"]["dice"] <= 1 and r["ablation"].startswith("skipped: out of budget")
    assert r["noisy"].startswith("skipped")
