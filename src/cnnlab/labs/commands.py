"""CLI: ``cnnlab lab list`` and ``cnnlab lab NAME --out DIR [--quick]``."""
from __future__ import annotations

import argparse

from cnnlab.cli.types import device, nonneg_int, positive_int


def cmd_lab(args: argparse.Namespace) -> None:
    from cnnlab.labs import list_labs, run_lab

    if args.name == "list":
        entries = list_labs()
        width = max(len(e.name) for e in entries)
        for e in entries:
            print(f"{e.name:{width}s}  {e.question:18s} {e.title}")
        return
    names = [e.name for e in list_labs()] if args.name == "all" else [args.name]
    for name in names:
        out = args.out if args.name != "all" else f"{args.out or 'runs/labs'}/{name}"
        record = run_lab(name, out, quick=args.quick, seed=args.seed, data_dir=args.data_dir,
                         device=args.device, progress=not args.no_progress, threads=args.threads)
        print(f"{name} ({record['question']}, {record['seconds']:.1f} s, {record['cpu_seconds']:.1f} s CPU):")
        for sentence in record["conclusion"]:
            print(f"  - {sentence}")
        print(f"  -> {out or 'runs/lab-' + name}/result.json, figure.png, summary.md")


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab", help="the course's theory questions as measured experiments",
                       description="Run one theory lab (or `list` them, or `all`); each writes result.json, "
                                   "figure.png and summary.md with a conclusion generated from its numbers.")
    p.add_argument("name", help="lab name, `list` or `all`")
    p.add_argument("--out", help="output folder (default: runs/lab-NAME; with `all`: runs/labs/NAME)")
    p.add_argument("--quick", action="store_true", help="a seconds-long version (what the tests run)")
    p.add_argument("--seed", type=nonneg_int, default=0)
    p.add_argument("--data-dir", help="folder holding fashion-mnist/ (default: $CNNLAB_DATA); else digits")
    p.add_argument("--device", type=device, default="cpu")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="CPU threads for NumPy and PyTorch (default 1: the labs' networks are small)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_lab)
