"""The splits of a graph dataset: one graph for pretraining, node sets for evaluation.

:class:`GraphSplits` keeps the whole (training) graph in ``train`` and the node ids of
the labelled splits in ``meta["nodes"]``; ``val`` and ``test`` are :class:`NodeSplit`
records of the same node ids (so "the dataset has a val split" reads naturally).
Its :meth:`~GraphSplits.embed` runs the encoder on the whole graph (or, for graphs
too large for one forward pass, on sampled neighbourhoods) and returns the node embeddings and
labels of a split, so the core's frozen-feature evaluators (``core:linear-probe``,
``core:knn``, ``core:kmeans``) evaluate nodes unchanged.

With ``meta["link_split"]`` (set by a dataset's ``holdout_edges``), the training graph
lacks the held-out edges, which ``graph:link-prediction`` scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from selfsup.interfaces import DataSplits
from selfsup.runtime import to_device
from torch import Tensor, nn

if TYPE_CHECKING:
    from selfsup.runtime import Runtime

__all__ = ["GraphSplits", "NodeSplit"]


@dataclass(frozen=True)
class NodeSplit:
    """The nodes of a graph that form one evaluation split (``len`` is their number)."""

    nodes: Tensor

    def __len__(self) -> int:
        return int(self.nodes.numel())

    @property
    def num_nodes(self) -> int:
        """Number of nodes in the split."""
        return len(self)


def _fingerprint(encoder: nn.Module) -> tuple[Any, ...]:
    """Changes whenever a parameter or buffer is updated in place or replaced."""
    tensors = [*encoder.parameters(), *encoder.buffers()]
    return (id(encoder), tuple((t.data_ptr(), t._version) for t in tensors))


class GraphSplits(DataSplits):
    """A graph dataset: the graph in ``train``, node ids of each labelled split in ``meta``.

    Args:
        graph: The training graph (``x``, ``edge_index``, ``y``).
        nodes: ``{"train": ids, "val": ids, "test": ids}``; missing splits are omitted.
        num_classes: Number of node classes (0 if unlabelled).
        meta: Extra information (dataset name, ``link_split``).
        embed_batch_size: Embed ``embed_batch_size`` nodes at a time from sampled
            neighbourhoods instead of one full-graph pass (for very large graphs).
        embed_num_neighbors: Neighbours per hop for sampled embedding (``-1``: all),
            one entry per encoder layer. With every neighbour, sampled embeddings equal
            the full-graph ones for GAT and GIN; GCN's degree normalisation sees the
            border nodes' sampled degrees, a small approximation.
    """

    def __init__(
        self,
        graph: Any,
        nodes: dict[str, Tensor],
        num_classes: int = 0,
        meta: dict[str, Any] | None = None,
        embed_batch_size: int | None = None,
        embed_num_neighbors: list[int] | None = None,
    ) -> None:
        meta = dict(meta or {})
        meta["nodes"] = {k: v.long().cpu() for k, v in nodes.items()}
        held = {k: NodeSplit(v) for k, v in meta["nodes"].items() if k in ("val", "test")}
        super().__init__(
            train=graph,
            val=held.get("val"),
            test=held.get("test"),
            num_classes=num_classes,
            modality="graph",
            meta=meta,
        )
        self.embed_batch_size = embed_batch_size
        self.embed_num_neighbors = embed_num_neighbors
        self._cache: tuple[tuple[Any, ...], Tensor] | None = None

    @property
    def graph(self) -> Any:
        """The training graph."""
        return self.train

    def replace(self, **changes: Any) -> GraphSplits:
        """A copy with fields changed (a transform's poisoned graph); embeddings not reused."""
        out = super().replace(**changes)
        assert isinstance(out, GraphSplits)
        out._cache = None
        return out

    def nodes(self, split: str) -> Tensor:
        """The node ids of a split (``train``, ``val``, ``test``, or ``all``).

        Raises:
            KeyError: The dataset has no such split.
        """
        if split == "all":
            return torch.arange(int(self.graph.num_nodes))
        table = self.meta["nodes"]
        if split not in table:
            raise KeyError(
                f"graph dataset has no {split!r} node split; it has: {', '.join(table) or 'none'}"
            )
        return table[split]

    def collate(self, items: list[Any]) -> Any:
        """Graph datasets are not mini-batched by item.

        Raises:
            TypeError: Always; train graphs with ``graph:full-batch`` or ``graph:neighbor``.
        """
        raise TypeError(
            "a graph dataset holds one graph, not items: train it with routine "
            "graph:full-batch or graph:neighbor instead of core:minibatch"
        )

    @torch.no_grad()
    def node_embeddings(self, encoder: nn.Module, runtime: Runtime) -> Tensor:
        """Frozen embeddings ``[N, D]`` of every node of the training graph (CPU, float32).

        Cached until the encoder's parameters change, so the train/val/test calls of
        one evaluator (and several evaluators) share one forward pass.
        """
        key = (*_fingerprint(encoder), self.embed_batch_size)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        was_training = encoder.training
        encoder.eval()
        try:
            if self.embed_batch_size:
                emb = self._sampled_embeddings(encoder, runtime)
            else:
                graph = to_device(self.graph, runtime.device)
                with runtime.autocast():
                    emb = _tokens(encoder(graph)).float().cpu()
        finally:
            encoder.train(was_training)
        self._cache = (key, emb)
        return emb

    def _sampled_embeddings(self, encoder: nn.Module, runtime: Runtime) -> Tensor:
        from selfsup_graph.sampling import NeighborSampler, SeedLoader

        depth = len(getattr(encoder, "convs", [])) or 2
        hops = self.embed_num_neighbors or [-1] * depth
        sampler = NeighborSampler(self.graph, hops)
        loader = SeedLoader(
            sampler, self.nodes("all"), int(self.embed_batch_size or 1), shuffle=False
        )
        out = []
        for sub in loader:
            sub = to_device(sub, runtime.device)
            with runtime.autocast():
                out.append(_tokens(encoder(sub))[: sub.batch_size].float().cpu())
        return torch.cat(out)

    @torch.no_grad()
    def embed(
        self, encoder: nn.Module, split: str, runtime: Runtime, batch_size: int = 512
    ) -> tuple[Tensor, Tensor]:
        """Node embeddings and labels of a split's nodes, as CPU tensors."""
        nodes = self.nodes(split)
        emb = self.node_embeddings(encoder, runtime)
        y = getattr(self.graph, "y", None)
        labels = y[nodes].cpu() if isinstance(y, Tensor) else torch.full((nodes.numel(),), -1)
        return emb[nodes], labels


def _tokens(out: Any) -> Tensor:
    tokens = getattr(out, "tokens", None)
    if not isinstance(tokens, Tensor):
        raise TypeError(
            "graph datasets embed nodes: the encoder must return EncoderOutput.tokens with "
            "one row per node (use a graph: encoder)"
        )
    return tokens
