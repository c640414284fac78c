"""Issue 29, mechanism 1: every command that writes, writes through one guarded output layer.

The property: run a writing command once into a fresh folder to learn what it writes; fill another
folder with user files of exactly those names; the command run there without ``--overwrite`` is
refused (exit 2, one line) and leaves every user file byte-identical; with ``--overwrite`` it runs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.core import output
from cnnlab.core.errors import CnnlabError
from cnnlab.core.fileio import write_json
from tests.test_hostile import fingerprint, run_cli, world  # noqa: F401  (world: the hostile tests' inputs)

# every command that writes, on tiny inputs; {out} is the output (a folder, or a file for show/export)
WRITERS = [
    "show --dataset digits -n 2 --seed 0 --out {out}/grid.png",
    "evaluate --checkpoint {run}/best.ckpt --out {out}",
    "visualize --class 1 --checkpoint {run}/best.ckpt --steps 2 --out {out}",
    "explain image {img} --checkpoint {run}/best.ckpt --out {out}",
    "explain compare {img} --checkpoint {run}/best.ckpt --methods gradcam --steps 2 --repeats 1 --out {out}",
    "attack image {img} --checkpoint {run}/best.ckpt --out {out}",
    "attack sweep --checkpoint {run}/best.ckpt --n 16 --eps 0.1 --attacks fgsm --out {out}",
    "match find {img} {img} --box 0,0,4,4 --checkpoint {run}/best.ckpt --out {out}",
    "match benchmark {bbs} --methods zncc-pixel --out {out}",
    "lab run bn-scale-invariance --quick --out {out}",
    "lab cam-robustness --checkpoint {run}/best.ckpt --checkpoint-adv {run}/best.ckpt --quick --out {out}",
    "scratch mlp --dataset digits --epochs 1 --out {out}",
    "scratch cnn --dataset digits --epochs 1 --channels 2 --hidden 8 --no-progress --out {out}",
    "scratch linreg --n 50 --d 3 --n-fixed 50 --d-fixed 3 --steps 2 --repeats 1 --out {out}",
    "scratch check --out {out}",
    "export {run}/best.ckpt --format torchscript --out {out}/model.ts",
    "train --dataset digits --model mlp --epochs 1 --no-progress --out {out}",
    "segment train --images {segimages} --masks {segmasks} --classes bg,fg --epochs 1 --batch-size 4 --no-progress "
    "--model-kwargs {{\"width\":4,\"depth\":2}} --out {out}",
    "segment evaluate --checkpoint {seg}/best.ckpt --out {out}",
    "segment predict --checkpoint {seg}/best.ckpt {img} --out {out}",
]


@pytest.fixture(scope="module")
def inputs(world, tmp_path_factory):  # noqa: F811
    """The hostile tests' inputs and a tiny benchmark folder in the BBS layout."""
    from tests.test_match import _bbs_folder

    world.paths["bbs"] = str(_bbs_folder(tmp_path_factory.mktemp("bbs")))
    return world


def _argv(world, template: str, out: Path, *extra: str) -> list[str]:  # noqa: F811
    return world.fmt(template, out).split() + list(extra)


def _written(folder: Path) -> list[Path]:
    return [f for f in sorted(folder.rglob("*")) if f.is_file()]


@pytest.mark.parametrize("template", WRITERS, ids=[t.split(" --")[0].replace(" ", "-") for t in WRITERS])
def test_user_files_survive_every_writing_command(inputs, capsys, tmp_path, template):
    fresh = tmp_path / "fresh"
    code, err = run_cli(_argv(inputs, template, fresh), capsys)
    assert code == 0, err
    names = [f.relative_to(fresh) for f in _written(fresh)]
    assert names, "the command wrote nothing"
    users = tmp_path / "users"
    for name in names:  # a user's files, named like every file the command writes
        (users / name).parent.mkdir(parents=True, exist_ok=True)
        (users / name).write_text(json.dumps({"the user's own": str(name)}))  # JSON: a manifest cnnlab reads
    before = fingerprint(users, [])
    code, err = run_cli(_argv(inputs, template, users), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "--overwrite" in err and "Traceback" not in err
    assert fingerprint(users, []) == before, "a user's file was replaced"
    assert sorted(f.relative_to(users) for f in _written(users)) == sorted(names), "a refused command wrote files"
    code, err = run_cli(_argv(inputs, template, users, "--overwrite"), capsys)
    assert code == 0, err
    assert fingerprint(users, []) != before, "--overwrite replaced nothing"


def test_every_writing_command_has_overwrite_and_a_property_case():
    """A command with --out takes --overwrite and is in WRITERS (but for the long ones and report)."""
    from cnnlab.cli.main import build_parser

    writing = set()
    for action in build_parser()._subparsers._group_actions:
        for name, sub in action.choices.items():
            nested = [a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction"]
            parsers = {f"{name} {n}": s for a in nested for n, s in a.choices.items()} if nested else {name: sub}
            writing |= {(command, "--overwrite" in p._option_string_actions)
                        for command, p in parsers.items() if "--out" in p._option_string_actions}
    assert all(has for _, has in writing if _ != "report"), sorted(c for c, has in writing if not has)
    covered = {" ".join(t.split()[:2]) if t.split()[0] in ("explain", "attack", "match", "lab", "scratch", "segment")
               else t.split()[0] for t in WRITERS}
    runs = {"report", "lab all", "scratch suite"}  # report: its own rule (mechanism 2); the others: minutes long
    assert {c for c, _ in writing} - runs <= covered, sorted({c for c, _ in writing} - runs - covered)


# bad outputs refused before the first byte: (argv, fragment of the one line)
REFUSED = [
    ("show --out {out}/grid.txt", "--out {out}/grid.txt: expected a file ending in .png"),
    ("show --out {empty}", "is a folder; expected a file"),
    ("export {run}/best.ckpt --out {img} --overwrite", "expected a file ending in .onnx"),
    ("export {run}/best.ckpt --format torchscript --out {out}/m.onnx", "expected a file ending in .ts"),
    ("train --data-dir {twocls} --out {twocls}/runs --epochs 1", "is inside --data-dir"),
    ("evaluate --checkpoint {run}/best.ckpt --data-dir {twocls} --out {twocls}/eval", "is inside --data-dir"),
    ("lab run bn-scale-invariance --quick --data-dir {root} --out {root}/lab", "is inside --data-dir"),
    ("attack image {img} {img} --checkpoint {run}/best.ckpt --out {file}", "is a file; expected a folder"),
]


@pytest.mark.parametrize("argv,fragment", REFUSED, ids=[c[0] for c in REFUSED])
def test_bad_outputs_are_refused_before_anything_is_written(world, capsys, tmp_path, argv, fragment):  # noqa: F811
    out = tmp_path / "out"
    before = fingerprint(world.root, [])
    code, err = run_cli(_argv(world, argv, out), capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert world.fmt(fragment, out) in err, err
    assert fingerprint(world.root, []) == before and not out.exists()


def test_the_guard_lets_a_command_replace_its_own_files_only(tmp_path):
    mine, users = tmp_path / "mine.json", tmp_path / "users.json"
    users.write_text("user")
    with output.guarded(overwrite=False):
        write_json(mine, {"a": 1})
        write_json(mine, {"a": 2})  # written by this command: replaced
        with pytest.raises(CnnlabError, match="users.json exists and was not written by this command"):
            write_json(users, {})
    assert users.read_text() == "user"
    write_json(users, {})  # outside a command (the Python API) the caller decides
    assert users.read_text() == "{}"


def test_outputs_of_one_command_must_not_collide(tmp_path):
    a, b = tmp_path / "a" / "x.png", tmp_path / "b" / "x.png"
    with pytest.raises(CnnlabError, match="would both be written to"):
        output.check_distinct({a: tmp_path / "x_gradcam.png", b: tmp_path / "x_gradcam.png"})
    output.check_distinct({a: tmp_path / "a_x.png", b: tmp_path / "b_x.png"})


def test_two_trainings_started_at_once_on_one_out_do_not_both_succeed(tmp_path):
    """Exclusive creation of the run folder's lock: of two runs racing for one --out, one is refused."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "cnnlab.cli.main", "train", "--dataset", "digits", "--model", "mlp", "--epochs", "1",
           "--no-progress", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    runs = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    # refused at the lock, or (when the other run already wrote its first files) at the non-empty folder
    assert any(m in refused for m in ("in use by another cnnlab run", "already holds a run", "is not empty")), refused
    assert not (out / ".cnnlab-run.lock").exists()


def test_a_lock_left_by_a_killed_run_is_taken_over(world, capsys, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    out.mkdir()
    (out / ".cnnlab-run.lock").write_text("999999999")  # no such process
    code, err = run_cli(["train", "--dataset", "digits", "--model", "mlp", "--epochs", "1", "--no-progress",
                         "--out", str(out)], capsys)
    assert code == 0, err
    assert (out / "metrics.json").is_file() and not (out / ".cnnlab-run.lock").exists()


def test_a_lock_held_by_a_running_process_refuses_the_run(world, capsys, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    out.mkdir()
    (out / ".cnnlab-run.lock").write_text(str(os.getppid()))  # a process that runs: this test's parent
    code, err = run_cli(["train", "--dataset", "digits", "--model", "mlp", "--epochs", "1", "--no-progress",
                         "--out", str(out)], capsys)
    assert code == 2 and f"is in use by another cnnlab run (process {os.getppid()})" in err, err
    assert sorted(p.name for p in out.iterdir()) == [".cnnlab-run.lock"], "the refused run wrote into the folder"
