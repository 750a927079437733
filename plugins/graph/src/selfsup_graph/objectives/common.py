"""Helpers shared by the graph objectives: the graph of a batch of views and its seed nodes.

Graph objectives accept either the graph itself or a list of views (as
``core:identity`` produces). On a neighbour-sampled subgraph only the first
``batch_size`` nodes are the seeds the mini-batch is about (the rest are sampled
neighbours that give them context), so losses are computed on those nodes only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_rate", "graph_of", "graphs_of", "seed_count", "seed_index"]


def graphs_of(views: Any, owner: str) -> list[Any]:
    """The graphs in ``views``: a single graph or a list/tuple of graphs.

    Raises:
        TypeError: Something that is not a PyG graph.
    """
    items = list(views) if isinstance(views, list | tuple) else [views]
    if not items:
        raise ValueError(f"{owner}: the view maker returned no views")
    for item in items:
        if not (hasattr(item, "x") and hasattr(item, "edge_index")):
            raise TypeError(
                f"{owner} expects torch_geometric graphs (Data/Batch) as views, got "
                f"{type(item).__name__}; use a graph: dataset with core:identity or "
                "graph:drop-edge-mask-feature views"
            )
    return items


def graph_of(views: Any, owner: str) -> Any:
    """The first graph of ``views`` (objectives that mask internally need one)."""
    return graphs_of(views, owner)[0]


def seed_count(data: Any) -> int | None:
    """Number of seed nodes of a neighbour-sampled subgraph, or ``None`` for a whole graph.

    Sampled subgraphs (from :mod:`selfsup_graph.sampling` or PyG's ``NeighborLoader``)
    carry an integer ``batch_size`` and the global ids ``n_id``; seeds come first.
    """
    size = getattr(data, "batch_size", None)
    if isinstance(size, int) and hasattr(data, "n_id"):
        return size
    return None


def seed_index(data: Any) -> slice:
    """Index of the nodes a loss counts: the seeds of a sampled subgraph, else all nodes."""
    n = seed_count(data)
    return slice(None) if n is None else slice(0, n)


def check_rate(owner: str, name: str, value: Any, upper_inclusive: bool = False) -> float:
    """Validate a rate in ``[0, 1)`` (or ``[0, 1]``)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok:
        ok = 0 <= value <= 1 if upper_inclusive else 0 <= value < 1
    if not ok:
        bound = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"{owner}: {name}={value!r} must be a number in {bound}")
    return float(value)
