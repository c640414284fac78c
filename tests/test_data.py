"""Loaders on tiny generated files of every format, deterministic splits, and bad input."""
from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import ImageSet, load_dataset, seeded_split
from cnnlab.data import imagefolder
from cnnlab.data.idx import FILES, read_idx
from cnnlab.core.errors import CnnlabError


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_idx_folder(root, n_train=40, n_test=20):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    data = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28)), "train_labels": np.arange(n_train) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28)), "test_labels": np.arange(n_test) % 10,
    }
    for key, arr in data.items():
        write_idx(root / FILES[key], arr)
    return data


def save_png(path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def make_class_tree(root, classes=("cat", "dog"), per_class=5, size=8, rgb=True):
    rng = np.random.default_rng(1)
    for c in classes:
        for i in range(per_class):
            shape = (size, size, 3) if rgb else (size, size)
            save_png(root / c / f"{i}.png", rng.integers(0, 256, shape))


def test_read_idx_roundtrip_and_header_errors(tmp_path):
    arr = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), arr)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(CnnlabError, match="bad magic"):
        read_idx(tmp_path / "bad")
    raw = gzip.open(tmp_path / "a.gz").read()[:-3]
    (tmp_path / "short").write_bytes(raw)
    with pytest.raises(CnnlabError, match="truncated"):
        read_idx(tmp_path / "short")


def test_fashion_mnist_from_idx_files(tmp_path):
    data = make_idx_folder(tmp_path / "fashion-mnist")
    s = load_dataset("fashion-mnist", tmp_path / "fashion-mnist", val_fraction=0.2)
    assert s.classes[0] == "T-shirt/top" and s.num_classes == 10
    assert s.train.images.shape[1:] == (1, 28, 28) and s.train.images.dtype == torch.uint8
    assert len(s.train) + len(s.val) == 40 and len(s.test) == 20
    np.testing.assert_array_equal(s.test.images[:, 0].numpy(), data["test_images"])
    # --data-dir may also name the parent folder that holds fashion-mnist/
    assert len(load_dataset("fashion-mnist", tmp_path, val_fraction=0).train) == 40


def test_missing_idx_files_name_the_files_and_folder(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr("urllib.request.urlretrieve", offline)
    with pytest.raises(CnnlabError) as err:
        load_dataset("mnist", tmp_path / "nowhere")
    msg = str(err.value)
    assert "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path / "nowhere") in msg and "download" in msg


def test_cifar_pickle_release(tmp_path):
    root = tmp_path / "cifar10" / "cifar-10-batches-py"
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 3]}
        with open(root / name, "wb") as f:
            pickle.dump(batch, f)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    s = load_dataset("cifar10", tmp_path, val_fraction=0)
    assert s.classes == [f"c{i}" for i in range(10)]
    assert s.train.images.shape == (20, 3, 32, 32) and len(s.test) == 4
    first = pickle.load(open(root / "data_batch_1", "rb"), encoding="bytes")[b"data"][0]
    np.testing.assert_array_equal(s.train.images[0].flatten().numpy(), first)


def test_cifar_image_folder_tree(tmp_path):
    make_class_tree(tmp_path / "cifar10" / "train", ("airplane", "cat"), 6, 32)
    make_class_tree(tmp_path / "cifar10" / "test", ("airplane", "cat"), 2, 32)
    s = load_dataset("cifar10", tmp_path / "cifar10", val_fraction=0)
    assert s.classes == ["airplane", "cat"] and len(s.train) == 12 and len(s.test) == 4
    assert s.augment == "cifar"


def test_imagefolder_pool_is_split_with_seed(tmp_path):
    make_class_tree(tmp_path, ("a", "b", "c"), 10)
    s1 = load_dataset("imagefolder", tmp_path, val_fraction=0.2, test_fraction=0.2, seed=3)
    s2 = load_dataset("imagefolder", tmp_path, val_fraction=0.2, test_fraction=0.2, seed=3)
    assert (len(s1.train), len(s1.val), len(s1.test)) == (18, 6, 6)
    assert torch.equal(s1.test.images, s2.test.images) and torch.equal(s1.val.labels, s2.val.labels)
    assert sorted(s1.test.labels.tolist()) == [0, 0, 1, 1, 2, 2]  # stratified


def test_imagefolder_kaggle_nested_train_test(tmp_path):
    make_class_tree(tmp_path / "seg_train" / "seg_train", ("forest", "sea"), 4)
    make_class_tree(tmp_path / "seg_test" / "seg_test", ("forest", "sea"), 2)
    s = load_dataset("imagefolder", tmp_path, val_fraction=0)
    assert s.classes == ["forest", "sea"] and len(s.train) == 8 and len(s.test) == 4


@pytest.mark.parametrize("train, test", [("seg_train", "seg_test"), ("train", "test")])
def test_imagefolder_parent_of_a_pair_tests_on_its_test_folder(tmp_path, train, test):
    make_class_tree(tmp_path / train / train, ("forest", "sea"), 5)
    make_class_tree(tmp_path / test / test, ("forest", "sea"), 3)
    (tmp_path / "seg_pred" / "seg_pred").mkdir(parents=True)  # Intel's unlabelled images: not a split
    s = load_dataset("imagefolder", tmp_path, val_fraction=0)
    assert (len(s.train), len(s.test)) == (10, 6) and s.info["layout"]["test"].endswith(f"{test}/{test}")
    # given the train side itself, the test set is carved from training images: the loader says so
    with pytest.warns(UserWarning, match=f"give --data-dir {tmp_path}"):
        carved = load_dataset("imagefolder", tmp_path / train, val_fraction=0)
    assert len(carved.train) + len(carved.test) == 10


def test_filename_labels(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(12):
        save_png(tmp_path / f"img_{i}_{i % 3}_x.png", rng.integers(0, 256, (8, 8, 3)))
    save_png(tmp_path / "nolabel.png", rng.integers(0, 256, (8, 8, 3)))
    with pytest.warns(UserWarning, match="nolabel.png"):
        s = load_dataset("filename", tmp_path, label_regex=r"_(\d)_x", val_fraction=0, test_fraction=0.25)
    assert s.classes == ["0", "1", "2"] and len(s.train) + len(s.test) == 12
    with pytest.raises(CnnlabError, match="capture group"):
        load_dataset("filename", tmp_path, label_regex=r"_\d_")


def test_seeded_split_is_deterministic_and_seed_dependent():
    data = ImageSet(torch.zeros(100, 1, 2, 2, dtype=torch.uint8), torch.arange(100) % 4)
    a1, b1 = seeded_split(data, 0.2, 7)
    a2, b2 = seeded_split(data, 0.2, 7)
    _, b3 = seeded_split(data, 0.2, 8)
    assert torch.equal(b1.labels, b2.labels) and len(b1) == 20 and len(a1) == 80
    assert torch.bincount(b1.labels).tolist() == [5, 5, 5, 5]


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(CnnlabError, match="does not exist"):
        load_dataset("imagefolder", tmp_path / "missing")
    make_class_tree(tmp_path / "t", ("a",), 3)
    (tmp_path / "t" / "empty").mkdir()
    with pytest.raises(CnnlabError, match=r"empty.*holds no image files"):
        load_dataset("imagefolder", tmp_path / "t")


def test_corrupt_and_non_image_files_are_skipped_with_a_warning(tmp_path):
    make_class_tree(tmp_path, ("a", "b"), 5)
    (tmp_path / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "b" / "notes.txt").write_text("hello")
    with pytest.warns(UserWarning) as record:
        s = load_dataset("imagefolder", tmp_path, val_fraction=0, test_fraction=0.2)
    text = " ".join(str(w.message) for w in record)
    assert "broken.jpg" in text and "notes.txt" in text
    assert len(s.train) + len(s.test) == 10
    assert str(tmp_path / "a" / "broken.jpg") in s.info["skipped"]


def test_mixed_grey_and_rgb_are_converted_with_a_warning(tmp_path):
    make_class_tree(tmp_path, ("a", "b"), 4, rgb=True)
    save_png(tmp_path / "a" / "grey.png", np.full((8, 8), 77))
    with pytest.warns(UserWarning, match="grey.png"):
        s = load_dataset("imagefolder", tmp_path, val_fraction=0, test_fraction=0.2)
    assert s.in_chans == 3
    every = torch.cat([s.train.images, s.test.images])
    assert any(bool((img == 77).all()) for img in every)  # the grey image, replicated to 3 channels


def test_decoded_images_are_cached(tmp_path, monkeypatch):
    make_class_tree(tmp_path, ("a", "b"), 4)
    first = load_dataset("imagefolder", tmp_path, val_fraction=0)

    def no_decoding(path):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(imagefolder, "_decode", no_decoding)
    second = load_dataset("imagefolder", tmp_path, val_fraction=0)
    assert torch.equal(first.train.images, second.train.images)


def test_single_images_read_files_and_skimage_photos_alike(tmp_path):
    from cnnlab.data.images import load_image, load_images, skimage_photo, to_rgb

    rgb = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    assert torch.equal(load_image(tmp_path / "a.png", 3), torch.from_numpy(rgb).permute(2, 0, 1))
    assert load_image(tmp_path / "a.png", 1, (6, 8)).shape == (1, 6, 8)
    chelsea = load_image("skimage:chelsea", 3)
    assert chelsea.dtype == torch.uint8 and chelsea.shape == (3, *skimage_photo("chelsea", 3).shape[:2])
    batch = load_images([tmp_path / "a.png", "skimage:camera"], (3, 5, 7))
    assert batch.shape == (2, 3, 5, 7) and batch.dtype == torch.float32 and 0 <= batch.min() and batch.max() <= 1
    assert torch.equal(batch[1, 0], batch[1, 2])  # a grey photo asked in RGB: three equal channels
    grey = torch.rand(1, 4, 5)
    assert to_rgb(grey).shape == (4, 5, 3) and np.array_equal(to_rgb(grey)[..., 2], grey[0].numpy())
    with pytest.raises(CnnlabError, match="skimage:nosuch: not an image in skimage.data"):
        load_image("skimage:nosuch", 3)
    with pytest.raises(CnnlabError, match="missing.png: no such image file"):
        load_image(tmp_path / "missing.png", 3)


def test_decode_cache_writes_are_atomic(tmp_path):
    from cnnlab.core.fileio import save_torch

    target = save_torch(tmp_path / "c.pt", {"images": torch.arange(3)})
    assert torch.equal(torch.load(target, weights_only=True)["images"], torch.arange(3))
    with pytest.raises((AttributeError, pickle.PicklingError)):
        save_torch(tmp_path / "c.pt", {"bad": lambda: 0})  # cannot be pickled: fails mid-write
    assert torch.equal(torch.load(target, weights_only=True)["images"], torch.arange(3))  # the old file stands
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]  # no temporary file left


@pytest.mark.parametrize("orientation, stored_as", [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270),
                                                     (3, Image.Transpose.ROTATE_180), (2, Image.Transpose.FLIP_LEFT_RIGHT)])
def test_an_exif_rotated_file_is_read_upright(tmp_path, orientation, stored_as):
    """A phone stores a portrait photo as landscape pixels plus an EXIF orientation tag: read upright."""
    from cnnlab.data.decode import read_image
    from cnnlab.data.imagefolder import decode_files

    upright = np.zeros((12, 8), np.uint8)
    upright[:4, :] = 255  # a bar at the top: any rotation or mirror moves it
    upright[:, :2] = 128
    stored = Image.fromarray(upright).transpose(stored_as)  # the pixels as the camera wrote them
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=100, subsampling=0)
    read = read_image(tmp_path / "phone.jpg", channels=1)[..., 0]
    assert read.shape == upright.shape and np.abs(read.astype(int) - upright).max() < 12
    decoded, _ = decode_files([tmp_path / "phone.jpg"], [0], use_cache=False)
    assert tuple(decoded.images.shape[2:]) == upright.shape


def test_the_decode_cache_never_serves_one_regex_the_labels_of_another(tmp_path):
    """The same files under two --label-regex values: each gets its own labels, the second from no cache."""
    from cnnlab.data.imagefolder import load_filename_labels

    for i in range(6):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / f"img_{i % 2}_{i % 3}_.png")
    by_first, first_names, _ = load_filename_labels(tmp_path, r"img_(\d)_")
    by_second, second_names, _ = load_filename_labels(tmp_path, r"img_\d_(\d)_")
    assert first_names == ["0", "1"] and second_names == ["0", "1", "2"]
    files = sorted(tmp_path.glob("*.png"))
    assert by_first.labels.tolist() == [int(f.name.split("_")[1]) for f in files]
    assert by_second.labels.tolist() == [int(f.name.split("_")[2]) for f in files]
    again, _, _ = load_filename_labels(tmp_path, r"img_(\d)_")  # the first regex again: its own labels back
    assert again.labels.tolist() == by_first.labels.tolist()
