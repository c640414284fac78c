"""The course's named recipes, one-logit BCE training, the recall threshold, class/subset selection,
the colour-digits generator and the architecture zoo."""
from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchmetrics.functional.classification import binary_precision_recall_curve

from cnnlab.classify.api import evaluate_checkpoint, predict_files, threshold_for_recall, train_classifier
from cnnlab.classify.course import COURSE_RECIPES
from cnnlab.classify.recipes import NAMED_RECIPES, resolve_options
from cnnlab.cli.main import main
from cnnlab.data import load_dataset
from cnnlab.data.augment import Augment, get_augment
from cnnlab.data.base import ImageSet
from cnnlab.data.colour_digits import LABEL_REGEX, write_colour_digits
from cnnlab.data.tensor_loader import TensorLoader
from cnnlab.core.errors import CnnlabError
from cnnlab.models import create_model
from cnnlab.models.layers import TwoClassLogits
from cnnlab.models.zoo import zoo_model, zoo_models, zoo_resolution
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.tasks import BinaryTask
from tests.bench_scripts import load_benchmark
from tests.test_data import make_class_tree, make_idx_folder

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# what shrinks a recipe to one tiny step; everything else stays the recipe's own
TINY = dict(epochs=1, batch_size=8, progress=False)
TINY_MODEL = {"cifar10-transfer": {"freeze": True, "resize": 32},
              "cifar10-transfer-resnet50": {"freeze": True, "resize": 32, "pretrained": False}}


def tiny_data(dataset: str, root) -> str:
    """A few generated files in the layout ``dataset`` reads."""
    if dataset == "cifar10":
        make_class_tree(root / "train", CIFAR_CLASSES, 2, 32)
        make_class_tree(root / "test", CIFAR_CLASSES, 1, 32)
    elif dataset == "fashion-mnist":
        make_idx_folder(root, n_train=60, n_test=20)
    else:
        assert dataset == "colour-digits"  # written by the dataset itself; only a subset is trained on
    return str(root)


# cifar10-transfer runs both its phases in the test after this one
@pytest.mark.parametrize("name", [r["name"] for r in COURSE_RECIPES if r["name"] != "cifar10-transfer"])
def test_every_course_recipe_resolves_and_runs_one_tiny_step(name, tmp_path, monkeypatch):
    recipe = NAMED_RECIPES[name]
    assert recipe.assignment and recipe.description
    dataset, opts = resolve_options(None, name)  # here: the CPU preset (tests/test_presets.py: both)
    preset = recipe.preset("cpu")
    assert dataset == recipe.dataset and {k: opts[k] for k in preset} == preset
    given = dict(TINY)
    if name in TINY_MODEL:
        given["model_kwargs"] = TINY_MODEL[name]
    if recipe.options.get("finetune_epochs"):  # the phase after the frozen one is tested below
        given["finetune_epochs"] = 0
    if dataset == "colour-digits":
        given["subset"] = 24
    if preset.get("compile"):  # the compiled path runs; inductor itself (100 s cold on a slow CPU) is
        monkeypatch.setattr(torch, "compile", lambda model, **kw: model)  # tested in test_speed.py
    out = tmp_path / "run"
    m = train_classifier(recipe=name, data_dir=tiny_data(dataset, tmp_path / dataset), out=out, **given)
    config = json.loads((out / "config.json").read_text())
    assert config["recipe"] == name and config["preset"] == "cpu" and config["model"] == preset["model"]
    assert config["train"]["compile"] == bool(preset.get("compile")) == ("compile_seconds" in m)
    for key in ("optimizer", "lr", "schedule", "weight_decay"):
        if key in preset:
            assert config["train"][key] == preset[key]
    assert {"best.ckpt", "last.ckpt", "metrics.json", "curves.png", "confusion_matrix.png"} <= {p.name for p in out.iterdir()}
    assert 0.0 <= m["test_accuracy"] <= 1.0 and len(m["history"]) == 1


def test_frozen_phase_keeps_the_pretrained_trunk_and_finetuning_changes_it(tmp_path):
    from cnnlab.models import create_model

    out = tmp_path / "run"
    m = train_classifier(recipe="cifar10-transfer", data_dir=tiny_data("cifar10", tmp_path / "c10"), out=out,
                         model_kwargs=TINY_MODEL["cifar10-transfer"], finetune_epochs=1, finetune_lr=1e-2, **TINY)
    assert m["frozen"]["epochs"] == 1 and len(m["history"]) == 1 and (out / "frozen" / "metrics.json").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["lr"] == 1e-2 and config["model_kwargs"]["freeze"] is False
    assert config["init_from"] == str(out / "frozen" / "best.ckpt")
    pretrained = create_model("transfer:efficientnet-lite0", num_classes=10).state_dict()
    frozen = load_checkpoint(out / "frozen" / "last.ckpt")["state_dict"]
    tuned = load_checkpoint(out / "last.ckpt")["state_dict"]
    trunk = [k for k, v in pretrained.items() if k.startswith("features.") and k.endswith("conv.weight")
             or k.endswith("_conv_stem.weight")]
    assert trunk and all(torch.equal(frozen[k], pretrained[k]) for k in trunk)
    assert any(not torch.equal(tuned[k], frozen[k]) for k in trunk)  # phase 2 trains the trunk too


def test_bce_trains_one_logit_and_every_tool_reads_it_as_two_classes(tmp_path):
    out = tmp_path / "run"
    m = train_classifier("digits", out=out, loss="bce", classes=["3", "8"], model="simple-cnn",
                         model_kwargs={"width": 8}, epochs=10, target_recall=0.9, progress=False)
    ckpt = load_checkpoint(out / "best.ckpt")
    assert ckpt["outputs"] == 1 and ckpt["state_dict"]["13.weight"].shape[0] == 1  # one logit
    assert m["classes"] == ["3", "8"] and m["test_accuracy"] > 0.9 and m["loss_name"] == "bce"
    assert m["binary"]["threshold"] > 0 and (out / "pr_curve.png").exists()
    assert evaluate_checkpoint(out / "best.ckpt")["test_accuracy"] == pytest.approx(m["test_accuracy"])
    splits = load_dataset("digits", classes=["3", "8"])
    Image.fromarray(splits.test.images[0, 0].numpy()).save(tmp_path / "d.png")
    (row,) = predict_files(out / "best.ckpt", [tmp_path / "d.png"], topk=2)
    assert {c for c, _ in row["top"]} == {"3", "8"} and sum(p for _, p in row["top"]) == pytest.approx(1.0)
    with pytest.raises(CnnlabError, match="--loss bce needs a two-class dataset"):
        train_classifier("digits", out=tmp_path / "r2", loss="bce", epochs=1, progress=False)


def test_threshold_with_confidence_is_the_binomial_tail_margin():
    import math

    n = 100
    scores = torch.linspace(1.0, 0.01, n)  # 100 validation positives, best first
    targets = torch.ones(n, dtype=torch.long)
    for target, confidence in ((0.9, 0.95), (0.95, 0.95), (0.9, 0.5)):
        # the Clopper-Pearson bound of k hits reaches the target <=> P(Binomial(n, target) >= k) <= 1 - confidence
        tail = [sum(math.comb(n, j) * target ** j * (1 - target) ** (n - j) for j in range(k, n + 1))
                for k in range(n + 1)]
        k = next(k for k in range(1, n + 1) if tail[k] <= 1 - confidence)
        assert threshold_for_recall(scores, targets, target, confidence) == pytest.approx(float(scores[k - 1]))
        assert k >= math.ceil(target * n)  # never less sure than the plain threshold
    assert threshold_for_recall(scores, targets, 0.9, 0.95) < threshold_for_recall(scores, targets, 0.9)
    # 10 positives cannot show recall >= 0.99 at 95% (all 10 hit: bound 0.05 ** 0.1 = 0.74): the lowest score
    assert threshold_for_recall(scores[:10], targets[:10], 0.99, 0.95) == pytest.approx(float(scores[9]))


def test_recall_confidence_needs_a_target_recall(tmp_path):
    with pytest.raises(CnnlabError, match="--recall-confidence 0.9: .* no --target-recall"):
        train_classifier("digits", out=tmp_path / "r", classes=["3", "8"], recall_confidence=0.9, epochs=1,
                         progress=False)


def test_bce_loss_equals_the_formula_and_two_class_cross_entropy():
    z = torch.tensor([[2.0], [-1.0], [0.5]])
    y = torch.tensor([1, 0, 0])
    p = torch.sigmoid(z.view(-1))
    by_hand = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
    assert BinaryTask().loss(z, y) == pytest.approx(float(by_hand), abs=1e-6)
    assert F.cross_entropy(TwoClassLogits()(z), y) == pytest.approx(float(by_hand), abs=1e-6)
    smoothed = BinaryTask(0.2).loss(z, y)  # targets 0.9 / 0.1
    t = y * 0.8 + 0.1
    assert smoothed == pytest.approx(float(-(t * p.log() + (1 - t) * (1 - p).log()).mean()), abs=1e-6)


def test_threshold_for_recall_on_a_hand_made_case():
    scores = torch.tensor([0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.2])
    targets = torch.tensor([1, 1, 1, 1, 0, 0, 0])
    # positives ranked 0.9, 0.8, 0.6, 0.3: recall 1/4, 2/4, 3/4, 4/4 at those thresholds
    assert threshold_for_recall(scores, targets, 0.75) == pytest.approx(0.6)
    assert threshold_for_recall(scores, targets, 0.7) == pytest.approx(0.6)
    assert threshold_for_recall(scores, targets, 0.5) == pytest.approx(0.8)
    assert threshold_for_recall(scores, targets, 1.0) == pytest.approx(0.3)
    for target in (0.5, 0.7, 0.75, 1.0):
        t = threshold_for_recall(scores, targets, target)
        recall = float(((scores >= t) & (targets == 1)).sum() / 4)
        assert recall >= target  # reached ...
        higher = scores[scores > t]
        if len(higher):  # ... and no higher threshold reaches it
            assert float(((scores >= higher.min()) & (targets == 1)).sum() / 4) < target
    with pytest.raises(CnnlabError, match="no positive"):
        threshold_for_recall(scores, torch.zeros(7, dtype=torch.long), 0.9)


def test_threshold_for_recall_matches_the_precision_recall_curve_search():
    g = torch.Generator().manual_seed(0)
    targets = (torch.rand(500, generator=g) < 0.3).long()
    scores = (torch.rand(500, generator=g) + 0.5 * targets).clamp(0, 1)
    _, recall, thresholds = binary_precision_recall_curve(scores, targets)
    for target in (0.5, 0.9, 0.95, 0.99):
        ok = torch.nonzero(recall[:-1] >= target).flatten()
        assert threshold_for_recall(scores, targets, target) == pytest.approx(float(thresholds[ok[-1]]))


def test_classes_keep_and_relabel_and_subset_is_stratified():
    full = load_dataset("digits", val_fraction=0)
    two = load_dataset("digits", val_fraction=0, classes=["8", "3"])
    assert two.classes == ["8", "3"]
    assert len(two.test) == int(((full.test.labels == 8) | (full.test.labels == 3)).sum())
    eights = full.train.images[full.train.labels == 8]
    assert torch.equal(two.train.images[two.train.labels == 0], eights)
    sub = load_dataset("digits", subset=200, val_fraction=0.1)
    assert abs(len(sub.train) + len(sub.val) - 200) <= 10 and len(sub.test) == len(full.test)
    assert torch.bincount(sub.train.labels).min() >= 15  # every class keeps its share
    with pytest.raises(CnnlabError, match="unknown class.*'eight'.*has 0, 1"):
        load_dataset("digits", classes=["eight", "3"])


def test_colour_digits_are_real_digits_labelled_in_their_file_names(tmp_path):
    from sklearn.datasets import load_digits

    root = write_colour_digits(tmp_path / "cd", size=64, seed=0)
    files = sorted(root.iterdir())
    labels = [int(re.search(LABEL_REGEX, f.name).group(1)) for f in files]
    target = load_digits().target
    assert np.bincount(labels, minlength=5)[1:].tolist() == [int((target == d).sum()) for d in (1, 2, 3, 4)]
    image = np.asarray(Image.open(files[0]))
    assert image.shape == (64, 64, 3) and image.std() > 20  # coloured ink on a different paper
    with pytest.raises(CnnlabError, match="already exists"):
        write_colour_digits(root)
    splits = load_dataset("colour-digits", str(root), val_fraction=0)
    assert splits.classes == ["1", "2", "3", "4"] and len(splits.train) + len(splits.test) == len(files)
    assert abs(len(splits.test) / len(files) - 0.2) < 0.01


def test_colour_augmentation_makes_negatives_and_channel_permutations_of_pixels():
    x = torch.rand(64, 3, 5, 5) * 255
    out = Augment(invert=True, shuffle_channels=True)(x, torch.Generator().manual_seed(0))
    draws = []
    for i in range(len(x)):
        found = [(negative, order) for negative in (False, True) for order in itertools.permutations(range(3))
                 if torch.allclose(out[i], 255 - x[i, list(order)] if negative else x[i, list(order)])]
        assert len(found) == 1  # exactly one negative-or-not and one channel order explains the image
        draws += found
    assert 16 < sum(negative for negative, _ in draws) < 48  # about half are negatives, each its own draw
    assert len({order for _, order in draws}) == 6  # all six channel orders occur


def test_loader_applies_colour_augmentation_to_pixels_even_when_it_stores_normalised_images():
    data = ImageSet(torch.randint(0, 256, (40, 3, 6, 6), dtype=torch.uint8), torch.zeros(40, dtype=torch.long))
    kw = dict(mean=(0.2, 0.5, 0.7), std=(0.1, 0.3, 0.2), shuffle=True, seed=4,
              augment=get_augment("colour-digits"))
    stored = next(iter(TensorLoader(data, 40, prenormalize=True, **kw)))[0]
    per_batch = next(iter(TensorLoader(data, 40, prenormalize=False, **kw)))[0]
    assert torch.allclose(stored, per_batch, atol=1e-4)
    plain = next(iter(TensorLoader(data, 40, prenormalize=False, **{**kw, "augment": None})))[0]
    assert not torch.allclose(stored, plain, atol=0.1)


def test_colour_digits_recipe_network_ignores_each_images_colours_and_contrast():
    """The cheap guard of 003 Q5's fix: its network standardises every image, so new ink and paper
    colours and contrast (any positive per-channel gain and offset) give the same logits, and its augmentation shows each digit as a negative and in shuffled channels."""
    _, opts = resolve_options(None, "colour-digits")
    net = create_model(opts["model"], num_classes=4, in_chans=3, **opts["model_kwargs"]).eval()
    torch.manual_seed(0)
    x = torch.rand(4, 3, 64, 64)
    gain, offset = torch.tensor([3.0, 0.2, 1.5]).view(1, 3, 1, 1), torch.tensor([-1.0, 4.0, 0.3]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(net(x), net(x * gain + offset), atol=1e-4)
        assert not torch.allclose(net(x), net(x.flip(1)), atol=1e-4)  # it still sees the image
    aug = get_augment(opts["augment"])
    assert aug.invert and aug.shuffle_channels and not aug.hflip  # a mirrored 2 is not a 2


def test_test_subset_keeps_a_stratified_share_of_the_test_images():
    full = load_dataset("digits", val_fraction=0)
    sub = load_dataset("digits", val_fraction=0, test_subset=100)
    assert abs(len(sub.test) - 100) <= 5 and len(sub.train) == len(full.train)
    assert torch.bincount(sub.test.labels).min() >= 8  # every class keeps its share
    assert sub.info["test_subset"] == 100


def test_cli_lists_recipes_and_validates_new_options(capsys):
    assert main(["train", "--list-recipes"]) == 0
    listing = capsys.readouterr().out
    for r in COURSE_RECIPES:
        assert r["name"] in listing and r["assignment"] in listing
    with pytest.raises(SystemExit):
        main(["train", "--subset", "0"])
    assert "--subset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--classes", "cat"])
    assert "at least two" in capsys.readouterr().err


def test_zoo_is_every_scratch_classifier_and_each_fits_32_pixels():
    from cnnlab.analysis.complexity import count_macs

    assert set(zoo_models()) == {
        "dilated-cnn", "efficientnet-b0", "efficientnet-b1", "efficientnet-b2", "efficientnet-b3", "googlenet-cifar",
        "inception-v3-cifar", "inception-v4-cifar", "inception-resnet-v2-cifar",
        "locally-connected", "mlp", "mobilenet-v1", "mobilenet-v2", "resnet18-cifar", "resnet34-cifar", "resnet50-cifar", "resnet9",
        "resnext11-4x16d", "resnext11-4x8d", "resnext20-4x16d", "resnext29-4x16d", "resnext29-8x64d", "se-resnet18", "simple-cnn", "speed-vgg", "vgg-small"}
    assert [zoo_resolution(f"efficientnet-b{phi}") for phi in range(4)] == [32, 37, 42, 49]
    macs = {}
    with torch.device("meta"):
        for name in zoo_models():
            net = zoo_model(name, num_classes=10)
            assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10), name
            macs[name] = count_macs(net, (3, 32, 32))
    eff = [macs[f"efficientnet-b{phi}"] for phi in range(4)]
    assert all(b > a * 1.8 for a, b in zip(eff, eff[1:]))  # about 2x per phi: depth x width^2 x resolution^2


def test_course_recipes_benchmark_tables_a_finished_run(tmp_path, capsys):
    bench = load_benchmark("course_recipes")
    runs = tmp_path / "runs"
    m = train_classifier(recipe="cifar10-cnn", data_dir=tiny_data("cifar10", tmp_path / "cifar10"),
                         out=runs / "cifar10-cnn", **TINY)
    (runs / "cifar10-cnn" / "cpu.json").write_text(json.dumps({"cpu_seconds": 3.5, "wall_seconds": 9.0,
                                                               "command": "cnnlab train --recipe cifar10-cnn"}))
    roof = {"fp32": 1e11, "bf16": 4e11, "threads": 2}
    (runs / "roofline.json").write_text(json.dumps(roof))
    rows = bench.table(runs, tmp_path / "kept")
    assert [r["recipe"] for r in rows] == ["cifar10-cnn"]  # recipes without a run are left out
    row = rows[0]
    assert row["test_accuracy"] == round(m["test_accuracy"], 4) and row["epochs"] == 1 and row["cpu_seconds"] == 3.5
    assert row["train_images"] == m["train_size"] == 10 and row["test_images"] == 10 and row["floor"] == 0.80
    seconds = m["history"][0]["seconds"]
    assert row["images_per_second"] == pytest.approx(10 / seconds, rel=0.01)
    macs = 38_731_008  # vgg-small width 32 at 32 x 32 (cnnlab summary)
    expected = 10 / seconds * 6 * macs / roof["bf16" if row["bf16"] else "fp32"]
    assert row["roofline_fraction"] == pytest.approx(expected, rel=0.02, abs=1e-3)
    # a queue that missed recipes keeps its partial table beside its runs, never in the results folder
    assert not (tmp_path / "kept").exists()
    kept = json.loads((runs / "course_recipes_cpu.json").read_text())
    assert kept["rows"] == rows and kept["matmul_flops"] == roof
    assert (runs / "recipes_cpu" / "cifar10-cnn" / "curves.png").exists()
    out = capsys.readouterr()
    assert "| `cifar10-cnn` | vgg-small | 10 / 10 | 1 |" in out.out and "not run: cifar10-cnn-augment" in out.err


def test_zoo_benchmark_pareto_front_and_budget_plan():
    zoo = load_benchmark("cifar10_zoo")
    rows = [dict(model=m, macs=c, test_accuracy=a) for m, c, a in
            [("a", 10, 0.50), ("b", 20, 0.45), ("c", 30, 0.60), ("d", 40, 0.60), ("e", 50, 0.70), ("f", 5, 0.30)]]
    assert [r["model"] for r in zoo.pareto(rows)] == ["f", "a", "c", "e"]  # b and d are beaten by cheaper ones
    # 100 s at 0.01 s per image: 10,000 images; 5,000 training images -> 2 epochs (capped by max_epochs)
    assert zoo.plan(100, 0.01, 64, 5000, 60) == (2, 5000)
    assert zoo.plan(100, 0.01, 64, 5000, 1) == (1, 5000)
    assert zoo.plan(10, 0.01, 64, 5000, 60) == (1, 960)  # 1,000 images fit: 15 whole batches of one epoch
    assert zoo.plan(0.5, 0.01, 64, 5000, 60) == (0, 0)  # not one batch


def test_zoo_benchmark_smoke_mode_writes_table_json_and_plot(tmp_path):
    """The GPU zoo script's --smoke run on the CPU: every smoke model calibrated, trained on one batch (one
    image per class), tested."""
    zoo = load_benchmark("cifar10_zoo")
    data = tiny_data("cifar10", tmp_path / "cifar10")
    out = tmp_path / "zoo"
    zoo.main(["--data-dir", data, "--device", "cpu", "--smoke", "--batch-size", "10", "--out", str(out)])
    doc = json.loads(out.with_suffix(".json").read_text())
    assert [r["model"] for r in doc["models"]] == zoo.SMOKE_MODELS  # cheapest first: that is their MACs order
    for row in doc["models"]:
        assert row["train_images"] == 10 and 0.0 <= row["test_accuracy"] <= 1.0 and row["macs"] > 0
    table = out.with_suffix(".md").read_text()
    assert "SUBSET of 20 training / 10 test images" in table and table.count("| efficientnet-b") == 2
    assert out.with_suffix(".png").stat().st_size > 10_000
