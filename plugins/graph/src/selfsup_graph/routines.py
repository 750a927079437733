"""Graph training routines: full-batch and neighbour-sampled mini-batches.

Both train through the run context's helpers (``make_optimizer``, ``make_scheduler``,
``make_stepper``, ``restore``, ``end_epoch``, ``out_of_budget``), so checkpoints,
resumption, the NaN stop, metrics and run events behave as in the core loop.

* ``graph:full-batch``: one optimiser step per epoch on the whole graph (GraphMAE and
  GRACE on citation graphs). ``train.batch_size`` is ignored.
* ``graph:neighbor``: each step trains on ``train.batch_size`` seed nodes and their
  sampled ``num_neighbors`` neighbourhood; objectives count the seed nodes only. The
  same config scales from Cora to graphs with millions of nodes by swapping routines.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from selfsup.engine.runtime import to_device

if TYPE_CHECKING:
    from selfsup.engine.context import RunContext

__all__ = ["FullBatch", "NeighborBatch"]


def _graph(ctx: RunContext, owner: str) -> Any:
    graph = ctx.data.split("train")
    if not (hasattr(graph, "x") and hasattr(graph, "edge_index")):
        raise TypeError(
            f"{owner} trains on a graph, but the dataset's train split is "
            f"{type(graph).__name__}; use a graph: dataset (see 'selfsup list dataset')"
        )
    return graph


def _log(ctx: RunContext, owner: str, epoch: int, metrics: dict[str, float]) -> None:
    """A progress line every ``train.log_every`` epochs on rank 0 (when progress is on)."""
    if not (ctx.progress and ctx.train.progress and ctx.runtime.is_main):
        return
    if epoch % ctx.train.log_every and epoch != ctx.train.epochs:
        return
    line = (
        f"  {owner} epoch {epoch}/{ctx.train.epochs}  loss {metrics.get('loss', float('nan')):.4f}"
        f"  {metrics['epoch_time_s']:.2f}s"
    )
    console = getattr(ctx, "console", None)
    if console is not None:
        console.print(line)
    else:
        print(line, flush=True)


def _train(
    ctx: RunContext,
    owner: str,
    steps_per_epoch: int,
    epoch_batches: Any,
) -> None:
    """The shared epoch loop; ``epoch_batches(epoch)`` yields (graph, node count) pairs."""
    attach = getattr(ctx.objective, "attach", None)
    if callable(attach):
        attach(ctx.encoder)
    accum = ctx.train.grad_accum
    model = ctx.wrap_model()
    optimizer = ctx.make_optimizer()
    scheduler = ctx.make_scheduler(optimizer, steps_per_epoch)
    total = ctx.total_steps(steps_per_epoch)
    stepper = ctx.make_stepper(model, optimizer, scheduler, total)
    start_epoch = ctx.restore(optimizer, scheduler, stepper.scaler)
    skip = max(0, ctx.global_step - start_epoch * steps_per_epoch) * accum
    device = ctx.runtime.device
    model.train()
    for epoch in range(start_epoch, ctx.train.epochs):
        if ctx.out_of_budget(total):
            break
        started = time.perf_counter()
        sums: dict[str, float] = {}
        steps = skip // accum
        counted = nodes = 0
        stop = False
        for index, (graph, count) in enumerate(epoch_batches(epoch)):
            if index >= steps_per_epoch * accum:
                break
            if index < skip:
                continue
            nodes += count
            out = stepper.step(ctx.views(to_device(graph, device)))
            if out is None:
                continue
            steps += 1
            counted += 1
            for key, value in out.items():
                sums[key] = sums.get(key, 0.0) + value
            if ctx.out_of_budget(total):
                stop = True
                break
        skip = 0
        elapsed = time.perf_counter() - started
        metrics = {k: v / max(counted, 1) for k, v in sums.items()}
        metrics["epoch_time_s"] = elapsed
        metrics["items_per_s"] = nodes * ctx.runtime.world_size / max(elapsed, 1e-9)
        done = steps == steps_per_epoch
        if done:
            ctx.end_epoch(epoch + 1, optimizer, scheduler, stepper.scaler, metrics)
            _log(ctx, owner, epoch + 1, metrics)
        if stop:
            every = ctx.train.checkpoint_every
            saved = done and ((epoch + 1) % every == 0 or epoch + 1 == ctx.train.epochs)
            if not saved:
                ctx.save_checkpoint(epoch + int(done), optimizer, scheduler, stepper.scaler)
            break


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
        graph = to_device(_graph(ctx, "graph:full-batch"), ctx.runtime.device)
        accum = ctx.train.grad_accum
        n = int(graph.num_nodes)

        def batches(epoch: int) -> Iterable[tuple[Any, int]]:
            return ((graph, n) for _ in range(accum))

        _train(ctx, "graph:full-batch", 1, batches)


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
        num_neighbors: Sequence[int] = (10, 10),
        seed_nodes: str = "all",
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
            import torch

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

        def batches(epoch: int) -> Iterable[tuple[Any, int]]:
            loader.set_epoch(epoch)
            return ((sub, int(sub.batch_size)) for sub in loader)

        _train(ctx, "graph:neighbor", steps_per_epoch, batches)
