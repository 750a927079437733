"""Streaming image datasets: each image is read and decoded when it is fetched.

:class:`StreamingImageDataset` holds only file paths (one fixed-width byte array, so
that forked DataLoader workers do not copy a list of Python objects page by page) and
labels; the DataLoader's workers decode and resize each item, the core's mini-batch
routine pins and prefetches the ``uint8`` batches and sends them to the device, where
the batched views run. Memory does not grow with the number of images beyond these
arrays (tens of bytes per image).

With ``decode="device"`` the training split yields the raw bytes of each JPEG instead;
:class:`JPEGBatch` (what :meth:`StreamingSplits.collate` builds) decodes the whole batch
where the routine sends it (nvJPEG, one call, on CUDA). Non-JPEG files are still
decoded in the workers.

An unreadable image raises an error naming the file (``on_error="raise"``), or is
replaced by the next readable image of the split and counted (``on_error="skip"``): a
shared per-image flag, so that :attr:`StreamingImageDataset.skipped` counts each bad
file once across all workers, and the batch size (which contrastive losses depend on)
never changes.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from selfsup.interfaces import DataSplits
from selfsup.runtime import Runtime
from torch import Tensor

from selfsup_vision.decode import Resize, decode_file, decode_jpeg_batch, is_jpeg

__all__ = ["EncodedJPEG", "JPEGBatch", "OnError", "StreamingImageDataset", "StreamingSplits"]

OnError = Literal["raise", "skip"]

SKIP_HINT = (
    "remove or replace the file (re-copy it from the source), or set "
    "data.params.on_error: skip to train on the readable images only"
)


@dataclass
class EncodedJPEG:
    """The undecoded bytes of one JPEG file (decoded later, on the device)."""

    data: Tensor
    path: str


class StreamingImageDataset(torch.utils.data.Dataset):
    """Image files decoded per item into ``(uint8 [C, H, W], label)`` pairs.

    Args:
        root: Folder the paths are relative to.
        files: Paths of the images, relative to ``root``.
        labels: One ``int64`` label per file (``-1``: unlabelled).
        channels: 1 (grayscale) or 3 (RGB).
        size: Output ``(height, width)``.
        resize: ``stretch`` or ``crop`` (see :mod:`selfsup_vision.decode`).
        on_error: ``raise`` or ``skip`` an unreadable image.
        encoded: Yield :class:`EncodedJPEG` for JPEG files (device decoding).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        files: Sequence[str],
        labels: Tensor,
        channels: int,
        size: tuple[int, int],
        resize: Resize = "stretch",
        on_error: OnError = "raise",
        encoded: bool = False,
    ) -> None:
        if len(files) != len(labels):
            raise ValueError(f"{len(files)} files but {len(labels)} labels")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error={on_error!r}; choose 'raise' or 'skip'")
        self.root = os.fspath(root)
        self.paths = np.array([os.fsencode(f) for f in files], dtype=np.bytes_)
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.channels = int(channels)
        self.size = (int(size[0]), int(size[1]))
        self.resize: Resize = resize
        self.on_error: OnError = on_error
        self.encoded = encoded
        self._bad = torch.zeros(len(files), dtype=torch.bool).share_memory_()

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def path(self, index: int) -> str:
        """The full path of item ``index``."""
        return os.path.join(self.root, os.fsdecode(self.paths[index]))

    @property
    def skipped(self) -> int:
        """How many distinct unreadable files were skipped (all workers together)."""
        return int(self._bad.sum())

    def _read(self, index: int) -> Tensor | EncodedJPEG:
        path = self.path(index)
        if self.encoded:
            try:
                with open(path, "rb") as fh:
                    raw = fh.read()
            except OSError as exc:
                raise ValueError(f"{path!r} cannot be read ({exc})") from exc
            if is_jpeg(raw):
                return EncodedJPEG(torch.frombuffer(bytearray(raw), dtype=torch.uint8), path)
        return decode_file(path, self.channels, self.size, self.resize)

    def __getitem__(self, index: int) -> tuple[Tensor | EncodedJPEG, Tensor]:
        index = int(index)
        try:
            return self._read(index), self.labels[index]
        except ValueError as exc:
            if self.on_error == "raise":
                raise ValueError(f"{exc}; {SKIP_HINT}") from exc
            self._mark_bad(index, exc)
        n = len(self)
        for step in range(1, n):
            other = (index + step) % n
            if self._bad[other]:
                continue
            try:
                return self._read(other), self.labels[other]
            except ValueError as exc:
                self._mark_bad(other, exc)
        raise ValueError(
            f"image folder {self.root!r}: none of the {n} images of this split is readable"
        )

    def _mark_bad(self, index: int, exc: Exception) -> None:
        if bool(self._bad[index]):
            return
        self._bad[index] = True
        warnings.warn(
            f"on_error=skip: skipped {exc} ({self.skipped} unreadable file(s) skipped so far; "
            "a readable image of the split is used in its place)",
            UserWarning,
            stacklevel=3,
        )

    def subset(self, indices: Tensor) -> StreamingImageDataset:
        """A new dataset of the items at ``indices`` (same settings)."""
        idx = torch.as_tensor(indices, dtype=torch.long).numpy()
        out = StreamingImageDataset.__new__(StreamingImageDataset)
        out.__dict__.update(self.__dict__)
        out.paths = self.paths[idx]
        out.labels = self.labels[torch.as_tensor(idx)]
        out._bad = self._bad[torch.as_tensor(idx)].clone().share_memory_()
        return out

    def with_labels(self, labels: Tensor) -> StreamingImageDataset:
        """The same files with other labels (``-1`` for unlabelled)."""
        out = self.subset(torch.arange(len(self)))
        out.labels = torch.as_tensor(labels, dtype=torch.long)
        return out

    def decoding(self, encoded: bool) -> StreamingImageDataset:
        """The same items, decoded in the workers (``False``) or on the device (``True``)."""
        out = self.subset(torch.arange(len(self)))
        out.encoded = encoded
        return out


class JPEGBatch:
    """A batch of images some of which are still JPEG bytes; ``.to(device)`` decodes.

    ``to(device)`` returns ``uint8 [B, C, H, W]`` on ``device``: the JPEGs decoded in one
    batched call there (nvJPEG on CUDA), the already-decoded images copied. A JPEG that
    torchvision cannot decode is decoded again with PIL on the CPU, which names the
    file; with ``on_error="skip"`` it is replaced by another image of the batch.
    """

    def __init__(
        self,
        items: list[Tensor | EncodedJPEG],
        channels: int,
        size: tuple[int, int],
        resize: Resize,
        on_error: OnError,
    ) -> None:
        self.items = items
        self.channels, self.size, self.resize, self.on_error = channels, size, resize, on_error

    def __len__(self) -> int:
        return len(self.items)

    def pin_memory(self) -> JPEGBatch:
        """Pin every byte and image tensor (the DataLoader calls this with pin_memory)."""
        pinned = [
            EncodedJPEG(x.data.pin_memory(), x.path)
            if isinstance(x, EncodedJPEG)
            else x.pin_memory()
            for x in self.items
        ]
        return JPEGBatch(pinned, self.channels, self.size, self.resize, self.on_error)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Tensor:
        """Decode on ``device`` and stack into ``uint8 [B, C, H, W]``."""
        device = torch.device(device)
        jpegs = [i for i, x in enumerate(self.items) if isinstance(x, EncodedJPEG)]
        out: list[Tensor | None] = [
            None if isinstance(x, EncodedJPEG) else x.to(device, non_blocking=non_blocking)
            for x in self.items
        ]
        data = [self.items[i].data for i in jpegs]  # type: ignore[union-attr]
        try:
            decoded = decode_jpeg_batch(data, self.channels, self.size, device, self.resize)
        except RuntimeError:
            decoded = [self._one(i, device) for i in jpegs]
        for i, img in zip(jpegs, decoded, strict=True):
            out[i] = img
        good = [x for x in out if x is not None]
        if not good:
            raise ValueError("no image of this batch could be decoded; " + SKIP_HINT)
        return torch.stack([x if x is not None else good[0] for x in out])

    def _one(self, i: int, device: torch.device) -> Tensor | None:
        item = self.items[i]
        assert isinstance(item, EncodedJPEG)
        try:
            return decode_jpeg_batch([item.data], self.channels, self.size, device, self.resize)[0]
        except RuntimeError:
            pass
        try:  # PIL reads some files nvJPEG refuses, and names the file when it cannot
            img = decode_file(item.path, self.channels, self.size, self.resize)
            return img.to(device)
        except ValueError as exc:
            if self.on_error == "raise":
                raise ValueError(f"{exc}; {SKIP_HINT}") from exc
            warnings.warn(f"on_error=skip: skipped {exc}", UserWarning, stacklevel=3)
            return None


@dataclass
class StreamingSplits(DataSplits):
    """:class:`DataSplits` of streaming image datasets.

    Attributes:
        workers: DataLoader workers that decode while :meth:`embed` embeds a split
            (evaluators embed every split; the routine's loader uses
            ``train.num_workers``).
    """

    workers: int = 0

    def collate(self, items: list[Any]) -> Any:
        """Stack ``(image, label)`` pairs; JPEG bytes become a :class:`JPEGBatch`."""
        if items and any(isinstance(x, EncodedJPEG) for x, _ in items):
            ds = self.train
            images = JPEGBatch([x for x, _ in items], ds.channels, ds.size, ds.resize, ds.on_error)
            return images, torch.stack([torch.as_tensor(y) for _, y in items])
        return torch.utils.data.default_collate(items)

    def embed_dataset(self, split: str) -> Any:
        """The split's dataset, decoded on the CPU by the loader's workers."""
        dataset = self.split(split)
        if isinstance(dataset, StreamingImageDataset) and dataset.encoded:
            dataset = dataset.decoding(False)
        return dataset

    def embed_loader_options(self, runtime: Runtime) -> dict[str, Any]:
        """``workers`` decoding processes, pinned memory on CUDA."""
        return {"num_workers": self.workers, "pin_memory": runtime.device.type == "cuda"}
