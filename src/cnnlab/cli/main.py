"""One CLI, ``cnnlab <command>``: a thin layer over the Python API.

Each capability keeps its subcommands in its own ``commands.py`` exposing
``add_commands(subparsers)``; every subcommand parses arguments and calls one API function.
Heavy imports (torch) happen inside the handlers so ``cnnlab --help`` stays instant.
"""
from __future__ import annotations

import argparse
import ctypes
import importlib
import sys
import warnings

from cnnlab import __version__
from cnnlab.cli.types import Parser, refuse_empty_text
from cnnlab.cli.options import guarded_command
from cnnlab.core.errors import CnnlabError

# one module per capability; each defines add_commands(subparsers)
COMMAND_MODULES = (
    "cnnlab.classify.commands",
    "cnnlab.data.commands",
    "cnnlab.labs.commands",
    "cnnlab.scratch.commands",
    "cnnlab.explain.commands",
    "cnnlab.attack.commands",
    "cnnlab.segment.commands",
    "cnnlab.analysis.commands",
    "cnnlab.match.commands",
    "cnnlab.export.commands",
    "cnnlab.report.commands",
    "cnnlab.demo.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="cnnlab", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    refuse_empty_text(parser)
    return parser


def keep_freed_memory() -> None:
    """Stop glibc from handing every freed activation buffer back to the kernel.

    PyTorch has no CPU caching allocator: each conv output above glibc's 128 KiB mmap threshold
    is mmap'd, freed and page-faulted in again on the next step. Raising the mmap and trim
    thresholds keeps those buffers in the heap: Fashion-MNIST simple-cnn (width 24) epochs on 2 cores went
    from 88 to 59 s (system time 24 -> 5 s). PyTorch's CPU tuning guide suggests jemalloc or
    tcmalloc for the same reason; this needs no extra library. Only the CLI does this, since it
    owns its process.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl): nothing to tune
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's maximum
    libc.mallopt(m_trim_threshold, 1 << 30)
    libc.mallopt(m_top_pad, 256 << 20)


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    warnings.formatwarning = lambda message, *_: f"cnnlab {args.command}: warning: {message}\n"
    from cnnlab.core import log

    log.setup(getattr(args, "verbose", 0) - getattr(args, "quiet", 0))
    try:
        with guarded_command(args):
            result = args.func(args)
    except KeyboardInterrupt as exc:  # training adds how far it got and how to continue
        print(f"cnnlab {args.command}: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001  (only the user-facing kinds below are caught)
        message = user_error(exc)
        if message is None:
            raise
        print(f"cnnlab {args.command}: error: {message}", file=sys.stderr)
        return 2
    return int(result or 0)


def user_error(exc: BaseException) -> str | None:
    """One line for an error the user can fix (bad input, a file or folder problem), else None.

    Programming errors keep their traceback: they are bugs to report, not input to correct.
    """
    if isinstance(exc, CnnlabError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    if type(exc).__name__ == "DecompressionBombError":  # PIL's refusal of huge images
        return str(exc)
    return None


if __name__ == "__main__":
    sys.exit(main())
