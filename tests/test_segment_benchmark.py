"""The one-shot GPU segmentation benchmark runs end to end (``--smoke``: tiny data, CPU) and writes
every group's figures: a device call must not be the first time the script runs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.bench_scripts import load_benchmark
from tests.test_segment import write_pairs

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "segmentation_gpu.py"
CPU_SCRIPT = SCRIPT.with_name("segmentation_cpu.py")


def _tiny_presets(root: Path) -> Path:
    write_pairs(root / "camvid", 4, img_dir="train", mask_dir="trainannot")
    write_pairs(root / "camvid", 2, img_dir="val", mask_dir="valannot", seed0=10)
    write_pairs(root / "dc1000", 10, fmt="binary", img_dir="images", mask_dir="labels")
    write_pairs(root / "isbi2012", 10, fmt="binary", img_dir="train/image", mask_dir="train/label")
    return root


def _smoke_run(tmp_path: Path, budget: float) -> dict:
    """The script's ``main`` with ``--smoke`` on tiny presets; its results.json."""
    torch.set_num_threads(1)
    bench = load_benchmark(SCRIPT.stem)
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


def test_cpu_ablation_defaults_to_isbi_with_its_budget_and_options_override_it():
    bench = load_benchmark(CPU_SCRIPT.stem)
    args = bench.parser().parse_args(["--data", "d", "--group", "ablation"])
    assert args.dataset == "isbi2012" and bench.ablation_budget(args) == bench.ABLATION_BUDGET["isbi2012"]
    args = bench.parser().parse_args(["--data", "d", "--group", "ablation", "--dataset", "dc1000", "--epochs", "2"])
    assert bench.ablation_budget(args) == {**bench.ABLATION_BUDGET["dc1000"], "epochs": 2}
    for bad in (["--dataset", "camvid"], ["--samples", "0"]):
        with pytest.raises(SystemExit) as exc:
            bench.parser().parse_args(["--data", "d", "--group", "ablation", *bad])
        assert exc.value.code == 2


@pytest.mark.slow
def test_cpu_ablation_on_isbi_writes_one_row_per_change(tmp_path, monkeypatch):
    """The whole ``--group ablation`` path on a tiny ISBI preset: four rows, each with its one change."""
    torch.set_num_threads(1)
    bench = load_benchmark(CPU_SCRIPT.stem)
    tiny = dict(epochs=1, samples=4, batch_size=2, crop=(16, 16), eval_batch_size=2, device="cpu")
    monkeypatch.setitem(bench.ABLATION_BUDGET, "isbi2012", tiny)
    data, results = _tiny_presets(tmp_path / "data"), tmp_path / "results.json"
    results.write_text(json.dumps({"dc1000": {"dice": 0.5}}))
    bench.main(["--data", str(data), "--group", "ablation", "--runs", str(tmp_path / "runs"),
                "--results", str(results)])
    r = json.loads(results.read_text())
    assert r["dc1000"] == {"dice": 0.5}, "an earlier group's result must be kept"
    table = r["ablation-isbi2012"]
    assert table["dataset"] == "isbi2012" and table["budget"]["samples"] == 4
    rows = table["rows"]
    assert list(rows) == [name for name, _ in bench.ABLATION]
    assert [row["loss_name"] for row in rows.values()] == ["bce+dice", "bce+dice", "bce", "bce+dice"]
    assert [row["pretrained_loaded"] for row in rows.values()] == [True, True, True, False]
    assert all(row["epochs"] == 1 and 0 <= row["pixel_error"] <= 1 and row["cpu_seconds"] > 0 for row in rows.values())
    no_skips = json.loads((tmp_path / "runs" / "isbi2012-ablation-no-skips" / "config.json").read_text())
    assert no_skips["options"]["skips"] is False and rows["no skips"]["params"] < rows[bench.ABLATION[0][0]]["params"]


@pytest.mark.slow
def test_caries_resunet_change_adds_one_row_per_change_to_its_table(tmp_path):
    """``--group caries-resunet-change``: the recipe with the given options (here a tiny budget and
    lesions dropped on purpose) becomes one row; a row of the same change is replaced, not repeated."""
    torch.set_num_threads(1)
    bench = load_benchmark(CPU_SCRIPT.stem)
    data, table = _tiny_presets(tmp_path / "data"), tmp_path / "table.json"
    table.write_text(json.dumps({"what": "kept", "rows": [{"change": "--loss tversky", "test_dice": 0.4}]}))
    change = "--epochs 1 --samples 8 --crop 16 16 --corrupt-fraction 0.5 --corrupt-mode drop"
    bench.main(["--data", str(data), "--group", "caries-resunet-change", "--change", change, "--runs",
                str(tmp_path / "runs"), "--table", str(table)])
    rows = json.loads(table.read_text())["rows"]
    assert [r["change"] for r in rows] == ["--loss tversky", change]
    row = rows[1]
    assert row["noisy"]["corrupt_fraction"] == 0.5 and row["noisy"]["corrupt_mode"] == "drop"
    assert row["train_dice_against"] == "the corrupted training masks" and 0 <= row["test_dice"] <= 1
    assert "--recipe caries-resunet" in row["command"] and change in row["command"]
    bench.add_change_row(table, {**row, "test_dice": 0.5})
    assert [r["test_dice"] for r in json.loads(table.read_text())["rows"]] == [0.4, 0.5]
    assert json.loads(table.read_text())["what"] == "kept"
    with pytest.raises(SystemExit) as exc:
        bench.main(["--data", str(data), "--group", "caries-resunet-change"])
    assert exc.value.code == 2
