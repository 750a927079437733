"""CIFAR-10/100, STL-10 and ImageNet read from small files written in their real formats."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from selfsup.safe_pickle import CorruptFileError, UnsafePickleError
from selfsup_vision.cifar import cifar10, cifar100
from selfsup_vision.imagenet import imagenet
from selfsup_vision.stl10 import stl10


def test_cifar10_reads_the_python_batches(tmp_path, formats) -> None:
    folder = formats.cifar10(tmp_path, per_batch=20)
    written = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="latin1")
    data = cifar10(str(tmp_path), val_size=0)
    assert data.num_classes == 10 and data.meta["class_names"][0] == "airplane"
    assert len(data.train) == 100 and len(data.test) == 20 and data.val is None
    x, y = data.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(x[1].flatten(), torch.from_numpy(written["data"][0, 1024:2048]))  # green
    assert int(y) == written["labels"][0]
    carved = cifar10(str(folder), val_size=20, size=16)  # root may be the folder itself
    assert len(carved.train) + len(carved.val) == 100 and carved.val[0][0].shape == (3, 16, 16)


def test_cifar100_fine_and_coarse(tmp_path, formats) -> None:
    formats.cifar100(tmp_path, n=60)
    fine = cifar100(str(tmp_path), val_size=0)
    coarse = cifar100(str(tmp_path), labels="coarse", val_size=0)
    assert fine.num_classes == 100 and coarse.num_classes == 20
    assert torch.equal(coarse.train.labels, fine.train.labels // 5)
    assert coarse.meta["class_names"][3] == "coarse3"
    with pytest.raises(ValueError, match="labels='medium'"):
        cifar100(str(tmp_path), labels="medium")


def test_cifar_refuses_code_and_damaged_files(tmp_path, formats) -> None:
    folder = formats.cifar10(tmp_path, per_batch=10)
    with pytest.raises(FileNotFoundError, match=r"test_batch.*cifar-10-python\.tar\.gz"):
        (folder / "test_batch").rename(folder / "moved")
        cifar10(str(tmp_path))
    (folder / "moved").rename(folder / "test_batch")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": Evil()}, protocol=2))
    with pytest.raises(UnsafePickleError, match="data_batch_3"):
        cifar10(str(tmp_path))
    good = (folder / "data_batch_1").read_bytes()
    (folder / "data_batch_3").write_bytes(good[: len(good) // 2])
    with pytest.raises(CorruptFileError, match="data_batch_3"):
        cifar10(str(tmp_path))
    (folder / "data_batch_3").write_bytes(
        formats.py2_pickle({"data": np.zeros((2, 3072), np.uint8)})
    )
    with pytest.raises(ValueError, match="data_batch_3: no 'labels' entry"):
        cifar10(str(tmp_path))
    wrong = {"data": np.zeros((2, 3072), np.uint8), "labels": [1, 12]}
    (folder / "data_batch_3").write_bytes(formats.py2_pickle(wrong))
    with pytest.raises(ValueError, match=r"data_batch_3: label 12 at index 1 is not in \[0, 10\)"):
        cifar10(str(tmp_path))


def test_stl10_binary_orientation_folds_and_unlabelled(tmp_path, formats) -> None:
    folder = formats.stl10(tmp_path, n_train=40, n_test=30, n_unlabeled=12)
    images, labels = formats.real_images(40, 96, seed=0)  # what write_stl10 stored as train
    data = stl10(str(tmp_path), val_size=0)
    assert data.num_classes == 10 and len(data.train) == 40 and len(data.test) == 30
    x, y = data.train[3]
    assert torch.equal(x, torch.from_numpy(images[3])) and int(y) == int(labels[3])
    batch = data.train.__getitems__([0, 5])
    assert torch.equal(batch[1][0], torch.from_numpy(images[5]))
    fold = stl10(str(folder), fold=2, val_size=0, size=32)
    assert len(fold.train) == 8 and fold.train[0][0].shape == (3, 32, 32)
    loader = torch.utils.data.DataLoader(data.train, batch_size=8, num_workers=1)
    assert torch.equal(next(iter(loader))[0], torch.from_numpy(images[:8]))  # memmap in worker
    free = stl10(str(tmp_path), unlabeled=True)
    assert len(free.train) == 12 and free.num_classes == 0 and int(free.train[0][1]) == -1


def test_stl10_errors_name_the_file(tmp_path, formats) -> None:
    folder = formats.stl10(tmp_path, n_train=10, n_test=10, n_unlabeled=1)
    raw = (folder / "test_X.bin").read_bytes()
    (folder / "test_X.bin").write_bytes(raw[:-5])
    with pytest.raises(ValueError, match=r"test_X\.bin.*not a whole number"):
        stl10(str(tmp_path))
    (folder / "test_X.bin").write_bytes(raw)
    (folder / "train_y.bin").write_bytes(bytes([1] * 9 + [11]))
    with pytest.raises(ValueError, match=r"train_y\.bin: label 11 at index 9"):
        stl10(str(tmp_path))
    (folder / "class_names.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing class_names\.txt"):
        stl10(str(tmp_path))


def test_imagenet_kaggle_layout_with_flat_val(tmp_path, formats) -> None:
    formats.imagenet(tmp_path, per_class=6, n_val=6)
    data = imagenet(str(tmp_path), size=32, val_size=3)
    assert data.num_classes == 3 and data.meta["class_names"] == formats.wnids
    assert data.meta["descriptions"][0] == "tench, Tinca tinca"
    assert len(data.train) == 15 and len(data.val) == 3 and len(data.test) == 6
    assert data.test.labels.tolist() == [0, 1, 2, 0, 1, 2]  # from LOC_val_solution.csv
    x, y = data.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.uint8 and 0 <= int(y) < 3


def test_imagenet_plain_layout_sorted_val_and_label_files(tmp_path, formats) -> None:
    formats.imagenet(tmp_path, per_class=4, n_val=6)
    base = tmp_path / "ILSVRC" / "Data" / "CLS-LOC"
    plain = tmp_path / "plain"
    base.rename(plain)
    (tmp_path / "LOC_synset_mapping.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"val folder is flat.*LOC_val_solution\.csv"):
        imagenet(str(plain), val_size=0)
    caffe = tmp_path / "val.txt"
    caffe.write_text("".join(f"ILSVRC2012_val_{k + 1:08d}.JPEG {2 - k % 3}\n" for k in range(6)))
    data = imagenet(str(plain), size=16, val_size=0, val_labels=str(caffe))
    assert data.meta["class_names"] == sorted(formats.wnids)  # no mapping: sorted wnids
    assert data.test.labels.tolist() == [2, 1, 0, 2, 1, 0]
    for k, path in enumerate(sorted((plain / "val").iterdir())):  # sort val into folders
        (plain / "val" / formats.wnids[k % 3]).mkdir(exist_ok=True)
        path.rename(plain / "val" / formats.wnids[k % 3] / path.name)
    data = imagenet(str(plain), size=16, val_size=0)
    assert sorted(data.test.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    (plain / "train" / "n99999999").mkdir()
    (tmp_path / "LOC_synset_mapping.txt").write_text("n01440764 tench\nn01443537 goldfish\n")
    (plain.parent / "LOC_synset_mapping.txt").rename(plain / "LOC_synset_mapping.txt")
    with pytest.raises(
        ValueError, match=r"\['n01484850', 'n99999999'\] are not in the class index"
    ):
        imagenet(str(plain), val_size=0)


def test_imagenet_bad_files(tmp_path, formats) -> None:
    formats.imagenet(tmp_path, per_class=3, n_val=3)
    (tmp_path / "LOC_synset_mapping.txt").write_text("tench n01440764\n")
    with pytest.raises(ValueError, match=r"LOC_synset_mapping\.txt:1.*WordNet id"):
        imagenet(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no train folder"):
        imagenet(str(tmp_path / "ILSVRC"))
