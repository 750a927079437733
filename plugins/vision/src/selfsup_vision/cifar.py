"""CIFAR-10 and CIFAR-100 from the "python version" files on the user's disk.

The official files are Python 2 pickles of dicts (``data``: ``uint8 [N, 3072]``, the
red, green and blue 32x32 planes of each image; ``labels`` or ``fine_labels`` /
``coarse_labels``). They are read with :func:`selfsup.safe_pickle.safe_load`, which
resolves only numpy's array globals and builtin containers: a file that names any
other global is refused before anything in it runs. Nothing is downloaded.

Layouts (``root`` is the extracted folder or the folder above it)::

    cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch, batches.meta
    cifar-100-python/train, test, meta
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import NonNegativeInt, PositiveInt
from selfsup.interfaces import DataSplits
from selfsup.safe_pickle import safe_load

from selfsup_vision.datasets import ImageTensorDataset, resize_uint8, split_indices

__all__ = ["cifar10", "cifar100"]

_FIX = (
    "extract the official 'python version' archive again (cifar-10-python.tar.gz or "
    "cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html) and point "
    "data.params.root at the folder it creates"
)


def _folder(root: str, name: str, files: list[str]) -> Path:
    base = Path(root).expanduser()
    for folder in (base / name, base):
        if all((folder / f).is_file() for f in files):
            return folder
    missing = [f for f in files if not (base / name / f).is_file() and not (base / f).is_file()]
    raise FileNotFoundError(
        f"CIFAR files not found under {str(base)!r}: missing {', '.join(missing)} (looked in "
        f"{str(base / name)!r} and {str(base)!r}); {_FIX}. Nothing is downloaded."
    )


def _load(path: Path) -> dict[str, Any]:
    """One pickled CIFAR dict with ``str`` keys (Python 2 ``str`` keys read as latin-1)."""
    obj = safe_load(path, what="CIFAR batch file")
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: holds a {type(obj).__name__}, not a CIFAR dict; {_FIX}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 [N, 3, 32, 32]`` and labels ``int64 [N]`` of one batch file."""
    d = _load(path)
    for key in ("data", label_key):
        if key not in d:
            raise ValueError(
                f"{path}: no {key!r} entry (found {sorted(d)}); not a CIFAR batch of this "
                f"kind; {_FIX}"
            )
    data = d["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise ValueError(f"{path}: 'data' is not a uint8 [N, 3072] array; {_FIX}")
    if data.shape[1] != 3072:
        raise ValueError(f"{path}: 'data' rows hold {data.shape[1]} values, not 3072; {_FIX}")
    labels = np.asarray(d[label_key], dtype=np.int64).reshape(-1)
    if len(labels) != len(data):
        raise ValueError(f"{path}: {len(labels)} labels for {len(data)} images; {_FIX}")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise ValueError(
            f"{path}: label {int(labels[bad[0]])} at index {int(bad[0])} is not in "
            f"[0, {num_classes}); {_FIX}"
        )
    return data.reshape(-1, 3, 32, 32), labels


def _names(path: Path, key: str, count: int) -> list[str]:
    names = _load(path).get(key)
    if not isinstance(names, list) or len(names) != count:
        raise ValueError(f"{path}: {key!r} is not a list of {count} class names; {_FIX}")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]


def _splits(
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    names: list[str],
    val_size: int,
    split_seed: int,
    size: int | None,
    meta: dict[str, Any],
) -> DataSplits:
    def make(part: tuple[np.ndarray, np.ndarray]) -> ImageTensorDataset:
        images = resize_uint8(torch.from_numpy(np.ascontiguousarray(part[0])), size)
        return ImageTensorDataset(images, torch.from_numpy(part[1]))

    full, test_ds = make(train), make(test)
    if not 0 <= val_size < len(full):
        raise ValueError(f"val_size={val_size!r} must be in [0, {len(full)})")
    val = None
    if val_size:
        tr, va = split_indices(full.labels, [0.0, val_size / len(full)], split_seed)
        full, val = full.subset(tr), full.subset(va)
    meta = {**meta, "class_names": names, "channels": 3}
    return DataSplits(
        train=full, val=val, test=test_ds, num_classes=len(names), modality="image", meta=meta
    )


def cifar10(
    root: str,
    val_size: NonNegativeInt = 5000,
    size: PositiveInt | None = None,
    split_seed: int = 0,
) -> DataSplits:
    """CIFAR-10 (50000 + 10000 32x32 RGB images, 10 classes) from the python batches.

    Args:
        root: ``cifar-10-batches-py`` or the folder holding it.
        val_size: Training images carved (stratified, seeded) for validation.
        size: Resize to ``size x size``; ``None`` keeps 32.
        split_seed: Seed of the validation carving.

    Raises:
        FileNotFoundError: A batch file is missing (named, with the fix).
        ValueError: A file is not a CIFAR batch, is truncated, or names a global that
            is not allowed (named, with the fix).
    """
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    folder = _folder(root, "cifar-10-batches-py", files)
    parts = [_batch(folder / f, "labels", 10) for f in files[:5]]
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    test = _batch(folder / "test_batch", "labels", 10)
    names = _names(folder / "batches.meta", "label_names", 10)
    return _splits(train, test, names, val_size, split_seed, size, {"root": str(folder)})


def cifar100(
    root: str,
    labels: Literal["fine", "coarse"] = "fine",
    val_size: NonNegativeInt = 5000,
    size: PositiveInt | None = None,
    split_seed: int = 0,
) -> DataSplits:
    """CIFAR-100 (50000 + 10000 32x32 RGB images; 100 fine or 20 coarse classes).

    Args:
        root: ``cifar-100-python`` or the folder holding it.
        labels: ``fine`` (100 classes) or ``coarse`` (20 superclasses).
        val_size: Training images carved (stratified, seeded) for validation.
        size: Resize to ``size x size``; ``None`` keeps 32.
        split_seed: Seed of the validation carving.

    Raises:
        FileNotFoundError: A file is missing (named, with the fix).
        ValueError: A file is not a CIFAR-100 file, or ``labels`` is not fine/coarse.
    """
    if labels not in ("fine", "coarse"):
        raise ValueError(f"labels={labels!r}; choose 'fine' (100 classes) or 'coarse' (20)")
    folder = _folder(root, "cifar-100-python", ["train", "test", "meta"])
    count = 100 if labels == "fine" else 20
    train = _batch(folder / "train", f"{labels}_labels", count)
    test = _batch(folder / "test", f"{labels}_labels", count)
    names = _names(folder / "meta", f"{labels}_label_names", count)
    meta = {"root": str(folder), "labels": labels}
    return _splits(train, test, names, val_size, split_seed, size, meta)
