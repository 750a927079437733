"""Batched 3-D views: random resized crops, flips, 90-degree rotations, intensity jitter."""

from __future__ import annotations

from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field
from selfsup.interfaces import BatchMeta
from torch import Tensor

__all__ = ["VolumeCrops"]


class VolumeCrops:
    """``num_views`` random views of a batch of volumes ``[B, C, D, H, W]``.

    Per item and view: a random box with sides a ``[min_scale, 1]`` fraction of the
    volume's, resized (trilinear) to ``size``; random flips of each axis; a random
    90-degree rotation in a random plane of equal sides; intensity scaled by
    ``1 + U(-s, s)``, shifted by ``U(-t, t)`` and Gaussian noise added. Runs on the
    batch's device; the input is not modified.

    Args:
        size: Output side (or ``(d, h, w)``); default the input's shape. Must suit the
            encoder (a multiple of its ``size_multiple``).
        num_views: Views returned (2 for contrastive objectives).
        min_scale: Smallest crop side as a fraction of the volume's side (1: no crop).
        flip_prob: Probability of flipping each axis.
        rot90_prob: Probability of a 90-degree rotation.
        intensity_scale: ``s`` above.
        intensity_shift: ``t`` above.
        noise_std: Standard deviation of the added noise.
        seed: Seed of the view generator (``None``: torch's global generator).
    """

    def __init__(
        self,
        size: int | tuple[int, int, int] | None = None,
        num_views: Annotated[int, Field(ge=1)] = 2,
        min_scale: Annotated[float, Field(gt=0, le=1)] = 0.6,
        flip_prob: Annotated[float, Field(ge=0, le=1)] = 0.5,
        rot90_prob: Annotated[float, Field(ge=0, le=1)] = 0.5,
        intensity_scale: float = 0.1,
        intensity_shift: float = 0.1,
        noise_std: float = 0.02,
        seed: int | None = None,
    ) -> None:
        if num_views < 1:
            raise ValueError(f"VolumeCrops: num_views={num_views} must be >= 1")
        if not 0 < min_scale <= 1:
            raise ValueError(f"VolumeCrops: min_scale={min_scale} must be in (0, 1]")
        for name, p in (("flip_prob", flip_prob), ("rot90_prob", rot90_prob)):
            if not 0 <= p <= 1:
                raise ValueError(f"VolumeCrops: {name}={p} must be in [0, 1]")
        if min(intensity_scale, intensity_shift, noise_std) < 0:
            raise ValueError(
                "VolumeCrops: intensity_scale, intensity_shift, noise_std must be >= 0"
            )
        if isinstance(size, int):
            size = (size, size, size)
        self.size = None if size is None else tuple(int(s) for s in size)
        self.num_views = num_views
        self.min_scale = min_scale
        self.flip_prob = flip_prob
        self.rot90_prob = rot90_prob
        self.intensity_scale = intensity_scale
        self.intensity_shift = intensity_shift
        self.noise_std = noise_std
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def _rand(self, *shape: int) -> Tensor:
        return torch.rand(*shape, generator=self.generator)

    def _crop(self, item: Tensor, size: tuple[int, ...]) -> Tensor:
        spatial = item.shape[1:]
        scale = self.min_scale + (1 - self.min_scale) * float(self._rand(1))
        box = [max(1, round(s * scale)) for s in spatial]
        starts = [int(self._rand(1) * (s - b + 1)) for s, b in zip(spatial, box, strict=True)]
        out = item[
            :,
            starts[0] : starts[0] + box[0],
            starts[1] : starts[1] + box[1],
            starts[2] : starts[2] + box[2],
        ]
        if tuple(out.shape[1:]) != size:
            out = F.interpolate(out[None], size=size, mode="trilinear", align_corners=False)[0]
        return out

    def _geometry(self, item: Tensor) -> Tensor:
        flips = [d + 1 for d in range(3) if float(self._rand(1)) < self.flip_prob]
        if flips:
            item = item.flip(flips)
        if float(self._rand(1)) < self.rot90_prob:
            planes = [(a, b) for a, b in ((1, 2), (1, 3), (2, 3)) if item.shape[a] == item.shape[b]]
            if planes:
                plane = planes[int(self._rand(1) * len(planes)) % len(planes)]
                k = 1 + int(self._rand(1) * 3) % 3
                item = torch.rot90(item, k, dims=plane)
        return item

    def view(self, x: Tensor) -> Tensor:
        """One view of ``x`` ``[B, C, D, H, W]``."""
        size = self.size or tuple(int(s) for s in x.shape[2:])
        out = torch.stack([self._geometry(self._crop(item, size)) for item in x])
        b = x.shape[0]
        shape = (b, 1, 1, 1, 1)
        scale = 1 + (self._rand(*shape) * 2 - 1) * self.intensity_scale
        shift = (self._rand(*shape) * 2 - 1) * self.intensity_shift
        out = out * scale.to(out) + shift.to(out)
        if self.noise_std > 0:
            noise = torch.randn(out.shape, generator=self.generator) * self.noise_std
            out = out + noise.to(out)
        return out.contiguous()

    def __call__(self, batch: Any, meta: BatchMeta | None = None) -> list[Tensor]:
        """``num_views`` views of ``batch`` (a tensor, or the ``x`` of an ``(x, y)`` pair)."""
        x = batch[0] if isinstance(batch, tuple | list) else batch
        if not isinstance(x, Tensor) or x.dim() != 5:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"medical:crops expects volumes [B, C, D, H, W], got {shape}; use a volume "
                "dataset (medical:colin27-aal, medical:nifti-folder)"
            )
        x = x if x.is_floating_point() else x.float()
        return [self.view(x) for _ in range(self.num_views)]
