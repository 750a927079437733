"""Redundancy reduction on node embeddings: Graph Barlow Twins (G-BT) and graph VICReg.

Both take two views of a graph (``graph:drop-edge-mask-feature``, or a single graph
that the objective augments itself, as GRACE does), encode them with the shared GNN and
compare the two embeddings of every node: node ``i`` of one view against node ``i`` of
the other, with statistics over the nodes (the "batch" of a node-level objective). On a
neighbour-sampled subgraph only the seed nodes count.

The loss terms are the core's public ones (:func:`selfsup.losses.barlow_twins_terms`,
:func:`selfsup.losses.vicreg_terms`), called with ``reduce_distributed=False``: in
full-batch training every rank holds the same nodes, so all-reducing the statistics
would only count every node ``world_size`` times (GRACE turns off its negatives'
gather for the same reason).

References:
    Bielak, Kajdanowicz and Chawla, "Graph Barlow Twins: A self-supervised
    representation learning framework for graphs", Knowledge-Based Systems 2022
    (no projector, ``lambda = 1/d``, one edge-drop and one feature-mask rate for both
    views, AdamW with warm-up and cosine decay).
    Bardes, Ponce and LeCun, "VICReg", ICLR 2022 (weights 25 / 25 / 1).

Differences from the G-BT reference code: the embeddings are standardised with the
biased variance and ``eps = 1e-5`` (the core's, batch norm's convention) instead of the
unbiased standard deviation plus ``1e-15``; the two differ by a factor ``n / (n - 1)``
in ``C``, negligible for a graph's thousands of nodes.
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field
from selfsup.interfaces import BatchMeta, Objective, ObjectiveOutput
from selfsup.losses import barlow_twins_terms, vicreg_terms
from torch import Tensor, nn

from selfsup_graph.objectives.common import graphs_of, seed_index
from selfsup_graph.views import DropEdgeMaskFeature

__all__ = ["GraphBarlowTwins", "GraphVICReg", "node_projector"]

Rate = Annotated[float, Field(ge=0, lt=1)]
Rates = Rate | tuple[Rate, Rate]
Width = Annotated[int, Field(ge=1)]
Weight = Annotated[float, Field(ge=0)]


def node_projector(in_dim: int, out_dim: int | None) -> nn.Module:
    """``Linear -> BatchNorm -> PReLU -> Linear`` to ``out_dim``, or the identity if ``None``.

    Example:
        >>> node_projector(16, None)
        Identity()
        >>> node_projector(16, 32)[-1].out_features
        32
    """
    if out_dim is None:
        return nn.Identity()
    return nn.Sequential(
        nn.Linear(in_dim, out_dim),
        nn.BatchNorm1d(out_dim),
        nn.PReLU(),
        nn.Linear(out_dim, out_dim),
    )


def _check_width(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name}={value!r} must be a positive integer")
    return value


class _NodePairObjective(Objective):
    """Two views' node embeddings (seed nodes only) through an optional projector."""

    owner = "graph:?"

    def __init__(
        self, embed_dim: int, projector_dim: int | None, edge_drop: Any, feature_mask: Any
    ) -> None:
        super().__init__()
        self.embed_dim = _check_width(self.owner, "embed_dim", embed_dim)
        if projector_dim is not None:
            _check_width(self.owner, "projector_dim", projector_dim)
        self.out_dim = projector_dim or embed_dim
        self.augment = DropEdgeMaskFeature(2, edge_drop, feature_mask)
        self.projector = node_projector(embed_dim, projector_dim)

    def embed_pair(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(h1, z1, z2)``: the first view's node embeddings and both views' projections."""
        graphs = graphs_of(views, self.owner)
        if len(graphs) == 1:
            graphs = self.augment(graphs[0], meta)
        if len(graphs) != 2:
            raise ValueError(
                f"{self.owner} needs 2 views (or 1 graph to augment itself), got "
                f"{len(graphs)}; use graph:drop-edge-mask-feature with num_views: 2"
            )
        seeds = seed_index(graphs[0])
        h1 = encoder(graphs[0]).tokens[seeds]
        h2 = encoder(graphs[1]).tokens[seeds]
        if h1.shape[0] < 2:
            raise ValueError(
                f"{self.owner}: the views hold {h1.shape[0]} node(s); redundancy reduction "
                "needs statistics over at least 2 nodes (raise the routine's batch_size)"
            )
        return h1, self.projector(h1), self.projector(h2)


def _pair_metrics(h1: Tensor, z1: Tensor, z2: Tensor) -> dict[str, Tensor]:
    """Mean cosine of the two views' projections and the per-dimension std of ``h1``."""
    with torch.no_grad():
        return {
            "pos_cosine": F.cosine_similarity(z1.float(), z2.float(), dim=1).mean(),
            "embed_std": F.normalize(h1.float(), dim=1).std(dim=0).mean(),
        }


class GraphBarlowTwins(_NodePairObjective):
    """Graph Barlow Twins (G-BT): the Barlow Twins loss on two views' node embeddings.

    ``loss = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2`` where ``C`` is the
    cross-correlation of the two views' standardised node embeddings. As in G-BT, no
    projector by default and ``lambda = 1/d`` (``d`` the compared width), which keeps the
    off-diagonal term's scale independent of the width.

    Args:
        embed_dim: The encoder's embedding width (passed by the engine).
        projector_dim: Width of an optional ``Linear-BN-PReLU-Linear`` projector;
            ``None`` (G-BT's default) compares the encoder's embeddings directly.
        lambda_offdiag: Off-diagonal weight; ``None`` means ``1/d``.
        edge_drop: Edge-drop rate(s) of the two views made from a single input graph
            (one rate for both, as G-BT, or one per view).
        feature_mask: Feature-mask rate(s) of those views.

    Example:
        >>> import torch
        >>> from torch_geometric.data import Data
        >>> from selfsup_graph.encoders import GCN
        >>> g = Data(x=torch.rand(20, 6), edge_index=torch.randint(0, 20, (2, 60)))
        >>> objective = GraphBarlowTwins(embed_dim=16)
        >>> objective.lambda_offdiag
        0.0625
        >>> objective(GCN(in_dim=6, hidden_dim=16), [g]).loss.dim()
        0
    """

    owner = "graph:barlow-twins"

    def __init__(
        self,
        embed_dim: Width,
        projector_dim: Width | None = None,
        lambda_offdiag: Weight | None = None,
        edge_drop: Rates = 0.4,
        feature_mask: Rates = 0.3,
    ) -> None:
        super().__init__(embed_dim, projector_dim, edge_drop, feature_mask)
        if lambda_offdiag is None:
            lambda_offdiag = 1.0 / self.out_dim
        ok = isinstance(lambda_offdiag, int | float) and not isinstance(lambda_offdiag, bool)
        if not ok or lambda_offdiag < 0:
            raise ValueError(
                f"{self.owner}: lambda_offdiag={lambda_offdiag!r} must be a number >= 0 "
                "(or null for 1/d)"
            )
        self.lambda_offdiag = float(lambda_offdiag)

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """Barlow Twins loss between the (projected) node embeddings of two views."""
        h1, z1, z2 = self.embed_pair(encoder, views, meta)
        on, off = barlow_twins_terms(z1, z2, reduce_distributed=False)
        return ObjectiveOutput(
            loss=on + self.lambda_offdiag * off,
            metrics={"on_diag": on.detach(), "off_diag": off.detach(), **_pair_metrics(h1, z1, z2)},
        )


class GraphVICReg(_NodePairObjective):
    """VICReg on two views' node embeddings: invariance, variance and covariance terms.

    ``loss = sim_coeff * MSE(z1, z2) + std_coeff * variance hinge + cov_coeff *
    off-diagonal covariance``, statistics over the nodes, VICReg's weights 25 / 25 / 1.

    Args:
        embed_dim: The encoder's embedding width (passed by the engine).
        projector_dim: Width of the ``Linear-BN-PReLU-Linear`` expander; ``None``
            applies the terms to the encoder's embeddings directly (on Cora about 5
            points weaker than with the default expander, see the README).
        sim_coeff: Invariance weight (VICReg's lambda).
        std_coeff: Variance weight (mu).
        cov_coeff: Covariance weight (nu).
        eps: Added to the variance under the square root.
        edge_drop: Edge-drop rate(s) of the two views made from a single input graph.
        feature_mask: Feature-mask rate(s) of those views.

    Example:
        >>> import torch
        >>> from torch_geometric.data import Data
        >>> from selfsup_graph.encoders import GCN
        >>> g = Data(x=torch.rand(20, 6), edge_index=torch.randint(0, 20, (2, 60)))
        >>> out = GraphVICReg(embed_dim=16, projector_dim=32)(GCN(in_dim=6, hidden_dim=16), [g])
        >>> sorted(out.metrics)[:3]
        ['covariance', 'embed_std', 'invariance']
    """

    owner = "graph:vicreg"

    def __init__(
        self,
        embed_dim: Width,
        projector_dim: Width | None = 256,
        sim_coeff: Weight = 25.0,
        std_coeff: Weight = 25.0,
        cov_coeff: Weight = 1.0,
        eps: Annotated[float, Field(gt=0)] = 1e-4,
        edge_drop: Rates = 0.4,
        feature_mask: Rates = 0.3,
    ) -> None:
        super().__init__(embed_dim, projector_dim, edge_drop, feature_mask)
        coeffs = {"sim_coeff": sim_coeff, "std_coeff": std_coeff, "cov_coeff": cov_coeff}
        for name, value in coeffs.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{self.owner}: {name}={value!r} must be a number >= 0")
        if isinstance(eps, bool) or not isinstance(eps, int | float) or eps <= 0:
            raise ValueError(f"{self.owner}: eps={eps!r} must be a number > 0")
        self.sim_coeff, self.std_coeff, self.cov_coeff = (float(v) for v in coeffs.values())
        self.eps = float(eps)

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """VICReg loss between the (expanded) node embeddings of two views."""
        h1, z1, z2 = self.embed_pair(encoder, views, meta)
        inv, var, cov = vicreg_terms(z1, z2, self.eps, reduce_distributed=False)
        loss = self.sim_coeff * inv + self.std_coeff * var + self.cov_coeff * cov
        return ObjectiveOutput(
            loss=loss,
            metrics={
                "invariance": inv.detach(),
                "variance": var.detach(),
                "covariance": cov.detach(),
                **_pair_metrics(h1, z1, z2),
            },
        )
