"""STL-10 from its binary files on the user's disk (memory-mapped, never downloaded).

``stl10_binary/`` holds ``{train,test}_X.bin`` (``uint8``, each 96x96 RGB image as
three column-major planes), ``{train,test}_y.bin`` (labels 1-10), ``unlabeled_X.bin``
(100000 images, 2.7 GB), ``class_names.txt`` and ``fold_indices.txt`` (the 10
predefined folds of 1000 training images). The image files are memory-mapped: an item
is read when it is fetched, so even the unlabelled set costs no memory up front.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field, NonNegativeInt, PositiveInt
from selfsup.interfaces import DataSplits
from torch import Tensor

from selfsup_vision.datasets import resize_uint8, split_indices

__all__ = ["MemmapImageDataset", "stl10"]

SIDE = 96
_BYTES = 3 * SIDE * SIDE
_FIX = (
    "extract the official binary archive (stl10_binary.tar.gz from "
    "https://cs.stanford.edu/~acoates/stl10/) again and point data.params.root at the "
    "stl10_binary folder (or the folder holding it)"
)


class MemmapImageDataset(torch.utils.data.Dataset):
    """STL-10 images read from a memory-mapped ``.bin`` file per item.

    Args:
        path: The ``*_X.bin`` file.
        labels: ``int64 [N]`` labels (``-1``: unlabelled).
        index: Which images of the file this dataset holds (``None``: all).
        size: Resize each image to ``size x size``; ``None`` keeps 96.
    """

    def __init__(
        self, path: Path, labels: Tensor, index: Tensor | None = None, size: int | None = None
    ) -> None:
        self.path = Path(path)
        self.count = _image_count(self.path)
        self.index = torch.arange(self.count) if index is None else torch.as_tensor(index)
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        if len(self.labels) != len(self.index):
            raise ValueError(f"{len(self.labels)} labels for {len(self.index)} images")
        self.size = size
        self._map: np.memmap | None = None

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_map": None}  # workers map the file themselves

    def _images(self) -> np.memmap:
        if self._map is None:
            self._map = np.memmap(
                self.path, dtype=np.uint8, mode="r", shape=(self.count, 3, SIDE, SIDE)
            )
        return self._map

    def _get(self, rows: Sequence[int]) -> Tensor:
        raw = np.asarray(self._images()[np.asarray(rows)])
        images = torch.from_numpy(raw.transpose(0, 1, 3, 2).copy())  # column-major planes
        return resize_uint8(images, self.size)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self._get([int(self.index[i])])[0], self.labels[i]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Tensor, Tensor]]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        images = self._get(self.index[idx].tolist())
        return list(zip(images.unbind(0), self.labels[idx].unbind(0), strict=True))

    def subset(self, indices: Tensor) -> MemmapImageDataset:
        """A new dataset of the items at ``indices``."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return MemmapImageDataset(self.path, self.labels[idx], self.index[idx], self.size)


def _image_count(path: Path) -> int:
    size = path.stat().st_size
    if size == 0 or size % _BYTES:
        raise ValueError(
            f"{path}: {size} bytes is not a whole number of 96x96x3 images ({_BYTES} bytes "
            f"each); the file is truncated or not an STL-10 image file; {_FIX}"
        )
    return size // _BYTES


def _labels(path: Path, count: int) -> Tensor:
    raw = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if len(raw) != count:
        raise ValueError(
            f"{path}: {len(raw)} labels for {count} images in the matching _X.bin file; the "
            f"files do not belong together or one is truncated; {_FIX}"
        )
    bad = np.flatnonzero((raw < 1) | (raw > 10))
    if bad.size:
        raise ValueError(
            f"{path}: label {int(raw[bad[0]])} at index {int(bad[0])} is not 1-10; {_FIX}"
        )
    return torch.from_numpy(raw - 1)


def _folds(path: Path, fold: int, count: int) -> Tensor:
    lines = path.read_text(encoding="ascii").splitlines()
    if len(lines) < 10:
        raise ValueError(f"{path}: {len(lines)} lines, expected 10 folds; {_FIX}")
    try:
        idx = torch.tensor([int(t) for t in lines[fold].split()], dtype=torch.long)
    except ValueError as exc:
        raise ValueError(f"{path}: line {fold + 1} is not a list of integers; {_FIX}") from exc
    if idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= count:
        raise ValueError(f"{path}: fold {fold} indexes outside the {count} train images; {_FIX}")
    return idx


def stl10(
    root: str,
    fold: Annotated[int, Field(ge=0, le=9)] | None = None,
    unlabeled: bool = False,
    val_size: NonNegativeInt = 500,
    size: PositiveInt | None = None,
    split_seed: int = 0,
) -> DataSplits:
    """STL-10 (5000 labelled train, 8000 test, 100000 unlabelled 96x96 RGB images).

    Args:
        root: ``stl10_binary`` or the folder holding it.
        fold: Train on one of the 10 predefined folds of 1000 images (the STL-10
            protocol); ``None``: all 5000 training images.
        unlabeled: Pretrain on the 100000 unlabelled images instead (``y = -1``,
            ``num_classes = 0``; label-free evaluators only).
        val_size: Training images carved (stratified, seeded) for validation.
        size: Resize to ``size x size`` when an item is fetched; ``None`` keeps 96.
        split_seed: Seed of the validation carving.

    Raises:
        FileNotFoundError: A file is missing (named, with the fix).
        ValueError: A file is truncated or its labels are out of range (named).
    """
    base = Path(root).expanduser()
    folder = base / "stl10_binary" if (base / "stl10_binary").is_dir() else base
    need = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "class_names.txt"]
    need += ["unlabeled_X.bin"] if unlabeled else []
    need += ["fold_indices.txt"] if fold is not None else []
    missing = [f for f in need if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"STL-10 not found in {str(folder)!r}: missing {', '.join(missing)}; {_FIX}. "
            "Nothing is downloaded."
        )
    names = [n.strip() for n in (folder / "class_names.txt").read_text().splitlines() if n.strip()]
    if len(names) != 10:
        raise ValueError(f"{folder / 'class_names.txt'}: {len(names)} names, expected 10; {_FIX}")
    meta: dict[str, Any] = {"root": str(folder), "channels": 3}
    if unlabeled:
        path = folder / "unlabeled_X.bin"
        train = MemmapImageDataset(path, torch.full((_image_count(path),), -1), size=size)
        meta["class_names"] = []
        return DataSplits(train=train, num_classes=0, modality="image", meta=meta)
    train_x = folder / "train_X.bin"
    train = MemmapImageDataset(
        train_x, _labels(folder / "train_y.bin", _image_count(train_x)), size=size
    )
    test_x = folder / "test_X.bin"
    test = MemmapImageDataset(
        test_x, _labels(folder / "test_y.bin", _image_count(test_x)), size=size
    )
    if fold is not None:
        train = train.subset(_folds(folder / "fold_indices.txt", fold, len(train)))
    if not 0 <= val_size < len(train):
        raise ValueError(f"val_size={val_size!r} must be in [0, {len(train)})")
    val = None
    if val_size:
        tr, va = split_indices(train.labels, [0.0, val_size / len(train)], split_seed)
        train, val = train.subset(tr), train.subset(va)
    meta["class_names"] = names
    return DataSplits(train=train, val=val, test=test, num_classes=10, modality="image", meta=meta)
