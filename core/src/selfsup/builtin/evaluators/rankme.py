"""RankMe: the effective rank of the embeddings (Garrido et al., ICML 2023), label-free.

With ``s`` the singular values of the embedding matrix ``Z`` ``[N, D]``,
``p = s / ||s||_1 + eps`` and ``RankMe = exp(-sum_k p_k log p_k)``. It lies between
about 1 (a collapsed encoder) and ``min(N, D)`` (all directions equally used), and
tracks downstream accuracy without labels. As in the paper, ``Z`` is not centred.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from pydantic import PositiveFloat, PositiveInt
from torch import Tensor

from selfsup.builtin.evaluators._features import (
    compute_device,
    first_embedded,
    positive_float,
    positive_int,
    subsample,
)

if TYPE_CHECKING:
    from torch import nn

    from selfsup.interfaces import DataSplits, EvalContext

__all__ = ["RankMe", "rankme"]

_OWNER = "core:rankme"


@torch.no_grad()
def rankme(z: Tensor, eps: float = 1e-7) -> float:
    """The RankMe effective rank of an embedding matrix ``z`` ``[N, D]``.

    Computed in float64 (on the CPU for MPS tensors, which lack float64). An all-zero
    matrix (a fully collapsed encoder) scores 1.0, like a rank-one matrix.

    Raises:
        ValueError: ``z`` is not a non-empty 2-D matrix.

    Example:
        >>> round(rankme(torch.eye(4)), 4)
        4.0
    """
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(f"rankme needs a non-empty [N, D] matrix, got shape {tuple(z.shape)}")
    if z.device.type == "mps":
        z = z.cpu()
    s = torch.linalg.svdvals(z.double())
    total = s.sum()
    if total <= 0:
        return 1.0
    p = s / total + eps
    return float(torch.exp(-(p * p.log()).sum()))


class RankMe:
    """Effective rank of frozen embeddings: a label-free proxy of representation quality.

    Metric: ``rankme``.

    Args:
        split: The split to embed (default ``train``, the data the encoder learned
            from, as in the paper).
        max_items: Use a seeded random subset of at most this many items (the paper
            uses 25600); ``None`` uses all.
        eps: The small constant added to the normalised singular values.

    Example:
        >>> RankMe(max_items=1000).max_items
        1000
    """

    def __init__(
        self,
        split: Literal["train", "val", "test"] = "train",
        max_items: PositiveInt | None = 25600,
        eps: PositiveFloat = 1e-7,
    ) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"{_OWNER}: split={split!r} must be 'train', 'val' or 'test'")
        self.split = split
        self.max_items = None if max_items is None else positive_int(_OWNER, "max_items", max_items)
        self.eps = positive_float(_OWNER, "eps", eps)

    def evaluate(self, encoder: nn.Module, data: DataSplits, ctx: EvalContext) -> dict[str, float]:
        """Embed the split and return its effective rank (any task: labels are unused).

        Raises:
            ValueError: The split does not exist or the embeddings are not finite.
        """
        _, z, _ = first_embedded(_OWNER, encoder, data, ctx.runtime, self.split, ())
        keep = subsample(z.shape[0], self.max_items, ctx.seed)
        if keep is not None:
            z = z[keep]
        return {"rankme": rankme(z.to(compute_device(ctx.runtime)), self.eps)}
