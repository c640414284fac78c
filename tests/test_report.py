"""HTML reports (self-contained, every kind of run folder, comparisons) and TensorBoard logging."""
from __future__ import annotations

import base64
import io
import json
import re
import shutil
from html.parser import HTMLParser

import pytest
from PIL import Image
from sklearn.datasets import load_digits

from cnnlab.cli.main import main
from cnnlab.core.errors import CnnlabError
from cnnlab.report.html import write_report


class Page(HTMLParser):
    """The images, tables and text of a report."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[dict] = []
        self.tables = 0
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        self.tables += tag == "table"

    def handle_data(self, data):
        self.text.append(data)


def decoded_images(page: Page) -> list[Image.Image]:
    """Every <img> must be an embedded PNG that decodes (a report needs no file beside it)."""
    out = []
    for img in page.images:
        assert img["src"].startswith("data:image/png;base64,"), img["src"][:60]
        out.append(Image.open(io.BytesIO(base64.b64decode(img["src"].split(",", 1)[1]))))
        out[-1].load()
    return out


def test_train_writes_a_self_contained_report(digits_run):
    text = (digits_run / "report.html").read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text
    page = Page(text)
    images = decoded_images(page)
    alts = [i["alt"] for i in page.images]
    assert alts[:4] == ["Learning curves", "Confusion matrix (test split)", "Test samples (green right, red wrong)",
                        "Misclassified test images"]
    assert all(im.size[0] > 100 for im in images)
    metrics = json.loads((digits_run / "metrics.json").read_text())
    words = " ".join(page.text)
    assert f"{metrics['test_accuracy']:.4g}" in words
    assert "Per-class precision, recall and F1" in words and f"{metrics['per_class']['7']['f1']:.4g}" in words


def test_tensorboard_has_one_scalar_per_epoch_and_the_figures(digits_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(digits_run / "tb"), size_guidance={"images": 0}).Reload()
    tags = acc.Tags()
    history = json.loads((digits_run / "metrics.json").read_text())["history"]
    for tag, key in (("loss/train", "train_loss"), ("loss/val", "val_loss"), ("accuracy/val", "val_accuracy"),
                     ("lr", "lr")):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [1, 2]
        assert [e.value for e in events] == pytest.approx([r[key] for r in history], rel=1e-6)
    assert {"confusion_matrix", "samples", "misclassified"} <= set(tags["images"])
    image = acc.Images("confusion_matrix")[0]
    assert image.step == 2 and Image.open(io.BytesIO(image.encoded_image_string)).size[0] > 100


def test_segmentation_run_report_and_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from cnnlab.segment.api import train_segmenter
    from tests.test_segment import write_pairs

    images, masks = write_pairs(tmp_path / "data", 10)
    out = tmp_path / "seg"
    train_segmenter(folder=dict(images=str(images), masks=str(masks), classes=["bg", "square", "disc"]), out=out,
                    model_kwargs={"width": 4, "depth": 2}, epochs=2, batch_size=4, tensorboard=True, progress=False)
    acc = EventAccumulator(str(out / "tb")).Reload()
    assert [e.step for e in acc.Scalars("miou/val")] == [1, 2]
    assert "predictions" in acc.Tags()["images"]
    page = Page((out / "report.html").read_text())
    decoded_images(page)
    assert "Per-class IoU and Dice (test split)" in " ".join(page.text)
    assert [i["alt"] for i in page.images] == ["Learning curves", "Predictions: image, true mask, predicted mask"]


def test_comparison_overlays_curves_and_puts_metrics_side_by_side(digits_run, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(digits_run, other, ignore=shutil.ignore_patterns("*.ckpt", "tb"))
    metrics = json.loads((other / "metrics.json").read_text())
    metrics["test_accuracy"] = 0.123456
    (other / "metrics.json").write_text(json.dumps(metrics))
    config = json.loads((other / "config.json").read_text())
    config["train"]["lr"] = 0.777
    (other / "config.json").write_text(json.dumps(config))
    out = tmp_path / "cmp.html"
    assert main(["report", str(digits_run), str(other), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    page = Page(out.read_text())
    decoded_images(page)
    words = " ".join(page.text)
    assert "Metrics side by side" in words and "0.1235" in words
    assert "Curves overlaid" in words and page.images[0]["alt"] == "learning curves of every run"
    assert "Settings that differ" in words and "train.lr" in words and "0.777" in words
    assert "train.epochs" not in words.split("Settings that differ")[1].split("Each run")[0]  # equal: not listed


def test_lab_attack_and_scratch_folders_report(digits_run, tmp_path):
    from cnnlab.attack.api import attack_files
    from cnnlab.labs.frame import summary_markdown
    from cnnlab.report.plots import plot_curves

    lab = tmp_path / "lab"
    lab.mkdir()
    record = {"lab": "demo-lab", "question": "000 Q1", "title": "does it hold?", "quick": True, "seed": 0,
              "seconds": 1.0, "machine": "x", "settings": {"n": 3}, "numbers": {"a": 1}, "conclusion": ["it holds"],
              "quotes": []}
    (lab / "result.json").write_text(json.dumps(record))
    (lab / "summary.md").write_text(summary_markdown(record, "| a | b |\n|---|---|\n| 1 | 2 |"))
    plot_curves([{"epoch": e, "train_loss": 1 / e, "train_accuracy": 1 - 1 / e} for e in (1, 2)], lab / "figure.png")
    page = Page(write_report([lab]).read_text())
    assert len(decoded_images(page)) == 1 and page.tables >= 1 and "it holds" in " ".join(page.text)

    digit = tmp_path / "digit.png"
    Image.fromarray((load_digits().images[0] * 255 / 16).astype("uint8")).save(digit)
    attack = tmp_path / "attack"
    attack_files([str(digit)], checkpoint=str(digits_run / "best.ckpt"), eps=0.1, out=attack)
    page = Page(write_report([attack]).read_text())
    assert [i["alt"] for i in page.images] == ["Clean | adversarial | perturbation"]
    assert "Adversarial examples (fgsm)" in " ".join(page.text)

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    history = [{"epoch": 1, "train_loss": 0.9, "test_loss": 1.0, "train_accuracy": 0.6, "test_accuracy": 0.5}]
    (scratch / "metrics.json").write_text(json.dumps({"config": {"activation": "relu", "optimizer": "sgd"},
                                                      "history": history, "final": history[0], "parameters": 10}))
    text = write_report([scratch]).read_text()
    assert "NumPy MLP" in text and re.search(r"test_accuracy</th><td class=\"num\">0.5<", text)


def test_explain_overlays_are_the_ones_its_manifest_names_inside_the_folder(digits_run, tmp_path):
    from cnnlab.explain.api import explain_files

    digit = tmp_path / "digit.png"
    Image.fromarray((load_digits().images[0] * 255 / 16).astype("uint8")).save(digit)
    out = tmp_path / "explain"
    for method in ("gradcam", "gradcam++"):  # two calls into one folder: the manifest keeps both
        explain_files([str(digit)], checkpoint=str(digits_run / "best.ckpt"), method=method, out=out)
    rows = json.loads((out / "explain.json").read_text())
    assert sorted(r["method"] for r in rows) == ["gradcam", "gradcam++"]
    page = Page(write_report([out]).read_text())
    assert sorted(i["alt"] for i in page.images) == ["digit_gradcam", "digit_gradcam++"]
    assert len(decoded_images(page)) == 2

    shutil.copy(digit, tmp_path / "outside.png")  # a hand-edited manifest naming a file outside the folder
    rows.append({"overlay": "../outside.png"})
    (out / "explain.json").write_text(json.dumps(rows))
    page = Page(write_report([out]).read_text())
    assert sorted(i["alt"] for i in page.images) == ["digit_gradcam", "digit_gradcam++"]


def test_report_refuses_a_folder_that_is_not_a_run_and_a_file_it_did_not_write(digits_run, tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.png").write_bytes(b"")
    assert main(["report", str(tmp_path / "photos")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "photos: not a cnnlab run folder" in err
    mine = tmp_path / "notes.html"
    mine.write_text("<html>my notes</html>")
    with pytest.raises(CnnlabError, match="not a cnnlab report"):
        write_report([digits_run], mine)
    assert mine.read_text() == "<html>my notes</html>"
    assert write_report([digits_run], tmp_path / "r.html") == write_report([digits_run], tmp_path / "r.html")


def test_tensorboard_holds_the_runs_settings_and_test_figures(digits_run):
    """add_hparams: config.json's settings (flattened) beside metrics.json's test figures."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(digits_run / "tb")).Reload()
    metrics = json.loads((digits_run / "metrics.json").read_text())
    config = json.loads((digits_run / "config.json").read_text())
    assert acc.Scalars("hparam/test_accuracy")[0].value == pytest.approx(metrics["test_accuracy"], rel=1e-6)
    assert acc.Scalars("hparam/test_loss")[0].value == pytest.approx(metrics["test_loss"], rel=1e-6)
    content = acc.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert session.hparams["train.lr"].number_value == pytest.approx(config["train"]["lr"])
    assert session.hparams["train.epochs"].number_value == 2
    assert session.hparams["model"].string_value == config["model"]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {m.name.tag for m in experiment.metric_infos} >= {"hparam/test_accuracy", "hparam/test_loss"}
