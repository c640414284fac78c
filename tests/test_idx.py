"""The IDX reader refuses what the official files never hold, naming the file (issue 29, mechanism 3)."""
from __future__ import annotations

import numpy as np
import pytest

from cnnlab.core.errors import CnnlabError
from cnnlab.data.idx import load_idx_dataset, read_idx
from tests.idx_files import idx_bytes, write_idx_set

labels = (np.arange(40) % 10).astype(np.uint8)


def test_a_good_set_loads_and_gzip_is_told_by_content_not_name(tmp_path):
    splits = load_idx_dataset("fashion-mnist", write_idx_set(tmp_path / "gz"), download=False)
    assert tuple(splits.train.images.shape) == (40, 1, 8, 8) and splits.train.labels.tolist() == labels.tolist()
    plain = write_idx_set(tmp_path / "plain", gz=False)  # named .gz, stored plain (a manual gunzip, renamed back)
    again = load_idx_dataset("fashion-mnist", plain, download=False)
    assert np.array_equal(again.test.images.numpy(), splits.test.images.numpy())
    (tmp_path / "x.idx").write_bytes(idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3)))
    assert read_idx(tmp_path / "x.idx").tolist() == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize("change, message", [
    (dict(train_labels=np.where(labels == 3, 12, labels).astype(np.uint8)),
     "train-labels-idx1-ubyte.gz: label 12 at position 3 is not one of the 10 classes (0..9); 4 such label(s)"),
    (dict(train_labels=np.where(labels == 0, 255, labels).astype(np.uint8)), "label 255 at position 0"),
    (dict(test_labels=np.full(20, -1, np.int8)), "t10k-labels-idx1-ubyte.gz: label -1 at position 0"),
    (dict(train_labels=labels.reshape(20, 2)), "expected N integer labels (an idx1-ubyte file), found uint8 of shape [20, 2]"),
    (dict(train_labels=labels.astype(">f4")), "expected N integer labels (an idx1-ubyte file), found >f4"),
    (dict(train_images=np.zeros((40, 8, 8), ">f4")), "train-images-idx3-ubyte.gz: expected N x H x W uint8 images"),
    (dict(train_images=labels, train_labels=np.zeros((40, 8, 8), np.uint8)), "the two files are swapped"),
    (dict(train_labels=labels[:39]), "train-images-idx3-ubyte.gz holds 40 images but"),
    (dict(test_images=np.zeros((0, 8, 8), np.uint8), test_labels=labels[:0]),
     "t10k-images-idx3-ubyte.gz: the header says 0 images"),
    (dict(test_images=np.zeros((20, 10, 10), np.uint8)),
     "t10k-images-idx3-ubyte.gz holds 10x10 images but"),
])
def test_faulty_files_are_refused_naming_the_file(tmp_path, change, message):
    folder = write_idx_set(tmp_path / "bad", **change)
    with pytest.raises(CnnlabError) as refused:
        load_idx_dataset("fashion-mnist", folder, download=False)
    assert message in str(refused.value) and str(folder) in str(refused.value)


def test_cifar_class_names_that_repeat_are_refused(tmp_path):
    import pickle

    from cnnlab.data.cifar import read_class_names

    meta = tmp_path / "batches.meta"
    meta.write_bytes(pickle.dumps({b"label_names": [b"cat", b"dog", b"cat", b"ship", b"dog"]}, 2))
    with pytest.raises(CnnlabError, match="class name\\(s\\) 'cat', 'dog' appear more than once"):
        read_class_names(meta, "label_names")
    meta.write_bytes(pickle.dumps({b"label_names": [b"cat", b"dog"]}, 2))
    assert read_class_names(meta, "label_names") == ["cat", "dog"]
