"""Barlow Twins: drive the cross-correlation of two views' embeddings to the identity.

Reference:
    Zbontar et al., "Barlow Twins: Self-Supervised Learning via Redundancy
    Reduction", ICML 2021 (Algorithm 1).

Conventions (as the paper and lightly's ``BarlowTwinsLoss``): each embedding dimension
is standardised over the batch with the *biased* variance and ``eps = 1e-5`` (what
``BatchNorm1d(affine=False)`` does), ``C = z1n.T @ z2n / N`` and
``loss = sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2`` with ``lambd = 5e-3``
(the paper's 0.0051).

Distributed: the batch mean and variance *and* ``C`` are all-reduced, so every rank
computes the loss of the global batch; this equals the original implementation,
which converts the batch norm to ``SyncBatchNorm`` and all-reduces ``C``. (lightly
standardises per GPU and averages ``C``, which differs from one process at world
size > 1.)
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import NonNegativeFloat, PositiveInt
from torch import Tensor, nn

from selfsup.builtin.objectives.common import (
    check_embed_dim,
    check_positive,
    embedding_std,
    encode_pair,
    full_precision,
    positive_cosine,
)
from selfsup.builtin.objectives.heads import MLPHead
from selfsup.engine import distributed as D
from selfsup.interfaces import BatchMeta, Objective, ObjectiveOutput

__all__ = [
    "BarlowTwins",
    "barlow_twins_loss",
    "barlow_twins_terms",
    "cross_correlation",
    "standardize",
]


def _identity(t: Tensor) -> Tensor:
    return t


def standardize(z: Tensor, eps: float = 1e-5, reduce_distributed: bool = True) -> Tensor:
    """Standardise each column over the (global) batch with the biased variance.

    Args:
        z: ``[n, d]`` embeddings.
        eps: Added to the variance (batch norm's default).
        reduce_distributed: Use the statistics of every rank's rows (every rank
            must hold the same number of rows).
    """
    reduce = D.all_reduce_sum if reduce_distributed else _identity
    count = z.shape[0] * (D.world_size() if reduce_distributed else 1)
    mean = reduce(z.sum(dim=0)) / count
    centered = z - mean
    var = reduce(centered.pow(2).sum(dim=0)) / count
    return centered / torch.sqrt(var + eps)


def cross_correlation(
    z1: Tensor, z2: Tensor, eps: float = 1e-5, reduce_distributed: bool = True
) -> Tensor:
    """The ``[d, d]`` cross-correlation matrix of two views over the (global) batch."""
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(
            f"Barlow Twins expects two [n, d] tensors of the same shape, got "
            f"{tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    with full_precision(z1):
        z1, z2 = z1.float(), z2.float()
        reduce = D.all_reduce_sum if reduce_distributed else _identity
        n = z1.shape[0] * (D.world_size() if reduce_distributed else 1)
        if n < 2:
            raise ValueError("Barlow Twins needs at least 2 items in the (global) batch")
        a = standardize(z1, eps, reduce_distributed)
        b = standardize(z2, eps, reduce_distributed)
        return reduce(a.T @ b) / n


def barlow_twins_terms(
    z1: Tensor, z2: Tensor, eps: float = 1e-5, reduce_distributed: bool = True
) -> tuple[Tensor, Tensor]:
    """``(on_diagonal, off_diagonal)``: ``sum (1 - C_ii)^2`` and ``sum_{i!=j} C_ij^2``."""
    c = cross_correlation(z1, z2, eps, reduce_distributed)
    diag = torch.diagonal(c)
    on = (1.0 - diag).pow(2).sum()
    off = c.pow(2).sum() - diag.pow(2).sum()
    return on, off


def barlow_twins_loss(
    z1: Tensor,
    z2: Tensor,
    lambd: float = 5e-3,
    eps: float = 1e-5,
    reduce_distributed: bool = True,
) -> Tensor:
    """The Barlow Twins loss ``on_diagonal + lambd * off_diagonal``.

    Args:
        z1: First view's projections ``[n, d]``.
        z2: Second view's projections ``[n, d]``.
        lambd: Weight of the redundancy-reduction (off-diagonal) term.
        eps: Added to the variance when standardising.
        reduce_distributed: Use the statistics of the global batch when a process
            group is initialised.

    Example:
        >>> z = torch.randn(64, 8)
        >>> bool(barlow_twins_loss(z, z) < barlow_twins_loss(z, torch.randn(64, 8)))
        True
    """
    on, off = barlow_twins_terms(z1, z2, eps, reduce_distributed)
    return on + lambd * off


class BarlowTwins(Objective):
    """Barlow Twins with a 3-layer projector.

    Args:
        embed_dim: The encoder's ``embed_dim`` (set by the engine).
        hidden_dim: Projector hidden width (paper: 8192).
        out_dim: Projector output width (paper: 8192).
        num_layers: Projector linear layers (paper: 3).
        lambd: Off-diagonal weight (paper: 0.0051; lightly: 5e-3).
        reduce_distributed: Standardise and correlate over the global batch.
    """

    name = "core:barlow-twins"

    def __init__(
        self,
        embed_dim: int,
        hidden_dim: PositiveInt = 1024,
        out_dim: PositiveInt = 1024,
        num_layers: PositiveInt = 3,
        lambd: NonNegativeFloat = 5e-3,
        reduce_distributed: bool = True,
    ) -> None:
        super().__init__()
        self.embed_dim = check_embed_dim(embed_dim, self.name)
        self.lambd = check_positive("lambd", lambd, self.name, allow_zero=True)
        self.reduce_distributed = reduce_distributed
        self.projector: nn.Module = MLPHead(
            embed_dim, hidden_dim, out_dim, num_layers, last_bias=False
        )

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """Barlow Twins loss of the two views' projections."""
        h1, h2 = encode_pair(encoder, views, self.embed_dim, self.name)
        z1, z2 = self.projector(h1), self.projector(h2)
        on, off = barlow_twins_terms(z1, z2, reduce_distributed=self.reduce_distributed)
        return ObjectiveOutput(
            loss=on + self.lambd * off,
            metrics={
                "on_diag": on.detach(),
                "off_diag": off.detach(),
                "pos_cosine": positive_cosine(z1, z2),
                "embed_std": embedding_std(h1),
            },
        )
