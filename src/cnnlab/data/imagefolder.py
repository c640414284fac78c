"""Image files on disk -> uint8 tensors, decoded once and cached.

Layouts understood (``root`` is what ``--data-dir`` points to):

- ``root/<class>/*.jpg|png...``: one pool, split into train/test with a seed;
- ``root/train/<class>/*`` + ``root/test/<class>/*`` (``val``/``valid`` too; also names that
  contain them, e.g. Intel Image Classification's ``seg_train/seg_train/<class>`` beside
  ``seg_test/seg_test/<class>``): give the parent, so that the test split is the given one;
- labels in file names: ``root/**/*.png`` with a regex whose first group is the label.

Decoding JPEGs is the slow part of small-image training, so the decoded tensor is saved under
the user cache (``core.places``) keyed by everything it depends on (each file's path, size, times
and inode, the label each file gets, the size and the cache format): epoch 2 and every later run
read one file, and another ``--label-regex`` over the same files is never served the first one's
labels.

A run pins its splits: :func:`split_files` lists the files of each split (recorded in the run's
config.json as ``data_files``), and :func:`pinned_splits` rebuilds exactly those splits later
(``evaluate``, ``attack sweep``, ``--resume``), so files added to the folder afterwards never move
a training image into the test split. Corrupt or non-image files are skipped with one warning that lists
them; grey images in an RGB dataset are converted, and said so.
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cnnlab.core.places import decoded_cache_dir
from cnnlab.data.base import DatasetSplits, ImageSet, seeded_split
from cnnlab.core.errors import CnnlabError
from cnnlab.core import log
from cnnlab.core.fileio import save_torch
from cnnlab.data.decode import GREY_MODES, eight_bit, read_image, upright  # noqa: F401  (read_image: this module's API too)
from cnnlab.data.streaming import (BUDGET_ENV, FileImageSet, decoded_bytes, header_shape, memory_budget, sample_stats,
                                   workers)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
SPLIT_NAMES = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


def find_splits(root: Path) -> dict[str, Path]:
    """Map ``train``/``val``/``test`` to their folders under ``root`` (empty when ``root`` is one pool)."""
    found: dict[str, Path] = {}
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        name = child.name.lower()
        for split, keys in SPLIT_NAMES.items():
            if split not in found and any(name == k or re.search(rf"(^|[_-]){k}($|[_-])", name) for k in keys):
                found[split] = _unwrap(child)
    return found if "train" in found else {}


def pair_above(root: Path) -> Path | None:
    """The folder holding a train/test pair whose train side is ``root`` (or ``root``'s parent).

    Pointing ``--data-dir`` at ``DIR/seg_train`` would carve the test set out of training images
    while ``DIR/seg_test`` holds the real one; this finds ``DIR`` so that the user can be told.
    """
    here = root.resolve()
    for parent in list(here.parents)[:2]:
        try:
            pair = find_splits(parent)
        except OSError:  # an unreadable folder above the data: nothing to point at
            continue
        if "test" in pair and pair["train"].resolve() in (here, _unwrap(here).resolve()):
            return parent
    return None


def _unwrap(folder: Path) -> Path:
    """Kaggle archives often nest ``seg_train/seg_train/``: descend through a lone same-named folder."""
    inner = [p for p in folder.iterdir() if p.is_dir()]
    if len(inner) == 1 and inner[0].name.lower() == folder.name.lower():
        return inner[0]
    return folder


def list_class_files(folder: Path, classes: list[str] | None = None) -> tuple[list[Path], list[int], list[str]]:
    """Files of a ``<class>/*`` folder; ``classes`` fixes the label order (e.g. train's for test)."""
    if not folder.is_dir():
        raise CnnlabError(f"{folder}: folder does not exist")
    found = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise CnnlabError(f"{folder}: expected one sub-folder per class (<class>/image files), found none")
    classes = classes or found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise CnnlabError(f"{folder}: class folders {unknown} are not among the training classes {classes}")
    files, labels, not_images = [], [], []
    for label, name in enumerate(classes):
        class_dir = folder / name
        entries = sorted(p for p in class_dir.rglob("*") if p.is_file()) if class_dir.is_dir() else []
        images = [p for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS]
        not_images += [p for p in entries if p.suffix.lower() not in IMAGE_EXTENSIONS and not p.name.startswith(".")]
        if not images:
            raise CnnlabError(f"{class_dir}: class folder {name!r} holds no image files "
                              f"({', '.join(sorted(IMAGE_EXTENSIONS))})")
        files += images
        labels += [label] * len(images)
    if not_images:
        warn_files("skipped files that are not images", not_images)
    return files, labels, classes


def warn_files(what: str, paths: list[Path], limit: int = 10) -> None:
    shown = ", ".join(str(p) for p in paths[:limit])
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    warnings.warn(f"{what} ({len(paths)}): {shown}{more}", stacklevel=3)


def _decode(path: Path) -> tuple[np.ndarray | None, str]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            im = eight_bit(upright(im))
            mode = "L" if im.mode in GREY_MODES else "RGB"
            return np.asarray(im.convert(mode)), mode
    except Exception as exc:  # PIL raises many types for truncated/corrupt files
        return None, f"{type(exc).__name__}: {exc}"


def _resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(arr).resize((size[1], size[0]), Image.BILINEAR))


CACHE_FORMAT = 2  # bumped when what a cache file holds changes: older files are then never read


Size = int | tuple[int, int] | None  # a square side, (H, W), or None: the images' own (most common) size


def _target(image_size: Size) -> tuple[int, int] | None:
    """``image_size`` as (H, W); None keeps the images' own size."""
    if image_size is None:
        return None
    return (image_size, image_size) if isinstance(image_size, int) else (int(image_size[0]), int(image_size[1]))


def _cache_key(files: list[Path], labels: list[int], image_size: Size) -> str:
    """Everything a decoded set depends on: each file (path, size, modification and change times,
    inode: a file replaced by another of the same size and time differs in ctime or inode), the label
    each file gets (another --label-regex labels the same files differently), the size and the format."""
    h = hashlib.sha1(f"{CACHE_FORMAT}|{_target(image_size)}".encode())
    for p, label in zip(files, labels):
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}|{label}\n".encode())
    return h.hexdigest()[:24]


def decode_files(files: list[Path], labels: list[int], image_size: Size = None,
                 use_cache: bool = True, desc: str = "decoding") -> tuple[ImageSet, list[str]]:
    """Decode ``files`` into one uint8 ``ImageSet`` (skipping unreadable ones); returns it and the skipped list.

    Sizes: all images keep their size when it is shared; otherwise (or with ``image_size``)
    they are resized to ``image_size`` or to the most common size. The set's ``files`` name the
    file of each image (what a run pins its splits by).
    """
    key = _cache_key(files, labels, image_size)
    cache_file = decoded_cache_dir() / f"{key}.pt"
    if use_cache and cache_file.exists():
        try:
            c = torch.load(cache_file, weights_only=True)
            skipped = set(c["skipped"])
            return ImageSet(c["images"], c["labels"], [str(p) for p in files if str(p) not in skipped]), c["skipped"]
        except Exception:  # noqa: BLE001  (a stale/corrupt cache is rebuilt, never trusted)
            try:
                cache_file.unlink(missing_ok=True)
            except OSError:  # a read-only cache: rebuilt in memory each time
                pass
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) * 2)) as pool:
        decoded = list(tqdm(pool.map(_decode, files), total=len(files), desc=desc, leave=False,
                            disable=True if len(files) < 2000 else None))
    ok = [(a, m, lab) for (a, m), lab in zip(decoded, labels) if a is not None]
    bad = [(p, m) for p, (a, m) in zip(files, decoded) if a is None]
    if bad:
        warn_files("skipped unreadable or corrupt images", [Path(f"{p} [{m}]") for p, m in bad])
    if not ok:
        raise CnnlabError(f"none of the {len(files)} image files could be decoded (first: {files[0]})")
    modes = Counter(m for _, m, _ in ok)
    if len(modes) > 1:
        grey = [p for p, (a, m) in zip(files, decoded) if a is not None and m == "L"]
        warn_files("mixed grey and RGB images: converted these grey images to RGB", grey)
        ok = [(np.repeat(a[..., None], 3, 2) if m == "L" else a, "RGB", lab) for a, m, lab in ok]
    sizes = Counter(a.shape[:2] for a, _, _ in ok)
    target = _target(image_size) or sizes.most_common(1)[0][0]
    if image_size or len(sizes) > 1:
        ok = [(a if a.shape[:2] == target else _resize(a, target), m, lab) for a, m, lab in ok]
    arr = np.stack([a if a.ndim == 3 else a[..., None] for a, _, _ in ok])
    images = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    skipped = [str(p) for p, _ in bad]
    result = ImageSet(images, torch.tensor([lab for _, _, lab in ok], dtype=torch.long),
                      [str(p) for p, (a, _) in zip(files, decoded) if a is not None])
    if use_cache:
        try:
            save_torch(cache_file, {"images": result.images, "labels": result.labels, "skipped": skipped}, cache=True)
        except OSError as exc:  # the cache only saves time: a read-only or full disk is not an error
            warnings.warn(f"could not write the decoded-image cache {cache_file} ({exc.strerror or exc}); "
                          f"the images will be decoded again next time (set CNNLAB_CACHE to a writable folder)",
                          stacklevel=2)
    return result, skipped


def decode_or_stream(files: list[Path], labels: list[int], image_size: Size = None,
                     desc: str = "decoding") -> tuple[ImageSet | FileImageSet, list[str]]:
    """``decode_files`` while the decoded set fits the memory budget (:func:`streaming.memory_budget`);
    beyond it, a :class:`FileImageSet` that training streams through ``DataLoader`` workers. Which
    path was taken is said on stderr when streaming, and recorded by the caller in ``info["loading"]``.

    The decision reads the headers of up to 64 files (no pixels): the set's size is estimated as
    their most common size (or ``image_size``) times the number of files.
    """
    square = _target(image_size)
    try:
        need, channels, size = decoded_bytes(files[:: max(1, len(files) // 64)][:64], None)
    except CnnlabError:  # no readable header among the sampled files: decoding names what is wrong
        return decode_files(files, labels, image_size, desc=desc)
    if square:
        size = square
    need = len(files) * channels * size[0] * size[1]
    budget = memory_budget()
    if need <= budget:
        return decode_files(files, labels, image_size, desc=desc)
    channels, size = header_shape(files, None)
    size = square or size
    log.ensure()
    log.log.info(f"{desc}: {len(files)} images would take {_bytes(need)} decoded, over the memory budget of "
                 f"{_bytes(budget)} (${BUDGET_ENV}): streaming them from disk through a DataLoader "
                 f"with {workers()} worker(s)")
    return FileImageSet(list(files), torch.tensor(labels, dtype=torch.long), size, channels), []


def _bytes(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB" if n >= 2**20 else f"{n / 2**10:,.1f} KiB"


def filename_listing(root: Path, regex: str) -> tuple[list[Path], list[str], list[str]]:
    """Images anywhere under ``root`` whose name matches ``regex``, each one's label (the first group),
    and the label names in class order (numbers by value, then names)."""
    if not root.is_dir():
        raise CnnlabError(f"{root}: folder does not exist")
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        raise CnnlabError(f"--label-regex {regex!r} is not a valid regular expression: {exc}") from exc
    if pattern.groups < 1:
        raise CnnlabError(f"--label-regex {regex!r} needs a capture group around the label, e.g. '_(\\d)_'")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    matched = [(p, m.group(1)) for p in files if (m := pattern.search(p.name))]
    unmatched = [p for p in files if not pattern.search(p.name)]
    if not matched:
        raise CnnlabError(f"{root}: no image file name matches --label-regex {regex!r} ({len(files)} images found)")
    if unmatched:
        warn_files(f"skipped images whose name does not match {regex!r}", unmatched)
    names = sorted({lab for _, lab in matched}, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
    return [p for p, _ in matched], [lab for _, lab in matched], names


def load_filename_labels(root: Path, regex: str, image_size: int | None = None) -> tuple[ImageSet, list[str], list[str]]:
    """Images anywhere under ``root`` whose label is the first group of ``regex`` in the file name."""
    files, found, names = filename_listing(root, regex)
    index = {n: i for i, n in enumerate(names)}
    data, skipped = decode_files(files, [index[lab] for lab in found], image_size)
    return data, names, skipped


def folder_listing(root: Path) -> tuple[list[Path], list[str], list[str]]:
    """Every image of an image-folder tree (all its split folders), each one's class folder name, and
    the class names in order. Each split folder is listed with its own classes, so a class folder
    added after a run is only more files (which a pinned run ignores), not an error."""
    folders = find_splits(root) or {"pool": root}
    files: list[Path] = []
    names: list[str] = []
    for folder in folders.values():
        found, labels, classes = list_class_files(folder)
        files += found
        names += [classes[i] for i in labels]
    return files, names, sorted(set(names))


PIN_SPLITS = ("train", "val", "test")


def _files_of(part) -> list | None:
    return None if part is None else getattr(part, "files", None)


def split_files(splits: DatasetSplits) -> dict | None:
    """The run's splits by file, for its config.json (``data_files``): each split's files relative to
    the data folder, the decoded size and the training statistics, i.e. what :func:`pinned_splits`
    rebuilds the same splits from. None for data that does not come from image files."""
    root = splits.info.get("root")
    parts = {k: getattr(splits, k) for k in PIN_SPLITS}
    if root is None or any(p is not None and _files_of(p) is None for p in parts.values()):
        return None
    try:
        pinned = {k: [Path(f).relative_to(root).as_posix() for f in _files_of(p) or []] for k, p in parts.items()}
    except ValueError:  # a file outside the folder (not made by the loaders here): nothing to pin it by
        return None
    return {**pinned, "image_size": list(splits.image_size), "mean": list(splits.mean), "std": list(splits.std)}


def check_pinned(pinned: object) -> None:
    """A run's ``data_files`` as :func:`split_files` writes them: lists of relative paths inside the data
    folder (a hand-edited or received config.json naming ``../`` or absolute paths is refused, so no
    file outside the data is read as a test image)."""
    where = "config.json's data_files"
    if not isinstance(pinned, dict) or not all(isinstance(pinned.get(k, []), list) for k in PIN_SPLITS):
        raise CnnlabError(f"{where} is not the train/val/test file lists cnnlab writes; the run's splits cannot be "
                          f"rebuilt from it")
    for k in PIN_SPLITS:
        for f in pinned.get(k, []):
            if not isinstance(f, str) or not f or Path(f).is_absolute() or ".." in Path(f).parts:
                raise CnnlabError(f"{where}: {k} file {f!r} is not a path inside the data folder; the run's splits "
                                  f"cannot be rebuilt from it")
    for key in ("image_size", "mean", "std"):
        value = pinned.get(key)
        if value is not None and not (isinstance(value, list) and value
                                      and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            raise CnnlabError(f"{where}: {key} {value!r} is not a list of numbers")
    size = pinned.get("image_size")
    if size is not None and (len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size)):
        raise CnnlabError(f"{where}: image_size {size!r} is not a height and a width in pixels")


def pinned_splits(name: str, root: Path, listing: tuple[list[Path], list[str], list[str]], pinned: dict,
                  info: dict) -> DatasetSplits:
    """The splits a run pinned (:func:`split_files`), from the folder as it is now (``listing``: its
    files, their class names and the class order). A pinned file that is gone is refused, naming it;
    files added since are ignored with a warning that counts them: a run's test set never changes."""
    check_pinned(pinned)
    files, names, order = listing
    label_of = {p.relative_to(root).as_posix(): n for p, n in zip(files, names)}
    wanted = {k: [str(f) for f in pinned.get(k) or []] for k in PIN_SPLITS}
    every = [f for k in PIN_SPLITS for f in wanted[k]]
    missing = [f for f in every if f not in label_of]
    if missing:
        first = root / missing[0]
        known = set(every)  # a file of that name that is new to the run: the pinned one moved there
        elsewhere = next((p for p in files if p.name == first.name and p.relative_to(root).as_posix() not in known),
                         None)
        why = ("is no longer one of the folder's images (its name no longer matches, or it is not an image)"
               if first.exists() else f"is gone (a file of that name is now at {elsewhere}: moved to another class?)"
               if elsewhere is not None else "is gone")
        raise CnnlabError(f"{first} {why}: {len(missing)} of the {len(every)} files this run's splits are pinned to "
                          f"(data_files in its config.json) are missing; put them back, or train a new run on the "
                          f"folder as it is now")
    added = len(set(label_of) - set(every))
    if added:
        warnings.warn(f"{root}: {added} image file(s) not in this run's splits (added since it was trained) are "
                      f"ignored; the run keeps the train/val/test files listed in its config.json", stacklevel=3)
    present = {label_of[f] for f in every}
    classes = [c for c in order if c in present]
    index = {c: i for i, c in enumerate(classes)}
    size = tuple(pinned["image_size"]) if pinned.get("image_size") else None
    with warnings.catch_warnings():  # an unreadable file is refused below, not skipped with a warning
        warnings.simplefilter("ignore")
        data, skipped = decode_or_stream([root / f for f in every], [index[label_of[f]] for f in every], size,
                                         desc=f"decoding {root.name}")
    if skipped:
        raise CnnlabError(f"{skipped[0]}: a file of this run's pinned splits can no longer be decoded; put the "
                          f"original back, or train a new run on the folder as it is now")
    parts, start = {}, 0
    for k in PIN_SPLITS:
        parts[k] = data.subset(torch.arange(start, start + len(wanted[k])))
        start += len(wanted[k])
    stats = {"mean": tuple(pinned["mean"]), "std": tuple(pinned["std"])} if pinned.get("mean") else _stats(parts["train"])
    return DatasetSplits(name, classes, parts["train"], parts["test"], val=parts["val"] if wanted["val"] else None,
                         augment="natural", **stats,
                         info={**info, "root": str(root), "skipped": [], "pinned": True, "loading": _loading(data)})


def load_image_folder(root: Path, image_size: int | None = None, name: str = "imagefolder",
                      seed: int = 42, test_fraction: float = 0.2, pinned: dict | None = None) -> DatasetSplits:
    """An image-folder tree, with its own train/val/test folders or one pool split with ``seed``;
    with ``pinned`` (a run's ``data_files``) the splits that run was trained with."""
    if not root.is_dir():
        raise CnnlabError(f"{root}: folder does not exist (expected <root>/<class>/*.jpg or <root>/train/<class>/...)")
    if pinned:
        return pinned_splits(name, root, folder_listing(root), pinned, {"layout": "pinned"})
    folders = find_splits(root)
    above = None if "test" in folders else pair_above(root)
    if above is not None:
        warnings.warn(f"{root} is the training side of a train/test pair, so its test split is carved from "
                      f"training images; give --data-dir {above} to test on the pair's test folder", stacklevel=2)
    if not folders:
        files, labels, classes = list_class_files(root)
        pool, skipped = decode_or_stream(files, labels, image_size, desc=f"decoding {root.name}")
        train, test = seeded_split(pool, test_fraction, seed)
        return DatasetSplits(name, classes, train, test, augment="natural", **_stats(train),
                             info={"root": str(root), "skipped": skipped, "layout": "pool", "loading": _loading(train)})
    files, labels, classes = list_class_files(folders["train"])
    train, skipped = decode_or_stream(files, labels, image_size, desc="decoding train")
    size = image_size or (train.size[-1] if isinstance(train, FileImageSet) else train.images.shape[-1])  # val/test follow train
    parts: dict[str, ImageSet] = {}
    for split in ("val", "test"):
        if split in folders:
            f, lab, _ = list_class_files(folders[split], classes)
            parts[split], more = decode_or_stream(f, lab, size, desc=f"decoding {split}")
            skipped += more
    if "test" not in parts:  # only train (+val): carve a seeded test split from train
        train, parts["test"] = seeded_split(train, test_fraction, seed)
    return DatasetSplits(name, classes, train, parts["test"], val=parts.get("val"), augment="natural", **_stats(train),
                         info={"root": str(root), "skipped": skipped, "loading": _loading(train),
                               "layout": {k: str(v) for k, v in folders.items()}})


def _stats(train: ImageSet | FileImageSet) -> dict:
    """Normalisation statistics a streamed set needs from a sample (an in-memory one computes its own)."""
    if not isinstance(train, FileImageSet):
        return {}
    mean, std = sample_stats(train)
    return {"mean": mean, "std": std}


def _loading(train: ImageSet | FileImageSet) -> str:
    return "streamed from disk (DataLoader workers)" if isinstance(train, FileImageSet) else "decoded into memory"
