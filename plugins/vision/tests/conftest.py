from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

FASHION_ROOT = Path(os.environ.get("SELFSUP_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))


@pytest.fixture
def fashion_root() -> Path:
    """The Fashion-MNIST folder; skip when absent, fail under CI=true."""
    if (FASHION_ROOT / "train-images-idx3-ubyte.gz").is_file():
        return FASHION_ROOT
    msg = (
        f"Fashion-MNIST not found in {FASHION_ROOT} (apt-get install dataset-fashion-mnist, "
        "or set SELFSUP_FASHION_MNIST)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(autouse=True)
def _seed_and_one_thread() -> Iterator[None]:
    """Seed, and run on one intra-op thread: these tensors are small, and on a shared
    machine several threads' synchronisation makes small ops many times slower."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def gray_batch() -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8, generator=gen)


@pytest.fixture
def rgb_batch() -> torch.Tensor:
    gen = torch.Generator().manual_seed(2)
    return torch.rand(6, 3, 32, 32, generator=gen)


# ----------------------------------------------------------------- files in real formats


def py2_pickle(obj: object) -> bytes:
    """``obj`` pickled as Python 2's cPickle (protocol 2) writes it, as in the CIFAR files.

    Strings and bytes become ``str`` (BINSTRING opcodes), numpy arrays are rebuilt with
    ``numpy.core.multiarray._reconstruct`` and the Python 2 dtype state: the opcodes of
    the official ``cifar-10-batches-py`` files. Supports dict, list, int, str, bytes and
    ``uint8`` arrays.
    """
    out = bytearray(b"\x80\x02")

    def string(value: str | bytes) -> None:
        raw = value if isinstance(value, bytes) else value.encode("latin1")
        if len(raw) < 256:
            out.extend(b"U" + bytes([len(raw)]) + raw)
        else:
            out.extend(b"T" + struct.pack("<I", len(raw)) + raw)

    def write(value: object) -> None:
        if isinstance(value, dict):
            out.extend(b"}(")
            for key, item in value.items():
                string(key)
                write(item)
            out.extend(b"u")
        elif isinstance(value, list):
            out.extend(b"](")
            for item in value:
                write(item)
            out.extend(b"e")
        elif isinstance(value, int):
            out.extend(b"J" + struct.pack("<i", value))
        elif isinstance(value, (str, bytes)):
            string(value)
        elif isinstance(value, np.ndarray):
            assert value.dtype == np.uint8
            out.extend(
                b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R("
            )
            out.extend(
                b"K\x01(" + b"".join(b"J" + struct.pack("<i", d) for d in value.shape) + b"t"
            )
            out.extend(b"cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R(K\x03U\x01|NNN")
            out.extend(b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89")
            string(value.tobytes())
            out.extend(b"tb")
        else:
            raise TypeError(type(value))

    write(obj)
    return bytes(out + b".")


def real_images(n: int, side: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """``n`` real images ``uint8 [n, channels, side, side]``: scikit-learn's digits, upscaled."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(digits.images), size=n, replace=n > len(digits.images))
    small = torch.from_numpy(digits.images[pick] * (255 / 16)).float()[:, None]
    big = torch.nn.functional.interpolate(small, size=(side, side), mode="bilinear")
    big = big.round().clamp(0, 255).to(torch.uint8).repeat(1, channels, 1, 1)
    tint = torch.from_numpy(rng.integers(0, 60, size=(n, channels, 1, 1))).to(torch.uint8)
    return (big + tint).numpy(), digits.target[pick]


def write_cifar10(root: Path, per_batch: int = 20) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        images, labels = real_images(per_batch, 32, seed=i)
        batch = {
            "batch_label": f"batch {i}",
            "labels": [int(v) for v in labels],
            "data": images.reshape(per_batch, -1),
            "filenames": [f"{k}.png" for k in range(per_batch)],
        }
        (folder / name).write_bytes(py2_pickle(batch))
    names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    meta = {"label_names": names, "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    return folder


def write_cifar100(root: Path, n: int = 60) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for i, name in enumerate(["train", "test"]):
        images, labels = real_images(n, 32, seed=10 + i)
        fine = [int(v) * 10 + k % 10 for k, v in enumerate(labels)]
        batch = {
            "filenames": [f"{k}.png" for k in range(n)], "batch_label": name,
            "fine_labels": fine, "coarse_labels": [f // 5 for f in fine],
            "data": images.reshape(n, -1),
        }  # fmt: skip
        (folder / name).write_bytes(py2_pickle(batch))
    meta = {
        "fine_label_names": [f"fine{k}" for k in range(100)],
        "coarse_label_names": [f"coarse{k}" for k in range(20)],
    }
    (folder / "meta").write_bytes(py2_pickle(meta))
    return folder


def write_stl10(root: Path, n_train: int = 40, n_test: int = 30, n_unlabeled: int = 12) -> Path:
    """STL-10's binary files: images as column-major planes, labels 1-10 as bytes."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    for name, n, seed in [
        ("train", n_train, 0),
        ("test", n_test, 1),
        ("unlabeled", n_unlabeled, 2),
    ]:
        images, labels = real_images(n, 96, seed=seed)
        (folder / f"{name}_X.bin").write_bytes(images.transpose(0, 1, 3, 2).tobytes())
        if name != "unlabeled":
            (folder / f"{name}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    folds = [" ".join(str((f * 4 + k) % n_train) for k in range(8)) for f in range(10)]
    (folder / "fold_indices.txt").write_text("\n".join(folds) + "\n")
    return folder


def write_jpeg(path: Path, image: np.ndarray, quality: int = 90) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.transpose(1, 2, 0)).save(path, quality=quality)


IMAGENET_WNIDS = ["n01440764", "n01443537", "n01484850"]


def write_imagenet(root: Path, per_class: int = 6, n_val: int = 6, side: int = 40) -> Path:
    """The Kaggle ILSVRC layout: train/<wnid>/<wnid>_<k>.JPEG, flat val, mapping, solution."""
    data = root / "ILSVRC" / "Data" / "CLS-LOC"
    for c, wnid in enumerate(IMAGENET_WNIDS):
        images, _ = real_images(per_class, side, seed=20 + c)
        for k in range(per_class):
            write_jpeg(data / "train" / wnid / f"{wnid}_{k}.JPEG", images[k])
    images, _ = real_images(n_val, side, seed=30)
    rows = ["ImageId,PredictionString"]
    for k in range(n_val):
        name = f"ILSVRC2012_val_{k + 1:08d}"
        write_jpeg(data / "val" / f"{name}.JPEG", images[k])
        wnid = IMAGENET_WNIDS[k % 3]
        rows.append(f"{name},{wnid} 1 2 30 31 {wnid} 4 5 20 21")
    (root / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    words = ["tench, Tinca tinca", "goldfish, Carassius auratus", "great white shark"]
    lines = [f"{w} {d}" for w, d in zip(IMAGENET_WNIDS, words, strict=True)]
    (root / "LOC_synset_mapping.txt").write_text("\n".join(lines) + "\n")
    return root


def write_jpeg_folder(root: Path, per_class: int = 8, side: int = 48, classes: int = 2) -> Path:
    """root/<class>/<k>.jpg of real (digit) images."""
    for c in range(classes):
        images, _ = real_images(per_class, side, seed=40 + c)
        for k in range(per_class):
            write_jpeg(root / f"class{c}" / f"{k}.jpg", images[k])
    return root


@pytest.fixture
def formats() -> SimpleNamespace:
    """Writers of small files in each real format (tests cannot import conftest)."""
    return SimpleNamespace(
        py2_pickle=py2_pickle, real_images=real_images, cifar10=write_cifar10,
        cifar100=write_cifar100, stl10=write_stl10, imagenet=write_imagenet,
        jpeg=write_jpeg, jpeg_folder=write_jpeg_folder, wnids=IMAGENET_WNIDS,
    )  # fmt: skip
