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
        ValueError: Not a readable ``.npz``, missing keys, mismatched lengths or bad fractions.
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
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"core:arrays: {p} is not a readable .npz file ({exc})") from exc
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
    x, y = arrays["x"], arrays["y"].reshape(-1)
    if x.ndim < 2:
        raise ValueError(f"core:arrays: {p}: x must be [N, features...], got shape {x.shape}")
    if len(x) != len(y):
        raise ValueError(f"core:arrays: {p}: x has {len(x)} rows but y has {len(y)}")
    if not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"core:arrays: {p}: y must hold integer class labels, got {y.dtype}")
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
