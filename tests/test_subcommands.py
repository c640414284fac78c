"""``cnnlab explain|attack|match|lab``: real sub-commands, their older spellings, and the torch-free name catalogs."""
from __future__ import annotations

import argparse

import pytest

from cnnlab.cli.main import build_parser, main
from cnnlab.cli.subcommands import call


def _parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser of sub-command ``argv`` (e.g. ``["explain", "image"]``)."""
    parser = build_parser()
    for word in argv:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    return parser


def _options(argv: list[str]) -> set[str]:
    """The option strings and positional names a sub-command takes."""
    return {name for a in _parser(argv)._actions for name in (a.option_strings or [a.metavar or a.dest])}


def _help(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


# (sub-command, options its --help must show, options that belong to a sibling and must not show)
OWN_OPTIONS = [
    ("explain image", ["--method", "--layer", "--target", "--samples", "--checkpoint"],
     ["--methods", "--noise", "--repeats", "--list-layers", "--checkpoint-adv", "--eps"]),
    ("explain compare", ["--methods", "--noise", "--repeats", "--steps", "--layer"],
     ["--method", "--list-layers", "--checkpoint-adv", "--topk"]),
    ("explain layers", ["--model", "--checkpoint"], ["--device", "--out", "--method", "--samples"]),
    ("attack image", ["--method", "--eps", "--target", "--alpha", "--smallest", "--model"],
     ["--attacks", "--data-dir", "--n"]),
    ("attack sweep", ["--checkpoint", "--attacks", "--n", "--data-dir", "--eps"],
     ["--model", "--smallest", "--alpha", "--target", "--method"]),
    ("match find", ["TEMPLATE", "SEARCH", "--box", "--method", "--scales", "--backbone"], ["--methods", "--limit"]),
    ("match benchmark", ["DATA_DIR", "--methods", "--limit", "--scales"], ["--box", "--method"]),
    ("lab run", ["--quick", "--seed", "--threads", "--data-dir"], ["--checkpoint", "--eps", "--attacks"]),
    ("lab all", ["--quick", "--threads"], ["--checkpoint", "--eps"]),
    ("lab list", [], ["--seed", "--quick", "--out"]),
    ("lab cam-robustness", ["--quick", "--checkpoint-adv", "--adversarial", "--eps", "--topk", "--methods"],
     ["--model", "--target", "--noise", "--method"]),
]


@pytest.mark.parametrize("command, own, foreign", OWN_OPTIONS, ids=[c for c, _, _ in OWN_OPTIONS])
def test_each_subcommand_helps_with_its_own_options_only(capsys, command, own, foreign):
    text = _help(capsys, command.split())
    assert f"usage: cnnlab {command}" in text
    options = _options(command.split())
    for option in own:
        assert option in options and option in text, option
    for option in foreign:
        assert option not in options, option


@pytest.mark.parametrize("command, subcommands", [("explain", ["image", "compare", "layers"]),
                                                  ("attack", ["image", "sweep"]),
                                                  ("match", ["find", "benchmark"]),
                                                  ("lab", ["list", "run", "all", "cam-robustness"])])
def test_the_command_help_lists_its_subcommands_and_no_options_of_theirs(capsys, command, subcommands):
    text = _help(capsys, [command])
    assert all(name in text for name in subcommands)
    # -q/-v belong to every command (cnnlab.cli.types.Parser), not to one sub-command
    assert _options([command]) == {"-h", "--help", "-q", "--quiet", "-v", "--verbose", "<" + command + " command>"}


@pytest.mark.parametrize("argv, dest, expected", [
    (["explain", "a.png", "b.png", "--checkpoint", "c.ckpt"], "explain_command", {"images": ["a.png", "b.png"]}),
    (["explain", "--checkpoint", "c.ckpt", "a.png"], "explain_command", {"images": ["a.png"], "checkpoint": "c.ckpt"}),
    (["explain", "compare", "a.png", "--noise", "0.1"], "explain_command", {"images": ["a.png"], "sigma": 0.1}),
    (["attack", "a.png", "--eps", "8/255"], "attack_command", {"images": ["a.png"], "eps": 8 / 255}),
    (["match", "t.png", "s.png", "--top-k", "2"], "match_command", {"template": "t.png", "search": "s.png", "top_k": 2}),
    (["lab", "optimisers", "--quick"], "lab_command", {"name": "optimisers", "quick": True}),
    (["lab", "--quick", "optimisers"], "lab_command", {"name": "optimisers", "quick": True}),
])
def test_older_spellings_mean_the_default_subcommand(argv, dest, expected):
    args = build_parser().parse_args(argv)
    default = {"explain": "image", "attack": "image", "match": "find", "lab": "run"}[argv[0]]
    assert getattr(args, dest) == (argv[1] if argv[1] in ("compare",) else default)
    for name, value in expected.items():
        assert getattr(args, name) == pytest.approx(value) if isinstance(value, float) else getattr(args, name) == value


@pytest.mark.parametrize("argv, new", [(["explain", "robustness", "--eps", "0.1"], "cnnlab lab cam-robustness"),
                                       (["explain", "--list-layers", "--checkpoint", "c.ckpt"], "cnnlab explain layers"),
                                       (["explain", "--checkpoint", "c.ckpt", "--list-layers"], "cnnlab explain layers")])
def test_moved_spellings_fail_with_one_line_naming_the_new_command(capsys, argv, new):
    with pytest.raises(SystemExit) as refused:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert refused.value.code == 2 and len(err.splitlines()) == 1 and f"is now `{new}`" in err, err


def test_catalogs_equal_their_registries():
    """The CLI names methods without importing torch; each catalog must list exactly what its registry holds."""
    from cnnlab.attack.attacks import ATTACKS
    from cnnlab.attack.catalog import ATTACK_NAMES
    from cnnlab.explain.cam import METHODS as CAM_METHODS
    from cnnlab.explain.catalog import METHOD_NAMES as CAM_NAMES
    from cnnlab.match.api import BENCHMARK_METHODS
    from cnnlab.match.catalog import BENCHMARK_NAMES, DEFAULT_METHOD, METHOD_NAMES as MATCH_NAMES
    from cnnlab.match.matcher import METHODS as MATCH_METHODS, MatchConfig

    assert CAM_NAMES == tuple(CAM_METHODS)
    assert ATTACK_NAMES == tuple(ATTACKS)
    assert MATCH_NAMES == tuple(MATCH_METHODS) and BENCHMARK_NAMES == tuple(BENCHMARK_METHODS)
    assert DEFAULT_METHOD == MatchConfig().method


def test_the_cli_offers_the_catalog_names():
    """A catalog is only worth its test if the parser really takes its choices from it."""
    from cnnlab.attack.catalog import ATTACK_NAMES
    from cnnlab.explain.catalog import METHOD_NAMES as CAM_NAMES
    from cnnlab.match.catalog import METHOD_NAMES as MATCH_NAMES

    def choices(argv: list[str], option: str) -> tuple:
        return tuple(next(a for a in _parser(argv)._actions if option in a.option_strings).choices)

    assert choices(["explain", "image"], "--method") == CAM_NAMES
    assert choices(["attack", "image"], "--method") == ATTACK_NAMES
    assert choices(["match", "find"], "--method") == MATCH_NAMES


def test_call_passes_the_options_a_function_names_and_the_given_ones_win():
    def api(images, out="runs/x", *, steps=1, **extra):
        return images, out, steps, extra

    args = argparse.Namespace(images=["a"], out="o", steps=3, func=print, explain_command="image", extra="no")
    assert call(api, args) == (["a"], "o", 3, {})
    assert call(api, args, steps=7) == (["a"], "o", 7, {})


def test_lab_list_shows_cam_robustness_beside_the_frame_labs(capsys):
    assert main(["lab", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("cam-robustness") and "003 Q1b" in line for line in lines)
    assert any(line.startswith("bn-learning-rate") for line in lines) and lines == sorted(lines)


def test_cam_robustness_passes_only_the_options_given_so_quick_and_defaults_fill_the_rest(monkeypatch, capsys):
    import cnnlab.labs

    seen = {}

    def fake_run_lab(name, out=None, *, quick=False, seed=0, data_dir=None, device="cpu", progress=True, threads=1,
                     options=None):  # run_lab's parameters: the handler passes the options each one names
        seen.update(name=name, out=out, quick=quick, options=options)
        return {"question": "003 Q1b", "seconds": 0.0, "cpu_seconds": 0.0, "conclusion": ["-"],
                "settings": {"models": {}, "images": 0}}

    monkeypatch.setattr(cnnlab.labs, "run_lab", fake_run_lab, raising=False)
    assert main(["lab", "cam-robustness", "--quick", "--n", "4", "--eps", "0.1,8/255", "--out", "o"]) == 0
    assert seen["name"] == "cam-robustness" and seen["out"] == "o" and seen["quick"] is True
    assert seen["options"] == {"n": 4, "eps": [0.1, 8 / 255]}
