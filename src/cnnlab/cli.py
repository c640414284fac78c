"""One CLI, ``cnnlab <command>``: a thin layer over the Python API.

Each capability keeps its subcommands in its own ``commands.py`` exposing
``add_commands(subparsers)``; every subcommand parses arguments and calls one API function.
Heavy imports (torch) happen inside the handlers so ``cnnlab --help`` stays instant.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from cnnlab.errors import CnnlabError

# one module per capability; each defines add_commands(subparsers)
COMMAND_MODULES = (
    "cnnlab.train.commands",
    "cnnlab.scratch.commands",
    "cnnlab.explain.commands",
    "cnnlab.attack.commands",
    "cnnlab.segment.commands",
    "cnnlab.analysis.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        result = args.func(args)
    except (CnnlabError, FileNotFoundError) as exc:
        print(f"cnnlab {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
