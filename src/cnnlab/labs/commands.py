"""CLI: ``cnnlab lab list``, ``cnnlab lab run NAME``, ``cnnlab lab all`` and ``cnnlab lab cam-robustness``.

``cnnlab lab NAME`` (no sub-command) still means ``lab run NAME``. ``cam-robustness`` (003 Q1b) is a
lab like the others (``lab run cam-robustness`` runs it with its defaults) with a sub-command of its
own for the options no other lab has: the models, attacks and budgets.
"""
from __future__ import annotations

import argparse

from cnnlab.attack.catalog import ATTACK_NAMES
from cnnlab.attack.commands import parse_eps
from cnnlab.classify.commands import adversarial_spec
from cnnlab.core import bounds
from cnnlab.cli.options import OVERWRITE
from cnnlab.cli.subcommands import add_subcommands, call
from cnnlab.cli.types import comma_list, device, float_range, nonneg_int, one_of, positive_int, seed
from cnnlab.explain.catalog import METHOD_NAMES


def cmd_list(args: argparse.Namespace) -> None:
    from cnnlab.labs import list_labs

    entries = list_labs()
    width = max(len(e.name) for e in entries)
    for e in entries:
        print(f"{e.name:{width}s}  {e.question:18s} {e.title}")


def _run(name: str, out: str | None, args: argparse.Namespace, options: dict | None = None) -> dict:
    """Run one lab, print its conclusions, return its record."""
    from cnnlab.labs import run_lab

    record = call(run_lab, args, name=name, out=out, progress=not args.no_progress, options=options)
    print(f"{name} ({record['question']}, {record['seconds']:.1f} s, {record['cpu_seconds']:.1f} s CPU):")
    for sentence in record["conclusion"]:
        print(f"  - {sentence}")
    print(f"  -> {out or 'runs/lab-' + name}/result.json, figure.png, summary.md")
    return record


def cmd_run(args: argparse.Namespace) -> None:
    _run(args.name, args.out, args)


def cmd_all(args: argparse.Namespace) -> None:
    from cnnlab.labs import list_labs

    for entry in list_labs():
        _run(entry.name, f"{args.out}/{entry.name}", args)


def cmd_cam_robustness(args: argparse.Namespace) -> None:
    """CAMs on clean vs FGSM/PGD images, for a clean and an adversarially trained model."""
    options = {name: getattr(args, name) for name in args.lab_options if hasattr(args, name)}
    if "width" in options and "checkpoint" not in options:  # before the lab makes its folder
        from cnnlab.models.registry import check_weights

        check_weights("simple-cnn", 10, 3, {"width": options["width"]})
    record = _run("cam-robustness", args.out, args, options)
    if "n" in options:  # a count above the data is all of it, said (core.bounds.at_most)
        bounds.at_most("--n", options["n"], record["settings"]["images"], "the test split")
    for key, m in record["settings"]["models"].items():
        print(f"{key} model {m['checkpoint']}: clean accuracy {m['clean_accuracy']:.4f} on "
              f"{record['settings']['images']} test images")
    print(f"  -> and {args.out}/robustness.json, robustness.md (every attack and budget), maps.png, stability.png")


def _run_options(p: argparse.ArgumentParser, quick: str = "a seconds-long version (what the tests run)") -> None:
    """What every lab run takes: its size, seed, data, device and CPU threads."""
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--data-dir", help="folder holding fashion-mnist/ (default: $CNNLAB_DATA); else digits")
    p.add_argument("--device", type=device, default="cpu")
    p.add_argument("--threads", type=bounds.threads, default=1,
                   help="CPU threads for NumPy and PyTorch (default 1: the labs' networks are small)")
    p.add_argument("--no-progress", action="store_true")
    OVERWRITE.add_to(p)


def _cam_robustness_options(p: argparse.ArgumentParser) -> list[str]:
    """The models it compares, the maps it draws and the attacks it measures them under.

    Returns their names: only those given reach the lab (``LabContext.options``), so that ``--quick``
    and the lab's own defaults fill in the rest.
    """
    p.add_argument("--out", default="runs/lab-cam-robustness", help="output folder (default runs/lab-cam-robustness)")
    _run_options(p, quick="seconds long: 1 epoch on 200 images, width 4, 6 images, FGSM 0.1 only (what the tests "
                          "run; options given win)")
    g = p.add_argument_group("models (neither checkpoint given: a clean and an adversarially trained one are "
                             "trained here)", argument_default=argparse.SUPPRESS)
    own = [g.add_argument("--checkpoint", help="the clean model (runs/<run>/best.ckpt)"),
           g.add_argument("--checkpoint-adv", help="the adversarially trained model compared with --checkpoint"),
           g.add_argument("--dataset", help="data for the models trained here (default fashion-mnist if found, "
                                            "else digits)"),
           g.add_argument("--adversarial", type=adversarial_spec, metavar="METHOD:EPS",
                          help="adversarial training of the second model trained here (default fgsm:0.1)"),
           g.add_argument("--epochs", type=positive_int, help="epochs of the models trained here (default 3)"),
           g.add_argument("--subset", type=nonneg_int,
                          help="training images of the models trained here (default 6000; 0: all)"),
           g.add_argument("--width", type=positive_int, help="simple-cnn width of the models trained here (default 16)")]
    g = p.add_argument_group("maps and attacks", argument_default=argparse.SUPPRESS)
    own += [g.add_argument("--n", type=positive_int, help="test images to explain (default 100)"),
            g.add_argument("--methods", type=comma_list(one_of(METHOD_NAMES)),
                           help="comma-separated CAM methods (default gradcam,shapcam: the two 003 Q1b asks about)"),
            g.add_argument("--layer", help="layer to explain (default: the last one producing a feature map)"),
            g.add_argument("--samples", type=positive_int, help="Shap-CAM: random channel orders (default 16)"),
            g.add_argument("--steps", type=positive_int, help="deletion curve steps (default 20)"),
            g.add_argument("--attacks", type=comma_list(one_of(ATTACK_NAMES)), help="default fgsm,pgd"),
            g.add_argument("--eps", type=comma_list(parse_eps),
                           help="attack budgets, [0, 1] pixels (default 0.01,0.03,0.1)"),
            g.add_argument("--topk", type=float_range(0, 1, low_open=True),
                           help="top-k overlap: the share of pixels counted as the map's top (default 0.1)"),
            g.add_argument("--pgd-steps", type=positive_int, help="default 10")]
    return [action.dest for action in own]


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab", help="the course's theory questions as measured experiments",
                       description="Run one theory lab (`run NAME`; `run` may be left out), `all` of them, or `list` "
                                   "them; each writes result.json, figure.png and summary.md with a conclusion "
                                   "generated from its numbers. `cam-robustness` (003 Q1b) has options of its own.")
    commands = add_subcommands(p, "lab_command", default="run")

    commands.add_parser("list", help="the labs and their course questions").set_defaults(func=cmd_list)

    s = commands.add_parser("run", help="run one lab with its defaults")
    s.add_argument("name", help="lab name (`cnnlab lab list` shows them)")
    s.add_argument("--out", help="output folder (default: runs/lab-NAME)")
    _run_options(s)
    s.set_defaults(func=cmd_run)

    s = commands.add_parser("all", help="run every lab, one folder each")
    s.add_argument("--out", default="runs/labs", help="parent folder: one NAME/ per lab (default runs/labs)")
    _run_options(s)
    s.set_defaults(func=cmd_all)

    s = commands.add_parser("cam-robustness", help="003 Q1b: how far CAMs move under FGSM/PGD, clean vs "
                                                   "adversarially trained model",
                            description="Explains --n test images before and after FGSM/PGD at several budgets, "
                                        "for a clean and an adversarially trained model, and measures how far each "
                                        "map moved (Spearman, top-k overlap, deletion AUC). Writes the lab's "
                                        "result.json, figure.png and summary.md, and robustness.json, robustness.md, "
                                        "maps.png and stability.png.")
    s.set_defaults(func=cmd_cam_robustness, lab_options=_cam_robustness_options(s))
