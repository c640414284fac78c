"""Segmentation data: image/mask folders paired by file stem, four mask formats, dataset presets.

Masks are read into class indices (uint8, ``N x H x W``); whatever the file calls void becomes
``IGNORE`` (255), the one ignore index used by every loss and metric. Mask formats:

- ``index``: one channel (or a palette-mode PNG) holding the class index per pixel;
- ``binary``: 0 / 255 (or 0 / 1) foreground masks, read as classes 0 and 1;
- ``palette``: RGB colours, class ``i`` being the ``i``-th colour of ``palette``;
- ``red``: the class index in the red channel (CARLA's ``CameraSeg``/``CameraMask`` layout);
- ``auto``: index or binary for one-channel files, red when green and blue are all zero.

Every image needs a mask of the same size and the reverse; a value that is no class is an error
naming the file, never a silently wrong label.
"""
from __future__ import annotations

import warnings

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from cnnlab.data.base import channel_stats, data_root
from cnnlab.data.catalog import MASK_FORMATS
from cnnlab.data.decode import read_image, upright
from cnnlab.data.imagefolder import IMAGE_EXTENSIONS, warn_files
from cnnlab.core.errors import CnnlabError
from cnnlab.core.names import did_you_mean
from cnnlab.data.registry import DATASETS, DatasetEntry

IGNORE = 255
RAW_MASK_MODES = ("L", "P", "RGB", "I", "F")  # read as stored; other modes are converted to RGB first
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".webp")


@dataclass
class SegSet:
    """Images (uint8 ``N x C x H x W``) with their masks (uint8 ``N x H x W``) and file stems."""

    images: Tensor
    masks: Tensor
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, idx: Sequence[int]) -> "SegSet":
        index = torch.as_tensor(list(idx), dtype=torch.long)
        return SegSet(self.images[index], self.masks[index], [self.names[i] for i in idx])


@dataclass
class SegData:
    train: SegSet
    val: SegSet | None
    test: SegSet | None
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str = "folder"
    notes: list[str] = field(default_factory=list)
    carved: bool = False  # the splits were cut from one folder by a seeded shuffle (a run pins them by name)

    def split_names(self) -> dict[str, list[str]]:
        """Each split's image names: what a run's config.json pins (``data_files``) when the splits were carved."""
        return {s: list(part.names) for s, part in (("train", self.train), ("val", self.val), ("test", self.test))
                if part is not None}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_chans(self) -> int:
        return self.train.images.shape[1]


@dataclass(frozen=True)
class Preset:
    """A known dataset's layout: ``splits`` maps split name -> (image folder, mask folder).

    A mask folder given as a tuple lists the names public copies use, the first present one
    being read. A single ``all`` split is divided into train/val/test with a seeded shuffle.
    """

    classes: tuple[str, ...]
    splits: dict[str, tuple[str, str | tuple[str, ...]]]
    mask_format: str
    channels: int
    void: int | None = None  # mask value meaning "unlabelled" (ignored)
    description: str = ""


CAMVID_CLASSES = ("sky", "building", "pole", "road", "pavement", "tree", "sign", "fence", "car",
                  "pedestrian", "bicyclist")
# CARLA as released for the Lyft/Udacity perception challenge (CameraRGB + CameraSeg, class in red);
# the course's copies of it name the mask folder CameraMask
CARLA_CLASSES = ("none", "building", "fence", "other", "pedestrian", "pole", "road line", "road", "sidewalk",
                 "vegetation", "vehicle", "wall", "traffic sign")

PRESETS: dict[str, Preset] = {
    "camvid": Preset(CAMVID_CLASSES, {"train": ("train", "trainannot"), "val": ("val", "valannot"),
                                      "test": ("test", "testannot")}, "index", 3, void=11,
                     description="CamVid road scenes (SegNet release), 11 classes, 11 = void"),
    "isbi2012": Preset(("membrane", "cell"), {"all": ("train/image", "train/label")}, "binary", 1,
                       description="ISBI 2012 EM membranes, 30 labelled 512x512 slices (255 = cell)"),
    "dc1000": Preset(("background", "caries"), {"all": ("images", "labels")}, "binary", 1,
                     description="DC1000 dental panoramic X-rays, caries masks (255 = caries)"),
    "carla": Preset(CARLA_CLASSES, {"all": ("CameraRGB", ("CameraSeg", "CameraMask"))}, "red", 3,
                    description="CARLA self-driving frames, class index in the red channel of CameraSeg "
                                "(or CameraMask)"),
}


def mask_folder(root: Path, names: str | tuple[str, ...]) -> Path:
    """The first of a preset's mask folder names present under ``root`` (else the first, for the error)."""
    names = (names,) if isinstance(names, str) else names
    return next((root / n for n in names if (root / n).is_dir()), root / names[0])


def image_files(folder: Path) -> dict[str, Path]:
    """``{stem: path}`` of the image files in ``folder`` (sorted, hidden files skipped)."""
    if not folder.is_dir():
        raise CnnlabError(f"folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))
    stems: dict[str, Path] = {}
    for p in files:
        if p.stem in stems:
            raise CnnlabError(f"{p} and {stems[p.stem]} have the same stem; cannot pair them with masks")
        stems[p.stem] = p
    return stems


def pair_files(image_dir: str | Path, mask_dir: str | Path, mask_suffix: str = "") -> list[tuple[Path, Path]]:
    """(image, mask) pairs matched by stem (mask stem = image stem + ``mask_suffix``)."""
    images, masks = image_files(Path(image_dir)), image_files(Path(mask_dir))
    wanted = {stem + mask_suffix: stem for stem in images}
    no_mask = [images[s] for m, s in wanted.items() if m not in masks]
    no_image = [masks[m] for m in masks if m not in wanted]
    problems = []
    if no_mask:
        problems.append(f"{len(no_mask)} image(s) without a mask in {mask_dir}: {_few(no_mask)}")
    if no_image:
        problems.append(f"{len(no_image)} mask(s) without an image in {image_dir}: {_few(no_image)}")
    if problems:
        raise CnnlabError("; ".join(problems))
    if not images:
        raise CnnlabError(f"no image files in {image_dir}")
    return [(images[s], masks[m]) for m, s in wanted.items()]


def _few(paths: Sequence[Path], n: int = 5) -> str:
    names = ", ".join(str(p) for p in paths[:n])
    return names + (f" and {len(paths) - n} more" if len(paths) > n else "")


def read_mask(path: Path, fmt: str, num_classes: int, void: int | None = None,
              palette: Sequence[Sequence[int]] | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """Class indices ``H x W`` (uint8, void -> ``IGNORE``); values that are no class raise."""
    from PIL import Image, UnidentifiedImageError

    if fmt not in MASK_FORMATS:
        raise CnnlabError(f"unknown mask format {fmt!r}; expected one of {', '.join(MASK_FORMATS)}")
    try:
        with Image.open(path) as im:
            im = upright(im)  # the same EXIF turn as its image, so mask and image stay aligned
            if size is not None:  # nearest: a resized mask must hold only existing labels
                im = im.resize((size[1], size[0]), Image.NEAREST)
            # label values are read as stored (16-bit too): indices are never rescaled
            raw = np.asarray(im if im.mode in RAW_MASK_MODES or im.mode.startswith("I;16") else im.convert("RGB"))
    except FileNotFoundError:
        raise CnnlabError(f"{path}: no such mask file") from None
    except Exception as exc:  # noqa: BLE001  (corrupt files raise many types)
        reason = str(exc) if isinstance(exc, (UnidentifiedImageError, OSError)) else f"{type(exc).__name__}: {exc}"
        raise CnnlabError(f"{path}: cannot read mask ({reason})") from None
    if raw.dtype.kind == "f":
        if not np.isfinite(raw).all() or (raw != np.round(raw)).any():
            raise CnnlabError(f"{path}: mask holds fractional values; masks hold whole class numbers")
        raw = raw.astype(np.int64)
    if raw.ndim == 3 and fmt != "palette":
        if fmt == "red" or (fmt == "auto" and not raw[..., 1:].any()):
            raw, fmt = raw[..., 0], "index"
        elif (raw[..., 0] == raw[..., 1]).all() and (raw[..., 0] == raw[..., 2]).all():
            raw = raw[..., 0]
        else:
            raise CnnlabError(f"{path}: colour mask; give its colours (--palette) or --mask-format red")
    if fmt == "palette":
        return _from_palette(path, raw, palette, num_classes)
    raw = raw.astype(np.int64)
    top = int(raw.max()) if raw.size else 0
    if fmt == "auto":
        binary = num_classes == 2 and top in (255, 65535) and np.isin(raw, (0, top)).all()
        fmt = "binary" if binary else "index"
    if fmt == "binary":  # 0/255 (0/65535 in 16 bits) or 0/1: the upper half of the range is foreground
        return (raw >= (32768 if top > 255 else 128 if top > 1 else 1)).astype(np.uint8)
    valid = ((raw >= 0) & (raw < num_classes)) | (raw == void if void is not None else False)
    bad = np.unique(raw[~valid])
    if len(bad):
        if num_classes == 2 and 255 in bad:
            hint = " (for 0/255 two-class masks use --mask-format binary)"
        elif num_classes > 2 and bad.tolist() == [top] and top in (255, 65535) and np.isin(raw, (0, top)).all():
            hint = f" (this mask is binary, 0/{top}: --classes names {num_classes} classes, a binary mask needs 2)"
        else:
            hint = ""
        raise CnnlabError(f"{path}: mask values {bad[:10].tolist()} are not classes 0..{num_classes - 1}"
                          + (f" or void {void}" if void is not None else "") + hint)
    if void is not None:
        raw = np.where(raw == void, IGNORE, raw)
    return raw.astype(np.uint8)


def check_palette(palette: object, num_classes: int) -> None:
    """One ``[r, g, b]`` (0..255 each) per class, in class order."""
    ok = isinstance(palette, (list, tuple)) and all(
        isinstance(c, (list, tuple)) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
        for c in palette)
    if not ok:
        raise CnnlabError(f"--palette {palette!r}: expected a list of [r, g, b] colours with 0..255 integers")
    if len(palette) != num_classes:
        raise CnnlabError(f"--palette has {len(palette)} colours for {num_classes} classes: give one per class")


def _from_palette(path: Path, rgb: np.ndarray, palette: Sequence[Sequence[int]] | None,
                  num_classes: int) -> np.ndarray:
    if not palette:
        raise CnnlabError(f"{path}: mask format 'palette' needs the class colours (--palette)")
    check_palette(palette, num_classes)
    if rgb.ndim != 3:
        raise CnnlabError(f"{path}: mask format 'palette' needs an RGB mask, got one channel")
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    table = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(palette)}
    mask = np.full(codes.shape, -1, dtype=np.int64)
    for code, index in table.items():
        mask[codes == code] = index
    if (mask < 0).any():
        c = int(codes[mask < 0][0])
        raise CnnlabError(f"{path}: colour {(c >> 16, (c >> 8) & 255, c & 255)} is not in the palette")
    return mask.astype(np.uint8)


def _file_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return upright(im).size if im.getexif().get(0x0112, 1) in (5, 6, 7, 8) else im.size
    except FileNotFoundError:
        raise CnnlabError(f"{path}: no such file") from None
    except Exception as exc:  # noqa: BLE001  (corrupt files raise many types)
        reason = str(exc) if isinstance(exc, (UnidentifiedImageError, OSError)) else f"{type(exc).__name__}: {exc}"
        raise CnnlabError(f"{path}: cannot read image ({reason})") from None


def load_pairs(pairs: Sequence[tuple[Path, Path]], fmt: str, num_classes: int, channels: int | None = None,
               void: int | None = None, palette=None, size: tuple[int, int] | None = None) -> SegSet:
    """Read every pair (optionally resized to ``size``) into one :class:`SegSet`.

    JPEG (lossy) masks load, with a warning: compression blurs the label values along edges.
    """
    lossy = [m for _, m in pairs if m.suffix.lower() in LOSSY_SUFFIXES]
    if lossy:
        warn_files("masks saved in a lossy format (JPEG/WebP): compression alters label values along edges; "
                    "PNG keeps them exact", lossy)
    images, masks = [], []
    for img_path, mask_path in pairs:
        (iw, ih), (mw, mh) = _file_size(img_path), _file_size(mask_path)
        if (iw, ih) != (mw, mh):
            raise CnnlabError(f"size mismatch: image {img_path} is {ih}x{iw} but mask {mask_path} is "
                              f"{mh}x{mw} (H x W)")
        img = read_image(img_path, channels, size)
        channels = img.shape[2]
        mask = read_mask(mask_path, fmt, num_classes, void, palette, size)
        if images and img.shape != images[0].shape:
            raise CnnlabError(f"{img_path} is {img.shape[0]}x{img.shape[1]} but {pairs[0][0]} is "
                              f"{images[0].shape[0]}x{images[0].shape[1]}: pass a size to resize all images")
        images.append(img)
        masks.append(mask)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return SegSet(x, torch.from_numpy(np.stack(masks)), [p[0].stem for p in pairs])


def split_indices(n: int, val_fraction: float, test_fraction: float, seed: int) -> tuple[list, list, list]:
    """Seeded shuffle into train/val/test index lists (at least one training image)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    if n - n_test - n_val < 1:
        raise CnnlabError(f"{n} images cannot be split with val {val_fraction} and test {test_fraction}")
    return order[n_test + n_val:], order[n_test:n_test + n_val], order[:n_test]


def dataset_folder(name: str, data_dir: str | Path | None) -> Path:
    """Where preset ``name`` lives (:func:`cnnlab.data.base.data_root`); these sets are never
    downloaded, so a missing folder is an error that says how to point at it."""
    root = data_root(name, data_dir)
    if not root.is_dir():
        raise CnnlabError(f"dataset {name}: folder {root} does not exist; pass --data-dir or set CNNLAB_DATA "
                          f"to the folder holding {name}/")
    return root


def load_segmentation(
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    *,
    images: str | Path | None = None,
    masks: str | Path | None = None,
    classes: Sequence[str] | None = None,
    mask_format: str = "auto",
    palette: Sequence[Sequence[int]] | None = None,
    void: int | None = None,
    mask_suffix: str = "",
    size: tuple[int, int] | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 42,
    pinned: dict[str, list[str]] | None = None,
) -> SegData:
    """A preset by name (``camvid``, ``isbi2012``, ``dc1000``, ``carla``) or image/mask folders.

    Folders (``images`` + ``masks`` + ``classes``) and single-split presets are divided into
    train/val/test with a seeded shuffle; CamVid keeps its own train/val (and test when present).
    ``pinned`` (a run's ``data_files``: each split's image names) rebuilds that run's carved splits
    exactly: images added since are left out (with a warning), a pinned image gone is refused by name.
    Normalization statistics come from the training images only.
    """
    if dataset is not None:
        key = dataset.lower()
        if key not in PRESETS:
            raise CnnlabError(f"unknown segmentation dataset {dataset!r}.{did_you_mean(key, PRESETS)} Presets: "
                              f"{', '.join(PRESETS)} (or give --images and --masks folders)")
        preset = PRESETS[key]
        root = dataset_folder(key, data_dir)
        layout = {s: (root / a, mask_folder(root, b)) for s, (a, b) in preset.splits.items()
                  if (root / a).is_dir() or s in ("train", "all")}
        names, fmt, channels, void = list(preset.classes), preset.mask_format, preset.channels, preset.void
    else:
        if images is None or masks is None or not classes:
            raise CnnlabError("segmentation data needs a preset (--dataset) or --images, --masks and --classes")
        layout, names, fmt, channels, key = {"all": (Path(images), Path(masks))}, list(classes), mask_format, None, "folder"
    if len(names) < 2:
        raise CnnlabError(f"segmentation needs at least 2 classes, got {names}")
    read = {split: load_pairs(pair_files(a, b, mask_suffix), fmt, len(names), channels, void, palette, size)
            for split, (a, b) in layout.items()}
    carved = "all" in read
    if carved:
        every = read["all"]
        parts = _pinned_parts(every, pinned, layout["all"][0]) if pinned else \
            dict(zip(("train", "val", "test"), split_indices(len(every), val_fraction, test_fraction, seed)))
        read = {split: every.subset(idx) if idx else None for split, idx in parts.items()}
    mean, std = channel_stats(read["train"].images)
    return SegData(read["train"], read.get("val"), read.get("test"), names, mean, std, key, carved=carved)


def _pinned_parts(every: SegSet, pinned: dict[str, list[str]], folder: Path) -> dict[str, list[int]]:
    """Indices of a run's pinned split names in ``every``; a pinned image gone is refused by name."""
    if not isinstance(pinned, dict) or not all(isinstance(v, list) for v in pinned.values()) \
            or not set(pinned) <= {"train", "val", "test"} or "train" not in pinned:
        raise CnnlabError("config.json's data_files is not the train/val/test image names cnnlab writes")
    index = {name: i for i, name in enumerate(every.names)}
    wanted = [n for names in pinned.values() for n in names]
    gone = [n for n in wanted if n not in index]
    if gone:
        raise CnnlabError(f"{folder}/{gone[0]}.* is gone: {len(gone)} of the {len(wanted)} images this run's splits "
                          f"are pinned to are missing; put them back, or train a new run on the folder as it is")
    if len(index) > len(wanted):
        warnings.warn(f"{len(index) - len(wanted)} image(s) in {folder} were added after this run was trained; "
                      f"they are left out of its splits", stacklevel=2)
    return {split: [index[n] for n in pinned.get(split, [])] for split in ("train", "val", "test")}


for _name, _preset in PRESETS.items():  # listed by `cnnlab datasets` beside the classification sets
    DATASETS.register(_name, DatasetEntry(_name, partial(load_segmentation, _name), _preset.description,
                                          needs_files=True, task="segmentation"))
