"""Graph view makers: edge dropping and feature masking (GRACE's augmentations).

A view is a shallow copy of the input graph (``Data`` or ``Batch``) with a new ``x``
and ``edge_index``; every other attribute (``batch``, the seed count of a sampled
subgraph, ``n_id``) is shared, so objectives can still find the seed nodes. The
input graph is never modified.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import torch
from pydantic import Field, PositiveInt
from torch import Tensor

if TYPE_CHECKING:
    from selfsup.interfaces import BatchMeta

__all__ = ["DropEdgeMaskFeature", "drop_edges", "mask_features", "replace_graph"]

_OWNER = "graph:drop-edge-mask-feature"

#: A rate in [0, 1): the constraint ``selfsup check`` enforces from the signatures.
Rate = Annotated[float, Field(ge=0, lt=1)]


def replace_graph(data: Any, **fields: Tensor) -> Any:
    """A shallow copy of a PyG graph with some fields replaced (the input is untouched)."""
    out = copy.copy(data)
    for name, value in fields.items():
        setattr(out, name, value)
    return out


def drop_edges(edge_index: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Keep each (directed) edge independently with probability ``1 - p``."""
    if p <= 0:
        return edge_index
    keep = torch.rand(edge_index.size(1), device=edge_index.device, generator=generator) >= p
    return edge_index[:, keep]


def mask_features(x: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Zero a random subset of feature columns (each with probability ``p``) for all nodes."""
    if p <= 0:
        return x
    keep = torch.rand(x.size(1), device=x.device, generator=generator) >= p
    return x * keep.to(x.dtype).unsqueeze(0)


def _rates(name: str, value: Any, n: int) -> tuple[float, ...]:
    seq = [value] * n if isinstance(value, int | float) and not isinstance(value, bool) else value
    if not isinstance(seq, Sequence) or isinstance(seq, str) or len(seq) != n:
        raise ValueError(f"{_OWNER}: {name}={value!r} must be a number or a list of {n} numbers")
    out = []
    for v in seq:
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1:
            raise ValueError(f"{_OWNER}: {name} entries must be numbers in [0, 1), got {v!r}")
        out.append(float(v))
    return tuple(out)


class DropEdgeMaskFeature:
    """Views of a graph by random edge dropping and feature-column masking.

    Each view ``i`` drops every edge with probability ``edge_drop[i]`` and zeroes every
    feature column with probability ``feature_mask[i]``. The defaults are GRACE's Cora
    settings (0.2/0.4 edges, 0.3/0.4 features).

    Args:
        num_views: Number of views to make.
        edge_drop: Edge-drop rate, one for all views or one per view.
        feature_mask: Feature-column mask rate, one for all views or one per view.

    Example:
        >>> from torch_geometric.data import Data
        >>> g = Data(x=torch.ones(3, 4), edge_index=torch.tensor([[0, 1], [1, 2]]))
        >>> v1, v2 = DropEdgeMaskFeature()(g)
        >>> v1.x.shape, g.x.sum().item()
        (torch.Size([3, 4]), 12.0)
    """

    def __init__(
        self,
        num_views: PositiveInt = 2,
        edge_drop: Rate | Sequence[Rate] = (0.2, 0.4),
        feature_mask: Rate | Sequence[Rate] = (0.3, 0.4),
    ) -> None:
        if isinstance(num_views, bool) or not isinstance(num_views, int) or num_views < 1:
            raise ValueError(f"{_OWNER}: num_views={num_views!r} must be a positive integer")
        self.num_views = num_views
        self.edge_drop = _rates("edge_drop", edge_drop, num_views)
        self.feature_mask = _rates("feature_mask", feature_mask, num_views)

    def __call__(self, batch: Any, meta: BatchMeta | None = None) -> list[Any]:
        """Return ``num_views`` augmented shallow copies of ``batch`` (``meta`` unused)."""
        if not hasattr(batch, "x") or not hasattr(batch, "edge_index"):
            raise TypeError(
                f"{_OWNER} expects a torch_geometric graph, got {type(batch).__name__}; "
                "use it with a graph: dataset"
            )
        return [
            replace_graph(
                batch,
                x=mask_features(batch.x, pf),
                edge_index=drop_edges(batch.edge_index, pe),
            )
            for pe, pf in zip(self.edge_drop, self.feature_mask, strict=True)
        ]
