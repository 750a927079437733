"""Map-style datasets of crops and tiles over whole volumes.

* :class:`VolumePairs`: whole ``(image [C, D, H, W], label [D, H, W])`` volumes from a
  dataset of MONAI dictionaries (what sliding-window inference runs on).
* :class:`RandomCrops`: ``length`` crops, each drawn by a MONAI random crop seeded by
  ``(seed, index)``, so item ``i`` is the same crop every time (a "few labelled
  crops" budget means the first ``k`` items) while different items differ.
* :class:`Tiles`: a fixed grid of ``roi`` tiles covering each volume (the last tile of
  an axis is moved back inside the volume; volumes smaller than ``roi`` are padded
  at the end with zeros, background for labels).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["RandomCrops", "Tiles", "VolumePairs", "tile_starts"]


class VolumePairs(torch.utils.data.Dataset):
    """Whole volumes as ``(image, label)`` (``label`` ``-1`` when unlabelled).

    Args:
        base: A dataset of dictionaries with ``"image"`` ``[C, D, H, W]`` and, if
            labelled, ``"label"`` ``[1, D, H, W]``.
        labelled: Whether the items have a ``"label"``.
    """

    def __init__(self, base: Any, labelled: bool = True) -> None:
        self.base = base
        self.labelled = labelled

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor | int]:
        item = self.base[index]
        image = torch.as_tensor(item["image"]).float().as_subclass(Tensor)
        if not self.labelled:
            return image, -1
        return image, torch.as_tensor(item["label"])[0].long().as_subclass(Tensor)


class RandomCrops(torch.utils.data.Dataset):
    """``length`` seeded random crops over the volumes of ``pairs`` (round robin).

    Args:
        pairs: Whole volumes (:class:`VolumePairs`).
        crop: A MONAI random dictionary transform (``Randomizable``) over
            ``{"image", "label"}`` or ``{"image"}``.
        length: Number of items.
        seed: Base seed; item ``i`` uses ``seed * 1_000_003 + i``.
    """

    def __init__(self, pairs: VolumePairs, crop: Callable[..., Any], length: int, seed: int = 0):
        if length < 1:
            raise ValueError(f"RandomCrops: length={length} must be >= 1")
        self.pairs = pairs
        self.crop = crop
        self.length = int(length)
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.length

    def _draw(
        self, index: int, image_of: Callable[[Tensor], Tensor]
    ) -> tuple[dict[str, Any], tuple[int, ...]]:
        """Crop ``index`` of ``image_of(volume image)`` (and the label) with its random state.

        Returns the cropped item and the volume's spatial shape.
        """
        if not 0 <= index < self.length:
            raise IndexError(f"crop index {index} out of range [0, {self.length})")
        image, label = self.pairs[index % len(self.pairs)]
        item: dict[str, Tensor] = {"image": image_of(image)}
        if isinstance(label, Tensor):
            item["label"] = label[None]
        self.crop.set_random_state(seed=(self.seed * 1_000_003 + index) % 2**32)  # type: ignore[attr-defined]
        out = self.crop(item)
        return (out[0] if isinstance(out, list) else out), tuple(image.shape[1:])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor | int]:
        out, _ = self._draw(index, lambda image: image)
        crop_image = torch.as_tensor(out["image"]).float().as_subclass(Tensor)
        if "label" not in out:
            return crop_image, -1
        return crop_image, torch.as_tensor(out["label"])[0].long().as_subclass(Tensor)

    def footprint(self, index: int) -> tuple[int, Tensor]:
        """Where crop ``index`` lies: ``(volume index, bool mask [D, H, W] of its voxels)``.

        The crop is drawn again with the same random state over the volume's voxel
        coordinates (1-based, so padding reads 0), so the mask is exactly the voxels
        that ``self[index]`` holds, whatever the crop transform. Used to keep a labelled
        crop's voxels out of a validation score over the same volume.
        """

        def coordinates(image: Tensor) -> Tensor:
            sides = (torch.arange(1, s + 1) for s in image.shape[1:])
            return torch.stack(torch.meshgrid(*sides, indexing="ij")).float()

        out, shape = self._draw(index, coordinates)
        coords = torch.as_tensor(out["image"]).as_subclass(Tensor).round().long().flatten(1)
        inside = (coords > 0).all(0)
        mask = torch.zeros(shape, dtype=torch.bool)
        mask[tuple(coords[:, inside] - 1)] = True
        return index % len(self.pairs), mask


def tile_starts(size: int, roi: int) -> list[int]:
    """Start positions of ``roi``-long tiles covering ``[0, size)`` (the last moved back)."""
    if size <= roi:
        return [0]
    count = math.ceil(size / roi)
    starts = [i * roi for i in range(count)]
    starts[-1] = size - roi
    return starts


class Tiles(torch.utils.data.Dataset):
    """A fixed grid of ``roi`` tiles over every volume of ``pairs``.

    Args:
        pairs: Whole volumes (:class:`VolumePairs`).
        roi: Tile shape ``(d, h, w)``.
    """

    def __init__(self, pairs: VolumePairs, roi: Sequence[int]) -> None:
        self.pairs = pairs
        self.roi = tuple(int(r) for r in roi)
        self.index: list[tuple[int, tuple[int, int, int]]] = []
        for v in range(len(pairs)):
            shape = pairs[v][0].shape[1:]
            grids = [tile_starts(int(s), r) for s, r in zip(shape, self.roi, strict=True)]
            for a in grids[0]:
                for b in grids[1]:
                    for c in grids[2]:
                        self.index.append((v, (a, b, c)))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor | int]:
        volume, (a, b, c) = self.index[index]
        image, label = self.pairs[volume]
        d, h, w = self.roi
        image = _pad_to(image[:, a : a + d, b : b + h, c : c + w], self.roi)
        if not isinstance(label, Tensor):
            return image, -1
        return image, _pad_to(label[None, a : a + d, b : b + h, c : c + w], self.roi)[0]


def _pad_to(x: Tensor, roi: tuple[int, ...]) -> Tensor:
    pad: list[int] = []
    for size, want in zip(reversed(x.shape[1:]), reversed(roi), strict=True):
        pad += [0, max(0, want - int(size))]
    return F.pad(x, pad) if any(pad) else x
