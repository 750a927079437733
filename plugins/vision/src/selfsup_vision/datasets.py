"""Image datasets from local files: scikit-learn digits, Fashion-MNIST, image folders.

Every dataset returns :class:`selfsup.interfaces.DataSplits` whose splits yield
``(uint8 [C, H, W] image, int64 label)`` pairs (converted to float on the device by the
views and encoders). The in-memory ones are :class:`ImageTensorDataset` objects; large
collections stream from disk (:mod:`selfsup_vision.streaming`, :mod:`selfsup_vision.stl10`).
Nothing is downloaded.
"""

from __future__ import annotations

import functools
import gzip
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeInt, PositiveInt
from selfsup.interfaces import DataSplits
from torch import Tensor

__all__ = ["ImageTensorDataset", "digits", "fashion_mnist", "split_indices"]

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


class ImageTensorDataset(torch.utils.data.Dataset):
    """Images ``uint8 [N, C, H, W]`` and labels ``int64 [N]`` as ``(image, label)`` items.

    Also implements ``__getitems__`` so that a DataLoader fetches a batch with one
    indexing operation instead of one Python call per image.
    """

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.ndim != 4 or images.dtype != torch.uint8:
            raise ValueError(
                f"images must be uint8 [N, C, H, W], got {images.dtype} {tuple(images.shape)}"
            )
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels {tuple(labels.shape)} do not match {images.shape[0]} images")
        self.images = images.contiguous()
        self.labels = labels.long()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Tensor, Tensor]]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return list(zip(self.images[idx].unbind(0), self.labels[idx].unbind(0), strict=True))

    def subset(self, indices: Tensor) -> ImageTensorDataset:
        """A new dataset with the items at ``indices``."""
        return ImageTensorDataset(self.images[indices], self.labels[indices])


def split_indices(labels: Tensor, fractions: Sequence[float], seed: int) -> list[Tensor]:
    """Seeded stratified split of indices into parts of the given ``fractions``.

    The first part takes what is left after the others (``fractions[0]`` is ignored).

    Returns:
        One sorted ``int64`` index tensor per fraction.
    """
    gen = torch.Generator().manual_seed(int(seed))
    parts: list[list[Tensor]] = [[] for _ in fractions]
    for cls in torch.unique(labels):
        idx = torch.nonzero(labels == cls).view(-1)
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        start = 0
        for i, frac in list(enumerate(fractions))[1:]:
            k = round(frac * idx.numel())
            parts[i].append(idx[start : start + k])
            start += k
        parts[0].append(idx[start:])
    return [torch.cat(p).sort().values for p in parts]


def resize_uint8(images: Tensor, size: int | Sequence[int] | None) -> Tensor:
    """Resize ``uint8 [N, C, H, W]`` images (bilinear, antialiased), in chunks."""
    if size is None:
        return images
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) == hw:
        return images
    out = []
    for chunk in images.split(4096):
        y = F.interpolate(chunk.float(), size=hw, mode="bilinear", antialias=True)
        out.append(y.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def _take(ds: ImageTensorDataset, n: int | None, seed: int, name: str) -> ImageTensorDataset:
    if n is None or n >= len(ds):
        return ds
    if n < 1:
        raise ValueError(f"{name}={n!r} must be a positive number of items")
    frac = n / len(ds)
    _, part = split_indices(ds.labels, [1 - frac, frac], seed)
    return ds.subset(part)


def digits(
    size: PositiveInt | None = 16,
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.15,
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.25,
    split_seed: int = 0,
) -> DataSplits:
    """scikit-learn's real handwritten digits (1797 8x8 images, 10 classes).

    Args:
        size: Side in pixels the 8x8 images are upsampled to (bilinear); ``None`` or 8
            keeps 8x8.
        val_fraction: Fraction of each class for validation.
        test_fraction: Fraction of each class for test.
        split_seed: Seed of the stratified split (fixed across run seeds by default,
            so that every run is scored on the same test images).
    """
    from sklearn.datasets import load_digits

    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError("val_fraction and test_fraction must be in (0, 1) and sum below 1")
    raw = load_digits()
    pixels = np.asarray(raw.images, dtype=np.float32) * (255.0 / 16.0)
    images = torch.from_numpy(pixels).round().clamp(0, 255).to(torch.uint8).unsqueeze(1)
    images = resize_uint8(images, size)
    labels = torch.as_tensor(raw.target, dtype=torch.long)
    tr, va, te = split_indices(labels, [0.0, val_fraction, test_fraction], split_seed)
    full = ImageTensorDataset(images, labels)
    return DataSplits(
        train=full.subset(tr), val=full.subset(va), test=full.subset(te), num_classes=10,
        modality="image", meta={"class_names": [str(i) for i in range(10)], "channels": 1},
    )  # fmt: skip


#: The fix named by every error about a damaged Fashion-MNIST file.
FASHION_MNIST_FIX = (
    "reinstall the files ('apt-get install --reinstall dataset-fashion-mnist') or copy "
    "them again from the Fashion-MNIST release, then point data.params.root at them"
)


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """A gzip-compressed idx file (magic 2051: images ``[N, H, W]``; 2049: labels ``[N]``).

    Raises:
        ValueError: The file is not gzip, is truncated, or its header does not match its
            size (names the file and the fix).
    """
    try:
        with gzip.open(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(
            f"{path}: cannot read this gzip-compressed idx file, it is truncated or corrupt "
            f"({exc}); {FASHION_MNIST_FIX}"
        ) from exc
    header = 16 if magic == 2051 else 8
    if len(data) < header:
        raise ValueError(
            f"{path}: {len(data)} bytes, too short for an idx header ({header} bytes), the "
            f"file is truncated or corrupt; {FASHION_MNIST_FIX}"
        )
    got, count = struct.unpack(">II", data[:8])
    if got != magic:
        raise ValueError(
            f"{path}: not an idx file of this kind (magic {got}, expected {magic}); "
            f"{FASHION_MNIST_FIX}"
        )
    dims = [count]
    if magic == 2051:
        dims += list(struct.unpack(">II", data[8:16]))
    arr = np.frombuffer(data, dtype=np.uint8, offset=header)
    if arr.size != int(np.prod(dims)):
        raise ValueError(
            f"{path}: the header promises {dims} (expected {int(np.prod(dims))} values, found "
            f"{arr.size}), the file is truncated or corrupt; {FASHION_MNIST_FIX}"
        )
    return arr.reshape(dims)


def _check_fashion(root: Path, arrays: dict[str, np.ndarray]) -> None:
    """Images and labels of each split agree in count; labels are 0-9."""
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        label_file = root / FASHION_MNIST_FILES[f"{split}_labels"]
        if len(images) != len(labels):
            image_file = FASHION_MNIST_FILES[f"{split}_images"]
            raise ValueError(
                f"{label_file}: {len(labels)} labels but {image_file} holds {len(images)} "
                f"images; the files do not belong together; {FASHION_MNIST_FIX}"
            )
        bad = np.flatnonzero(labels >= len(FASHION_MNIST_CLASSES))
        if bad.size:
            raise ValueError(
                f"{label_file}: label {int(labels[bad[0]])} at index {int(bad[0])} (and "
                f"{bad.size - 1} more) is not a Fashion-MNIST class (0-9); {FASHION_MNIST_FIX}"
            )


@functools.lru_cache(maxsize=2)
def _fashion_arrays(folder: str) -> dict[str, np.ndarray]:
    """The four decoded idx files (cached: decoding 60k images takes a second)."""
    root = Path(folder)
    arrays = {
        k: _read_idx(root / f, 2051 if k.endswith("images") else 2049)
        for k, f in FASHION_MNIST_FILES.items()
    }
    _check_fashion(root, arrays)
    return arrays


def _resized(ds: ImageTensorDataset, size: int) -> ImageTensorDataset:
    return ImageTensorDataset(resize_uint8(ds.images, size), ds.labels)


def fashion_mnist(
    root: str | None = None,
    val_size: NonNegativeInt = 5000,
    train_size: PositiveInt | None = None,
    test_size: PositiveInt | None = None,
    size: PositiveInt | None = None,
    split_seed: int = 0,
) -> DataSplits:
    """Fashion-MNIST (60000 + 10000 28x28 grayscale images, 10 classes) from idx files.

    Reads ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` from ``root`` (default:
    ``$SELFSUP_FASHION_MNIST`` or ``/usr/share/datasets/fashion-mnist``, what the
    Debian package ``dataset-fashion-mnist`` installs). The validation split is a
    seeded stratified part of the official training set; test is the official test set.

    Args:
        root: Folder holding the four ``.gz`` files.
        val_size: Images carved from the training set for validation.
        train_size: Keep only this many (stratified) training images, for quick tests.
        test_size: Keep only this many (stratified) test images.
        size: Resize images to ``size x size`` (e.g. 32); ``None`` keeps 28.
        split_seed: Seed of the validation carving and of the subsets.

    Raises:
        FileNotFoundError: A file is missing (names the folder and the expected files).
        ValueError: A file is truncated or corrupt, or images and labels disagree (names
            the file and the fix).
    """
    folder = Path(root or os.environ.get("SELFSUP_FASHION_MNIST") or FASHION_MNIST_ROOT)
    missing = [f for f in FASHION_MNIST_FILES.values() if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {str(folder)!r}: missing {', '.join(missing)}. "
            f"Expected files: {', '.join(FASHION_MNIST_FILES.values())}. Install them with "
            "'apt-get install dataset-fashion-mnist' or set data.params.root to a folder "
            "that holds them."
        )
    arrays = _fashion_arrays(str(folder.resolve()))
    train = ImageTensorDataset(
        torch.from_numpy(arrays["train_images"].copy()).unsqueeze(1),
        torch.from_numpy(arrays["train_labels"].astype(np.int64)),
    )
    test = ImageTensorDataset(
        torch.from_numpy(arrays["test_images"].copy()).unsqueeze(1),
        torch.from_numpy(arrays["test_labels"].astype(np.int64)),
    )
    if not 0 <= val_size < len(train):
        raise ValueError(f"val_size={val_size!r} must be in [0, {len(train)})")
    val = None
    if val_size:
        tr, va = split_indices(train.labels, [0.0, val_size / len(train)], split_seed)
        train, val = train.subset(tr), train.subset(va)
    train = _take(train, train_size, split_seed, "train_size")
    test = _take(test, test_size, split_seed + 1, "test_size")
    if size is not None:
        train, test = _resized(train, size), _resized(test, size)
        val = _resized(val, size) if val is not None else None
    return DataSplits(
        train=train, val=val, test=test, num_classes=10, modality="image",
        meta={"class_names": list(FASHION_MNIST_CLASSES), "channels": 1, "root": str(folder)},
    )  # fmt: skip
