"""Typed checkers for command-line options, shared by every command.

Each is an ``argparse`` ``type=``: it turns the text into a value or raises
``ArgumentTypeError``, which the CLI prints as one line naming the option
(``cnnlab train: error: argument --batch-size: expected an integer >= 1, got '0'``).
A new option gets the same behaviour by naming one of these instead of ``int``/``float``.
"""
from __future__ import annotations

import argparse
import json
import math
from typing import Any, Callable

Check = Callable[[str], object]


def _number(text: str, kind: type) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def ruled(kind: type, says: str, ok: Callable[[float], bool]) -> Check:
    """A finite ``kind`` (int or float) that ``ok`` accepts, else "expected {says}, got '...'".

    Every numeric checker is one of these, so a rule written once (``TrainConfig``'s RULES, a
    range) refuses a bad value on the command line in the same words as everywhere else.
    """
    def check(text: str) -> float:
        value = _number(text, kind)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {says}, got {text!r}")
        return value
    return check


def int_range(low: int | None = None, high: int | None = None) -> Check:
    """An integer in ``[low, high]`` (either bound may be open-ended)."""
    return ruled(int, f"an integer{_bounds(low, high, '[', ']')}",
                 lambda v: (low is None or v >= low) and (high is None or v <= high))


def float_range(low: float | None = None, high: float | None = None, low_open: bool = False,
                high_open: bool = False) -> Check:
    """A finite float in the interval from ``low`` to ``high`` (open ends where asked)."""
    def inside(v: float) -> bool:
        above = low is None or (v > low if low_open else v >= low)
        return above and (high is None or (v < high if high_open else v <= high))
    return ruled(float, f"a number{_bounds(low, high, '(' if low_open else '[', ')' if high_open else ']')}", inside)


def _bounds(low: float | None, high: float | None, left: str, right: str) -> str:
    """`` >= 1``, `` < 1``, `` in [0, 1)``, or nothing for no bounds (``left``/``right``: ``[`` or ``(``)."""
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if left == '(' else '>='} {low:g}"
    if low is None:
        return f" {'<' if right == ')' else '<='} {high:g}"
    return f" in {left}{low:g}, {high:g}{right}"


positive_int = int_range(1)
nonneg_int = int_range(0)
finite_float = float_range()
positive_float = float_range(0, low_open=True)
nonneg_float = float_range(0)
fraction = float_range(0, 1, high_open=True)  # a share of a set: 0 allowed, all of it not
probability = float_range(0, 1)
seed = int_range(0, 2**63 - 1)  # what torch, NumPy and random all accept


def comma_list(check: Check, min_items: int = 1) -> Check:
    """Comma-separated values, each passed through ``check`` (``"0.5,1,2"`` -> ``[0.5, 1.0, 2.0]``)."""
    def parse(text: str) -> list:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if len(items) < min_items:
            raise argparse.ArgumentTypeError(f"expected at least {min_items} comma-separated value(s), got {text!r}")
        return [check(t) for t in items]
    return parse


def one_of(choices: tuple[str, ...]) -> Check:
    """One of ``choices`` (as ``choices=`` does, but usable inside :func:`comma_list`)."""
    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text
    return parse


def word_or(words: tuple[str, ...], check: Check) -> Check:
    """One of ``words`` as is, else a value ``check`` accepts (``balanced`` or a number)."""
    def parse(text: str) -> object:
        if text in words:
            return text
        try:
            return check(text)
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{exc} (or one of: {', '.join(words)})") from None
    return parse


def _json(kind: type, name: str, example: str) -> Check:
    def parse(text: str):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(f"expected a JSON {name}, got {text!r} ({exc.msg} at char {exc.pos})") \
                from None
        if not isinstance(value, kind):
            raise argparse.ArgumentTypeError(f"expected a JSON {name} like '{example}', got {text!r}")
        return value
    return parse


def nonempty(text: str) -> str:
    """A name or path that is not blank: ``--dataset ""`` or ``--out ""`` would otherwise stand for the
    default dataset, or for the current folder, which is not what anyone typing it meant."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a value, got {text!r} (leave the option out for its default)")
    return text


# options whose value is a name or a path: an empty one is refused by ``nonempty`` on every command
# (set by :func:`refuse_empty_text`, so a new command's --out gets it without naming it)
TEXT_OPTIONS = frozenset({"--out", "--dataset", "--recipe", "--augment", "--methods", "--data-dir", "--model",
                          "--checkpoint", "--init-from", "--config", "--label-regex", "--images", "--masks",
                          "--classes", "--loss"})


def refuse_empty_text(parser: argparse.ArgumentParser) -> None:
    """Give every ``TEXT_OPTIONS`` option of ``parser`` and its sub-commands the ``nonempty`` checker
    (in front of its own checker, if it has one); a command with ``--data-dir`` is marked
    (``data_dir_option``) so that the CLI checks that folder exists before the command runs."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                refuse_empty_text(sub)
        elif set(action.option_strings) & TEXT_OPTIONS and action.nargs is None and action.const is None:
            action.type = _then(nonempty, action.type) if action.type is not None else nonempty
    if "--data-dir" in parser._option_string_actions:
        parser.set_defaults(data_dir_option=True)


def _then(first: Check, second: Check) -> Check:
    def check(text: str) -> object:
        return second(first(text))
    check.__name__ = getattr(second, "__name__", "check")
    return check


json_object = _json(dict, "object", '{"width": 64}')  # as for --model-kwargs
json_list = _json(list, "list", "[[0, 0, 0], [255, 0, 0]]")  # as for --palette


def device(text: str) -> str:
    """``auto``, ``cpu``, ``cuda``/``cuda:N`` or ``mps``, and only one this machine has."""
    name = text.strip().lower()
    if name in ("auto", "cpu"):
        return name
    import torch

    try:
        dev = torch.device(name)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise argparse.ArgumentTypeError(f"{text!r} asked for, but this machine has no CUDA GPU (use cpu or auto)")
        if dev.index is not None and dev.index >= count:
            raise argparse.ArgumentTypeError(f"{text!r} asked for, but this machine has {count} CUDA GPU(s)")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError(f"{text!r} asked for, but MPS is not available here (use cpu or auto)")
    elif dev.type != "cpu":
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return name


class DefaultsFormatter(argparse.HelpFormatter):
    """``--help`` names each option's default, as ``ArgumentDefaultsHelpFormatter`` does, except where
    the help already says it (the training options say where the recipe sets it) or there is none
    to state (a flag that is off, an option whose absence the command fills in)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or "default" in text.lower() or action.default in (None, False, "")
                or action.default is argparse.SUPPRESS or action.nargs == 0):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (sub-commands inherit it).

    ``respell`` (set by :func:`cnnlab.cli.subcommands.add_subcommands`) turns a command's older
    spellings into today's before parsing, so ``cnnlab explain IMAGE`` keeps meaning ``explain image``.
    Abbreviated options are not accepted (``--epoch`` is not silently ``--epochs``: a later option
    ``--epoch-x`` would change what old command lines mean); an unknown option is refused by the
    command that received it, naming its nearest known options.
    """

    respell: Callable[[list[str]], list[str]] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)
        # on every command, before or after its name (SUPPRESS: a sub-command's absent flag keeps the top one's)
        self.add_argument("-q", "--quiet", action="count", default=argparse.SUPPRESS,
                          help="only warnings and errors on stderr (results still print)")
        self.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                          help="more detail on stderr (every training loop's epochs, debug messages)")

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if self.respell is not None and args is not None:
            args = self.respell(list(args))
        namespace, extras = super().parse_known_args(args, namespace)
        unknown = [a.split("=", 1)[0] for a in extras if a.startswith("--")]
        if unknown:
            self.error(f"unrecognized arguments: {' '.join(extras)}{self.nearest(unknown[0])}")
        return namespace, extras

    def nearest(self, flag: str) -> str:
        """"; did you mean --epochs?" for a misspelt flag: its closest options of this command."""
        import difflib

        known = [o for o in self._option_string_actions if o.startswith("--")]
        close = difflib.get_close_matches(flag, known, n=2, cutoff=0.6)
        return f"; did you mean {' or '.join(close)}?" if close else ""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
