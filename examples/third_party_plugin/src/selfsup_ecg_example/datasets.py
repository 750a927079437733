"""Signals from a local folder of ``.npy`` files (never a download).

The folder holds ``signals.npy`` (``[N, leads, samples]``, float) and optionally
``labels.npy`` (``[N]`` integer classes; without it the items are unlabelled, ``y =
-1``). Splits are stratified by label with a fixed seed.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(root / "signals.npy", np.random.randn(50, 2, 100).astype("float32"))
    >>> np.save(root / "labels.npy", np.arange(50) % 2)
    >>> data = NpyFolder(str(root))
    >>> len(data.train), len(data.val), len(data.test), data.num_classes
    (36, 4, 10, 2)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from pydantic import Field
from selfsup import DataSplits
from torch.utils.data import TensorDataset

__all__ = ["NpyFolder", "describe_folder"]

_EXPECTED = "signals.npy [N, leads, samples] and, optionally, labels.npy [N]"


def _load(root: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    folder = Path(root)
    path = folder / "signals.npy"
    if not path.is_file():
        raise FileNotFoundError(
            f"ecg:npy-folder: {path} not found; the folder must hold {_EXPECTED} "
            "(set data.params.root)"
        )
    signals = np.load(path, allow_pickle=False)
    if signals.ndim == 2:
        signals = signals[:, None, :]
    if signals.ndim != 3:
        raise ValueError(f"ecg:npy-folder: {path} has shape {signals.shape}; expected {_EXPECTED}")
    labels = None
    if (folder / "labels.npy").is_file():
        labels = np.load(folder / "labels.npy", allow_pickle=False)
        if labels.shape != (len(signals),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"ecg:npy-folder: {folder / 'labels.npy'} must hold {len(signals)} integer "
                f"labels, got shape {labels.shape} and dtype {labels.dtype}"
            )
    return signals, labels


def _split(labels: np.ndarray, val: float, test: float, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_val, n_test = round(len(idx) * val), round(len(idx) * test)
        parts[1].append(idx[:n_val])
        parts[2].append(idx[n_val : n_val + n_test])
        parts[0].append(idx[n_val + n_test :])
    return [np.sort(np.concatenate(p)) for p in parts]


def NpyFolder(  # a factory named like the component it builds
    root: str,
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1,
    test_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2,
    split_seed: int = 0,
) -> DataSplits:
    """Load ``signals.npy`` (+ ``labels.npy``) from ``root`` into stratified splits.

    Args:
        root: The folder.
        val_fraction: Fraction of each class for validation.
        test_fraction: Fraction of each class for the test split.
        split_seed: Seed of the split (fixed across runs by default).

    Raises:
        FileNotFoundError: ``signals.npy`` is missing (the message names the path).
        ValueError: Bad shapes, label dtype or fractions.
    """
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"ecg:npy-folder: val_fraction + test_fraction must be < 1 and each >= 0, "
            f"got {val_fraction} and {test_fraction}"
        )
    signals, labels = _load(root)
    y = labels if labels is not None else np.full(len(signals), -1, dtype=np.int64)
    x = torch.from_numpy(np.ascontiguousarray(signals, dtype=np.float32))
    yt = torch.from_numpy(y.astype(np.int64))
    train, val, test = _split(y, val_fraction, test_fraction, split_seed)

    def subset(idx: np.ndarray) -> TensorDataset | None:
        return TensorDataset(x[idx], yt[idx]) if len(idx) else None

    return DataSplits(
        train=subset(train),
        val=subset(val),
        test=subset(test),
        num_classes=int(y.max()) + 1 if labels is not None else 0,
        modality="ecg",
        meta={"leads": int(x.shape[1]), "samples": int(x.shape[2]), "root": str(root)},
    )


def describe_folder(root: str) -> str:
    """One paragraph about a folder: shape, dtype and class counts (for ``ecg-info``)."""
    signals, labels = _load(root)
    text = f"{root}: {len(signals)} records, {signals.shape[1]} lead(s) x {signals.shape[2]} "
    text += f"samples ({signals.dtype})"
    if labels is None:
        return text + ", unlabelled"
    classes, counts = np.unique(labels, return_counts=True)
    shown = ", ".join(f"{c}: {n}" for c, n in zip(classes.tolist(), counts.tolist(), strict=True))
    return text + f", classes {{{shown}}}"
