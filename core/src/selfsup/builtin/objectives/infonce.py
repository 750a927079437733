"""InfoNCE / NT-Xent (SimCLR) and its decoupled variant (DCL).

References:
    Chen et al., "A Simple Framework for Contrastive Learning of Visual
    Representations" (SimCLR), ICML 2020. Yeh et al., "Decoupled Contrastive
    Learning", ECCV 2022.

Distributed: each rank's rows (anchors) are compared with the keys of *every* rank
(gathered with an autograd-aware all-gather); the positive of local row ``i`` sits at
global index ``rank * n + i``. The per-rank loss is the mean over local anchors, so
the mean over ranks is the single-process loss on the global batch (see
:mod:`selfsup.engine.distributed` for the gradient scaling).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import PositiveFloat, PositiveInt
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

__all__ = ["DCL", "SimCLR", "info_nce", "info_nce_terms"]


def info_nce_terms(
    z1: Tensor,
    z2: Tensor,
    temperature: float = 0.5,
    decoupled: bool = False,
    intra_view_negatives: bool = True,
    gather_distributed: bool = True,
    normalize: bool = True,
) -> tuple[Tensor, Tensor]:
    """The symmetric InfoNCE loss and the contrastive top-1 accuracy.

    Every row of ``z1`` and of ``z2`` is an anchor (``2n`` anchors); its positive is
    the same row of the other view, its negatives every other row of the other view
    and, when ``intra_view_negatives``, every other row of its own view (NT-Xent).

    Args:
        z1: First view's embeddings ``[n, d]``.
        z2: Second view's embeddings ``[n, d]``; row ``i`` is the positive of ``z1[i]``.
        temperature: Softmax temperature.
        decoupled: Drop the positive from the denominator (DCL).
        intra_view_negatives: Use the other rows of the anchor's own view as
            negatives (SimCLR, GRACE); ``False`` keeps only cross-view negatives
            (CLIP/CMC-style InfoNCE).
        gather_distributed: Compare with the rows of every rank when a process
            group is initialised.
        normalize: L2-normalise the embeddings first (cosine similarity).

    Returns:
        ``(loss, accuracy)``: the mean loss over the local anchors and the fraction of
        anchors whose most similar candidate is their positive (no gradient).
    """
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(
            f"info_nce expects two [n, d] tensors of the same shape, got "
            f"{tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    check_positive("temperature", temperature, "info_nce")
    with full_precision(z1):
        z1, z2 = z1.float(), z2.float()
        if normalize:
            z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
        n = z1.shape[0]
        if gather_distributed and D.is_distributed():
            k1, k2, offset = D.gather_with_grad(z1), D.gather_with_grad(z2), D.rank() * n
        else:
            k1, k2, offset = z1, z2, 0
        big_n = k1.shape[0]
        if big_n < 2:
            raise ValueError("info_nce needs at least 2 items in the (global) batch for negatives")
        anchors = torch.cat([z1, z2])
        logits = anchors @ torch.cat([k1, k2]).T / temperature  # [2n, 2N]
        rows = torch.arange(2 * n, device=z1.device)
        g = torch.arange(n, device=z1.device) + offset
        self_idx = torch.cat([g, g + big_n])
        pos_idx = torch.cat([g + big_n, g])
        mask = torch.zeros_like(logits, dtype=torch.bool)
        mask[rows, self_idx] = True
        if not intra_view_negatives:
            mask[:n, :big_n] = True
            mask[n:, big_n:] = True
        pos = logits[rows, pos_idx]
        with torch.no_grad():
            acc = (logits.masked_fill(mask, float("-inf")).argmax(dim=1) == pos_idx).float().mean()
        if decoupled:
            mask[rows, pos_idx] = True
        lse = logits.masked_fill(mask, float("-inf")).logsumexp(dim=1)
        return (lse - pos).mean(), acc


def info_nce(
    z1: Tensor,
    z2: Tensor,
    temperature: float = 0.5,
    decoupled: bool = False,
    intra_view_negatives: bool = True,
    gather_distributed: bool = True,
    normalize: bool = True,
) -> Tensor:
    """The symmetric InfoNCE / NT-Xent loss (see :func:`info_nce_terms` for the arguments).

    Example:
        >>> z = torch.randn(8, 16)
        >>> bool(info_nce(z, z) < info_nce(z, torch.randn(8, 16)))
        True
    """
    return info_nce_terms(
        z1, z2, temperature, decoupled, intra_view_negatives, gather_distributed, normalize
    )[0]


class SimCLR(Objective):
    """SimCLR: a projector and the NT-Xent loss over two views.

    Args:
        embed_dim: The encoder's ``embed_dim`` (set by the engine).
        hidden_dim: Projector hidden width (paper: the encoder width, 2048).
        out_dim: Projection width (paper: 128).
        num_layers: Projector linear layers (SimCLR v1: 2; v2: 3).
        temperature: Softmax temperature (paper: 0.5 on CIFAR, 0.1 at large batch).
        decoupled: Remove the positive from the denominator (DCL).
        intra_view_negatives: Use same-view rows as negatives too (NT-Xent).
        gather_distributed: Use the negatives of every rank in a distributed run.
    """

    name = "core:simclr"

    def __init__(
        self,
        embed_dim: int,
        hidden_dim: PositiveInt = 512,
        out_dim: PositiveInt = 128,
        num_layers: PositiveInt = 2,
        temperature: PositiveFloat = 0.5,
        decoupled: bool = False,
        intra_view_negatives: bool = True,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        self.embed_dim = check_embed_dim(embed_dim, self.name)
        self.temperature = check_positive("temperature", temperature, self.name)
        self.decoupled = decoupled
        self.intra_view_negatives = intra_view_negatives
        self.gather_distributed = gather_distributed
        self.projector: nn.Module = MLPHead(embed_dim, hidden_dim, out_dim, num_layers)

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """NT-Xent loss of the two views' projections."""
        h1, h2 = encode_pair(encoder, views, self.embed_dim, self.name)
        z1, z2 = self.projector(h1), self.projector(h2)
        loss, acc = info_nce_terms(
            z1,
            z2,
            self.temperature,
            decoupled=self.decoupled,
            intra_view_negatives=self.intra_view_negatives,
            gather_distributed=self.gather_distributed,
        )
        return ObjectiveOutput(
            loss=loss,
            metrics={
                "pos_cosine": positive_cosine(z1, z2),
                "contrastive_acc": acc,
                "embed_std": embedding_std(h1),
                "proj_std": embedding_std(z1),
            },
        )


class DCL(SimCLR):
    """Decoupled contrastive learning: SimCLR without the positive in the denominator.

    Args:
        embed_dim: The encoder's ``embed_dim`` (set by the engine).
        hidden_dim: Projector hidden width.
        out_dim: Projection width.
        num_layers: Projector linear layers.
        temperature: Softmax temperature (paper: 0.1).
        intra_view_negatives: Use same-view rows as negatives too.
        gather_distributed: Use the negatives of every rank in a distributed run.
    """

    name = "core:dcl"

    def __init__(
        self,
        embed_dim: int,
        hidden_dim: PositiveInt = 512,
        out_dim: PositiveInt = 128,
        num_layers: PositiveInt = 2,
        temperature: PositiveFloat = 0.1,
        intra_view_negatives: bool = True,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__(
            embed_dim,
            hidden_dim=hidden_dim,
            out_dim=out_dim,
            num_layers=num_layers,
            temperature=temperature,
            decoupled=True,
            intra_view_negatives=intra_view_negatives,
            gather_distributed=gather_distributed,
        )
