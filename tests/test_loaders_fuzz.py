"""Property-based tests: random bytes and random small arrays fed to every loader.

The property is the same everywhere: a loader either loads (and what it returns has the declared
shape and type) or raises :class:`CnnlabError`, the one error the CLI prints as a line. Any other
exception would reach the user as a traceback. Examples are few and small, so this stays fast.
"""
from __future__ import annotations

import gzip
import pickle
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from cnnlab.data.cifar import _read_batch, read_class_names
from cnnlab.data.idx import read_idx
from cnnlab.data.imagefolder import load_image_folder, read_image
from cnnlab.core.errors import CnnlabError
from cnnlab.data.segmentation import load_segmentation, read_mask
from cnnlab.runs.restore import load_classifier, load_segmenter
from cnnlab.train.checkpoint import load_checkpoint
from tests.test_segment import _one_thread  # noqa: F401  (autouse: tiny models run fastest on one thread)

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME_BYTES = st.binary(min_size=0, max_size=512)
SMALL_INTS = st.integers(-3, 40)
JSONISH = st.recursive(st.none() | st.booleans() | SMALL_INTS | st.floats(allow_nan=True) | st.text(max_size=8),
                       lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                   max_size=4),
                       max_leaves=8)
IMAGE_KINDS = st.sampled_from([(np.uint8, False), (np.uint16, False), (np.uint8, True), (np.int32, False),
                               (np.float32, False)])


def loads_or_refuses(fn, *args, **kwargs):
    """``fn(...)``'s result, or None when it refused with CnnlabError; anything else fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skipped-file warnings are expected here
        try:
            return fn(*args, **kwargs)
        except CnnlabError:
            return None


_ROOT: Path | None = None


@pytest.fixture(scope="module", autouse=True)
def _fuzz_root():
    """One temporary root for the module's many examples, removed at its end (hypothesis runs each
    test hundreds of times, so per-example folders must not outlive the module)."""
    global _ROOT
    with tempfile.TemporaryDirectory(prefix="cnnlab-fuzz-") as root:
        _ROOT = Path(root)
        yield


def _folder() -> Path:
    return Path(tempfile.mkdtemp(dir=_ROOT))


def _save_array(folder: Path, arr: np.ndarray, rgb: bool) -> Path:
    """``arr`` as the file format that stores its depth: PNG for 8/16 bits, TIFF for int32/float32."""
    if arr.dtype in (np.int32, np.float32):
        path = folder / "x.tif"
        Image.fromarray(arr, "I" if arr.dtype == np.int32 else "F").save(path)
    else:
        path = folder / "x.png"
        Image.fromarray(np.repeat(arr[..., None], 3, 2) if rgb else arr).save(path)
    return path


# ------------------------------------------------------------------ IDX

@FAST
@given(SOME_BYTES, st.booleans())
def test_idx_random_bytes(data, gz):
    path = _folder() / ("x.idx.gz" if gz else "x.idx")
    path.write_bytes(gzip.compress(data) if gz else data)
    arr = loads_or_refuses(read_idx, path)
    assert arr is None or isinstance(arr, np.ndarray)


@FAST
@given(arrays(np.uint8, st.tuples(st.integers(0, 5), st.integers(1, 6), st.integers(1, 6))), st.integers(0, 4))
def test_idx_valid_files_round_trip_and_truncations_refuse(arr, cut):
    """A well-formed IDX file loads exactly; the same file cut short is refused."""
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    path = _folder() / "x.idx"
    path.write_bytes(header + arr.tobytes())
    np.testing.assert_array_equal(read_idx(path), arr)
    if cut and arr.size:
        path.write_bytes((header + arr.tobytes())[:-cut])
        assert loads_or_refuses(read_idx, path) is None


# ------------------------------------------------------------------ CIFAR python pickles

@FAST
@given(SOME_BYTES)
def test_cifar_random_bytes(data):
    path = _folder() / "data_batch_1"
    path.write_bytes(data)
    batch = loads_or_refuses(_read_batch, path, b"labels", 10)
    assert batch is None or batch[0].shape[1:] == (3, 32, 32)
    names = loads_or_refuses(read_class_names, path, "label_names")
    assert names is None or all(isinstance(n, str) for n in names)


@FAST
@given(JSONISH, st.integers(0, 4))
def test_cifar_random_structures(obj, protocol):
    path = _folder() / "data_batch_1"
    path.write_bytes(pickle.dumps(obj, protocol))
    result = loads_or_refuses(_read_batch, path, b"labels", 10)
    assert result is None
    names = loads_or_refuses(read_class_names, path, "label_names")
    assert names is None


@FAST
@given(arrays(st.sampled_from([np.uint8, np.int64, np.float32]),
              st.sampled_from([(0, 3072), (1, 3072), (2, 3072), (3072,), (2 * 3072,), (2, 1536), (1, 3071), (1, 3, 1024)])),
       st.lists(st.integers(-2, 12), max_size=4))
def test_cifar_random_arrays_load_only_when_they_are_a_batch(data, labels):
    """Only N rows of 3072 uint8 pixels with N labels in 0..9 load (a flat or 3-D array is not a batch)."""
    path = _folder() / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": data, b"labels": labels}, 2))
    result = loads_or_refuses(_read_batch, path, b"labels", 10)
    valid = data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072 and len(labels) == data.shape[0] \
        and all(0 <= v < 10 for v in labels)
    assert (result is not None) == valid
    if result is not None:
        assert result[0].shape == (len(labels), 3, 32, 32)


# ------------------------------------------------------------------ image files and image folders

@FAST
@given(SOME_BYTES, st.sampled_from([".png", ".jpg", ".gif", ".tif", ".bmp"]))
def test_read_image_random_bytes(data, suffix):
    path = _folder() / f"x{suffix}"
    path.write_bytes(data)
    arr = loads_or_refuses(read_image, path, 3, (8, 8))
    assert arr is None or (arr.dtype == np.uint8 and arr.shape == (8, 8, 3))


@FAST
@given(st.data(), IMAGE_KINDS)
def test_read_image_random_arrays_of_every_depth(data, kind):
    """Every depth PIL stores (8/16-bit PNG, int32 and float TIFF) loads as 8-bit pixels."""
    dtype, rgb = kind
    info = np.iinfo(dtype) if dtype != np.float32 else None
    elements = st.floats(-2, 3, width=32) if info is None else st.integers(max(info.min, -70000), min(info.max, 70000))
    arr = data.draw(arrays(dtype, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=elements))
    img = loads_or_refuses(read_image, _save_array(_folder(), arr, rgb))
    assert img is not None and img.dtype == np.uint8 and img.shape[:2] == arr.shape


@FAST
@given(st.lists(st.tuples(st.integers(0, 2), SOME_BYTES), min_size=1, max_size=6))
def test_image_folder_of_random_files(files):
    root = _folder()
    for i, (label, data) in enumerate(files):
        (root / f"c{label}").mkdir(exist_ok=True)
        (root / f"c{label}" / f"{i}.png").write_bytes(data)
    splits = loads_or_refuses(load_image_folder, root)
    assert splits is None or splits.train.images.dtype == torch.uint8


@FAST
@given(st.lists(st.tuples(st.integers(0, 2), arrays(np.uint8, st.tuples(st.integers(1, 5), st.integers(1, 5)))),
                min_size=2, max_size=6))
def test_image_folder_of_random_images(files):
    root = _folder()
    for i, (label, arr) in enumerate(files):
        (root / f"c{label}").mkdir(exist_ok=True)
        Image.fromarray(arr).save(root / f"c{label}" / f"{i}.png")
    splits = loads_or_refuses(load_image_folder, root)
    assert splits is None or len(splits.train) + len(splits.test) == len(files)


# ------------------------------------------------------------------ segmentation pairs

@FAST
@given(SOME_BYTES, st.sampled_from(["auto", "index", "binary", "red", "palette"]))
def test_read_mask_random_bytes(data, fmt):
    path = _folder() / "m.png"
    path.write_bytes(data)
    assert loads_or_refuses(read_mask, path, fmt, 3, palette=[[0, 0, 0], [1, 1, 1], [2, 2, 2]]) is None


@FAST
@given(st.data(), st.sampled_from(["auto", "index", "binary", "red"]), st.integers(2, 4))
def test_segmentation_pairs_of_random_arrays(data, fmt, classes):
    """Random masks (8 or 16 bits, any values) with random images: loaded masks hold only
    classes (no void is declared, so a 255 is no class), or the pair is refused."""
    root = _folder()
    (root / "images").mkdir()
    (root / "masks").mkdir()
    n = data.draw(st.integers(1, 4))
    for i in range(n):
        h, w = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
        Image.fromarray(data.draw(arrays(np.uint8, (h, w)))).save(root / "images" / f"{i}.png")
        dtype = data.draw(st.sampled_from([np.uint8, np.uint16]))
        mh, mw = data.draw(st.sampled_from([(h, w), (h + 1, w)]))
        Image.fromarray(data.draw(arrays(dtype, (mh, mw), elements=st.sampled_from([0, 1, 2, 3, 255, 256, 65535])
                                         .filter(lambda v: v <= np.iinfo(dtype).max)))).save(root / "masks" / f"{i}.png")
    result = loads_or_refuses(load_segmentation, images=root / "images", masks=root / "masks",
                              classes=[f"c{k}" for k in range(classes)], mask_format=fmt, val_fraction=0,
                              test_fraction=0)
    if result is not None:
        assert set(result.train.masks.unique().tolist()) <= set(range(classes))


@FAST
@given(SOME_BYTES, SOME_BYTES)
def test_segmentation_pairs_of_random_bytes(image, mask):
    root = _folder()
    (root / "images").mkdir()
    (root / "masks").mkdir()
    (root / "images" / "a.png").write_bytes(image)
    (root / "masks" / "a.png").write_bytes(mask)
    assert loads_or_refuses(load_segmentation, images=root / "images", masks=root / "masks", classes=["a", "b"],
                            val_fraction=0, test_fraction=0) is None


# ------------------------------------------------------------------ checkpoints

def _tiny_checkpoint() -> dict:
    from cnnlab.models import create_model

    model = create_model("mlp", num_classes=3, in_chans=1, image_size=4, hidden=(5,))
    return {"model": "mlp", "model_kwargs": {"image_size": 4, "hidden": [5]}, "classes": ["a", "b", "c"],
            "mean": [0.5], "std": [0.2], "input_size": [1, 4, 4], "state_dict": model.state_dict()}


@FAST
@given(SOME_BYTES)
def test_checkpoint_random_bytes(data):
    path = _folder() / "x.ckpt"
    path.write_bytes(data)
    for load in (load_checkpoint, load_classifier, load_segmenter):
        assert loads_or_refuses(load, path) is None


@FAST
@given(st.integers(0, 10_000))
def test_checkpoint_truncated_anywhere(cut):
    path = _folder() / "x.ckpt"
    torch.save(_tiny_checkpoint(), path)
    full = path.read_bytes()
    path.write_bytes(full[:cut % len(full)])
    assert loads_or_refuses(load_classifier, path) is None


KEYS = ("model", "model_kwargs", "classes", "mean", "std", "input_size", "state_dict", "task", "in_chans")


@FAST
@given(st.dictionaries(st.sampled_from(KEYS), JSONISH | st.sampled_from(["mlp", "unet", "simple-cnn", "segmentation"]),
                       max_size=len(KEYS)), st.booleans())
@example(changes={"model": "mlp", "state_dict": {"": None}}, tensors=True)  # a state_dict of non-tensors
def test_checkpoint_random_settings(changes, tensors):
    """A real checkpoint with random settings swapped in (or random tensors as weights):
    it loads, or it is refused in one line; never a TypeError from deep inside a constructor."""
    ckpt = _tiny_checkpoint()
    ckpt.update(changes)
    if tensors:
        ckpt["state_dict"] = {k: torch.randn(*(np.array(v.shape) % 4)) if isinstance(v, torch.Tensor) else v
                              for k, v in ckpt["state_dict"].items()} \
            if isinstance(ckpt["state_dict"], dict) else ckpt["state_dict"]
    path = _folder() / "x.ckpt"
    torch.save(ckpt, path)
    model = loads_or_refuses(load_classifier, path)
    assert model is None or isinstance(model[0], torch.nn.Module)
    assert loads_or_refuses(load_segmenter, path) is None or ckpt.get("task") == "segmentation"


# ------------------------------------------------------------------ exported models (issue 17's loader)

@FAST
@given(SOME_BYTES, st.sampled_from([".onnx", ".ts"]))
def test_exported_model_random_bytes(data, suffix):
    """``predict --backend onnx`` reads .onnx and .ts files: random bytes are refused in one line."""
    from cnnlab.export.api import load_exported

    path = _folder() / f"x{suffix}"
    path.write_bytes(data)
    assert loads_or_refuses(load_exported, path) is None
