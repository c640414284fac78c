"""CLI for classification: train, evaluate, predict, show, datasets, models."""
from __future__ import annotations

import argparse


def cmd_models(args: argparse.Namespace) -> None:
    from cnnlab.models import list_models

    for e in list_models():
        print(f"{e.name:28s} {e.description}")


def cmd_datasets(args: argparse.Namespace) -> None:
    from cnnlab.data import list_datasets

    for e in list_datasets():
        print(f"{e.name:16s} {e.description}")


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the registered models")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("datasets", help="list the known datasets")
    p.set_defaults(func=cmd_datasets)
