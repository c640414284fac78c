"""Options that cannot take effect are refused, not ignored (issue 29, mechanism 6), and the places
cnnlab keeps its own files (core/places.py) are never an output's home."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli.main import build_parser
from cnnlab.cli.types import TEXT_OPTIONS
from cnnlab.core.errors import CnnlabError
from cnnlab.core.places import cache_dir
from cnnlab.data import load_dataset
from tests.test_hostile import run_cli

TINY = ["--epochs", "1", "--batch-size", "256", "--model-kwargs", '{"width": 2}', "--no-progress"]


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every (sub)command's parser by its name, e.g. 'segment train'."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found[name] = parser
        for action in subs:
            for sub_name, sub in action.choices.items():
                walk(sub, f"{name} {sub_name}".strip())

    walk(build_parser(), "")
    return found


EMPTY_CASES = [(name, flag) for name, parser in commands().items() for flag in sorted(TEXT_OPTIONS)
               if flag in parser._option_string_actions and parser._option_string_actions[flag].nargs is None
               and parser._option_string_actions[flag].const is None]


def test_the_empty_text_table_reaches_every_command_that_writes():
    assert ("train", "--dataset") in EMPTY_CASES and ("match benchmark", "--methods") in EMPTY_CASES
    assert {name for name, flag in EMPTY_CASES if flag == "--out"} >= {"train", "show", "export", "report", "evaluate"}


@pytest.mark.parametrize("command,flag", EMPTY_CASES, ids=[f"{c} {f}" for c, f in EMPTY_CASES])
def test_an_empty_name_or_path_is_refused_at_the_parser(command, flag, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # were it accepted, nothing lands in the checkout
    code, err = run_cli([*command.split(), f"{flag}="], capsys)
    assert code == 2 and f"argument {flag}: expected a value, got ''" in err, err
    code, err = run_cli([*command.split(), flag, "  "], capsys)  # blank is empty too
    assert code == 2 and f"argument {flag}: expected a value, got '  '" in err, err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow  # two short training runs (17 s on the 2-core CPU beside other work)
def test_following_the_advice_needs_no_overwrite(tmp_path, capsys):
    """The checks that need the data run before the run folder is made: the advised command just runs."""
    out = str(tmp_path / "run")
    code, err = run_cli(["train", "--patience", "2", "--val-fraction", "0", "--out", out, *TINY], capsys)
    assert code == 2 and "give --val-fraction > 0, or leave --patience out" in err
    assert not Path(out).exists()
    code, err = run_cli(["train", "--patience", "2", "--val-fraction", "0.2", "--out", out, *TINY], capsys)
    assert code == 0, err
    out2 = str(tmp_path / "run2")
    code, err = run_cli(["train", "--classes", "0,1", "--target-recall", "0.9", "--val-fraction", "0", "--out", out2,
                         *TINY], capsys)
    assert code == 2 and "give --val-fraction > 0" in err and not Path(out2).exists()
    code, err = run_cli(["train", "--classes", "0,1", "--target-recall", "0.9", "--out", out2, *TINY], capsys)
    assert code == 0, err


def test_a_missing_data_dir_is_refused_even_for_embedded_data(tmp_path, capsys):
    out = tmp_path / "grid.png"
    code, err = run_cli(["show", "--dataset", "digits", "--data-dir", str(tmp_path / "typo"), "--out", str(out)], capsys)
    assert code == 2 and err.strip() == f"cnnlab show: error: --data-dir {tmp_path / 'typo'} does not exist; give " \
                                        f"the folder that holds the data, or leave --data-dir out"
    code, err = run_cli(["show", "--dataset", "digits", "--out", str(out)], capsys)  # the advice, followed
    assert code == 0 and out.is_file()


def test_out_inside_cnnlab_data_or_the_cache_is_refused(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    (data / "fashion-mnist").mkdir(parents=True)
    monkeypatch.setenv("CNNLAB_DATA", str(data))
    code, err = run_cli(["train", "--dataset", "digits", "--out", str(data / "fashion-mnist" / "run"), *TINY], capsys)
    assert code == 2 and f"is inside $CNNLAB_DATA {data}" in err and not (data / "fashion-mnist" / "run").exists()
    code, err = run_cli(["show", "--out", str(cache_dir() / "samples.png")], capsys)
    assert code == 2 and "is inside cnnlab's cache ($CNNLAB_CACHE)" in err
    other = tmp_path / "elsewhere"
    code, err = run_cli(["show", "--dataset", "digits", "--data-dir", str(other), "--out", str(data / "x.png")], capsys)
    assert code == 2 and "does not exist" in err  # --data-dir given: $CNNLAB_DATA is not what the command reads


def test_an_empty_cache_variable_means_the_default_not_the_current_folder(monkeypatch):
    monkeypatch.setenv("CNNLAB_CACHE", "")
    assert cache_dir() == Path.home() / ".cache" / "cnnlab"


def test_a_dataset_option_its_loader_ignores_is_refused():
    with pytest.raises(CnnlabError, match=r"--image-size does not apply to dataset 'digits' .* it is an option of "
                                          r"cifar10, cifar100, colour-digits, filename, imagefolder: leave it out"):
        load_dataset("digits", image_size=16)
    with pytest.raises(CnnlabError, match="--label-regex does not apply to dataset 'colour-digits'"):
        load_dataset("colour-digits", label_regex=r"_(\d)_")


def test_the_decode_cache_is_not_fooled_by_a_file_replaced_with_the_same_size_and_time(tmp_path):
    """Another image of the same byte size, its modification time set back: the change time and
    the inode still tell, so the new pixels are read, not the cached old ones."""
    from cnnlab.data.imagefolder import decode_files

    path = tmp_path / "a.bmp"
    Image.fromarray(np.full((4, 4), 10, np.uint8)).save(path)
    first, _ = decode_files([path], [0])
    st = path.stat()
    replacement = tmp_path / "b.bmp"
    Image.fromarray(np.full((4, 4), 200, np.uint8)).save(replacement)
    assert replacement.stat().st_size == st.st_size  # BMP: the same size whatever the pixels
    os.replace(replacement, path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    second, _ = decode_files([path], [0])
    assert int(first.images.max()) == 10 and int(second.images.max()) == 200
