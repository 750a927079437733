"""Optimisers (AdamW, SGD, LARS) and learning-rate schedules (warmup + cosine, constant).

LARS follows the large-batch recipe of SimCLR and BYOL (You et al., 2017): SGD with
momentum where each weight matrix's update is rescaled by a layer-wise trust ratio
``eta * ||w|| / ||g + wd * w||``. Biases and normalisation parameters (every tensor
with ``ndim <= 1``) get neither weight decay nor the trust ratio.

Example:
    >>> import torch
    >>> from selfsup.config import OptimizerConfig, ScheduleConfig
    >>> net = torch.nn.Linear(4, 2)
    >>> opt = build_optimizer(list(net.parameters()), OptimizerConfig(name="lars"), 256)
    >>> sched = build_scheduler(opt, ScheduleConfig(warmup_epochs=1), 100, 10)
    >>> round(opt.param_groups[0]["lr"], 6)  # first warmup step: lr * 1/10
    0.0001
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from selfsup.config import OptimizerConfig, ScheduleConfig

__all__ = ["LARS", "WarmupCosine", "build_optimizer", "build_scheduler", "scaled_lr"]


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling on top of SGD with momentum.

    Args:
        params: Parameters or parameter groups. A group with ``lars_exclude=True``
            gets plain SGD with momentum (no weight decay, no trust ratio).
        lr: Learning rate.
        momentum: Momentum factor.
        weight_decay: Weight decay (added to the gradient before the trust ratio).
        trust_coefficient: ``eta`` of the trust ratio.
        eps: Guards the division when a gradient is all zeros.
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter] | Iterable[dict],
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
        eps: float = 1e-8,
    ) -> None:
        if lr <= 0:
            raise ValueError(f"LARS: lr must be positive, got {lr}")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "trust_coefficient": trust_coefficient,
            "eps": eps,
            "lars_exclude": False,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:  # type: ignore[override]
        """Take one optimisation step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if not group["lars_exclude"]:
                    if group["weight_decay"]:
                        grad = grad.add(p, alpha=group["weight_decay"])
                    w_norm = torch.linalg.vector_norm(p)
                    g_norm = torch.linalg.vector_norm(grad)
                    ratio = group["trust_coefficient"] * w_norm / (g_norm + group["eps"])
                    trust = torch.where((w_norm > 0) & (g_norm > 0), ratio, torch.ones_like(ratio))
                    grad = grad.mul(trust)
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = grad.detach().clone()
                else:
                    buf.mul_(group["momentum"]).add_(grad)
                p.add_(buf, alpha=-group["lr"])
        return loss


def scaled_lr(cfg: OptimizerConfig, global_batch: int) -> float:
    """The base learning rate, times ``global_batch / 256`` when ``scale_lr_by_batch``."""
    return cfg.lr * global_batch / 256 if cfg.scale_lr_by_batch else cfg.lr


def build_optimizer(
    params: Iterable[nn.Parameter], cfg: OptimizerConfig, global_batch: int
) -> torch.optim.Optimizer:
    """Build the optimiser of ``train.optimizer``.

    Args:
        params: The trainable parameters.
        cfg: Name, learning rate, weight decay and optimiser-specific settings.
        global_batch: Items per optimiser step over all processes and micro-steps
            (used by ``scale_lr_by_batch``).

    Raises:
        ValueError: No parameter to train, or an unknown optimiser name.
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError(
            "no trainable parameters: the encoder and objective have nothing that requires grad"
        )
    lr = scaled_lr(cfg, global_batch)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "adam":  # weight decay as an L2 term in the gradient (reference recipes)
        return torch.optim.Adam(params, lr=lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )
    if cfg.name == "lars":
        adapted = [p for p in params if p.ndim > 1]
        excluded = [p for p in params if p.ndim <= 1]
        groups = [
            {"params": adapted, "lars_exclude": False},
            {"params": excluded, "lars_exclude": True, "weight_decay": 0.0},
        ]
        return LARS(
            [g for g in groups if g["params"]],
            lr=lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            trust_coefficient=cfg.trust_coefficient,
        )
    raise ValueError(f"train.optimizer.name={cfg.name!r}: choose adamw, adam, sgd or lars")


@dataclass
class WarmupCosine:
    """Learning-rate factor: linear warmup, then cosine decay (or constant).

    A callable object (not a closure) so that ``LambdaLR.state_dict`` records its
    settings as plain numbers.

    Attributes:
        warmup_steps: Steps of linear warmup (factor ``(s + 1) / warmup_steps``).
        total_steps: Steps of the whole run.
        min_ratio: The factor at the end of the cosine.
        cosine: ``False`` keeps the factor at 1 after warmup.
    """

    warmup_steps: int
    total_steps: int
    min_ratio: float = 0.0
    cosine: bool = True

    def __call__(self, step: int) -> float:
        """The factor applied to the base learning rate at optimiser step ``step``."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if not self.cosine:
            return 1.0
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    cfg: ScheduleConfig,
    total_steps: int,
    steps_per_epoch: int,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step ``LambdaLR``: ``warmup_epochs`` of linear warmup, then cosine or constant.

    Args:
        optimizer: The optimiser whose learning rate is scheduled.
        cfg: Schedule name, warmup epochs and the final ratio of the cosine.
        total_steps: Optimiser steps of the whole run.
        steps_per_epoch: Optimiser steps per epoch (converts warmup epochs to steps).
    """
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    warmup = min(warmup, max(0, total_steps - 1)) if cfg.name == "cosine" else warmup
    factor = WarmupCosine(
        warmup_steps=int(warmup),
        total_steps=int(total_steps),
        min_ratio=float(cfg.min_lr_ratio),
        cosine=cfg.name == "cosine",
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
