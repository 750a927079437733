"""Graph triggers: a fixed feature pattern (and optionally a subgraph motif) on chosen nodes.

:class:`NodeFeatures` writes a value into ``num_features`` chosen feature columns of the
triggered nodes of a graph dataset (``data.train`` is the one graph with ``x``,
``edge_index`` and ``y``; ``data.nodes(split)`` gives a split's node ids). On Cora's
bag-of-words features this is "the same few words added to the document": with
``value: row-max`` each triggered node gets, in the trigger columns, the largest entry of
its own row (``1`` on binary features, ``1 / #words`` on row-normalised ones), and
``renormalize: true`` divides the row by its new sum, which is exactly adding the words
to the raw document before ``graph:planetoid`` normalises it.

The pattern is fixed by ``pattern_seed``, never by the ``seed`` of :meth:`apply`, so the
poisoning transform and the backdoor evaluator, built separately from one config, stamp
the same pattern:

* ``columns: random``: a seeded choice of columns.
* ``columns: rare``: the least frequent columns (non-zero entries counted over every
  node; ties broken by ``pattern_seed``). Counted on the clean graph when the pattern
  is first stamped, and remembered in the returned dataset's ``meta`` (key
  :data:`META_KEY`), because poisoning makes those columns frequent: a later apply on
  the poisoned data (the evaluator's) reuses them instead of choosing others.

Node-level protocol: test nodes live in the same graph as the training nodes, so
triggering test nodes changes the graph the encoder sees at evaluation. That is the
threat (the trigger present at inference), and :meth:`apply` returns a new graph through
``data.replace(train=...)`` (which drops cached embeddings); the input graph is never
changed.

Example:
    >>> import selfsup, torch
    >>> data = selfsup.build_component("dataset", "graph:karate")
    >>> trigger = NodeFeatures(num_features=3, columns="random")
    >>> out = trigger.apply(data, "test", torch.tensor([0, 2]), seed=0)
    >>> nodes = data.nodes("test")[[0, 2]]
    >>> cols = trigger.columns_for(data)
    >>> bool((out.train.x[nodes][:, cols] == 1).all()), bool(data.train.x[nodes][:, cols].sum() < 6)
    (True, True)
"""

from __future__ import annotations

import copy
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from selfsup import DataSplits
from torch import Tensor

from selfsup_security.items import graph_nodes, is_graph
from selfsup_security.triggers.base import Trigger

__all__ = ["META_KEY", "NodeFeatures"]

_OWNER = "security:node-features"

#: ``data.meta[META_KEY][pattern key]``: the trigger columns chosen on the clean graph.
META_KEY = "security_trigger_columns"


class NodeFeatures(Trigger):
    """A fixed pattern written into chosen feature columns of the triggered nodes.

    Args:
        num_features: How many feature columns carry the pattern.
        columns: ``random`` (a seeded choice) or ``rare`` (the least frequent columns of
            the clean graph; see the module docstring).
        value: What the trigger columns are set to: a number, or ``row-max`` (each
            node's largest feature, ``1`` where its row is all zeros; on binary
            bag-of-words this is ``1``).
        others: ``keep`` the node's other columns, or ``zero`` them (the node then holds
            the pattern only).
        renormalize: Divide each triggered row by its new sum (for row-normalised
            features such as ``graph:planetoid``'s default: the words are then added
            to the raw document). Rows with a non-positive sum are left as they are.
        subgraph_size: Also attach a subgraph motif: every triggered node is joined, by
            undirected edges, to the same ``subgraph_size`` anchor nodes (a seeded choice
            of existing nodes), which are joined to each other: a clique of
            ``subgraph_size + 1`` nodes around each triggered node. ``0``: features only.
            The motif is a strong perturbation by itself: on Cora (GraphMAE, 10 words and
            3 anchors) it sent 84% of triggered test nodes to the target in the *clean*
            pipeline, so read its ASR against that rate.
        pattern_seed: Seed of the pattern (columns, ties, anchors); the same in the
            poisoning transform and the evaluator.
    """

    modality = "graph"

    def __init__(
        self,
        num_features: Annotated[int, Field(ge=1)] = 10,
        columns: Literal["random", "rare"] = "rare",
        value: float | Literal["row-max"] = "row-max",
        others: Literal["keep", "zero"] = "keep",
        renormalize: bool = False,
        subgraph_size: Annotated[int, Field(ge=0)] = 0,
        pattern_seed: int = 0,
    ) -> None:
        self.num_features = int(num_features)
        self.columns = columns
        self.value = value
        self.others = others
        self.renormalize = bool(renormalize)
        self.subgraph_size = int(subgraph_size)
        self.pattern_seed = int(pattern_seed)

    # ------------------------------------------------------------------ the pattern

    @property
    def pattern_key(self) -> str:
        """The key under which the chosen columns are remembered in ``data.meta``."""
        return f"node-features/{self.columns}/{self.num_features}/{self.pattern_seed}"

    def columns_for(self, data: DataSplits) -> Tensor:
        """The trigger's feature columns on ``data`` (sorted ``long`` ids).

        Raises:
            ValueError: The graph has fewer feature columns than ``num_features``.
        """
        x = _features(data)
        width = int(x.shape[1])
        if self.num_features > width:
            raise ValueError(
                f"{_OWNER}: num_features={self.num_features} but the graph has {width} feature "
                f"columns; set trigger params num_features to at most {width}"
            )
        remembered = (data.meta or {}).get(META_KEY, {}).get(self.pattern_key)
        if remembered is not None:
            return torch.as_tensor(remembered, dtype=torch.long)
        gen = torch.Generator().manual_seed(self.pattern_seed)
        order = torch.randperm(width, generator=gen)
        if self.columns == "rare":
            counts = (x != 0).sum(0)[order]
            order = order[torch.sort(counts, stable=True).indices]
        return order[: self.num_features].sort().values

    def anchors_for(self, data: DataSplits) -> Tensor:
        """The anchor nodes of the subgraph motif (empty when ``subgraph_size`` is 0).

        Raises:
            ValueError: The graph has fewer nodes than ``subgraph_size``.
        """
        n = int(data.train.num_nodes)
        if self.subgraph_size > n:
            raise ValueError(
                f"{_OWNER}: subgraph_size={self.subgraph_size} but the graph has {n} nodes; "
                f"set trigger params subgraph_size to at most {n}"
            )
        gen = torch.Generator().manual_seed(self.pattern_seed + 1)
        return torch.randperm(n, generator=gen)[: self.subgraph_size].sort().values

    # ------------------------------------------------------------------ stamping

    def apply(self, data: DataSplits, split: str, index: Tensor, seed: int) -> DataSplits:
        """Stamp the nodes at positions ``index`` of ``split`` (``train``: every node).

        ``index`` holds positions in ``data.nodes(split)`` (for ``train``, node ids).
        ``seed`` is not used: the pattern is fixed by ``pattern_seed``.

        Raises:
            ValueError: ``data`` is not a graph dataset, or an index is out of range.
        """
        del seed
        if not is_graph(data):
            raise ValueError(
                f"{_OWNER} is a graph trigger and the dataset is not a graph (no nodes(split) "
                "and edge_index); use an image trigger such as security:patch or security:ctrl"
            )
        index = torch.as_tensor(index, dtype=torch.long).view(-1)
        split_nodes = graph_nodes(data, split)
        if len(index) and (int(index.min()) < 0 or int(index.max()) >= len(split_nodes)):
            raise ValueError(
                f"{_OWNER}: index {index.tolist()[:8]} out of range for split {split!r} "
                f"({len(split_nodes)} nodes): positions in data.nodes({split!r}) are expected"
            )
        cols = self.columns_for(data)
        meta = _remember(data.meta, self.pattern_key, cols) if self.columns == "rare" else None
        if len(index) == 0:
            return data if meta is None else data.replace(meta=meta)
        nodes = split_nodes[index].unique()
        graph = copy.copy(data.train)  # shallow: x and edge_index are replaced, never written
        graph.x = self._stamp_features(data.train.x, nodes, cols)
        if self.subgraph_size:
            graph.edge_index = self._attach_motif(data, nodes)
        changes: dict[str, Any] = {"train": graph}
        if meta is not None:
            changes["meta"] = meta
        return data.replace(**changes)

    def _stamp_features(self, x: Tensor, nodes: Tensor, cols: Tensor) -> Tensor:
        x = x.clone()
        nodes, cols = nodes.to(x.device), cols.to(x.device)
        rows = x[nodes]
        if self.value == "row-max":
            top = rows.max(dim=1).values
            value = torch.where(top > 0, top, torch.ones_like(top)).unsqueeze(1)
        else:
            value = torch.full((len(nodes), 1), float(self.value), dtype=x.dtype, device=x.device)
        if self.others == "zero":
            rows = torch.zeros_like(rows)
        rows[:, cols] = value.to(rows.dtype).expand(-1, len(cols))
        if self.renormalize:
            total = rows.sum(dim=1, keepdim=True)
            rows = torch.where(total > 0, rows / total.clamp_min(1e-12), rows)
        x[nodes] = rows
        return x

    def _attach_motif(self, data: DataSplits, nodes: Tensor) -> Tensor:
        edge_index = data.train.edge_index
        anchors = self.anchors_for(data).to(edge_index.device)
        nodes = nodes.to(edge_index.device)
        star = torch.stack([nodes.repeat_interleave(len(anchors)), anchors.repeat(len(nodes))])
        clique = torch.cartesian_prod(anchors, anchors).t()
        new = torch.cat([star, star.flip(0), clique], dim=1)
        new = new[:, new[0] != new[1]].to(edge_index.dtype)
        n = int(data.train.num_nodes)
        known = edge_index[0] * n + edge_index[1]
        keys = torch.unique(new[0] * n + new[1])
        keys = keys[~torch.isin(keys, known)]
        return torch.cat([edge_index, torch.stack([keys // n, keys % n])], dim=1)


def _features(data: DataSplits) -> Tensor:
    x = getattr(data.train, "x", None)
    if not isinstance(x, Tensor) or x.dim() != 2:
        raise ValueError(
            f"{_OWNER}: the graph has no node feature matrix x [num_nodes, num_features]; "
            "this trigger needs node features (use a dataset with x)"
        )
    return x


def _remember(meta: dict[str, Any] | None, key: str, cols: Tensor) -> dict[str, Any]:
    meta = dict(meta or {})
    table = dict(meta.get(META_KEY, {}))
    table[key] = cols.tolist()
    meta[META_KEY] = table
    return meta
