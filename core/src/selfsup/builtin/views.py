"""Modality-free view makers: the identity, and SCARF-like feature corruption.

``core:noise-mask`` corrupts fixed-size items feature by feature, as SCARF (Bahri et
al., 2022) does for tabular data: each feature of each item is masked with
probability ``mask_prob`` and replaced by the same feature of another item of the
batch (a draw from its empirical marginal) or by zero, then Gaussian noise is added.
It works on any ``[B, ...]`` tensor (tabular rows, flattened images, embeddings).

Example:
    >>> import torch
    >>> views = NoiseMask(n_views=2, mask_prob=0.3)(torch.randn(16, 10))
    >>> len(views), views[0].shape
    (2, torch.Size([16, 10]))
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from pydantic import Field, NonNegativeFloat, PositiveInt
from torch import Tensor

from selfsup.interfaces import BatchMeta

__all__ = ["Identity", "NoiseMask"]


class Identity:
    """The batch itself as the only view (for objectives that mask internally)."""

    def __call__(self, batch: Any, meta: BatchMeta | None = None) -> list[Any]:
        """Return ``[batch]`` (``meta`` is not used)."""
        return [batch]


class NoiseMask:
    """Per-item random feature masking plus Gaussian noise, ``n_views`` times.

    Args:
        n_views: How many corrupted views of each batch to make.
        mask_prob: Probability that a feature of an item is replaced.
        replace: ``"shuffle"`` (the feature's value in a random other item of the
            batch) or ``"zero"``.
        noise_std: Standard deviation of the additive Gaussian noise (0 for none).

    Raises:
        ValueError: Out-of-range settings or an unknown ``replace``.
    """

    def __init__(
        self,
        n_views: PositiveInt = 2,
        mask_prob: Annotated[float, Field(ge=0, le=1)] = 0.3,
        replace: Literal["shuffle", "zero"] = "shuffle",
        noise_std: NonNegativeFloat = 0.1,
    ) -> None:
        if n_views < 1:
            raise ValueError(f"core:noise-mask: n_views must be >= 1, got {n_views}")
        if not 0.0 <= mask_prob <= 1.0:
            raise ValueError(f"core:noise-mask: mask_prob must be in [0, 1], got {mask_prob}")
        if replace not in ("shuffle", "zero"):
            raise ValueError(f"core:noise-mask: replace={replace!r}; choose 'shuffle' or 'zero'")
        if noise_std < 0:
            raise ValueError(f"core:noise-mask: noise_std must be >= 0, got {noise_std}")
        self.n_views = n_views
        self.mask_prob = mask_prob
        self.replace = replace
        self.noise_std = noise_std

    def corrupt(self, x: Tensor) -> Tensor:
        """One corrupted view of ``x`` (``[B, ...]``, floating point)."""
        flat = x.reshape(x.shape[0], -1)
        out = flat
        if self.mask_prob > 0:
            mask = torch.rand(flat.shape, device=flat.device) < self.mask_prob
            if self.replace == "shuffle":
                rows = torch.randint(0, flat.shape[0], flat.shape, device=flat.device)
                fill = flat.gather(0, rows)
            else:
                fill = torch.zeros_like(flat)
            out = torch.where(mask, fill, flat)
        if self.noise_std > 0:
            out = out + self.noise_std * torch.randn_like(out)
        return out.reshape(x.shape)

    def __call__(self, batch: Tensor, meta: BatchMeta | None = None) -> list[Tensor]:
        """Make ``n_views`` independently corrupted views of ``batch`` (``meta`` unused).

        Raises:
            TypeError: ``batch`` is not a floating-point tensor.
        """
        if not isinstance(batch, Tensor) or not batch.is_floating_point():
            kind = batch.dtype if isinstance(batch, Tensor) else type(batch).__name__
            raise TypeError(
                f"core:noise-mask corrupts floating-point tensors [B, ...], got {kind}; "
                "use a modality plugin's views for other inputs"
            )
        return [self.corrupt(batch) for _ in range(self.n_views)]
