"""DINO: self-distillation with no labels (centering, sharpening, EMA teacher, multi-crop).

Reference:
    Caron et al., "Emerging Properties in Self-Supervised Vision Transformers",
    ICCV 2021.

Views: the first two are global crops (seen by teacher and student), any further
ones are local crops (student only). The loss is the cross-entropy between the
teacher's centred, sharpened softmax of one global view and the student's softmax
of every *other* view, averaged over the pairs (as the authors' code and lightly's
``DINOLoss``).

Distributed: the cross-entropy is a per-sample mean (DDP averages it over ranks);
the centre's batch mean is all-reduced, as in the authors' code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveFloat, PositiveInt
from torch import Tensor, nn

from selfsup.builtin.objectives.common import (
    check_embed_dim,
    check_positive,
    check_views,
    embedding_std,
    encode,
    full_precision,
)
from selfsup.builtin.objectives.ema import EMATeacher, TeacherStudentObjective
from selfsup.builtin.objectives.heads import DINOHead
from selfsup.engine import distributed as D
from selfsup.interfaces import BatchMeta, ObjectiveOutput

__all__ = ["DINO", "dino_loss", "teacher_entropy", "update_center"]


def dino_loss(
    student_out: Sequence[Tensor],
    teacher_out: Sequence[Tensor],
    center: Tensor,
    teacher_temp: float = 0.04,
    student_temp: float = 0.1,
) -> Tensor:
    """Mean cross-entropy between teacher and student views, skipping same-view pairs.

    Args:
        student_out: The student's logits, one ``[B, K]`` tensor per view (globals first).
        teacher_out: The teacher's logits for the global views, ``[B, K]`` each.
        center: ``[K]`` or ``[1, K]`` centre subtracted from the teacher logits.
        teacher_temp: Teacher temperature (lower than the student's: sharpening).
        student_temp: Student temperature.

    Returns:
        The loss averaged over the batch and over the ``(teacher i, student j != i)``
        pairs. The teacher side is a target (no gradient).
    """
    check_positive("teacher_temp", teacher_temp, "dino_loss")
    check_positive("student_temp", student_temp, "dino_loss")
    with full_precision(center):
        targets = [
            F.softmax((t.detach().float() - center) / teacher_temp, dim=-1) for t in teacher_out
        ]
        log_probs = [F.log_softmax(s.float() / student_temp, dim=-1) for s in student_out]
        total: Tensor | None = None
        n_terms = 0
        for i, q in enumerate(targets):
            for j, log_p in enumerate(log_probs):
                if i == j:
                    continue
                term = -(q * log_p).sum(dim=-1).mean()
                total = term if total is None else total + term
                n_terms += 1
        if total is None:
            raise ValueError(
                f"dino_loss needs at least one teacher view and one other student view, got "
                f"{len(teacher_out)} teacher and {len(student_out)} student views"
            )
        return total / n_terms


@torch.no_grad()
def update_center(
    center: Tensor,
    teacher_out: Sequence[Tensor],
    momentum: float = 0.9,
    reduce_distributed: bool = True,
) -> Tensor:
    """The new EMA centre: ``momentum * center + (1 - momentum) * mean(teacher logits)``.

    The mean is over every teacher view and every row of the (global) batch.
    """
    stacked = torch.cat([t.detach().float() for t in teacher_out])
    total = stacked.sum(dim=0)
    count = stacked.shape[0]
    if reduce_distributed:
        total, count = D.all_reduce_sum(total), count * D.world_size()
    return center * momentum + (total / count).reshape(center.shape) * (1.0 - momentum)


@torch.no_grad()
def teacher_entropy(teacher_out: Sequence[Tensor], center: Tensor, teacher_temp: float) -> Tensor:
    """Mean entropy (nats) of the teacher's centred, sharpened distributions."""
    with full_precision(center):
        logits = torch.cat([t.float() for t in teacher_out])
        log_q = F.log_softmax((logits - center) / teacher_temp, dim=-1)
        return -(log_q.exp() * log_q).sum(dim=-1).mean()


class DINO(TeacherStudentObjective):
    """DINO with a weight-normalised prototype head and an EMA teacher.

    Args:
        embed_dim: The encoder's ``embed_dim`` (set by the engine).
        hidden_dim: Head MLP hidden width (paper: 2048).
        bottleneck_dim: Head bottleneck width (paper: 256).
        out_dim: Number of prototypes (paper: 65536).
        num_layers: Head MLP layers (paper: 3).
        norm_last_layer: Fix the prototypes' norm (paper default).
        student_temp: Student temperature (paper: 0.1).
        teacher_temp: Teacher temperature after warmup (paper: 0.04-0.07).
        warmup_teacher_temp: Teacher temperature at step 0 (paper: 0.04).
        teacher_temp_warmup: Fraction of the run over which the teacher temperature
            rises linearly (paper: 30 epochs).
        center_momentum: EMA momentum of the centre (paper: 0.9).
        base_momentum: Teacher EMA momentum at step 0 (paper: 0.996).
        final_momentum: Teacher momentum at the last step (paper: 1.0, cosine).
    """

    name = "core:dino"

    def __init__(
        self,
        embed_dim: int,
        hidden_dim: PositiveInt = 512,
        bottleneck_dim: PositiveInt = 128,
        out_dim: PositiveInt = 4096,
        num_layers: PositiveInt = 3,
        norm_last_layer: bool = True,
        student_temp: PositiveFloat = 0.1,
        teacher_temp: PositiveFloat = 0.07,
        warmup_teacher_temp: PositiveFloat = 0.04,
        teacher_temp_warmup: Annotated[float, Field(ge=0, le=1)] = 0.3,
        center_momentum: Annotated[float, Field(ge=0, le=1)] = 0.9,
        base_momentum: Annotated[float, Field(ge=0, le=1)] = 0.996,
        final_momentum: Annotated[float, Field(ge=0, le=1)] = 1.0,
    ) -> None:
        super().__init__()
        self.embed_dim = check_embed_dim(embed_dim, self.name)
        self.student_temp = check_positive("student_temp", student_temp, self.name)
        self.teacher_temp = check_positive("teacher_temp", teacher_temp, self.name)
        self.warmup_teacher_temp = check_positive(
            "warmup_teacher_temp", warmup_teacher_temp, self.name
        )
        for key, value in (
            ("teacher_temp_warmup", teacher_temp_warmup),
            ("center_momentum", center_momentum),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{self.name}: {key} must be in [0, 1], got {value!r}")
        self.teacher_temp_warmup = float(teacher_temp_warmup)
        self.center_momentum = float(center_momentum)
        self.head: nn.Module = DINOHead(
            embed_dim, hidden_dim, bottleneck_dim, out_dim, num_layers, norm_last_layer
        )
        self.teacher = EMATeacher(self.head, base_momentum, final_momentum)
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.register_buffer("total_steps", torch.zeros((), dtype=torch.long))
        # A host-side copy of (step, total_steps), so forward never syncs with the GPU;
        # refreshed from the buffers after load_state_dict.
        self._schedule = (0, 0)
        self.register_load_state_dict_post_hook(_refresh_schedule)

    def student_head(self) -> nn.Module:
        """The DINO head (the teacher copies encoder and head)."""
        return self.head

    def current_teacher_temp(self) -> float:
        """The teacher temperature at the current step (linear warmup, then constant).

        Before the first ``on_step_end`` (the run's length still unknown) this is the
        warmup's starting temperature.
        """
        if self.teacher_temp_warmup <= 0:
            return self.teacher_temp
        step, total = self._schedule
        if total <= 0:
            return self.warmup_teacher_temp
        warmup = self.teacher_temp_warmup * total
        if step >= warmup:
            return self.teacher_temp
        frac = step / warmup
        return self.warmup_teacher_temp + frac * (self.teacher_temp - self.warmup_teacher_temp)

    def on_step_end(self, step: int, total_steps: int) -> None:
        """Record the step (temperature schedule) and update the EMA teacher."""
        self.step.fill_(step)
        self.total_steps.fill_(total_steps)
        self._schedule = (int(step), int(total_steps))
        super().on_step_end(step, total_steps)

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """DINO loss over 2 global views and any number of local views."""
        views = check_views(views, self.name, exact=None, minimum=2)
        self.teacher.attach(encoder)
        feats = [encode(encoder, v, self.embed_dim, self.name) for v in views]
        student_out = [self.head(h) for h in feats]
        teacher_out = [self.teacher(v) for v in views[:2]]
        temp = self.current_teacher_temp()
        loss = dino_loss(student_out, teacher_out, self.center, temp, self.student_temp)
        entropy = teacher_entropy(teacher_out, self.center, temp)
        if self.training:
            self.center.copy_(update_center(self.center, teacher_out, self.center_momentum))
        return ObjectiveOutput(
            loss=loss,
            metrics={
                "teacher_entropy": entropy,
                "kl": loss.detach() - entropy,
                "teacher_temp": temp,
                "ema_momentum": self.teacher.momentum.detach().clone(),
                "embed_std": embedding_std(feats[0]),
            },
        )


def _refresh_schedule(module: nn.Module, incompatible_keys: Any) -> None:
    """Copy the restored step buffers into the host-side schedule after loading."""
    if isinstance(module, DINO):
        module._schedule = (int(module.step), int(module.total_steps))
