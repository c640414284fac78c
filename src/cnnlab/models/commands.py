"""CLI: ``cnnlab models``: every registered model with its parameters and MACs."""
from __future__ import annotations

import argparse
import json


def cmd_models(args: argparse.Namespace) -> None:
    from cnnlab.models.complexity import format_table, registry_complexity

    rows = registry_complexity()
    print(json.dumps(rows, indent=1) if args.format == "json" else format_table(rows))


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the registered models with params and MACs at their default input")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_models)
