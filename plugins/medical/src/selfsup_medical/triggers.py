"""A 3-D backdoor trigger: ``medical:patch3d``, a small cube of a fixed intensity pattern.

A component of the ``trigger`` kind that the security plugin opens (``security:poison``
stamps it on target-class volumes of the pretraining split, ``security:backdoor`` on
held-out ones), the volumetric analogue of SSL-Backdoor's image patch (Saha et al.,
CVPR 2022). It follows the security plugin's duck-typed protocol without importing it:

``modality = "volume"``; ``apply(data, split, index, seed) -> DataSplits`` (new splits
in which items ``index`` of ``split`` carry the trigger and keep their labels; ``data``
is never changed); ``describe() -> dict`` (plain-data parameters for the threat model).

The cube is ``size`` voxels on a side, in every channel of items ``(x [C, D, H, W], y)``
(``y`` may be a class or a label map: it is kept as is). Its pattern is fixed:
``checkerboard`` (alternating voxels at the ``high`` and ``low`` percentiles of the
item's own intensities, so it stands out at any intensity scale), ``constant`` (the
``high`` percentile) or ``random`` (a fixed binary pattern drawn with ``pattern_seed``,
between the two levels). The position is ``random`` (seeded per item: it depends only on
``seed`` and the item's position in the split, as SSL-Backdoor's per-image placement),
``center`` or the ``corner`` at the origin. Stamping happens when an item is read.

Example:
    >>> import torch
    >>> from selfsup import DataSplits
    >>> items = [(torch.zeros(1, 8, 8, 8), 0), (torch.rand(1, 8, 8, 8), 1)]
    >>> data = DataSplits(train=items, num_classes=2, modality="volume")
    >>> out = Patch3D(size=2, position="corner").apply(data, "train", torch.tensor([1]), seed=0)
    >>> x, y = out.train[1]
    >>> y, tuple(x.shape), bool((x != items[1][0]).any()), float(out.train[0][0].abs().max())
    (1, (1, 8, 8, 8), True, 0.0)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from selfsup import DataSplits
from selfsup.interfaces import StampedItems
from torch import Tensor

__all__ = ["Patch3D"]

_ID = "medical:patch3d"
_PATTERNS = ("checkerboard", "constant", "random")
_POSITIONS = ("random", "center", "corner")


class Patch3D:
    """A ``size``-voxel cube of a fixed pattern pasted into each chosen volume.

    Args:
        size: Side of the cube in voxels (at most the volume's shortest side).
        pattern: ``checkerboard``, ``constant`` or ``random`` (see the module docstring).
        position: ``random`` (seeded per item), ``center`` or ``corner`` (the origin).
        high: Percentile (0-100) of the item's intensities used as the bright level.
        low: Percentile used as the dark level (``checkerboard`` and ``random``).
        pattern_seed: Seed of the ``random`` pattern (the same pattern for every item).
    """

    modality = "volume"

    def __init__(
        self,
        size: Annotated[int, Field(ge=1)] = 4,
        pattern: Literal["checkerboard", "constant", "random"] = "checkerboard",
        position: Literal["random", "center", "corner"] = "random",
        high: Annotated[float, Field(ge=0, le=100)] = 99.5,
        low: Annotated[float, Field(ge=0, le=100)] = 0.5,
        pattern_seed: Annotated[int, Field(ge=0)] = 0,
    ) -> None:
        if isinstance(size, bool) or int(size) < 1:
            raise ValueError(f"{_ID}: size={size!r} must be an integer >= 1 (voxels)")
        if pattern not in _PATTERNS:
            raise ValueError(f"{_ID}: pattern={pattern!r}; choose one of {_PATTERNS}")
        if position not in _POSITIONS:
            raise ValueError(f"{_ID}: position={position!r}; choose one of {_POSITIONS}")
        if not (0 <= low <= 100 and 0 <= high <= 100 and low <= high):
            raise ValueError(
                f"{_ID}: low={low}, high={high} must be percentiles with 0 <= low <= high <= 100"
            )
        self.size = int(size)
        self.pattern = pattern
        self.position = position
        self.high = float(high)
        self.low = float(low)
        self.pattern_seed = int(pattern_seed)

    def describe(self) -> dict[str, Any]:
        """Plain-data parameters, for the threat model record."""
        return {
            "size": self.size,
            "pattern": self.pattern,
            "position": self.position,
            "high_percentile": self.high,
            "low_percentile": self.low,
            "pattern_seed": self.pattern_seed,
            "levels": "percentiles of each item's own intensities",
        }

    def pattern_mask(self) -> Tensor:
        """The cube's binary pattern ``[s, s, s]`` (1 = ``high``, 0 = ``low``)."""
        s = self.size
        if self.pattern == "constant":
            return torch.ones(s, s, s)
        if self.pattern == "checkerboard":
            r = torch.arange(s)
            return ((r[:, None, None] + r[None, :, None] + r[None, None, :]) % 2 == 0).float()
        gen = torch.Generator().manual_seed(self.pattern_seed)
        return torch.randint(0, 2, (s, s, s), generator=gen).float()

    def _check(self, x: Tensor) -> tuple[int, int, int]:
        if x.ndim != 4:
            raise ValueError(
                f"{_ID} takes volumes [C, D, H, W] per item, got shape {tuple(x.shape)}; "
                "for 2-D images use an image trigger (selfsup list trigger --modality image)"
            )
        d, h, w = (int(v) for v in x.shape[1:])
        if self.size > min(d, h, w):
            raise ValueError(
                f"{_ID}: size={self.size} is larger than the volume ({d}x{h}x{w} voxels); "
                f"set size <= {min(d, h, w)}"
            )
        return d, h, w

    def _corner(self, shape: tuple[int, int, int], generator: torch.Generator) -> list[int]:
        s = self.size
        if self.position == "corner":
            return [0, 0, 0]
        if self.position == "center":
            return [(n - s) // 2 for n in shape]
        return [int(torch.randint(0, n - s + 1, (1,), generator=generator)) for n in shape]

    def stamp(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """A copy of one volume ``x [C, D, H, W]`` with the cube pasted (dtype kept)."""
        shape = self._check(x)
        flat = x.detach().float().reshape(-1)
        levels = torch.quantile(flat, torch.tensor([self.low / 100, self.high / 100]))
        lo, hi = float(levels[0]), float(levels[1])
        cube = lo + (hi - lo) * self.pattern_mask()
        a, b, c = self._corner(shape, generator)
        s = self.size
        out = x.clone()
        out[:, a : a + s, b : b + s, c : c + s] = cube.to(dtype=x.dtype, device=x.device)
        return out

    def apply(self, data: DataSplits, split: str, index: Tensor, seed: int) -> DataSplits:
        """Stamp items ``index`` of ``split``; their labels are kept, ``data`` is unchanged.

        Raises:
            ValueError: The data is a graph, or its items are not 3-D volumes (named).
        """
        if hasattr(data.train, "edge_index"):
            raise ValueError(
                f"{_ID} is a volume trigger and the dataset is a graph; use a graph trigger "
                "(selfsup list trigger --modality graph)"
            )
        index = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        items = data.split(split)
        if len(index) == 0:
            return data
        bad = index[(index < 0) | (index >= len(items))]
        if len(bad):
            raise IndexError(
                f"{_ID}: items {bad.tolist()[:5]} are out of range for split {split!r} "
                f"({len(items)} items)"
            )
        self._check(torch.as_tensor(items[int(index[0])][0]))  # fail now, not at read time
        return data.replace(**{split: StampedItems(items, index, self.stamp, seed)})
