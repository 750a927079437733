"""SimSiam: a predictor against the stop-gradient projection of the other view.

Reference:
    Chen and He, "Exploring Simple Siamese Representation Learning", CVPR 2021.

``loss = (D(p1, z2) + D(p2, z1)) / 2`` with ``D(p, z) = -cos(p, stopgrad(z))``
(lightly: ``NegativeCosineSimilarity`` on ``z.detach()``). A per-sample loss: under
DDP the mean over ranks is the global loss, with no collective.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from torch import Tensor, nn

from selfsup.builtin.objectives.common import (
    check_embed_dim,
    embedding_std,
    encode_pair,
    full_precision,
    positive_cosine,
)
from selfsup.builtin.objectives.heads import MLPHead
from selfsup.interfaces import BatchMeta, Objective, ObjectiveOutput

__all__ = ["SimSiam", "negative_cosine"]


def negative_cosine(p: Tensor, z: Tensor, stop_gradient: bool = True, eps: float = 1e-8) -> Tensor:
    """Mean negative cosine similarity of matching rows, ``-mean_i cos(p_i, z_i)``.

    Args:
        p: Predictions ``[n, d]``.
        z: Targets ``[n, d]``.
        stop_gradient: Detach ``z`` (SimSiam's stop-gradient).
        eps: Guards the norms (as :func:`torch.nn.functional.cosine_similarity`).

    Example:
        >>> z = torch.randn(4, 8)
        >>> round(float(negative_cosine(z, z)), 4)
        -1.0
    """
    if p.shape != z.shape:
        raise ValueError(
            f"negative_cosine expects tensors of the same shape, got "
            f"{tuple(p.shape)} and {tuple(z.shape)}"
        )
    if stop_gradient:
        z = z.detach()
    with full_precision(p):
        return -F.cosine_similarity(p.float(), z.float(), dim=-1, eps=eps).mean()


class SimSiam(Objective):
    """SimSiam with a batch-normalised projector and a bottleneck predictor.

    Args:
        embed_dim: The encoder's ``embed_dim`` (set by the engine).
        proj_dim: Projector hidden and output width (paper: 2048).
        pred_hidden_dim: Predictor bottleneck width (paper: 512, a quarter of proj_dim).
        num_layers: Projector linear layers (paper: 3 on ImageNet, 2 on CIFAR).
    """

    name = "core:simsiam"

    def __init__(
        self,
        embed_dim: int,
        proj_dim: PositiveInt = 512,
        pred_hidden_dim: PositiveInt = 128,
        num_layers: PositiveInt = 3,
    ) -> None:
        super().__init__()
        self.embed_dim = check_embed_dim(embed_dim, self.name)
        self.projector: nn.Module = MLPHead(
            embed_dim, proj_dim, proj_dim, num_layers, last_batch_norm=True
        )
        self.predictor: nn.Module = MLPHead(proj_dim, pred_hidden_dim, proj_dim, 2)

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """Symmetric negative cosine of each view's prediction with the other's projection."""
        h1, h2 = encode_pair(encoder, views, self.embed_dim, self.name)
        z1, z2 = self.projector(h1), self.projector(h2)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        loss = 0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))
        with torch.no_grad():
            pred_cos = 0.5 * (positive_cosine(p1, z2) + positive_cosine(p2, z1))
        return ObjectiveOutput(
            loss=loss,
            metrics={
                "pos_cosine": positive_cosine(z1, z2),
                "pred_cosine": pred_cos,
                "proj_std": embedding_std(z1),
                "embed_std": embedding_std(h1),
            },
        )
