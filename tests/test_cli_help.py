"""The CLI as PyTorch users expect it: defaults in --help, no silent abbreviations, typos answered."""
from __future__ import annotations

import argparse

import pytest

from cnnlab.cli.main import build_parser, main


def _parsers(parser: argparse.ArgumentParser, prefix: str = "cnnlab"):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{prefix} {name}")


def test_every_option_with_a_default_names_it_in_its_help():
    missing = []
    for command, parser in _parsers(build_parser()):
        text = parser.format_help()
        for action in parser._actions:
            if not action.option_strings or action.help in (None, argparse.SUPPRESS) or action.nargs == 0:
                continue
            if action.default not in (None, False, "", argparse.SUPPRESS):
                flag = action.option_strings[0]
                block = text[text.index(f"\n  {flag}") + 3:].split("\n  -")[0]  # its entry, not the usage
                if "default" not in block:
                    missing.append(f"{command} {flag}")
    assert not missing, missing


def test_the_training_options_say_where_their_default_comes_from(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--epochs EPOCHS passes over the training images (default: the recipe's, else 10)" in text
    assert "(default: linear)" not in text or "--lr-scaling" in text


@pytest.mark.parametrize("argv, suggestion", [
    (["train", "--epochz", "2"], "did you mean --epochs?"),
    (["train", "--bach-size", "8"], "did you mean --batch-size or --image-size?"),
    (["lab", "run", "se-ratio", "--quik"], "did you mean --quick or --quiet?"),
    (["segment", "train", "--lrr", "0.1"], "did you mean --lr"),
])
def test_a_misspelt_option_is_refused_with_the_nearest_ones(argv, suggestion, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and suggestion in err and err.count("\n") == 1


def test_an_abbreviation_is_not_silently_taken_for_an_option(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--epoch", "2", "--out", "never-made"])
    assert "unrecognized arguments: --epoch 2; did you mean --epochs?" in capsys.readouterr().err
