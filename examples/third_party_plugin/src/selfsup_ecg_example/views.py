"""Augmentations of multi-lead signals: random time shift, amplitude scaling, jitter.

Applied batched on the run's device (no per-item Python loop), returning ``n_views``
independently augmented copies of the batch; the input is never modified.

Example:
    >>> import torch
    >>> views = JitterScale(n_views=2)(torch.randn(8, 12, 500))
    >>> len(views), views[0].shape
    (2, torch.Size([8, 12, 500]))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import torch
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt
from torch import Tensor

if TYPE_CHECKING:
    from selfsup.interfaces import BatchMeta

__all__ = ["JitterScale"]


class JitterScale:
    """Two (or more) views by circular time shift, per-lead scaling and Gaussian jitter.

    Args:
        n_views: Number of views per batch.
        max_shift: Largest circular shift, as a fraction of the record length.
        scale: Range ``(low, high)`` of the per-record, per-lead amplitude factor.
        jitter: Standard deviation of the additive noise, relative to each lead's
            standard deviation.

    Raises:
        ValueError: Out-of-range settings.
    """

    def __init__(
        self,
        n_views: PositiveInt = 2,
        max_shift: Annotated[float, Field(ge=0, lt=1)] = 0.1,
        scale: tuple[PositiveFloat, PositiveFloat] = (0.8, 1.2),
        jitter: NonNegativeFloat = 0.05,
    ) -> None:
        if n_views < 1:
            raise ValueError(f"ecg:jitter-scale: n_views must be >= 1, got {n_views}")
        if not 0.0 <= max_shift < 1.0:
            raise ValueError(f"ecg:jitter-scale: max_shift must be in [0, 1), got {max_shift}")
        low, high = scale
        if not 0.0 < low <= high:
            raise ValueError(f"ecg:jitter-scale: scale must be 0 < low <= high, got {scale}")
        if jitter < 0:
            raise ValueError(f"ecg:jitter-scale: jitter must be >= 0, got {jitter}")
        self.n_views = n_views
        self.max_shift = max_shift
        self.scale = (float(low), float(high))
        self.jitter = jitter

    def _one(self, x: Tensor) -> Tensor:
        b, c, n = x.shape
        shift = int(self.max_shift * n)
        if shift > 0:
            offsets = torch.randint(-shift, shift + 1, (b, 1, 1), device=x.device)
            index = (torch.arange(n, device=x.device).view(1, 1, n) - offsets) % n
            x = torch.gather(x, 2, index.expand(b, c, n))
        low, high = self.scale
        factor = torch.empty(b, c, 1, device=x.device, dtype=x.dtype).uniform_(low, high)
        x = x * factor
        if self.jitter > 0:
            std = x.std(dim=-1, keepdim=True)
            x = x + self.jitter * std * torch.randn_like(x)
        return x

    def __call__(self, batch: Tensor, meta: BatchMeta | None = None) -> list[Tensor]:
        """Make ``n_views`` augmented views of ``batch`` (``[B, leads, samples]``).

        ``meta`` (the items' indices, labels and flags) is not used: every item is
        augmented the same way.
        """
        x = batch.unsqueeze(1) if batch.dim() == 2 else batch
        if x.dim() != 3:
            raise ValueError(
                f"ecg:jitter-scale expects [B, leads, samples] signals, got {tuple(batch.shape)}"
            )
        x = x.float()
        return [self._one(x) for _ in range(self.n_views)]
