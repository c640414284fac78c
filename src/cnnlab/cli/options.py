"""Option groups that several commands share, the training ones built from ``TrainConfig``.

``cnnlab train`` and ``cnnlab segment train`` take the same run and training-loop options. Each
is defined here once: a ``TrainConfig`` field's flag takes its checker from the field's rule
(``cnnlab.train.config.RULES``) and names the field's default in its help, so a flag cannot drift
from what the engine accepts. A group knows its options, so a handler hands them to the API in one
go (``**TRAINING.values(args)``) instead of naming 40 keywords. Torch-free, like the parser.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields, replace
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from cnnlab.cli.types import device, fraction, ruled, seed
from cnnlab.core import output, places
from cnnlab.train.config import AVERAGES, LR_SCALINGS, OPTIMIZERS, RULES, SCHEDULES, TrainConfig

_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}
_RULES = {name: (says, ok) for name, says, ok in RULES}


@dataclass(frozen=True)
class Option:
    """One flag: its ``add_argument`` settings, and how its value reaches the API (keyword ``dest``)."""

    flag: str
    settings: dict[str, Any] = field(default_factory=dict)
    to_api: Callable[[Any], Any] | None = None  # value as parsed -> value the API takes (None: as parsed)

    @property
    def dest(self) -> str:
        return self.settings.get("dest") or self.flag.lstrip("-").replace("-", "_")

    def add_to(self, parser: argparse.ArgumentParser | argparse._ArgumentGroup, **changes: Any) -> None:
        """Add the flag; ``changes`` replace settings where one command needs its own (a help text)."""
        parser.add_argument(self.flag, **{**self.settings, **changes})

    def value(self, args: argparse.Namespace) -> Any:
        parsed = getattr(args, self.dest)
        return parsed if self.to_api is None else self.to_api(parsed)


@dataclass(frozen=True)
class OptionGroup:
    """Options added to a command together, under one heading of its ``--help``, and read back together."""

    title: str
    options: tuple[Option, ...]

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group(self.title)
        for option in self.options:
            option.add_to(group)

    def values(self, args: argparse.Namespace) -> dict[str, Any]:
        """The group's values as the API's keyword arguments (None: not given, the recipe decides)."""
        return {option.dest: option.value(args) for option in self.options}


def add_groups(parser: argparse.ArgumentParser, groups: tuple[OptionGroup, ...]) -> None:
    for group in groups:
        group.add_to(parser)


def values(args: argparse.Namespace, groups: tuple[OptionGroup, ...]) -> dict[str, Any]:
    """Every group's values as one set of API keyword arguments."""
    return {dest: value for group in groups for dest, value in group.values(args).items()}


def _setting(name: str, what: str, **settings: Any) -> Option:
    """The flag of ``TrainConfig`` field ``name``: checked by the field's rule, its default in the help.

    Options left out are None so that the recipe's value wins; the help says what applies then.
    """
    if "choices" not in settings:  # a field without a rule fails here, at import: every flag has one
        settings.setdefault("type", ruled(type(_DEFAULTS[name]), *_RULES[name]))
    return Option("--" + name.replace("_", "-"),
                  dict(help=f"{what} (default: the recipe's, else {_DEFAULTS[name]})", **settings))


DEVICE = Option("--device", dict(type=device, default=_DEFAULTS["device"],
                                 help=f"auto, cpu, cuda, cuda:1 ... (default: {_DEFAULTS['device']})"))
CHECKPOINT = Option("--checkpoint", dict(required=True, help="a run's checkpoint, e.g. runs/<run>/best.ckpt"))
PROGRESS = Option("--no-progress", dict(dest="progress", action="store_false", help="no progress bars"))
# every command that writes takes it: without it, no existing file the command did not write itself is
# replaced (cnnlab.core.output; the CLI guards the command's writes when its parser has this option)
OVERWRITE = Option("--overwrite", dict(action="store_true",
                                       help="replace files already in --out (without it, the command stops "
                                            "before writing)"))
# what a figure's --out may end in (matplotlib's formats; no extension: PNG)
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg", "")


DATA_OPTIONS = ("data_dir", "images", "masks")  # folders of data an --out must not lie inside


@contextmanager
def guarded_command(args: argparse.Namespace) -> Iterator[None]:
    """Run a command that writes (its parser has ``--overwrite``) under the output guard
    (:mod:`cnnlab.core.output`), its ``--out`` checked before anything else runs."""
    check_inputs(args)
    if not hasattr(args, "overwrite"):
        yield
        return
    with output.guarded(args.overwrite):
        if getattr(args, "out", None) is not None:
            check_out(args)
        yield


def check_inputs(args: argparse.Namespace) -> None:
    """A ``--data-dir`` that does not exist is refused by every command, before it runs."""
    if getattr(args, "data_dir_option", False) and isinstance(args.data_dir, str):
        places.existing_folder(args.data_dir)


def check_out(args: argparse.Namespace) -> None:
    """``--out`` is not empty and not inside a data folder (``DATA_OPTIONS``; ``$CNNLAB_DATA`` for a
    command that reads data without ``--data-dir``) or cnnlab's cache; it is a file of the parser's
    ``out_suffixes`` where it set them, else a folder, except a run folder (``run_folder``:
    runs.rundir checks it, with the options that continue or replace a run)."""
    output.refuse_empty(args.out)
    for data in DATA_OPTIONS:
        folder = getattr(args, data, None)  # a list: the IMAGE arguments of explain/attack, not a folder
        if isinstance(folder, str):
            output.refuse_inside_data(args.out, folder, data_option="--" + data.replace("_", "-"))
    if hasattr(args, "data_dir") and args.data_dir is None and places.env_data_dir() is not None:
        output.refuse_inside_data(args.out, places.env_data_dir(), data_option=f"${places.DATA_ENV}")
    output.refuse_inside_data(args.out, places.cache_dir(), data_option=f"cnnlab's cache (${places.CACHE_ENV})")
    if getattr(args, "out_suffixes", None):
        output.check_file(args.out, args.out_suffixes)
    elif not getattr(args, "run_folder", False):
        output.check_folder(args.out)


# the run folder and the data split: where a training run goes and what it holds out
RUN = OptionGroup("run folder and split", (
    Option("--out", dict(help="run folder (default: a new one under runs/, named after the dataset, model and time)")),
    Option("--resume", dict(action="store_true",
                            help="continue the run in --out from its last.ckpt (options left out come from its "
                                 "config.json)")),
    replace(OVERWRITE, settings={**OVERWRITE.settings, "help": "replace the run already in --out"}),
    Option("--tensorboard", dict(action="store_true",
                                 help="log scalars per epoch and the final figures to OUT/tb "
                                      "(tensorboard --logdir OUT/tb)")),
    PROGRESS,
    Option("--val-fraction", dict(type=fraction,
                                  help="validation share of the training images (default: the recipe's, else 0.1)")),
    Option("--split-seed", dict(type=seed, help="seed of the val/test splits (default: the recipe's, else 42)")),
))

# the training loop every task has (TrainConfig fields)
TRAINING = OptionGroup("training (TrainConfig)", (
    _setting("epochs", "passes over the training images"),
    _setting("batch_size", "images per step of EACH process (under torchrun the global batch is world size x "
                           "this, as in the torchvision references)"),
    _setting("lr", "peak learning rate of one process's batch (scaled by --lr-scaling under torchrun)"),
    _setting("lr_scaling", "how the LR grows with torchrun's world size W: linear (lr x W), sqrt (lr x sqrt W) or "
                           "none", choices=LR_SCALINGS),
    _setting("optimizer", "optimizer", choices=OPTIMIZERS),
    _setting("weight_decay", "L2 penalty on the weights, not on biases or norm parameters"),
    _setting("schedule", "learning-rate schedule", choices=SCHEDULES),
    _setting("patience", "early stopping after N epochs without val improvement, 0 for never"),
    _setting("accumulate", "micro-batches of --batch-size per optimizer step (gradient accumulation)"),
    _setting("label_smoothing", "label smoothing of the cross-entropy (segmentation: of the ce/bce mask targets, "
                                "y(1-eps) + eps/K), in [0, 1)"),
    _setting("grad_clip", "clip the gradients' global L2 norm to this before each step, 0 for off"),
    _setting("keep_top", "keep the K best epochs' checkpoints as OUT/epochNNN.ckpt, 0 for none"),
    DEVICE,
    _setting("seed", "training seed (init, shuffling, augmentation)", type=seed),
    Option("--no-amp", dict(dest="amp", action="store_const", const=False, help="disable bf16 autocast on GPU")),
))

# TrainConfig fields that only classification exposes (segmentation's --tta means flips, see segment.commands)
CLASSIFY_TRAINING = OptionGroup("more training (TrainConfig, classification)", (
    _setting("momentum", "SGD momentum in [0, 1)"),
    _setting("tta", "test-time augmentation of val/test: 0 none, 1 mirror, 2 mirror + 1-pixel shifts"),
    _setting("average", "weight averaging while training", choices=AVERAGES),
    _setting("bn_lr_scale", "learning-rate multiplier for BatchNorm parameters"),
    _setting("mixup", "MixUp's Beta(a, a) (torchvision.transforms.v2.MixUp), 0 for off"),
    _setting("cutmix", "CutMix's Beta(a, a) (torchvision.transforms.v2.CutMix), 0 for off; with --mixup, "
                       "one of the two per batch"),
    Option("--compile", dict(action="store_true", default=None,
                             help="torch.compile the model (its compile time is reported apart from the epochs)")),
    Option("--cpu-amp", dict(action="store_true", default=None,
                             help="bf16 autocast on the CPU too (fast on CPUs with AMX or AVX512-BF16, slow on "
                                  "others)")),
))
