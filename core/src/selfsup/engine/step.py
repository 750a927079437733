"""One optimiser step, done the same way by every routine.

:class:`TrainStepper` owns what is easy to get subtly wrong in a hand-written loop:
autocast, the fp16 grad scaler, gradient accumulation (without DDP gradient sync on
the non-final micro-steps), clipping of unscaled gradients, the scheduler step, the
objective's step hook (EMA teachers), logging, and stopping at the first non-finite
loss with a message that says what to do, before the bad step can reach a checkpoint.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

if TYPE_CHECKING:
    from selfsup.engine.context import RunContext
    from selfsup.interfaces import BatchMeta

__all__ = ["NonFiniteLossError", "TrainStepper"]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stopped and nothing was saved after it."""


class TrainStepper:
    """Runs micro-steps and optimiser steps for a routine.

    Args:
        ctx: The run context (runtime, settings, objective, logging).
        model: The trainable module (``SSLModel``, possibly DDP-wrapped or compiled):
            ``model(views, meta)`` returns an
            :class:`~selfsup.interfaces.ObjectiveOutput`.
        optimizer: The optimiser.
        scheduler: The per-step learning-rate scheduler.
        total_steps: Optimiser steps of the whole run (passed to ``on_step_end``).

    Attributes:
        scaler: The grad scaler, enabled only for ``precision == "fp16"``.
    """

    def __init__(
        self,
        ctx: RunContext,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        total_steps: int,
    ) -> None:
        self.ctx = ctx
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.total_steps = total_steps
        self.accum = ctx.train.grad_accum
        self.clip = ctx.train.clip_grad
        self.scaler = torch.amp.GradScaler(
            ctx.runtime.device.type, enabled=ctx.runtime.precision == "fp16"
        )
        self._params = [p for g in optimizer.param_groups for p in g["params"]]
        self._ddp = isinstance(_unwrap_compiled(model), nn.parallel.DistributedDataParallel)
        self._micro = 0
        self._sums: dict[str, float] = {}

    # ------------------------------------------------------------------ helpers
    def _sync_context(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        if self._ddp and not last:
            return _unwrap_compiled(self.model).no_sync()
        return contextlib.nullcontext()

    def _global_loss(self, loss: torch.Tensor) -> float:
        """The loss as a float, averaged over ranks (so that every rank sees a NaN)."""
        value = loss.detach().float()
        if self.ctx.runtime.distributed:
            value = value.reshape(1).clone()
            dist.all_reduce(value)
            value = value / self.ctx.runtime.world_size
        return float(value)

    def _raise_non_finite(self, value: float) -> None:
        ctx = self.ctx
        kept = (
            f"the last good checkpoint is kept at {ctx.checkpoint_path}"
            if ctx.checkpoint_path.is_file()
            else "no checkpoint had been written yet (the first is written at the end of "
            "epoch train.checkpoint_every)"
        )
        raise NonFiniteLossError(
            f"the loss became {value} at step {ctx.global_step + 1} of arm {ctx.arm.name!r}, "
            f"seed {ctx.seed}; training stopped and {kept}. "
            f"Try a lower learning rate (train.optimizer.lr, now "
            f"{ctx.train.optimizer.lr}), precision fp32 or bf16 instead of fp16 (now "
            f"{ctx.runtime.precision}), or gradient clipping (train.clip_grad=1.0, now "
            f"{ctx.train.clip_grad})."
        )

    # ------------------------------------------------------------------ the step
    def step(self, views: Any, meta: BatchMeta | None = None) -> dict[str, float] | None:
        """Run one micro-step; every ``grad_accum``-th call also steps the optimiser.

        Args:
            views: What the view maker produced for this micro-batch.
            meta: The micro-batch's :class:`~selfsup.interfaces.BatchMeta` (indices,
                labels, flags), passed on to the objective; ``None`` if unknown.

        Returns:
            The step's metrics (micro-step means of the loss and the objective's
            scalars, plus ``lr`` and ``grad_norm`` when clipping) after an optimiser
            step, else ``None``.

        Raises:
            NonFiniteLossError: The loss is NaN or infinite (on any rank).
        """
        self._micro += 1
        last = self._micro % self.accum == 0
        with self._sync_context(last):
            with self.ctx.runtime.autocast():
                out = self.model(views, meta)
            loss = out.loss
            value = self._global_loss(loss)
            if not math.isfinite(value):
                self.optimizer.zero_grad(set_to_none=True)
                self._micro, self._sums = 0, {}
                self._raise_non_finite(value)
            scaled = loss / self.accum if self.accum > 1 else loss
            self.scaler.scale(scaled).backward()
        sums = self._sums
        sums["loss"] = sums.get("loss", 0.0) + value
        for key, val in out.metrics.items():
            val = float(val.detach()) if isinstance(val, torch.Tensor) else float(val)
            sums[key] = sums.get(key, 0.0) + val
        if not last:
            return None
        return self._optimizer_step()

    def _optimizer_step(self) -> dict[str, float]:
        metrics = {k: v / self.accum for k, v in self._sums.items()}
        self._sums = {}
        if self.clip is not None:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(self._params, self.clip)
            metrics["grad_norm"] = float(norm)
        metrics["lr"] = float(self.optimizer.param_groups[0]["lr"])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        ctx = self.ctx
        ctx.global_step += 1
        ctx.objective.on_step_end(ctx.global_step, self.total_steps)
        ctx.log_step(metrics)
        return metrics


def _unwrap_compiled(model: nn.Module) -> nn.Module:
    """The module inside ``torch.compile``'s wrapper, if any."""
    return getattr(model, "_orig_mod", model)
