"""Neighbour sampling in plain torch: mini-batches of seed nodes with sampled neighbourhoods.

PyG's ``NeighborLoader`` needs ``pyg-lib`` or ``torch-sparse``, compiled extensions
that PyPI does not ship for every torch; this sampler does the same job with torch
operations only, and returns the same kind of subgraph: a ``Data`` whose first
``batch_size`` nodes are the seeds, with ``n_id`` (global node ids) and the sampled
edges in local ids.

Per hop, every frontier node keeps ``k`` of its in-neighbours drawn uniformly without
replacement (all of them when it has at most ``k``; ``k = -1`` keeps every one).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data

__all__ = ["NeighborSampler", "SeedLoader"]


class NeighborSampler:
    """Samples ``len(num_neighbors)``-hop neighbourhoods of seed nodes of one graph.

    Args:
        data: The whole graph (on the CPU): ``x``, ``edge_index`` and optionally ``y``.
        num_neighbors: Neighbours per node at each hop (``-1``: all).

    Example:
        >>> g = Data(x=torch.randn(5, 2), edge_index=torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]))
        >>> sub = NeighborSampler(g, [2, 2]).sample(torch.tensor([4]))
        >>> sub.n_id.tolist(), sub.batch_size
        ([4, 3, 2], 1)
    """

    def __init__(self, data: Any, num_neighbors: Sequence[int]) -> None:
        hops = list(num_neighbors)
        if not hops or any(isinstance(k, bool) or not isinstance(k, int) for k in hops):
            raise ValueError(
                f"num_neighbors={num_neighbors!r} must be a non-empty list of integers "
                "(neighbours per hop; -1 for all), e.g. [10, 10]"
            )
        if any(k == 0 or k < -1 for k in hops):
            raise ValueError(f"num_neighbors={num_neighbors!r}: entries must be >= 1 or -1 (all)")
        self.data = data
        self.num_neighbors = hops
        self.num_nodes = int(data.num_nodes)
        src, dst = data.edge_index.cpu()
        order = torch.argsort(dst, stable=True)
        self.col = src[order]
        counts = torch.bincount(dst, minlength=self.num_nodes)
        self.rowptr = torch.zeros(self.num_nodes + 1, dtype=torch.long)
        torch.cumsum(counts, 0, out=self.rowptr[1:])
        self._assoc = torch.full((self.num_nodes,), -1, dtype=torch.long)

    def _hop(self, frontier: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """Sampled ``(source, target)`` global ids of in-edges of ``frontier``."""
        start = self.rowptr[frontier]
        deg = self.rowptr[frontier + 1] - start
        seg = torch.repeat_interleave(torch.arange(frontier.numel()), deg)
        first = torch.cumsum(deg, 0) - deg
        pos = torch.arange(seg.numel()) - first[seg]
        if k >= 0 and bool((deg > k).any()):
            # A random order within each node's in-edges; keep the first k of each.
            order = torch.argsort(seg.double() + torch.rand(seg.numel(), dtype=torch.double))
            pos = pos[order]
            keep = pos < k
            seg, pos = seg[keep], pos[keep]
        source = self.col[start[seg] + pos]
        return source, frontier[seg]

    def sample(self, seeds: Tensor) -> Data:
        """The sampled subgraph around ``seeds`` (distinct global node ids)."""
        seeds = seeds.long().cpu()
        assoc = self._assoc
        assoc[seeds] = torch.arange(seeds.numel())
        n_id = [seeds]
        count = seeds.numel()
        frontier = seeds
        edges_src, edges_dst = [], []
        try:
            for k in self.num_neighbors:
                if frontier.numel() == 0:
                    break
                source, target = self._hop(frontier, k)
                new = torch.unique(source[assoc[source] < 0])
                assoc[new] = torch.arange(count, count + new.numel())
                count += new.numel()
                n_id.append(new)
                edges_src.append(assoc[source])
                edges_dst.append(assoc[target])
                frontier = new
            nodes = torch.cat(n_id)
        finally:
            assoc[torch.cat(n_id)] = -1
        edge_index = torch.stack(
            [torch.cat(edges_src), torch.cat(edges_dst)]
            if edges_src
            else [torch.empty(0, dtype=torch.long)] * 2
        )
        sub = Data(x=self.data.x[nodes], edge_index=edge_index, num_nodes=nodes.numel())
        y = getattr(self.data, "y", None)
        if isinstance(y, Tensor) and y.size(0) == self.num_nodes:
            sub.y = y[nodes]
        sub.n_id = nodes
        sub.batch_size = int(seeds.numel())
        return sub


class SeedLoader:
    """Iterates over mini-batches of seed nodes and yields their sampled subgraphs.

    Args:
        sampler: The :class:`NeighborSampler` of the graph.
        seeds: The global ids of the nodes to cover (all nodes, or a split's nodes).
        batch_size: Seed nodes per mini-batch.
        shuffle: Shuffle the seeds every epoch (with :meth:`set_epoch`'s generator).
        drop_last: Drop the last incomplete batch.
        seed: Base seed of the shuffling.
        rank: This process's rank; each rank takes every ``world_size``-th batch.
        world_size: Number of processes.
    """

    def __init__(
        self,
        sampler: NeighborSampler,
        seeds: Tensor,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
        self.sampler = sampler
        self.seeds = seeds.long().cpu()
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffling order of ``epoch`` (identical on every rank)."""
        self.epoch = epoch

    def _batches(self) -> list[Tensor]:
        seeds = self.seeds
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            seeds = seeds[torch.randperm(seeds.numel(), generator=gen)]
        batches = list(seeds.split(self.batch_size))
        if self.drop_last and batches and batches[-1].numel() < self.batch_size:
            batches.pop()
        usable = len(batches) - len(batches) % self.world_size if self.world_size > 1 else None
        return batches[:usable][self.rank :: self.world_size]

    def __len__(self) -> int:
        return len(self._batches())

    def __iter__(self) -> Iterator[Data]:
        for batch in self._batches():
            yield self.sampler.sample(batch)
