"""VICReg: variance, invariance and covariance regularisation.

Reference:
    Bardes, Ponce and LeCun, "VICReg: Variance-Invariance-Covariance Regularization
    for Self-Supervised Learning", ICLR 2022.

Conventions (as the authors' code and lightly's ``VICRegLoss``): invariance is the
mean squared error; variance is ``mean(relu(1 - sqrt(var + eps)))`` with the unbiased
variance, averaged over the two views; covariance is the sum of squared off-diagonal
entries of the unbiased covariance divided by ``d``, summed over the two views;
weights 25 / 25 / 1.

Distributed: the invariance term is a per-sample mean (averaged over ranks by DDP);
the mean, variance and covariance are all-reduced, so those terms are computed on
the global batch on every rank (the authors gather the embeddings instead; the
result is the same).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import NonNegativeFloat, PositiveFloat, PositiveInt
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

__all__ = ["VICReg", "vicreg_loss", "vicreg_terms"]


def _identity(t: Tensor) -> Tensor:
    return t


def _var_cov(z: Tensor, eps: float, reduce_distributed: bool) -> tuple[Tensor, Tensor]:
    """Variance hinge and off-diagonal covariance penalty of one view."""
    reduce = D.all_reduce_sum if reduce_distributed else _identity
    n = z.shape[0] * (D.world_size() if reduce_distributed else 1)
    if n < 2:
        raise ValueError("VICReg needs at least 2 items in the (global) batch")
    d = z.shape[1]
    mean = reduce(z.sum(dim=0)) / n
    centered = z - mean
    cov = reduce(centered.T @ centered) / (n - 1)
    std = torch.sqrt(torch.diagonal(cov) + eps)
    var_term = F.relu(1.0 - std).mean()
    off = cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()
    return var_term, off / d


def vicreg_terms(
    z1: Tensor, z2: Tensor, eps: float = 1e-4, reduce_distributed: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """``(invariance, variance, covariance)`` terms of VICReg, unweighted.

    Args:
        z1: First view's embeddings ``[n, d]``.
        z2: Second view's embeddings ``[n, d]``.
        eps: Added to the variance under the square root.
        reduce_distributed: Use the global batch's statistics when a process group
            is initialised (every rank must hold the same number of rows).
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(
            f"VICReg expects two [n, d] tensors of the same shape, got "
            f"{tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    with full_precision(z1):
        z1, z2 = z1.float(), z2.float()
        inv = F.mse_loss(z1, z2)
        var1, cov1 = _var_cov(z1, eps, reduce_distributed)
        var2, cov2 = _var_cov(z2, eps, reduce_distributed)
        return inv, 0.5 * (var1 + var2), cov1 + cov2


def vicreg_loss(
    z1: Tensor,
    z2: Tensor,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    eps: float = 1e-4,
    reduce_distributed: bool = True,
) -> Tensor:
    """The weighted VICReg loss (see :func:`vicreg_terms`).

    Example:
        >>> z = torch.randn(64, 8)
        >>> bool(vicreg_loss(z, z) < vicreg_loss(z, torch.randn(64, 8)))
        True
    """
    inv, var, cov = vicreg_terms(z1, z2, eps, reduce_distributed)
    return sim_coeff * inv + std_coeff * var + cov_coeff * cov


class VICReg(Objective):
    """VICReg with a 3-layer expander.

    Args:
        embed_dim: The encoder's ``embed_dim`` (set by the engine).
        hidden_dim: Expander hidden width (paper: 8192).
        out_dim: Expander output width (paper: 8192).
        num_layers: Expander linear layers (paper: 3).
        sim_coeff: Invariance weight (lambda, paper: 25).
        std_coeff: Variance weight (mu, paper: 25).
        cov_coeff: Covariance weight (nu, paper: 1).
        eps: Added to the variance under the square root.
        reduce_distributed: Variance and covariance over the global batch.
    """

    name = "core:vicreg"

    def __init__(
        self,
        embed_dim: int,
        hidden_dim: PositiveInt = 1024,
        out_dim: PositiveInt = 1024,
        num_layers: PositiveInt = 3,
        sim_coeff: NonNegativeFloat = 25.0,
        std_coeff: NonNegativeFloat = 25.0,
        cov_coeff: NonNegativeFloat = 1.0,
        eps: PositiveFloat = 1e-4,
        reduce_distributed: bool = True,
    ) -> None:
        super().__init__()
        self.embed_dim = check_embed_dim(embed_dim, self.name)
        self.sim_coeff = check_positive("sim_coeff", sim_coeff, self.name, allow_zero=True)
        self.std_coeff = check_positive("std_coeff", std_coeff, self.name, allow_zero=True)
        self.cov_coeff = check_positive("cov_coeff", cov_coeff, self.name, allow_zero=True)
        self.eps = check_positive("eps", eps, self.name)
        self.reduce_distributed = reduce_distributed
        self.projector: nn.Module = MLPHead(embed_dim, hidden_dim, out_dim, num_layers)

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """VICReg loss of the two views' expanded embeddings."""
        h1, h2 = encode_pair(encoder, views, self.embed_dim, self.name)
        z1, z2 = self.projector(h1), self.projector(h2)
        inv, var, cov = vicreg_terms(z1, z2, self.eps, self.reduce_distributed)
        loss = self.sim_coeff * inv + self.std_coeff * var + self.cov_coeff * cov
        return ObjectiveOutput(
            loss=loss,
            metrics={
                "invariance": inv.detach(),
                "variance": var.detach(),
                "covariance": cov.detach(),
                "pos_cosine": positive_cosine(z1, z2),
                "embed_std": embedding_std(h1),
            },
        )
