"""GRACE: graph contrastive learning with node-level InfoNCE across two views (Zhu et al., 2020).

Two views of the graph (edge dropping and feature masking) are encoded by the shared
encoder; a projection head (``Linear -> ELU -> Linear``) maps the node embeddings, and
node ``i`` of one view is the positive of node ``i`` of the other. Negatives are every
other node of both views (inter- and intra-view), which is the symmetric NT-Xent loss:
the core's :func:`selfsup.losses.info_nce_terms` with
``intra_view_negatives=True``.

Views come from ``graph:drop-edge-mask-feature``; given a single graph (for example
inside ``graph:multitask`` with ``core:identity`` views) the objective makes the two
views itself with its ``edge_drop`` / ``feature_mask`` rates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import PositiveFloat, PositiveInt
from selfsup.interfaces import BatchMeta, Objective, ObjectiveOutput
from selfsup.losses import info_nce_terms
from torch import nn

from selfsup_graph.objectives.common import graphs_of, seed_index
from selfsup_graph.views import DropEdgeMaskFeature, Rate

__all__ = ["GRACE"]

_OWNER = "graph:grace"


class GRACE(Objective):
    """GRACE objective: projection head and node-level InfoNCE across two graph views.

    The defaults are GRACE's Cora settings (projection 128, temperature 0.4).

    Args:
        embed_dim: The encoder's embedding width (passed by the engine).
        proj_dim: Output width of the projection head.
        proj_hidden_dim: Hidden width of the projection head (default: ``proj_dim``).
        temperature: InfoNCE temperature (``tau``).
        intra_view_negatives: Also contrast against other nodes of the anchor's own view.
        edge_drop: Edge-drop rates of the two views made from a single input graph.
        feature_mask: Feature-mask rates of the two views made from a single input graph.

    Example:
        >>> GRACE(embed_dim=16).projector[0].in_features
        16
    """

    def __init__(
        self,
        embed_dim: int,
        proj_dim: PositiveInt = 128,
        proj_hidden_dim: PositiveInt | None = None,
        temperature: PositiveFloat = 0.4,
        intra_view_negatives: bool = True,
        edge_drop: Rate | Sequence[Rate] = (0.2, 0.4),
        feature_mask: Rate | Sequence[Rate] = (0.3, 0.4),
    ) -> None:
        super().__init__()
        for name, value in (("proj_dim", proj_dim), ("embed_dim", embed_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{_OWNER}: {name}={value!r} must be a positive integer")
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise ValueError(f"{_OWNER}: temperature={temperature!r} must be a positive number")
        if temperature <= 0:
            raise ValueError(f"{_OWNER}: temperature={temperature!r} must be a positive number")
        hidden = proj_hidden_dim or proj_dim
        self.temperature = float(temperature)
        self.intra_view_negatives = bool(intra_view_negatives)
        self.augment = DropEdgeMaskFeature(2, edge_drop, feature_mask)
        self.projector = nn.Sequential(
            nn.Linear(embed_dim, hidden), nn.ELU(), nn.Linear(hidden, proj_dim)
        )

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """InfoNCE between the projected node embeddings of two views."""
        graphs = graphs_of(views, _OWNER)
        if len(graphs) == 1:
            graphs = self.augment(graphs[0], meta)
        if len(graphs) != 2:
            raise ValueError(
                f"{_OWNER} needs 2 views (or 1 graph to augment itself), got {len(graphs)}; "
                "use graph:drop-edge-mask-feature with num_views: 2"
            )
        seeds = seed_index(graphs[0])
        h1 = encoder(graphs[0]).tokens[seeds]
        h2 = encoder(graphs[1]).tokens[seeds]
        z1, z2 = self.projector(h1), self.projector(h2)
        # Every rank holds the same nodes in full-batch training: no cross-rank negatives.
        loss, acc = info_nce_terms(
            z1,
            z2,
            self.temperature,
            intra_view_negatives=self.intra_view_negatives,
            gather_distributed=False,
        )
        return ObjectiveOutput(loss=loss, metrics={"contrastive_acc": acc})
