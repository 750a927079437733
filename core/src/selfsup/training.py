"""What a training routine uses (public): the run context and the shared epoch loop.

A routine says where its micro-batches come from and hands them to
:func:`train_epochs`, which builds the (DDP-wrapped) model, optimiser and schedule,
restores a checkpoint, reseeds every epoch, steps, logs, checkpoints and stops on the
budget, identically for every modality::

    from selfsup.training import RunContext, train_epochs

    class FullGraph:
        def fit(self, ctx: RunContext) -> None:
            def batches(epoch):          # (input for ctx.views, item count[, BatchMeta])
                yield ctx.data.train.to(ctx.runtime.device), ctx.data.train.num_nodes
            train_epochs(ctx, 1, batches)

A :class:`RunContext` is built from an :class:`ArmConfig` (the resolved arm: its
:class:`ComponentRef` ids and :class:`TrainConfig`), which is how a test drives a
routine directly; :func:`load_checkpoint` reads a run's checkpoint
(``weights_only=True``) to resume it. :class:`WarmupCosine` is the learning-rate
factor behind ``train.schedule`` (linear warm-up, then cosine decay or constant), for
loops of one's own such as an evaluator's fine-tuning::

    sched = torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosine(warmup_steps=50, total_steps=500))
"""

from __future__ import annotations

from selfsup.config import ArmConfig, ComponentRef, TrainConfig
from selfsup.engine.checkpoint import CheckpointError, load_checkpoint
from selfsup.engine.context import NonFiniteLossError, RunContext
from selfsup.engine.loop import MiniBatch, train_epochs
from selfsup.engine.optim import WarmupCosine

__all__ = [
    "ArmConfig",
    "CheckpointError",
    "ComponentRef",
    "MiniBatch",
    "NonFiniteLossError",
    "RunContext",
    "TrainConfig",
    "WarmupCosine",
    "load_checkpoint",
    "train_epochs",
]
