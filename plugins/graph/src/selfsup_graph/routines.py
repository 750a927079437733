"""Graph training routines: full-batch and neighbour-sampled mini-batches.

Both train through the core's shared epoch loop
(:func:`selfsup.training.train_epochs`), so checkpoints, resumption, per-epoch
reseeding, budgets, the NaN stop, metrics and run events are the core loop's own; the
routines only say where each epoch's micro-batches come from.

* ``graph:full-batch``: one optimiser step per epoch on the whole graph (GraphMAE and
  GRACE on citation graphs). ``train.batch_size`` is ignored.
* ``graph:neighbor``: each step trains on ``train.batch_size`` seed nodes and their
  sampled ``num_neighbors`` neighbourhood; objectives count the seed nodes only. The
  same config scales from Cora to graphs with millions of nodes by swapping routines.

Each micro-batch comes with its :class:`~selfsup.interfaces.BatchMeta`: the node ids it
trains on (every node for ``graph:full-batch``, the seed nodes for ``graph:neighbor``),
the train split's per-node flags sliced to them, and the node labels of the ``train``
node split (``-1`` on every other node, so that held-out labels never reach a view
maker or an objective); ``labels`` is ``None`` for a graph without ``y``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import torch
from pydantic import Field
from selfsup.runtime import to_device
from selfsup.training import train_epochs
from torch import Tensor

if TYPE_CHECKING:
    from selfsup.interfaces import BatchMeta
    from selfsup.training import RunContext

__all__ = ["FullBatch", "NeighborBatch"]


def _graph(ctx: RunContext, owner: str) -> Any:
    graph = ctx.data.split("train")
    if not (hasattr(graph, "x") and hasattr(graph, "edge_index")):
        raise TypeError(
            f"{owner} trains on a graph, but the dataset's train split is "
            f"{type(graph).__name__}; use a graph: dataset (see 'selfsup list dataset')"
        )
    return graph


def _train_labels(ctx: RunContext, graph: Any) -> Tensor | None:
    """Node labels ``[N]`` (CPU) of the ``train`` node split, ``-1`` elsewhere, or ``None``.

    Without a ``train`` node split (``ctx.data.nodes``), every node's label is kept.
    """
    y = getattr(graph, "y", None)
    n = int(graph.num_nodes)
    if not isinstance(y, Tensor) or y.dim() != 1 or y.size(0) != n:
        return None
    y = y.detach().long().cpu()
    nodes_of = getattr(ctx.data, "nodes", None)
    if not callable(nodes_of):
        return y
    try:
        train = nodes_of("train").long().cpu()
    except KeyError:
        return None
    labels = torch.full((n,), -1, dtype=torch.long)
    labels[train] = y[train]
    return labels


class FullBatch:
    """One optimiser step per epoch on the whole graph (``train.grad_accum`` views per step).

    In a distributed run every process trains on the whole graph with its own random
    views and DDP averages the gradients (useful for averaging several masks per
    step; the graph must fit on each device).

    Example:
        >>> FullBatch().steps_per_epoch
        1
    """

    steps_per_epoch = 1

    def fit(self, ctx: RunContext) -> None:
        """Train ``ctx.encoder`` and ``ctx.objective`` for ``train.epochs`` epochs."""
        cpu_graph = _graph(ctx, "graph:full-batch")
        device = ctx.runtime.device
        graph = to_device(cpu_graph, device)
        accum = ctx.train.grad_accum
        n = int(graph.num_nodes)
        meta = ctx.data.batch_meta(
            "train", torch.arange(n), labels=_train_labels(ctx, cpu_graph)
        ).to(device)

        def batches(epoch: int) -> Iterable[tuple[Any, int, BatchMeta]]:
            return ((graph, n, meta) for _ in range(accum))

        # One step per epoch: no per-epoch bar; a summary line every train.log_every epochs.
        train_epochs(ctx, 1, batches, epoch_bars=False, print_every=ctx.train.log_every)


class NeighborBatch:
    """Mini-batches of ``train.batch_size`` seed nodes with sampled neighbourhoods.

    Args:
        num_neighbors: Neighbours sampled per node at each hop (``-1``: all); use one
            entry per encoder layer.
        seed_nodes: Which nodes are seeds: ``all`` (self-supervised pretraining uses
            every node) or ``train`` (only the training split's nodes).
        drop_last: Drop the last incomplete batch of an epoch.
    """

    def __init__(
        self,
        num_neighbors: Annotated[Sequence[int], Field(min_length=1)] = (10, 10),
        seed_nodes: Literal["all", "train"] = "all",
        drop_last: bool = False,
    ) -> None:
        if seed_nodes not in ("all", "train"):
            raise ValueError(f"graph:neighbor: seed_nodes={seed_nodes!r} must be 'all' or 'train'")
        self.num_neighbors = list(num_neighbors)
        self.seed_nodes = seed_nodes
        self.drop_last = bool(drop_last)

    def fit(self, ctx: RunContext) -> None:
        """Train on sampled subgraphs for ``train.epochs`` epochs (or the budget).

        Raises:
            ValueError: Fewer seed nodes than one optimiser step needs.
        """
        from selfsup_graph.sampling import NeighborSampler, SeedLoader

        graph = _graph(ctx, "graph:neighbor")
        nodes_of = getattr(ctx.data, "nodes", None)
        if self.seed_nodes == "train" and callable(nodes_of):
            seeds = nodes_of("train")
        else:
            seeds = torch.arange(int(graph.num_nodes))
        rt = ctx.runtime
        loader = SeedLoader(
            NeighborSampler(graph.cpu() if hasattr(graph, "cpu") else graph, self.num_neighbors),
            seeds,
            ctx.train.batch_size,
            shuffle=True,
            drop_last=self.drop_last,
            seed=ctx.seed,
            rank=rt.rank,
            world_size=rt.world_size,
        )
        steps_per_epoch = len(loader) // ctx.train.grad_accum
        if steps_per_epoch == 0:
            raise ValueError(
                f"graph:neighbor: {seeds.numel()} seed nodes make fewer batches than one "
                f"optimiser step needs (train.batch_size={ctx.train.batch_size} x grad_accum="
                f"{ctx.train.grad_accum} x {rt.world_size} process(es)); lower train.batch_size"
            )

        device = rt.device
        labels = _train_labels(ctx, graph)

        def micro_batch(sub: Any) -> tuple[Any, int, BatchMeta]:
            # The sampler puts the seeds first: n_id[:batch_size] are their global ids.
            index = sub.n_id[: int(sub.batch_size)]
            y = None if labels is None else labels[index]
            meta = ctx.data.batch_meta("train", index, labels=y).to(device)
            return to_device(sub, device), int(sub.batch_size), meta

        def batches(epoch: int) -> Iterable[tuple[Any, int, BatchMeta]]:
            loader.set_epoch(epoch)
            return (micro_batch(sub) for sub in loader)

        train_epochs(ctx, steps_per_epoch, batches)
