"""Dataset registry: a name -> loader, plus the seeded validation (and test) split every run uses.

The built-in datasets register in ``builtin.py`` and the segmentation presets in ``segmentation.py``,
both imported before the first lookup (not at import time: they import this module to register).
Every dataset has a task: ``cnnlab datasets`` lists them all, and each is loaded by its task's loader
(:func:`load_dataset` for classification, :func:`cnnlab.data.segmentation.load_segmentation`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from cnnlab.data.base import DatasetSplits, ImageSet, channel_stats, seeded_split
from cnnlab.core import bounds
from cnnlab.core.errors import CnnlabError
from cnnlab.core.names import Registry

Loader = Callable[..., DatasetSplits]


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    loader: Loader
    description: str
    needs_files: bool  # False for datasets shipped inside an installed package
    task: str = "classification"  # or "segmentation" (its loader returns SegData)


def _register_all() -> None:
    import cnnlab.data.builtin  # noqa: F401  (registers the built-in datasets)
    import cnnlab.data.segmentation  # noqa: F401  (registers the segmentation presets)


DATASETS: Registry[DatasetEntry] = Registry("dataset", _register_all)


def register_dataset(name: str, description: str, needs_files: bool = True) -> Callable[[Loader], Loader]:
    def wrap(fn: Loader) -> Loader:
        DATASETS.register(name, DatasetEntry(name, fn, description, needs_files))
        return fn

    return wrap


def list_datasets() -> list[DatasetEntry]:
    return DATASETS.entries()


def load_dataset(
    name: str,
    data_dir: str | None = None,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 42,
    classes: Sequence[str] | None = None,
    subset: int | None = None,
    test_subset: int | None = None,
    pinned: dict | None = None,
    **kwargs,
) -> DatasetSplits:
    """Load ``name`` and make its splits deterministic.

    A dataset without a test split gets a seeded ``test_fraction`` cut (default 80/20, seed 42);
    a validation split of ``val_fraction`` is then carved from train with the same seed
    (``val_fraction=0`` keeps all of train). Same seed, same split, always.

    ``classes`` keeps only those classes, relabelled in the order given (a two-class task cut from
    a ten-class dataset: the last name is the positive class). ``subset`` keeps a seeded, stratified
    ``subset`` of the training images (before the validation cut; the test split stays whole), for
    runs that must fit a CPU budget; ``test_subset`` likewise keeps a seeded, stratified share of the
    test images (a run whose test pass alone would overrun such a budget says so in its config).

    ``pinned`` (a run's ``data_files``, see :func:`cnnlab.data.imagefolder.split_files`) rebuilds the
    splits a run of an image folder was trained with, file by file: the cuts above are already in its
    lists, so only ``classes`` (the label order) applies.
    """
    entry = DATASETS.get(name)
    if entry.task != "classification":
        raise CnnlabError(f"dataset {entry.name!r} is a {entry.task} dataset: use `cnnlab segment train --dataset "
                          f"{entry.name}` (or load_segmentation)")
    refuse_unused(entry, kwargs)
    if pinned:
        kwargs["pinned"] = pinned
    splits = entry.loader(data_dir=data_dir, seed=seed, test_fraction=test_fraction, **kwargs)
    if splits.info.get("pinned"):
        if classes:
            stats = splits.mean, splits.std
            select_classes(splits, classes)
            splits.mean, splits.std = stats  # the run's own statistics, as pinned
        splits.info.update(seed=seed, val_fraction=val_fraction,
                           sizes={"train": len(splits.train), "val": len(splits.val or []), "test": len(splits.test)})
        return splits
    if classes:
        select_classes(splits, classes)
    # a subset above what a split holds is all of it, with a warning (core.bounds.at_most)
    if subset:
        if bounds.at_most("--subset", subset, len(splits.train), f"the training split of {entry.name}") < len(splits.train):
            splits.train = seeded_split(splits.train, subset / len(splits.train), seed)[1]
        splits.info["subset"] = subset
    if test_subset:
        if bounds.at_most("--test-subset", test_subset, len(splits.test), f"the test split of {entry.name}") \
                < len(splits.test):
            splits.test = seeded_split(splits.test, test_subset / len(splits.test), seed)[1]
        splits.info["test_subset"] = test_subset
    if splits.val is None and val_fraction > 0:
        splits.train, splits.val = seeded_split(splits.train, val_fraction, seed)
    splits.info.update(seed=seed, val_fraction=val_fraction,
                       sizes={"train": len(splits.train), "val": len(splits.val or []), "test": len(splits.test)})
    return splits


def refuse_unused(entry: DatasetEntry, kwargs: dict) -> None:
    """A dataset option its loader does not take (``--label-regex`` for an image folder, ``--image-size``
    for MNIST's fixed 28x28) would be ignored: refuse it, naming the option and the dataset."""
    import inspect

    taken = set(inspect.signature(entry.loader).parameters)
    unused = [k for k, v in kwargs.items() if v is not None and k not in taken]
    if unused:
        flag = "--" + unused[0].replace("_", "-")
        users = [e.name for e in DATASETS.entries() if unused[0] in inspect.signature(e.loader).parameters]
        raise CnnlabError(f"{flag} does not apply to dataset {entry.name!r} ({entry.description}); it is an option of "
                          f"{', '.join(users) or 'no dataset'}: leave it out")


def select_classes(splits: DatasetSplits, names: Sequence[str]) -> None:
    """Keep only the classes ``names`` (matched without regard to case), relabelled 0..k-1 in that order.

    The normalization statistics are recomputed on the remaining training images.
    """
    known = {c.lower(): i for i, c in enumerate(splits.classes)}
    missing = [n for n in names if n.lower() not in known]
    if missing or len(set(n.lower() for n in names)) != len(names) or len(names) < 2:
        why = f"unknown class(es) {', '.join(map(repr, missing))}" if missing else "at least two different classes"
        raise CnnlabError(f"--classes: {why}; {splits.name} has {', '.join(splits.classes)}")
    old = torch.tensor([known[n.lower()] for n in names])

    def keep(part: ImageSet | None) -> ImageSet | None:
        if part is None:
            return None
        match = part.labels.view(-1, 1) == old.view(1, -1)
        rows = match.any(1)
        files = getattr(part, "files", None)  # kept: a run pins its splits by them
        return ImageSet(part.images[rows], match[rows].int().argmax(1),
                        None if files is None else [str(f) for f, r in zip(files, rows.tolist()) if r])

    splits.train, splits.val, splits.test = keep(splits.train), keep(splits.val), keep(splits.test)
    splits.classes = [splits.classes[i] for i in old.tolist()]
    splits.mean, splits.std = channel_stats(splits.train.images)
    splits.info["classes"] = list(splits.classes)
