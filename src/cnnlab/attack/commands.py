"""CLI: ``cnnlab attack IMAGE...`` (FGSM / I-FGSM / PGD panels) and ``cnnlab attack sweep`` (accuracy vs eps)."""
from __future__ import annotations

import argparse

from cnnlab.explain.commands import model_args


def parse_eps(text: str) -> float:
    """A budget as a number or a fraction of grey levels, e.g. ``0.03`` or ``8/255``."""
    from cnnlab.errors import CnnlabError

    try:
        num, _, den = text.partition("/")
        return float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError) as exc:
        raise CnnlabError(f"--eps {text!r}: expected a number like 0.03 or 8/255") from exc


def cmd_attack(args: argparse.Namespace) -> None:
    from cnnlab.attack import api
    from cnnlab.errors import CnnlabError

    if args.images and args.images[0] == "sweep":
        if args.checkpoint is None:
            raise CnnlabError("attack sweep needs --checkpoint (a classifier trained with `cnnlab train`)")
        eps = [parse_eps(e) for e in args.eps.split(",")] if args.eps else [0, 0.01, 0.02, 0.05, 0.1, 0.2]
        attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
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
    rows = api.attack_files(args.images, args.model, args.checkpoint, args.method,
                            parse_eps(args.eps) if args.eps else 4 / 255, args.target, args.steps,
                            parse_eps(args.alpha) if args.alpha else None, args.smallest, args.eps_max,
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
    p.add_argument("--method", default="fgsm", choices=["fgsm", "ifgsm", "pgd"])
    p.add_argument("--eps", help="budget, e.g. 0.03 or 8/255 (default 4/255); sweep: comma-separated list")
    p.add_argument("--target", help="targeted attack toward this class (name or index)")
    p.add_argument("--steps", type=int, default=10, help="I-FGSM/PGD iterations")
    p.add_argument("--alpha", help="I-FGSM/PGD step size (default 2.5 * eps / steps)")
    p.add_argument("--smallest", action="store_true", help="use each image's smallest flipping FGSM eps")
    p.add_argument("--eps-max", type=float, default=0.25, help="largest eps searched for the smallest flip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output folder (default runs/attack or runs/attack-sweep)")
    s = p.add_argument_group("sweep")
    s.add_argument("--data-dir", help="dataset folder, if not the one recorded with the checkpoint")
    s.add_argument("--n", type=int, default=1000, help="test images to use (0: all)")
    s.add_argument("--attacks", default="fgsm,pgd", help="comma-separated attacks to sweep")
    p.set_defaults(func=cmd_attack)
