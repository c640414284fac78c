"""Commands with sub-commands (``cnnlab explain image|compare|layers``) and how their handlers call the API.

``explain``, ``attack``, ``match`` and ``lab`` once guessed a mode from their first word and shared
one option set; each mode is now a sub-command with its own options and ``--help``. Their older
spellings keep working: arguments that start with no sub-command name run the ``default`` one
(``cnnlab explain photo.jpg`` is ``cnnlab explain image photo.jpg``), and a word or flag that moved
elsewhere fails with one line naming its new home. Torch-free: the CLI's parser is built from it.
"""
from __future__ import annotations

import argparse
import inspect
from typing import Any, Callable

from cnnlab.cli.types import Parser

HELP = ("-h", "--help")


def add_subcommands(parser: Parser, dest: str, default: str | None = None,
                    moved: dict[str, str] | None = None) -> argparse._SubParsersAction:
    """Sub-commands of ``parser``; ``default`` runs when none is named, ``moved`` maps old words to new commands."""
    command = parser.prog.split()[-1]
    sub = parser.add_subparsers(dest=dest, metavar=f"<{command} command>", required=True)
    moved = moved or {}

    def respell(args: list[str]) -> list[str]:
        if not args or args[0] in sub.choices or args[0] in HELP:
            return args
        for word in [args[0], *(a for a in args if a.startswith("-"))]:
            if word in moved:
                parser.error(f"`cnnlab {command} {word}` is now `{moved[word]}`")
        return [default, *args] if default else args

    parser.respell = respell
    return sub


def call(fn: Callable[..., Any], args: argparse.Namespace, **given: Any) -> Any:
    """``fn`` with every option of ``args`` that it names as a parameter, and ``given`` on top.

    Each sub-command's options are named like its API function's parameters, so a handler passes
    what the user gave without forwarding each option by hand (and a new option reaches the API
    by being named like its parameter).
    """
    named = {name for name, p in inspect.signature(fn).parameters.items()
             if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    options = {name: value for name, value in vars(args).items() if name in named}
    return fn(**{**options, **given})
