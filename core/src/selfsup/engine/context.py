"""The run context a routine trains with: components, runtime and run-directory helpers.

Every routine (the core mini-batch loop, a plugin's full-graph loop) gets one
:class:`RunContext`. Most routines only say where their micro-batches come from and
hand them to the shared epoch loop, so that checkpoints, resumption, budgets, metrics,
NaN handling and events behave identically across modalities::

    from selfsup.training import train_epochs

    def fit(self, ctx):
        def batches(epoch):            # (input for ctx.views, item count[, BatchMeta])
            for graph in my_sampler(epoch):    # seed nodes first, n_id: global ids
                seeds = graph.n_id[: graph.batch_size]
                meta = ctx.data.batch_meta("train", seeds).to(ctx.runtime.device)
                yield graph.to(ctx.runtime.device), graph.batch_size, meta
        train_epochs(ctx, steps_per_epoch, batches)

A routine that needs its own loop uses the same helpers that ``train_epochs`` uses:
``wrap_model``, ``make_optimizer``, ``make_scheduler``, ``make_stepper``, ``restore``,
``end_epoch``, ``save_checkpoint`` and ``out_of_budget``.
"""

from __future__ import annotations

import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from selfsup.config import ArmConfig, TrainConfig
from selfsup.engine import checkpoint as ckpt
from selfsup.engine.metrics import MetricsLog
from selfsup.engine.optim import build_optimizer, build_scheduler
from selfsup.engine.runtime import Runtime
from selfsup.engine.step import NonFiniteLossError, TrainStepper
from selfsup.interfaces import BatchMeta, DataSplits, Encoder, Objective, ViewMaker

__all__ = ["NonFiniteLossError", "RunContext", "SSLModel"]


class SSLModel(nn.Module):
    """Encoder + objective as one module, so that DDP sees every trainable parameter."""

    def __init__(self, encoder: Encoder, objective: Objective) -> None:
        super().__init__()
        self.encoder = encoder
        self.objective = objective

    def forward(self, views: Any, meta: BatchMeta | None = None) -> Any:
        """Compute the objective's output for a batch of views and its :class:`BatchMeta`.

        ``meta`` is a plain argument so that DDP (whose ``forward`` takes ``*args``)
        passes it through unchanged.
        """
        return self.objective(self.encoder, views, meta)


@dataclass
class RunContext:
    """Everything a routine needs for one arm and one seed.

    Attributes:
        arm: The resolved arm configuration.
        seed: This run's seed.
        run_dir: The run directory (rank 0 writes into it).
        runtime: Device, precision, rank and world size.
        encoder: The encoder being pretrained (on ``runtime.device``).
        objective: The objective (on ``runtime.device``).
        views: The view maker.
        data: The dataset splits.
        emit: Calls a run-event hook by name (``emit("epoch_finished", ...)``).
        resume_state: The checkpoint to resume from, or ``None``.
        progress: Whether to show progress bars.
        console: The ``rich`` console for progress and messages (``None``: rich's default).
    """

    arm: ArmConfig
    seed: int
    run_dir: Path
    runtime: Runtime
    encoder: Encoder
    objective: Objective
    views: ViewMaker
    data: DataSplits
    emit: Callable[..., None] = lambda event, **kw: None
    resume_state: dict[str, Any] | None = None
    progress: bool = True
    console: Any = None
    model: nn.Module | None = None
    global_step: int = 0
    started_at: float = field(default_factory=time.perf_counter)
    _metrics: MetricsLog | None = None

    # ------------------------------------------------------------------ settings
    @property
    def train(self) -> TrainConfig:
        """The arm's training settings."""
        return self.arm.train

    @property
    def metrics(self) -> MetricsLog:
        """The JSON-lines metrics log of this run (writes on rank 0 only)."""
        if self._metrics is None:
            self._metrics = MetricsLog(self.run_dir / "metrics.jsonl", enabled=self.runtime.is_main)
        return self._metrics

    def parameters(self) -> Iterator[nn.Parameter]:
        """Trainable parameters: the encoder's and the objective's student parameters."""
        yield from (p for p in self.encoder.parameters() if p.requires_grad)
        yield from self.objective.student_parameters()

    # ------------------------------------------------------------------ builders
    def wrap_model(self) -> nn.Module:
        """The trainable :class:`SSLModel`; DDP-wrapped when distributed, compiled if asked.

        ``channels_last`` is applied here for 4-D inputs' convolutions.
        """
        model: nn.Module = SSLModel(self.encoder, self.objective)
        if self.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.runtime.distributed:
            dev = self.runtime.device
            if self.train.sync_batchnorm and dev.type == "cuda":
                # SyncBatchNorm runs on accelerators only; gloo/CPU keeps per-rank BN.
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            model = nn.parallel.DistributedDataParallel(
                model,
                device_ids=[dev.index] if dev.type == "cuda" else None,
                find_unused_parameters=False,
            )
        if self.train.compile:
            model = torch.compile(model)  # type: ignore[assignment]
        self.model = model
        return model

    def make_optimizer(self) -> torch.optim.Optimizer:
        """The optimiser of ``train.optimizer`` over :meth:`parameters`."""
        global_batch = self.train.batch_size * self.train.grad_accum * self.runtime.world_size
        return build_optimizer(list(self.parameters()), self.train.optimizer, global_batch)

    def make_scheduler(
        self, optimizer: torch.optim.Optimizer, steps_per_epoch: int
    ) -> torch.optim.lr_scheduler.LRScheduler:
        """Warmup + cosine (or constant) over ``total_steps(steps_per_epoch)`` steps."""
        return build_scheduler(
            optimizer, self.train.schedule, self.total_steps(steps_per_epoch), steps_per_epoch
        )

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimiser steps of the whole run (``max_steps`` caps ``epochs``)."""
        total = max(1, self.train.epochs * max(1, steps_per_epoch))
        return min(total, self.train.max_steps) if self.train.max_steps else total

    def make_stepper(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        total_steps: int,
    ) -> TrainStepper:
        """A :class:`TrainStepper` (autocast, grad scaler, accumulation, clipping, NaN stop)."""
        return TrainStepper(self, model, optimizer, scheduler, total_steps)

    # ------------------------------------------------------------------ checkpoints
    @property
    def checkpoint_path(self) -> Path:
        """Where the last good checkpoint lives."""
        return self.run_dir / "checkpoints" / "last.pt"

    def restore(
        self,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler | None = None,
    ) -> int:
        """Load ``resume_state`` into model, optimiser, scheduler, scaler and RNGs.

        The encoder's and objective's states are checked against the modules first: a
        checkpoint of another model fails in one line naming the first parameter that
        differs (:func:`selfsup.engine.checkpoint.check_fits`).

        The learning-rate schedule keeps the checkpoint's step but follows the plan of
        the current config: a ``LambdaLR`` restores the settings of its factor (total
        steps, warmup) from the checkpoint, and these are set back to the ones just
        built. They differ only when a resume may change them, that is a larger
        ``train.epochs`` (or a world size that changes the steps per epoch); then the
        remaining steps get the learning rates of a run planned for the new total from
        the start (a cosine that had reached its end rises to where the longer cosine
        is at that step), rather than the old plan's final value (0.0 for a cosine
        with ``min_lr_ratio: 0``), which would make the added epochs train nothing.

        Returns:
            The epoch to start from (0 for a fresh run).

        Raises:
            CheckpointError: The checkpoint's state does not fit the model.
        """
        if not self.resume_state:
            return 0
        state = self.resume_state
        for part, module in (("encoder", self.encoder), ("objective", self.objective)):
            ckpt.check_fits(part, state[part], module.state_dict(), self.checkpoint_path)
        self.encoder.load_state_dict(state["encoder"])
        self.objective.load_state_dict(state["objective"])
        optimizer.load_state_dict(state["optimizer"])
        planned = _schedule_plan(scheduler)
        scheduler.load_state_dict(state["scheduler"])
        _replan(scheduler, optimizer, planned)
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        ckpt.set_rng_state(state["rng"])
        self.global_step = int(state["global_step"])
        return int(state["epoch"])

    def save_checkpoint(
        self,
        epoch: int,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler | None = None,
    ) -> None:
        """Write the checkpoint atomically (rank 0) and tell the event hooks."""
        if self.runtime.is_main:
            state = {
                "epoch": epoch,
                "global_step": self.global_step,
                "seed": self.seed,
                "arm": self.arm.name,
                "encoder": self.encoder.state_dict(),
                "objective": self.objective.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict()
                if scaler is not None and scaler.is_enabled()
                else None,
                "rng": ckpt.get_rng_state(),
            }
            ckpt.save_atomic(state, self.checkpoint_path)
            self.emit(
                "checkpoint_saved",
                run_dir=str(self.run_dir),
                path=str(self.checkpoint_path),
                epoch=epoch,
            )
        self.runtime.barrier()

    # ------------------------------------------------------------------ logging
    def log_step(self, metrics: dict[str, float]) -> None:
        """Record step metrics (every ``train.log_every`` steps) and emit ``step_finished``."""
        if self.global_step % self.train.log_every == 0:
            self.metrics.write({"step": self.global_step, **metrics})
            if self.runtime.is_main:
                self.emit(
                    "step_finished",
                    run_dir=str(self.run_dir),
                    step=self.global_step,
                    metrics=metrics,
                )

    def end_epoch(
        self,
        epoch: int,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler | None,
        metrics: dict[str, float],
    ) -> None:
        """Log epoch means, emit ``epoch_finished`` and checkpoint every ``checkpoint_every``."""
        self.metrics.write({"epoch": epoch, "step": self.global_step, **metrics})
        if self.runtime.is_main:
            self.emit("epoch_finished", run_dir=str(self.run_dir), epoch=epoch, metrics=metrics)
        if epoch % self.train.checkpoint_every == 0 or epoch == self.train.epochs:
            self.save_checkpoint(epoch, optimizer, scheduler, scaler)

    def out_of_budget(self, total_steps: int) -> bool:
        """Whether ``max_steps`` or ``max_time_s`` is reached."""
        if self.global_step >= total_steps:
            return True
        limit = self.train.max_time_s
        return limit is not None and time.perf_counter() - self.started_at >= limit


def _schedule_plan(scheduler: Any) -> list[dict[str, Any] | None]:
    """The settings of a ``LambdaLR``'s factor objects, as built from the config."""
    lambdas = getattr(scheduler, "lr_lambdas", None) or []
    return [
        None
        if isinstance(fn, types.FunctionType) or not hasattr(fn, "__dict__")
        else dict(vars(fn))
        for fn in lambdas
    ]


def _replan(scheduler: Any, optimizer: torch.optim.Optimizer, planned: list[Any]) -> bool:
    """Put the planned factor settings back after ``load_state_dict``; whether any changed.

    When one did, the optimiser's learning rates are recomputed for the restored step
    exactly as ``LambdaLR`` computes them (``base_lr * factor(step)``).
    """
    lambdas = getattr(scheduler, "lr_lambdas", None) or []
    changed = False
    for fn, plan in zip(lambdas, planned, strict=False):
        if plan is not None and vars(fn) != plan:
            vars(fn).update(plan)
            changed = True
    if changed:
        step = scheduler.last_epoch
        groups = optimizer.param_groups
        for group, base, fn in zip(groups, scheduler.base_lrs, lambdas, strict=False):
            value = base * fn(step)
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(value)
            else:
                group["lr"] = value
        scheduler._last_lr = [float(g["lr"]) for g in optimizer.param_groups]
    return changed
