"""Datasets: digits, Fashion-MNIST (real files) and image folders, with their errors."""

from __future__ import annotations

import gzip

import pytest
import torch
from PIL import Image
from selfsup_vision.datasets import ImageTensorDataset, digits, fashion_mnist, split_indices
from selfsup_vision.image_folder import image_folder


def test_digits_splits_are_stratified_disjoint_and_seeded() -> None:
    data = digits(size=16)
    assert data.num_classes == 10 and data.modality == "image"
    n = len(data.train) + len(data.val) + len(data.test)
    assert n == 1797
    x, y = data.train[0]
    assert x.dtype == torch.uint8 and x.shape == (1, 16, 16) and 0 <= int(y) < 10
    assert int(data.train.images.max()) > 200, "pixels are scaled to 0-255"
    for split in (data.val, data.test):
        assert torch.bincount(split.labels, minlength=10).min() > 0.5 * len(split) / 10
    same = digits(size=16)
    assert torch.equal(same.test.labels, data.test.labels)
    assert torch.equal(same.test.images, data.test.images)
    other = digits(size=16, split_seed=1)
    assert not torch.equal(other.test.images, data.test.images)
    assert digits(size=None).train[0][0].shape == (1, 8, 8)


def test_split_indices_partition() -> None:
    labels = torch.arange(100) % 4
    a, b, c = split_indices(labels, [0.0, 0.2, 0.3], seed=3)
    assert len(a) + len(b) + len(c) == 100
    assert len(set(a.tolist()) | set(b.tolist()) | set(c.tolist())) == 100
    assert torch.bincount(labels[b]).tolist() == [5, 5, 5, 5]


def test_getitems_batches_like_getitem() -> None:
    ds = ImageTensorDataset(
        torch.randint(0, 255, (10, 1, 4, 4), dtype=torch.uint8), torch.arange(10)
    )
    batch = ds.__getitems__([3, 1])
    assert torch.equal(batch[0][0], ds[3][0]) and int(batch[1][1]) == 1


def test_fashion_mnist_real_files(fashion_root) -> None:
    root = fashion_root
    data = fashion_mnist(root=str(root), val_size=1000, train_size=2000, test_size=500)
    assert (len(data.train), len(data.val), len(data.test)) == (2000, 1000, 500)
    assert data.train.images.dtype == torch.uint8 and data.train.images.shape[1:] == (1, 28, 28)
    assert torch.bincount(data.val.labels, minlength=10).tolist() == [100] * 10
    assert data.meta["class_names"][9] == "Ankle boot"
    small = fashion_mnist(root=str(root), train_size=100, size=32, val_size=100)
    assert small.train[0][0].shape == (1, 32, 32)


def test_fashion_mnist_missing_and_corrupt(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\.gz") as err:
        fashion_mnist(root=str(tmp_path))
    assert "apt-get install dataset-fashion-mnist" in str(err.value)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):  # fmt: skip
        with gzip.open(tmp_path / name, "wb") as fh:
            fh.write(b"\x00\x00\x08\x01" + b"\x00" * 12)
    with pytest.raises(ValueError, match="magic"):
        fashion_mnist(root=str(tmp_path))


def _write_folder(root, classes=("cat", "dog"), n=5, size=(10, 12)):
    for ci, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(n):
            color = (40 * ci + 10 * i, 100, 200 - 30 * ci)
            Image.new("RGB", size, color).save(root / name / f"{i}.png")


def test_image_folder_single_pool(tmp_path) -> None:
    _write_folder(tmp_path, n=10)
    data = image_folder(str(tmp_path), size=8, channels=3, val_fraction=0.2, test_fraction=0.2)
    assert data.meta["class_names"] == ["cat", "dog"] and data.num_classes == 2
    assert (len(data.train), len(data.val), len(data.test)) == (12, 4, 4)
    assert data.train.images.shape[1:] == (3, 8, 8) and data.train.images.dtype == torch.uint8
    gray = image_folder(str(tmp_path), size=[6, 4], channels=1)
    assert gray.train.images.shape[1:] == (1, 6, 4)


def test_image_folder_given_splits(tmp_path) -> None:
    _write_folder(tmp_path / "train")
    _write_folder(tmp_path / "test", n=2)
    data = image_folder(str(tmp_path), size=8)
    assert len(data.train) == 10 and data.val is None and len(data.test) == 4
    (tmp_path / "test" / "bird").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "test" / "bird" / "x.png")
    with pytest.raises(ValueError, match="'bird' is not among the training classes"):
        image_folder(str(tmp_path), size=8)


def test_image_folder_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_folder(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="no class subfolders"):
        image_folder(str(tmp_path))
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="no images found"):
        image_folder(str(tmp_path))
    (tmp_path / "cat" / "broken.jpg").write_bytes(b"definitely not a jpeg")
    with pytest.raises(ValueError, match=r"broken\.jpg"):
        image_folder(str(tmp_path), unlabelled=True)


def test_image_folder_names_every_unreadable_image(tmp_path) -> None:
    _write_folder(tmp_path)
    (tmp_path / "cat" / "a.png").write_text("not a png")
    good = (tmp_path / "dog" / "0.png").read_bytes()
    (tmp_path / "dog" / "b.png").write_bytes(good[:40])
    (tmp_path / "dog" / "._c.png").write_bytes(b"macOS metadata")  # hidden: skipped
    with pytest.raises(ValueError, match="2 unreadable image file") as err:
        image_folder(str(tmp_path), size=8)
    message = str(err.value)
    assert "a.png" in message and "b.png" in message and "._c.png" not in message
    assert "remove or replace these files" in message


def test_image_folder_class_rules(tmp_path) -> None:
    _write_folder(tmp_path / "one", classes=("cat",), n=6)
    with pytest.raises(ValueError, match=r"has 1 class \(cat\).*needs at least 2"):
        image_folder(str(tmp_path / "one"), size=8)
    data = image_folder(str(tmp_path / "one"), size=8, unlabelled=True)
    assert data.num_classes == 0 and set(data.train.labels.tolist()) == {-1}
    _write_folder(tmp_path / "split" / "train")
    _write_folder(tmp_path / "split" / "val", n=2)
    (tmp_path / "split" / "train" / "empty").mkdir()
    (tmp_path / "split" / "val" / "empty").mkdir()
    with pytest.warns(UserWarning, match="holds no images") as record:
        data = image_folder(str(tmp_path / "split"), size=8)
    assert len(record) == 2  # train/empty and val/empty, each named
    assert data.meta["class_names"] == ["cat", "dog"] and data.num_classes == 2
    assert set(data.val.labels.tolist()) == {0, 1}
