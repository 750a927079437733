"""Masked link reconstruction: hide a share of edges and score them against non-edges.

Each step removes ``mask_rate`` of the edges from the encoder's input graph, encodes
the rest, and trains a dot-product (or MLP) scorer to tell the hidden edges from as
many (times ``num_negatives``) random node pairs, with binary cross-entropy. Hiding
the scored edges keeps the task from being solved by message passing alone (as in
MaskGAE and ParetoGNN's link reconstruction). On a sampled subgraph only edges into
seed nodes are scored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from selfsup.interfaces import BatchMeta, Objective, ObjectiveOutput
from torch import Tensor, nn

from selfsup_graph.objectives.common import check_rate, graph_of, seed_count
from selfsup_graph.views import replace_graph

__all__ = ["LinkReconstruction"]

_OWNER = "graph:link-recon"


class LinkReconstruction(Objective):
    """Masked-edge reconstruction with binary cross-entropy.

    Args:
        embed_dim: The encoder's embedding width (passed by the engine).
        mask_rate: Share of edges hidden from the encoder and scored as positives.
        num_negatives: Random node pairs per positive edge.
        scorer: ``dot`` (inner product of node embeddings) or ``mlp`` (an MLP on the
            element-wise product).
        max_edges: Score at most this many hidden edges per step (``None``: all).
    """

    def __init__(
        self,
        embed_dim: int,
        mask_rate: Annotated[float, Field(gt=0, lt=1)] = 0.3,
        num_negatives: PositiveInt = 1,
        scorer: Literal["dot", "mlp"] = "dot",
        max_edges: PositiveInt | None = None,
    ) -> None:
        super().__init__()
        self.mask_rate = check_rate(_OWNER, "mask_rate", mask_rate)
        if self.mask_rate == 0:
            raise ValueError(f"{_OWNER}: mask_rate must be > 0 (no edge to reconstruct)")
        if (
            isinstance(num_negatives, bool)
            or not isinstance(num_negatives, int)
            or num_negatives < 1
        ):
            raise ValueError(f"{_OWNER}: num_negatives={num_negatives!r} must be an integer >= 1")
        if scorer not in ("dot", "mlp"):
            raise ValueError(f"{_OWNER}: scorer={scorer!r} must be 'dot' or 'mlp'")
        self.num_negatives = num_negatives
        self.max_edges = max_edges
        self.scorer: nn.Module | None = None
        if scorer == "mlp":
            self.scorer = nn.Sequential(
                nn.Linear(embed_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1)
            )

    def score(self, h: Tensor, pairs: Tensor) -> Tensor:
        """Logits of node pairs ``[2, P]`` from node embeddings ``h``."""
        prod = h[pairs[0]] * h[pairs[1]]
        return prod.sum(-1) if self.scorer is None else self.scorer(prod).squeeze(-1)

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """Hide edges, encode, and classify hidden edges against random pairs."""
        data = graph_of(views, _OWNER)
        edge_index = data.edge_index
        n = int(data.num_nodes)
        hidden = torch.rand(edge_index.size(1), device=edge_index.device) < self.mask_rate
        pos = edge_index[:, hidden]
        seeds = seed_count(data)
        if seeds is not None:
            pos = pos[:, pos[1] < seeds]
        if self.max_edges is not None and pos.size(1) > self.max_edges:
            pos = pos[:, torch.randperm(pos.size(1), device=pos.device)[: self.max_edges]]
        h = encoder(replace_graph(data, edge_index=edge_index[:, ~hidden])).tokens
        if pos.size(1) == 0:
            return ObjectiveOutput(loss=h.sum() * 0.0, metrics={"link_acc": 0.0})
        num_neg = pos.size(1) * self.num_negatives
        upper = seeds if seeds is not None else n
        neg = torch.stack(
            [
                torch.randint(0, n, (num_neg,), device=h.device),
                torch.randint(0, upper, (num_neg,), device=h.device),
            ]
        )
        logits = torch.cat([self.score(h, pos), self.score(h, neg)])
        labels = torch.cat([logits.new_ones(pos.size(1)), logits.new_zeros(num_neg)])
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        with torch.no_grad():
            acc = ((logits > 0).float() == labels).float().mean()
        return ObjectiveOutput(loss=loss, metrics={"link_acc": acc})
