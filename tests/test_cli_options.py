"""The shared option groups of `cnnlab train` and `cnnlab segment train` (cnnlab.cli.options).

Each training option is defined once, from TrainConfig: both commands must hold the very same
flag, its value must reach the run's TrainConfig, and a value outside TrainConfig's rule must be
refused by argparse (exit 2, one line, in the rule's words) before anything runs.
"""
from __future__ import annotations

import argparse
import json

import pytest

from cnnlab.cli.main import build_parser, main
from cnnlab.cli.options import CLASSIFY_TRAINING, RUN, TRAINING
from cnnlab.core.errors import CnnlabError
from cnnlab.train.config import RULES, TrainConfig
from tests.test_segment import write_pairs

SAME = ("dest", "default", "type", "choices", "help", "nargs", "const", "required", "metavar")


def _actions(*path: str) -> dict[str, argparse.Action]:
    """The parser of ``cnnlab <path>``'s actions by option string."""
    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return {flag: action for action in parser._actions for flag in action.option_strings}


def test_train_and_segment_train_share_each_run_and_training_option_as_defined_once():
    classify, segment = _actions("train"), _actions("segment", "train")
    shared = {o.flag for o in RUN.options + TRAINING.options}
    assert {"--epochs", "--batch-size", "--lr", "--optimizer", "--weight-decay", "--schedule", "--patience",
            "--device", "--seed", "--no-amp", "--out", "--resume", "--overwrite", "--tensorboard",
            "--val-fraction", "--split-seed", "--no-progress"} <= shared
    for flag in shared:
        for key in SAME:
            assert getattr(classify[flag], key) == getattr(segment[flag], key), (flag, key)
        assert classify[flag].type is segment[flag].type, flag  # one checker object, not two alike
    classify_only = {o.flag for o in CLASSIFY_TRAINING.options}
    assert not classify_only - {"--tta"} & set(segment)
    assert segment["--tta"].choices == ["h", "hv", "none"]  # segmentation's --tta (flips) is its own


def test_every_training_flag_is_a_trainconfig_field_whose_default_its_help_names():
    defaults = {name: f.default for name, f in TrainConfig.__dataclass_fields__.items()}
    for option in TRAINING.options + CLASSIFY_TRAINING.options:
        assert option.dest in defaults, option.flag
        help_text = option.settings["help"]
        if "the recipe's" in help_text:
            assert help_text.endswith(f"(default: the recipe's, else {defaults[option.dest]})"), help_text
    assert _actions("train")["--device"].default == defaults["device"]


def _refusal(argv: list[str], capsys) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err.strip().splitlines()


RULE = {name: says for name, says, _ in RULES}


@pytest.mark.parametrize("command", [["train"], ["segment", "train"]])
@pytest.mark.parametrize("flag,value,field", [
    ("--epochs", "0", "epochs"), ("--batch-size", "-4", "batch_size"), ("--lr", "0", "lr"),
    ("--weight-decay", "-1", "weight_decay"), ("--patience", "-1", "patience"),
])
def test_a_value_outside_trainconfig_rule_is_refused_by_argparse_in_the_rule_words(capsys, command, flag, value,
                                                                                  field):
    code, lines = _refusal([*command, flag, value], capsys)
    assert code == 2 and len(lines) == 1, lines
    assert f"argument {flag}: expected {RULE[field]}, got '{value}'" in lines[0], lines[0]
    with pytest.raises(CnnlabError, match=r"invalid training settings"):  # the API refuses it the same way
        TrainConfig(**{field: type(getattr(TrainConfig(), field))(value)})


@pytest.mark.parametrize("argv,fragment", [
    (["train", "--momentum", "1"], "argument --momentum: expected a number in [0, 1), got '1'"),
    (["train", "--label-smoothing", "-0.1"], "argument --label-smoothing: expected a number in [0, 1)"),
    (["train", "--tta", "3"], "argument --tta: expected an integer in [0, 2], got '3'"),
    (["train", "--bn-lr-scale", "0"], "argument --bn-lr-scale: expected a number > 0"),
    (["train", "--average", "swa"], "argument --average: invalid choice: 'swa'"),
    (["segment", "train", "--optimizer", "adamax"], "argument --optimizer: invalid choice: 'adamax'"),
    (["segment", "train", "--schedule", "linear"], "argument --schedule: invalid choice: 'linear'"),
    (["segment", "train", "--seed", "-1"], "argument --seed"),
    (["segment", "train", "--lr", "fast"], "argument --lr: expected a number, got 'fast'"),
])
def test_other_bad_training_values_are_refused_in_one_line(capsys, argv, fragment):
    code, lines = _refusal(argv, capsys)
    assert code == 2 and len(lines) == 1 and fragment in lines[0], lines


def test_cli_values_reach_the_trainconfig_of_a_classification_run(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--model", "simple-cnn", "--model-kwargs", '{"width": 4}',
                 "--epochs", "1", "--lr", "0.01", "--momentum", "0.5", "--optimizer", "adam", "--no-amp",
                 "--device", "cpu", "--no-progress", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    train = config["train"]
    assert (train["epochs"], train["lr"], train["momentum"], train["optimizer"], train["amp"]) == (1, 0.01, 0.5,
                                                                                                  "adam", False)
    assert train["batch_size"] == 64 and train["label_smoothing"] == 0.1  # left out: the digits recipe's
    assert config["val_fraction"] == 0.1


def test_cli_values_reach_the_trainconfig_of_a_segmentation_run(tmp_path):
    images, masks = write_pairs(tmp_path / "data", 6, fmt="binary", size=(16, 16))
    out = tmp_path / "run"
    assert main(["segment", "train", "--images", str(images), "--masks", str(masks), "--classes", "bg,object",
                 "--model-kwargs", '{"width": 4, "depth": 2}', "--epochs", "1", "--batch-size", "2",
                 "--lr", "0.003", "--schedule", "none", "--seed", "7", "--device", "cpu", "--no-progress",
                 "--out", str(out)]) == 0
    train = json.loads((out / "config.json").read_text())["train"]
    assert (train["epochs"], train["batch_size"], train["lr"], train["schedule"], train["seed"]) == (1, 2, 0.003,
                                                                                                    "none", 7)
    assert train["optimizer"] == "adamw"  # left out: the segmentation recipe's, not TrainConfig's sgd


def test_version_prints_the_package_version(capsys):
    import cnnlab

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"cnnlab {cnnlab.__version__}"
