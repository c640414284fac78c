"""CLI: ``cnnlab attack IMAGE...`` (FGSM / I-FGSM / PGD panels) and ``cnnlab attack sweep`` (accuracy vs eps)."""
from __future__ import annotations

import argparse
import math

from cnnlab.cli.types import comma_list, device, float_range, nonneg_int, one_of, positive_int, seed

ATTACK_NAMES = ("fgsm", "ifgsm", "pgd")  # cnnlab.attack.attacks.ATTACKS, named here so --help needs no torch


def model_args(p: argparse.ArgumentParser) -> None:
    """--model | --checkpoint and --device: the classifier a command explains or attacks."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--model", help="efficientnet-lite0-imagenet (default, offline) or torchvision:<name>")
    g.add_argument("--checkpoint", help="a cnnlab classifier checkpoint (runs/<run>/best.ckpt)")
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


def cmd_attack(args: argparse.Namespace) -> None:
    from cnnlab.attack import api
    from cnnlab.core.errors import CnnlabError

    if args.images and args.images[0] == "sweep":
        if args.checkpoint is None:
            raise CnnlabError("attack sweep needs --checkpoint (a classifier trained with `cnnlab train`)")
        eps = args.eps or [0, 0.01, 0.02, 0.05, 0.1, 0.2]
        attacks = args.attacks
        out = args.out or "runs/attack-sweep"
        r = api.sweep_checkpoint(args.checkpoint, args.data_dir, args.n or None, eps, attacks, args.steps,
                                 args.eps_max, out, args.device, args.seed)
        print(f"accuracy vs eps on {r['n']} test images (PGD: {args.steps} steps, random start)")
        print("| eps | " + " | ".join(attacks) + " |\n|---|" + "---|" * len(attacks))
        for i, e in enumerate(r["eps"]):
            print(f"| {e:.4f} | " + " | ".join(f"{r[a][i]:.4f}" for a in attacks) + " |")
        m = r["min_flip_eps"]
        print(f"smallest flipping FGSM eps over the {r['n'] - m['wrong_when_clean']} correctly classified images: "
              f"median {m['median_of_correct']:.4f}; {m['never_flipped']} never flipped up to {m['eps_max']}")
        print(f"wrote {out}/sweep.json, accuracy_vs_eps.png, min_flip_eps.png, panels.png")
        return
    if not args.images:
        raise CnnlabError("give image files (or skimage:<name>), or `cnnlab attack sweep --checkpoint ...`")
    if args.eps and len(args.eps) > 1:
        raise CnnlabError(f"--eps: an attack on files takes one budget, got {len(args.eps)} (lists are for sweep)")
    rows = api.attack_files(args.images, args.model, args.checkpoint, args.method,
                            args.eps[0] if args.eps else 4 / 255, args.target, args.steps,
                            args.alpha, args.smallest, args.eps_max,
                            args.out or "runs/attack", args.device, args.seed)
    for r in rows:
        print(f"{r['image']}: {r['clean']} ({r['clean_prob']:.3f}) -> {r['adversarial']} "
              f"({r['adversarial_prob']:.3f}) at eps {r['eps']:.4f}" + ("" if r["flipped"] else "  [not flipped]"))
    print(f"wrote {args.out or 'runs/attack'}/panels.png and attack.json")


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "attack", help="adversarial examples (FGSM, I-FGSM, PGD) and robustness sweeps",
        description="cnnlab attack IMAGE... perturbs each image's prediction and saves clean | perturbation | "
                    "adversarial panels; cnnlab attack sweep --checkpoint C gives accuracy vs eps on the test "
                    "set and the smallest flipping FGSM eps per image. eps is in [0, 1] pixel units.")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files or skimage:<name>; or the word 'sweep'")
    model_args(p)
    p.add_argument("--method", default="fgsm", choices=ATTACK_NAMES)
    p.add_argument("--eps", type=comma_list(parse_eps), help="budget, e.g. 0.03 or 8/255 (default 4/255); sweep: comma-separated list")
    p.add_argument("--target", help="targeted attack toward this class (name or index)")
    p.add_argument("--steps", type=positive_int, default=10, help="I-FGSM/PGD iterations")
    p.add_argument("--alpha", type=parse_eps, help="I-FGSM/PGD step size (default 2.5 * eps / steps)")
    p.add_argument("--smallest", action="store_true", help="use each image's smallest flipping FGSM eps")
    p.add_argument("--eps-max", type=float_range(0, 1, low_open=True), default=0.25,
                   help="largest eps searched for the smallest flip")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--out", help="output folder (default runs/attack or runs/attack-sweep)")
    s = p.add_argument_group("sweep")
    s.add_argument("--data-dir", help="dataset folder, if not the one recorded with the checkpoint")
    s.add_argument("--n", type=nonneg_int, default=1000, help="test images to use (0: all)")
    s.add_argument("--attacks", type=comma_list(one_of(ATTACK_NAMES)), default="fgsm,pgd", help="comma-separated attacks to sweep")
    p.set_defaults(func=cmd_attack)
