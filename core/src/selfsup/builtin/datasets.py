"""Modality-free datasets: arrays from a ``.npz`` file (``core:arrays``).

Any fixed-size real data (tabular features, flattened images, precomputed
embeddings) can be pretrained on with no plugin: save ``x`` (``[N, ...]``) and ``y``
(``[N]`` integer labels) with :func:`numpy.savez` and point ``core:arrays`` at it.

Example:
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.npz")
    >>> np.savez(path, x=np.random.rand(100, 8), y=np.arange(100) % 2)
    >>> splits = ArrayDataset(path)
    >>> len(splits.train), len(splits.val), len(splits.test), splits.num_classes
    (70, 10, 20, 2)
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field
from torch.utils.data import TensorDataset

from selfsup.interfaces import DataSplits

__all__ = ["ArrayDataset", "stratified_split"]

_EXPECTED = "x [N, ...] and y [N] (optional: x_val, y_val, x_test, y_test)"


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split indices into train/val/test with the class proportions kept per split.

    Args:
        labels: Integer labels, ``-1`` for unlabelled items (split at random).
        fractions: The ``(val, test)`` fractions of every class.
        seed: Seed of the permutation.

    Returns:
        Sorted index arrays ``(train, val, test)``.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_val = round(len(idx) * fractions[0])
        n_test = round(len(idx) * fractions[1])
        parts[1].append(idx[:n_val])
        parts[2].append(idx[n_val : n_val + n_test])
        parts[0].append(idx[n_val + n_test :])
    train, val, test = (np.sort(np.concatenate(p)) if p else np.array([], int) for p in parts)
    return train, val, test


def _tensor_pair(x: np.ndarray, y: np.ndarray, where: str) -> TensorDataset:
    if len(x) != len(y):
        raise ValueError(f"{where}: x has {len(x)} rows but y has {len(y)}; they must match")
    if not np.issubdtype(y.dtype, np.number) or not np.all(np.equal(np.mod(y, 1), 0)):
        raise ValueError(f"{where}: y must hold integer class labels, got {y.dtype} values")
    return TensorDataset(
        torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32),
        torch.as_tensor(y.astype(np.int64)),
    )


_NPZ_FIX = "save one with numpy.savez(path, x=x, y=y) from numeric arrays"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def _read_npz(p: Path) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``p``, never unpickling anything.

    Raises:
        ValueError: Not a zip archive (a ``.npy``, a pickle, text), a damaged archive, or
            an object array (which only a pickle can hold); names the file and the fix.
    """
    with p.open("rb") as handle:
        head = handle.read(6)
    if head.startswith(b"\x93NUMPY"):
        raise ValueError(
            f"core:arrays: {p} is a .npy file (one array), not a .npz holding x and y; {_NPZ_FIX}"
        )
    if not head.startswith(_ZIP_MAGIC):
        raise ValueError(
            f"core:arrays: {p} is not a readable .npz file: it is not a zip archive (a .npz "
            f"is the zip archive numpy.savez writes); {_NPZ_FIX}"
        )
    arrays: dict[str, np.ndarray] = {}
    objects: list[str] = []
    try:
        with np.load(p, allow_pickle=False) as npz:
            for key in npz.files:
                try:
                    arrays[key] = npz[key]
                except ValueError as exc:
                    if "pickle" not in str(exc).lower() and "object" not in str(exc).lower():
                        raise
                    objects.append(key)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise ValueError(
            f"core:arrays: {p} is not a readable .npz file: the archive is truncated or "
            f"damaged ({type(exc).__name__}: {exc}); {_NPZ_FIX}"
        ) from None
    if objects:
        raise ValueError(
            f"core:arrays: {p}: array {objects[0]!r} holds Python objects (dtype=object); "
            "selfsup never unpickles data files (a pickle can run code): save numeric "
            "arrays instead, e.g. x.astype('float32') and y.astype('int64')"
        )
    return arrays


def _check_x(p: Path, key: str, x: np.ndarray) -> None:
    """``x``-like arrays: real numbers, ``[N, ...]``, every value finite."""
    numeric = np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.bool_)
    if not numeric or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(
            f"core:arrays: {p}: {key} must hold numbers (real), got dtype {x.dtype}; "
            f"convert it before saving (e.g. {key}.astype('float32'))"
        )
    if x.ndim < 2:
        raise ValueError(
            f"core:arrays: {p}: {key} must be [N, features...], got shape {x.shape}; "
            f"for N items of one feature save {key}.reshape(-1, 1)"
        )
    if np.issubdtype(x.dtype, np.inexact):
        bad = ~np.isfinite(x)
        count = int(bad.sum())
        if count:
            first = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), x.shape))
            raise ValueError(
                f"core:arrays: {p}: array {key!r} holds {count} non-finite value(s) (NaN or "
                f"inf), the first at index {first}; clean the data before saving: drop those "
                "rows, or impute them (np.nan_to_num replaces NaN by 0 and inf by large "
                "finite numbers)"
            )


def _check_y(p: Path, key: str, y: np.ndarray, rows: int) -> None:
    """``y``-like arrays: one integer class per row, ``-1`` for unlabelled."""
    if not (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
        raise ValueError(
            f"core:arrays: {p}: {key} must be [N] (one class label per row of x), got shape "
            f"{y.shape}; for one-hot labels save {key}.argmax(1)"
        )
    if not (np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.bool_)):
        raise ValueError(
            f"core:arrays: {p}: {key} must hold integer class labels, got dtype {y.dtype}; "
            f"map names to indices before saving: np.unique({key}, return_inverse=True)[1]"
        )
    flat = y.reshape(-1)
    if len(flat) != rows:
        x_key = key.replace("y", "x", 1)
        raise ValueError(
            f"core:arrays: {p}: {x_key} has {rows} rows but {key} has {len(flat)}; "
            "they must match (one label per item)"
        )
    if np.issubdtype(flat.dtype, np.inexact):
        bad = np.flatnonzero(~np.isfinite(flat) | (np.mod(flat, 1) != 0))
        if bad.size:
            raise ValueError(
                f"core:arrays: {p}: {key} holds {bad.size} non-integer label(s), the first "
                f"{flat[bad[0]]!r} at index {int(bad[0])}; labels are class indices 0..C-1 "
                f"(-1 for unlabelled): fix them, then save {key}.astype('int64')"
            )
    low = np.flatnonzero(flat < -1)
    if low.size:
        raise ValueError(
            f"core:arrays: {p}: {key} holds label {flat[low[0]]!r} at index {int(low[0])}; "
            "labels are class indices 0..C-1, or -1 for unlabelled items"
        )


def _check_arrays(p: Path, arrays: dict[str, np.ndarray]) -> None:
    """Keys, dtypes, shapes, finiteness and the number of classes of a ``.npz``.

    Raises:
        ValueError: The first problem found, naming the file, the array and the fix.
    """
    missing = [k for k in ("x", "y") if k not in arrays]
    for split in ("val", "test"):
        have = [k for k in (f"x_{split}", f"y_{split}") if k in arrays]
        if len(have) == 1:
            missing.append(f"y_{split}" if have[0].startswith("x") else f"x_{split}")
    if missing:
        raise ValueError(
            f"core:arrays: {p} lacks key(s) {', '.join(missing)}; expected {_EXPECTED}; "
            f"found: {', '.join(sorted(arrays)) or 'nothing'}"
        )
    if arrays["x"].ndim >= 1 and len(arrays["x"]) == 0:
        raise ValueError(f"core:arrays: {p}: x has no rows; save at least one item per class")
    for suffix in ("", "_val", "_test"):
        if f"x{suffix}" in arrays:
            _check_x(p, f"x{suffix}", arrays[f"x{suffix}"])
            _check_y(p, f"y{suffix}", arrays[f"y{suffix}"], len(arrays[f"x{suffix}"]))
    labels = np.concatenate(
        [arrays[k].reshape(-1) for k in ("y", "y_val", "y_test") if k in arrays]
    )
    classes = np.unique(labels[labels >= 0])
    if classes.size == 1:
        raise ValueError(
            f"core:arrays: {p}: y has 1 class ({classes[0]:g}) among its labelled items: a "
            "linear probe / kNN needs at least 2 classes; add items of other classes, or set "
            "every label to -1 to pretrain without labels (label-free evaluators such as "
            "core:rankme only)"
        )


def ArrayDataset(
    path: str,
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1,
    test_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2,
    split_seed: int = 0,
    standardize: bool = False,
    modality: str = "any",
) -> DataSplits:
    """Arrays from a ``.npz`` file: ``x`` and ``y``, with optional explicit splits.

    Without ``x_val``/``x_test`` in the file, stratified validation and test splits
    are drawn from ``x`` with ``split_seed`` (the same split for every run seed).

    Args:
        path: The ``.npz`` file (relative paths are relative to the working directory).
        val_fraction: Fraction of each class held out for validation (model selection).
        test_fraction: Fraction of each class held out for the test figures.
        split_seed: Seed of the split.
        standardize: Scale every feature to zero mean and unit variance (statistics
            of the train split, applied to all splits).
        modality: The modality recorded on the splits (``"any"``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: Not a readable ``.npz`` (the file is never unpickled), missing keys,
            non-numeric or non-finite ``x``, labels that are not class indices (``-1``
            marks unlabelled items), a single class, mismatched lengths or bad fractions;
            the message names the file, the array and the fix.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"core:arrays: {p} does not exist; save a .npz with {_EXPECTED} "
            "(numpy.savez) and set data.params.path to it"
        )
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"core:arrays: val_fraction={val_fraction} and test_fraction={test_fraction} "
            "must be in [0, 1) and sum to less than 1"
        )
    arrays = _read_npz(p)
    _check_arrays(p, arrays)
    x, y = arrays["x"], arrays["y"].reshape(-1)
    given = {name: f"x_{name}" in arrays for name in ("val", "test")}
    fractions = (
        0.0 if given["val"] else val_fraction,
        0.0 if given["test"] else test_fraction,
    )
    train_idx, val_idx, test_idx = stratified_split(y, fractions, split_seed)
    splits = {"train": (x[train_idx], y[train_idx])}
    for name, idx in (("val", val_idx), ("test", test_idx)):
        if given[name]:
            xs = arrays[f"x_{name}"]
            if xs.shape[1:] != x.shape[1:]:
                raise ValueError(
                    f"core:arrays: {p}: x_{name} has items of shape {xs.shape[1:]} but x has "
                    f"{x.shape[1:]}; every split must hold items of the same shape"
                )
            splits[name] = (xs, arrays[f"y_{name}"].reshape(-1))
        else:
            splits[name] = (x[idx], y[idx])
    if standardize:
        mean = splits["train"][0].astype(np.float64).mean(axis=0)
        std = splits["train"][0].astype(np.float64).std(axis=0)
        std[std == 0] = 1.0
        splits = {k: ((a - mean) / std, b) for k, (a, b) in splits.items()}
    data: dict[str, Any] = {
        k: _tensor_pair(a, b, f"core:arrays: {p}: split {k!r}") if len(a) else None
        for k, (a, b) in splits.items()
    }
    labels = np.concatenate([b for _, b in splits.values()])
    labelled = labels[labels >= 0]
    return DataSplits(
        train=data["train"],
        val=data["val"],
        test=data["test"],
        num_classes=int(labelled.max()) + 1 if labelled.size else 0,
        modality=modality,
        meta={"path": str(p), "feature_shape": tuple(int(d) for d in x.shape[1:])},
    )
