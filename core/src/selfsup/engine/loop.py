"""The default routine (``core:minibatch``): a mini-batch loop over the train split.

Every process reads its shard through a ``DistributedSampler`` (also with one process,
so that a seed gives the same order whatever the world size's bookkeeping), builds
each batch's :class:`~selfsup.interfaces.BatchMeta` (the items' train indices, labels
and flags), makes views on the device, and steps through
:class:`~selfsup.engine.step.TrainStepper`; view maker and objective both get the meta.
Epochs end with mean metrics, throughput and an atomic checkpoint; a resumed run
continues at the saved epoch (and skips the steps already done in a partial one).
Each epoch reseeds the generators from (seed, epoch, rank): ranks draw different
augmentations, and a resumed epoch replays exactly, whatever the world size.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from pydantic import PositiveInt
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from selfsup.engine.runtime import to_device
from selfsup.engine.seeding import seed_epoch
from selfsup.interfaces import BatchMeta, Objective

if TYPE_CHECKING:
    from rich.progress import Progress

    from selfsup.engine.context import RunContext

__all__ = ["MiniBatch", "train_epochs"]


class _Indexed(Dataset):
    """A map-style split whose items come with their index: ``(item, index)``."""

    def __init__(self, split: Any) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.split[index], int(index)


class _IndexedCollate:
    """Collates ``(item, index)`` pairs: the dataset's own collate sees only its items.

    A class rather than a closure so that loader workers can pickle it whatever the
    start method.
    """

    def __init__(self, collate: Callable[[list[Any]], Any]) -> None:
        self.collate = collate

    def __call__(self, pairs: list[tuple[Any, int]]) -> tuple[Any, torch.Tensor]:
        batch = self.collate([item for item, _ in pairs])
        return batch, torch.tensor([index for _, index in pairs], dtype=torch.long)


class MiniBatch:
    """Mini-batch SSL training: shuffle, views, objective, optimiser step, per epoch.

    Args:
        drop_last: Drop the incomplete last batch (and the sampler's uneven tail) so
            that every step sees ``train.batch_size`` items per process; contrastive
            losses depend on the batch size.
        prefetch: Batches each worker loads ahead (``prefetch_factor``; used when
            ``train.num_workers > 0``).
        persistent_workers: Keep loader workers alive across epochs.
    """

    def __init__(
        self, drop_last: bool = True, prefetch: PositiveInt = 2, persistent_workers: bool = True
    ) -> None:
        if prefetch < 1:
            raise ValueError(f"core:minibatch: prefetch must be >= 1, got {prefetch}")
        self.drop_last = drop_last
        self.prefetch = prefetch
        self.persistent_workers = persistent_workers

    def loader(self, ctx: RunContext) -> tuple[DataLoader, DistributedSampler]:
        """The train loader of this process and its sampler.

        The loader yields ``(batch, index)``: the dataset's own collate of the items,
        and their ``[B]`` indices in the train split (for :class:`BatchMeta`).
        """
        train = ctx.data.split("train")
        rt = ctx.runtime
        sampler = DistributedSampler(
            train,
            num_replicas=rt.world_size,
            rank=rt.rank,
            shuffle=True,
            seed=ctx.seed,
            drop_last=self.drop_last,
        )
        workers = ctx.train.num_workers
        loader = DataLoader(
            _Indexed(train),
            batch_size=ctx.train.batch_size,
            sampler=sampler,
            num_workers=workers,
            collate_fn=_IndexedCollate(ctx.data.collate),
            pin_memory=rt.device.type == "cuda",
            drop_last=self.drop_last,
            persistent_workers=self.persistent_workers and workers > 0,
            prefetch_factor=self.prefetch if workers > 0 else None,
        )
        return loader, sampler

    def fit(self, ctx: RunContext) -> None:
        """Train ``ctx.encoder`` and ``ctx.objective`` for ``train.epochs`` (or the budget).

        Raises:
            ValueError: The train split is too small for one optimiser step.
            NonFiniteLossError: The loss became NaN/inf (nothing is saved after it).
        """
        loader, sampler = self.loader(ctx)
        accum = ctx.train.grad_accum
        steps_per_epoch = len(loader) // accum
        if steps_per_epoch == 0:
            n = len(ctx.data.split("train"))
            raise ValueError(
                f"arm {ctx.arm.name!r}: the train split has {n} items, fewer than one "
                f"optimiser step needs (train.batch_size={ctx.train.batch_size} x "
                f"grad_accum={accum} x {ctx.runtime.world_size} process(es)); lower "
                "train.batch_size or train.grad_accum"
            )
        device = ctx.runtime.device
        channels_last = ctx.train.channels_last

        data = ctx.data
        labelled = data.task != "none"

        def batches(epoch: int) -> Iterator[tuple[Any, int, BatchMeta]]:
            sampler.set_epoch(epoch)
            for batch, index in loader:
                x, y = batch, None
                if isinstance(batch, list | tuple):
                    x = batch[0]
                    if labelled and len(batch) > 1 and isinstance(batch[1], torch.Tensor):
                        y = batch[1]
                meta = data.batch_meta("train", index, labels=y).to(device)
                x = to_device(x, device)
                if channels_last and isinstance(x, torch.Tensor) and x.ndim == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                yield x, _batch_len(x), meta

        train_epochs(ctx, steps_per_epoch, batches)


def train_epochs(
    ctx: RunContext,
    steps_per_epoch: int,
    epoch_batches: Callable[[int], Iterable[tuple[Any, ...]]],
    *,
    epoch_bars: bool = True,
    print_every: int = 1,
) -> None:
    """The epoch loop every routine shares: build, restore, train, checkpoint, stop.

    Builds the (DDP-wrapped) model, optimiser, schedule and stepper from ``ctx``,
    resumes from ``ctx.resume_state`` (skipping the micro-batches a partial epoch
    already did), reseeds every epoch from (seed, epoch, rank), steps through the
    micro-batches, logs epoch means and throughput, checkpoints through
    ``ctx.end_epoch`` and stops cleanly (with a checkpoint) on ``max_steps`` or
    ``max_time_s``. Routines differ only in where their micro-batches come from.

    Args:
        ctx: The run context.
        steps_per_epoch: Optimiser steps per epoch (micro-batches / ``grad_accum``).
        epoch_batches: ``epoch_batches(epoch)`` yields ``(input, item_count)`` or
            ``(input, item_count, meta)`` tuples: the input ready for ``ctx.views`` on
            the device, the number of items it holds (for throughput), and optionally
            the micro-batch's :class:`~selfsup.interfaces.BatchMeta` on the device
            (item indices, labels, flags such as ``"poisoned"``; build it with
            ``ctx.data.batch_meta(...)``). Each micro-batch is trained as
            ``ctx.views(input, meta)`` then ``objective(encoder, views, meta)``, with
            ``meta=None`` for 2-tuples. It is called after the epoch's reseed, so
            iterators created in it replay exactly on resume.
        epoch_bars: Show a progress bar per epoch (off for one-step epochs).
        print_every: Print an epoch summary line every this many epochs (and last).

    Raises:
        TypeError: The objective is not a :class:`~selfsup.interfaces.Objective`.
        NonFiniteLossError: The loss became NaN/inf (nothing is saved after it).
    """
    if not isinstance(ctx.objective, Objective):
        oid = getattr(ctx.arm.objective, "id", None)
        raise TypeError(
            f"arm {ctx.arm.name!r}: objective {oid!r} built a "
            f"{type(ctx.objective).__name__}, not a selfsup.Objective; its plugin must "
            "subclass selfsup.interfaces.Objective (forward(encoder, views, meta=None), "
            "attach, on_step_end and student_parameters come with it)"
        )
    ctx.objective.attach(ctx.encoder)  # EMA teachers are built here, before DDP and restore
    accum = ctx.train.grad_accum
    model = ctx.wrap_model()
    optimizer = ctx.make_optimizer()
    scheduler = ctx.make_scheduler(optimizer, steps_per_epoch)
    total = ctx.total_steps(steps_per_epoch)
    stepper = ctx.make_stepper(model, optimizer, scheduler, total)
    start_epoch = ctx.restore(optimizer, scheduler, stepper.scaler)
    skip = max(0, ctx.global_step - start_epoch * steps_per_epoch) * accum
    model.train()
    show = ctx.progress and ctx.train.progress and ctx.runtime.is_main
    with _progress(ctx, show) as bar:
        for epoch in range(start_epoch, ctx.train.epochs):
            if _stop(ctx, total):
                break
            seed_epoch(ctx.seed, epoch, ctx.runtime.rank)
            steps, stop, metrics = _epoch(
                ctx,
                epoch_batches(epoch),
                stepper,
                epoch,
                steps_per_epoch,
                total,
                skip,
                bar if epoch_bars else None,
            )
            skip = 0
            done = steps == steps_per_epoch
            if done:
                ctx.end_epoch(epoch + 1, optimizer, scheduler, stepper.scaler, metrics)
                if (epoch + 1) % print_every == 0 or epoch + 1 == ctx.train.epochs:
                    _print_epoch(ctx, bar, epoch + 1, metrics)
            if stop:
                every = ctx.train.checkpoint_every
                saved = done and ((epoch + 1) % every == 0 or epoch + 1 == ctx.train.epochs)
                if not saved:
                    ctx.save_checkpoint(epoch + int(done), optimizer, scheduler, stepper.scaler)
                break


def _epoch(
    ctx: RunContext,
    batches: Iterable[tuple[Any, ...]],
    stepper: Any,
    epoch: int,
    steps_per_epoch: int,
    total: int,
    skip: int,
    bar: Progress | None,
) -> tuple[int, bool, dict[str, float]]:
    """One epoch: returns (optimiser steps done, budget reached, mean metrics)."""
    accum = ctx.train.grad_accum
    micro_limit = steps_per_epoch * accum
    task = None
    if bar is not None:
        task = bar.add_task(
            f"epoch {epoch + 1}/{ctx.train.epochs}", total=steps_per_epoch, loss=0.0, ips=0.0
        )
        bar.update(task, advance=skip // accum)
    sums: dict[str, float] = {}
    steps = skip // accum
    counted = items = 0
    stop = False
    start = time.perf_counter()
    for index, item in enumerate(batches):
        if index >= micro_limit:
            break
        if index < skip:
            continue
        x, count, meta = _unpack(item)
        items += count
        out = stepper.step(ctx.views(x, meta), meta)
        if out is None:
            continue
        steps += 1
        counted += 1
        for key, value in out.items():
            sums[key] = sums.get(key, 0.0) + value
        if task is not None and bar is not None:
            rate = items * ctx.runtime.world_size / max(time.perf_counter() - start, 1e-9)
            bar.update(task, advance=1, loss=out["loss"], ips=rate)
        if _stop(ctx, total):
            stop = True
            break
    elapsed = time.perf_counter() - start
    if task is not None and bar is not None:
        bar.remove_task(task)
    metrics = {k: v / max(counted, 1) for k, v in sums.items()}
    metrics["epoch_time_s"] = elapsed
    metrics["items_per_s"] = items * ctx.runtime.world_size / max(elapsed, 1e-9)
    return steps, stop, metrics


def _stop(ctx: RunContext, total: int) -> bool:
    """The budget check, agreed by every rank (time budgets may differ per rank)."""
    stop = ctx.out_of_budget(total)
    if ctx.runtime.distributed and ctx.train.max_time_s is not None:
        flag = torch.tensor([float(stop)], device=ctx.runtime.device)
        dist.broadcast(flag, src=0)
        stop = bool(flag.item())
    return stop


def _unpack(item: tuple[Any, ...]) -> tuple[Any, int, BatchMeta | None]:
    """``(input, count[, meta])`` from a routine's micro-batch, with a clear error."""
    if not isinstance(item, tuple) or len(item) not in (2, 3):
        got = f"a {len(item)}-tuple" if isinstance(item, tuple) else type(item).__name__
        raise TypeError(
            f"a routine's epoch_batches(epoch) must yield (input, item_count) or "
            f"(input, item_count, BatchMeta) tuples, got {got}; see "
            "selfsup.training.train_epochs"
        )
    if len(item) == 2:
        return item[0], int(item[1]), None
    meta = item[2]
    if meta is not None and not isinstance(meta, BatchMeta):
        raise TypeError(
            f"the third entry of a micro-batch from epoch_batches(epoch) must be a "
            f"selfsup.interfaces.BatchMeta or None, got {type(meta).__name__}; build it "
            "with ctx.data.batch_meta(split, index, labels)"
        )
    return item[0], int(item[1]), meta


def _batch_len(x: Any) -> int:
    """Items in a batch: the leading dimension of the first tensor found."""
    if isinstance(x, torch.Tensor):
        return int(x.shape[0]) if x.ndim else 1
    if isinstance(x, dict):
        for value in x.values():
            return _batch_len(value)
    if isinstance(x, list | tuple) and x:
        return _batch_len(x[0])
    return int(getattr(x, "num_graphs", 0) or getattr(x, "batch_size", 0) or 0)


@contextlib.contextmanager
def _progress(ctx: RunContext, show: bool) -> Iterator[Progress | None]:
    """A rich progress bar on rank 0 (transient: finished epochs become one line)."""
    if not show:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("  [bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[ips]:.0f} items/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=getattr(ctx, "console", None),
        transient=True,
    )
    with bar:
        yield bar


def epoch_lines(epoch: int, epochs: int, m: dict[str, float], width: int = 80) -> list[str]:
    """The epoch summary as lines of at most ``width`` characters, broken between metrics.

    Example:
        >>> epoch_lines(3, 10, {"loss": 0.5, "items_per_s": 900.0, "epoch_time_s": 1.25})
        ['  epoch 3/10  loss 0.5000  900 items/s  1.2s']
    """
    parts = [
        f"epoch {epoch}/{epochs}",
        f"loss {m.get('loss', float('nan')):.4f}",
        f"{m.get('items_per_s', 0.0):.0f} items/s",
        f"{m.get('epoch_time_s', 0.0):.1f}s",
    ]
    parts += [
        f"{k} {v:.4g}"
        for k, v in m.items()
        if k not in ("loss", "lr", "epoch_time_s", "items_per_s", "grad_norm")
    ]
    lines: list[str] = []
    line = "  " + parts[0]
    for part in parts[1:]:
        if len(line) + 2 + len(part) > width:
            lines.append(line)
            line = "      " + part
        else:
            line += "  " + part
    lines.append(line)
    return [ln.rstrip() for ln in lines]


def _print_epoch(ctx: RunContext, bar: Progress | None, epoch: int, m: dict[str, float]) -> None:
    """One summary per epoch on rank 0, above the bar or, without bars, as plain lines."""
    if not ctx.runtime.is_main:
        return
    console = bar.console if bar is not None else getattr(ctx, "console", None)
    if console is None:
        from rich.console import Console

        console = Console(highlight=False)
    for line in epoch_lines(epoch, ctx.train.epochs, m, max(console.width, 40)):
        console.print(line, soft_wrap=True, highlight=False, markup=False)
