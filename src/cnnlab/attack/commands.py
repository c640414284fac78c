"""CLI: ``cnnlab attack image IMAGE...`` (FGSM / I-FGSM / PGD panels) and ``cnnlab attack sweep`` (accuracy vs eps).

``cnnlab attack IMAGE...`` (no sub-command) still means ``attack image``.
"""
from __future__ import annotations

import argparse
import math

from cnnlab.attack.catalog import ATTACK_NAMES
from cnnlab.core import bounds
from cnnlab.cli.options import OVERWRITE
from cnnlab.cli.subcommands import add_subcommands, call
from cnnlab.cli.types import comma_list, device, float_range, nonneg_int, one_of, positive_int, seed


def model_args(p: argparse.ArgumentParser, with_device: bool = True) -> None:
    """--model | --checkpoint (and --device where the command runs the model): the classifier a command
    explains or attacks."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", help="efficientnet-lite0-imagenet (default, offline) or torchvision:<name>")
    g.add_argument("--checkpoint", help="a cnnlab classifier checkpoint (runs/<run>/best.ckpt)")
    if with_device:
        p.add_argument("--device", type=device, default="cpu")


def parse_eps(text: str) -> float:
    """A budget in [0, 1] pixel units as a number or a fraction of grey levels, e.g. ``0.03`` or ``8/255``."""
    try:
        num, _, den = text.partition("/")
        value = float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number like 0.03 or 8/255, got {text!r}") from None
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise argparse.ArgumentTypeError(f"expected a budget in [0, 1] pixel units, got {text!r}")
    return value


def one_eps(text: str) -> float:
    """One budget (:func:`parse_eps`): a list is what ``attack sweep`` takes, so it gets that hint."""
    if "," in text:
        raise argparse.ArgumentTypeError(f"an attack on files takes one budget, got {len(text.split(','))} "
                                         f"(lists are for `cnnlab attack sweep`)")
    return parse_eps(text)


def cmd_image(args: argparse.Namespace) -> None:
    from cnnlab.attack.api import attack_files
    from cnnlab.core.errors import CnnlabError

    if not args.images:
        raise CnnlabError("give image files (or skimage:<name>), or `cnnlab attack sweep --checkpoint ...`")
    for r in call(attack_files, args):
        print(f"{r['image']}: {r['clean']} ({r['clean_prob']:.3f}) -> {r['adversarial']} "
              f"({r['adversarial_prob']:.3f}) at eps {r['eps']:.4f}" + ("" if r["flipped"] else "  [not flipped]"))
    print(f"wrote {args.out}/panels.png and attack.json")


def cmd_sweep(args: argparse.Namespace) -> None:
    from cnnlab.attack.api import sweep_checkpoint
    from cnnlab.core.errors import CnnlabError

    if args.checkpoint is None:
        raise CnnlabError("attack sweep needs --checkpoint (a classifier trained with `cnnlab train`)")
    r = call(sweep_checkpoint, args, n=(1000 if args.n is None else args.n) or None)
    if args.n and r["n"] < args.n:  # a count above the data is all of it, said (core.bounds.at_most)
        bounds.at_most("--n", args.n, r["n"], "the checkpoint's test split")
    print(f"accuracy vs eps on {r['n']} test images (PGD: {args.steps} steps, random start)")
    print("| eps | " + " | ".join(args.attacks) + " |\n|---|" + "---|" * len(args.attacks))
    for i, e in enumerate(r["eps"]):
        print(f"| {e:.4f} | " + " | ".join(f"{r[a][i]:.4f}" for a in args.attacks) + " |")
    m = r["min_flip_eps"]
    print(f"smallest flipping FGSM eps over the {r['n'] - m['wrong_when_clean']} correctly classified images: "
          f"median {m['median_of_correct']:.4f}; {m['never_flipped']} never flipped up to {m['eps_max']}")
    print(f"wrote {args.out}/sweep.json, accuracy_vs_eps.png, min_flip_eps.png, panels.png")


def _attack_options(p: argparse.ArgumentParser, out: str) -> None:
    """What both sub-commands share: iterations, the search bound of the smallest flip, seed, output folder."""
    p.add_argument("--steps", type=positive_int, default=10, help="I-FGSM/PGD iterations")
    p.add_argument("--eps-max", type=float_range(0, 1, low_open=True), default=0.25,
                   help="largest eps searched for the smallest flip")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--out", default=out, help=f"output folder (default {out})")
    OVERWRITE.add_to(p)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "attack", help="adversarial examples (FGSM, I-FGSM, PGD) and robustness sweeps",
        description="cnnlab attack image IMAGE... perturbs each image's prediction and saves clean | perturbation | "
                    "adversarial panels (`image` may be left out); cnnlab attack sweep --checkpoint C gives accuracy "
                    "vs eps on the test set and the smallest flipping FGSM eps per image. eps is in [0, 1] pixel units.")
    commands = add_subcommands(p, "attack_command", default="image")

    s = commands.add_parser("image", help="attack image files: clean | perturbation | adversarial panels")
    s.add_argument("images", nargs="*", metavar="IMAGE", help="image files or skimage:<name>")
    model_args(s)
    s.add_argument("--method", default="fgsm", choices=ATTACK_NAMES)
    s.add_argument("--eps", type=one_eps, default=4 / 255, help="budget, e.g. 0.03 or 8/255 (default 4/255)")
    s.add_argument("--target", help="targeted attack toward this class (name or index)")
    s.add_argument("--alpha", type=parse_eps, help="I-FGSM/PGD step size (default 2.5 * eps / steps)")
    s.add_argument("--smallest", action="store_true", help="use each image's smallest flipping FGSM eps")
    _attack_options(s, "runs/attack")
    s.set_defaults(func=cmd_image)

    s = commands.add_parser("sweep", help="accuracy vs eps on a checkpoint's test images, smallest flips",
                            description="Accuracy vs eps on the checkpoint's own held-out test split, and the "
                                        "smallest flipping FGSM eps per correctly classified image.")
    s.add_argument("--checkpoint", help="a classifier trained with `cnnlab train` (runs/<run>/best.ckpt)")
    s.add_argument("--device", type=device, default="cpu")
    s.add_argument("--data-dir", help="dataset folder, if not the one recorded with the checkpoint")
    s.add_argument("--n", type=nonneg_int, help="test images to use (default 1000, or all if fewer; 0: all)")
    s.add_argument("--eps", type=comma_list(parse_eps), default="0,0.01,0.02,0.05,0.1,0.2",
                   help="comma-separated budgets (default 0,0.01,0.02,0.05,0.1,0.2)")
    s.add_argument("--attacks", type=comma_list(one_of(ATTACK_NAMES)), default="fgsm,pgd",
                   help="comma-separated attacks to sweep")
    _attack_options(s, "runs/attack-sweep")
    s.set_defaults(func=cmd_sweep)
