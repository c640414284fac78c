"""CLI: ``cnnlab datasets``: the known datasets, one line each, with their task."""
from __future__ import annotations

import argparse


def cmd_datasets(args: argparse.Namespace) -> None:
    from cnnlab.data import list_datasets

    for e in list_datasets():
        print(f"{e.name:16s} {e.task:14s} {e.description}")


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list the known datasets")
    p.set_defaults(func=cmd_datasets)
