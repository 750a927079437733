"""The exponential-moving-average teacher of BYOL and DINO.

The objective is built before it sees the encoder, so the teacher's copy of the
encoder is made lazily: by :meth:`EMATeacher.attach` (the engine calls the
objective's ``attach(encoder)`` right after building it) or, failing that, on the
first forward. Once made it is a registered submodule, so it is saved in the
objective's ``state_dict`` and a checkpoint resumes the teacher exactly.
"""

from __future__ import annotations

import copy
import math
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from selfsup.interfaces import EncoderOutput, Objective

__all__ = ["EMATeacher", "TeacherStudentObjective", "cosine_momentum"]


def cosine_momentum(step: int, total_steps: int, base: float, final: float = 1.0) -> float:
    """BYOL's cosine schedule: ``base`` at step 0 rising to ``final`` at ``total_steps``.

    ``m = final - (final - base) * (cos(pi * step / total_steps) + 1) / 2``; ``step``
    is clamped to ``[0, total_steps]``.

    Example:
        >>> cosine_momentum(0, 100, 0.99), cosine_momentum(100, 100, 0.99)
        (0.99, 1.0)
    """
    total = max(1, int(total_steps))
    frac = min(max(step, 0), total) / total
    return final - (final - base) * (math.cos(math.pi * frac) + 1.0) / 2.0


def _frozen_copy(module: nn.Module) -> nn.Module:
    clone = copy.deepcopy(module)
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


@torch.no_grad()
def _ema_(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """``teacher <- momentum * teacher + (1 - momentum) * student`` for params and buffers.

    Floating-point buffers (batch-norm running statistics) are averaged like the
    parameters; integer buffers (``num_batches_tracked``) are copied.
    """
    t_params = [p for p in teacher.parameters()]
    s_params = [p.detach() for p in student.parameters()]
    if len(t_params) != len(s_params):
        raise RuntimeError(
            "EMA teacher and student have different parameter lists; the encoder's "
            "architecture changed after the teacher was attached"
        )
    if t_params:
        torch._foreach_lerp_(t_params, s_params, 1.0 - momentum)
    for tb, sb in zip(teacher.buffers(), student.buffers(), strict=True):
        if tb.is_floating_point():
            tb.lerp_(sb.detach().to(tb.dtype), 1.0 - momentum)
        else:
            tb.copy_(sb)


class EMATeacher(nn.Module):
    """A frozen EMA copy of ``encoder`` + ``head``, updated with a cosine momentum schedule.

    Args:
        head: The student's head to copy (projector, or DINO head).
        base_momentum: Momentum at step 0 (BYOL 0.996, DINO 0.996).
        final_momentum: Momentum at the last step (1.0 in both papers).
    """

    def __init__(self, head: nn.Module, base_momentum: float, final_momentum: float = 1.0):
        super().__init__()
        for name, value in (("base_momentum", base_momentum), ("final_momentum", final_momentum)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        self.base_momentum = float(base_momentum)
        self.final_momentum = float(final_momentum)
        self.head = _frozen_copy(head)
        self.register_module("encoder", None)
        self.register_buffer("momentum", torch.tensor(float(base_momentum)))
        self._student: weakref.ref[nn.Module] | None = None
        self.register_load_state_dict_pre_hook(_require_attached)

    @property
    def attached(self) -> bool:
        """Whether the teacher's encoder copy exists."""
        return self.encoder is not None

    def attach(self, encoder: nn.Module) -> None:
        """Remember the student encoder and, the first time, copy it as the teacher's."""
        self._student = weakref.ref(encoder)
        if self.encoder is None:
            self.encoder = _frozen_copy(encoder)

    @torch.no_grad()
    def forward(self, view: Any) -> Tensor:
        """The teacher's head output for one view (no gradient)."""
        if self.encoder is None:
            raise RuntimeError("EMA teacher used before attach(encoder)")
        out = self.encoder(view)
        pooled = out.pooled if isinstance(out, EncoderOutput) else out
        return self.head(pooled)

    @torch.no_grad()
    def update(self, student_head: nn.Module, step: int, total_steps: int) -> float:
        """Move the teacher towards the student; returns the momentum used.

        A no-op (returning the scheduled momentum) before the teacher is attached.
        """
        m = cosine_momentum(step, total_steps, self.base_momentum, self.final_momentum)
        self.momentum.fill_(m)
        student = self._student() if self._student is not None else None
        if self.encoder is None or student is None:
            return m
        _ema_(self.encoder, student, m)
        _ema_(self.head, student_head, m)
        return m


def _require_attached(
    module: nn.Module,
    state_dict: dict[str, Any],
    prefix: str,
    local_metadata: dict[str, Any],
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    """Refuse, with the fix, to load a saved teacher encoder into an unattached teacher."""
    if getattr(module, "encoder", None) is None and any(
        k.startswith(prefix + "encoder.") for k in state_dict
    ):
        raise RuntimeError(
            f"the checkpoint holds an EMA teacher encoder ({prefix}encoder.*) but this "
            f"objective has not seen its encoder yet; call objective.attach(encoder) "
            f"before load_state_dict"
        )


class TeacherStudentObjective(Objective):
    """Base of objectives with an :class:`EMATeacher` (BYOL, DINO).

    Subclasses set ``self.teacher`` and implement :meth:`student_head` (the module
    whose EMA the teacher's head follows). This base provides ``attach``, the EMA
    step and ``student_parameters`` without the teacher's; each also calls the
    :class:`~selfsup.interfaces.Objective` default, so that objectives this one holds
    (and objectives that hold this one) are attached, stepped and optimised too.
    """

    teacher: EMATeacher

    def student_head(self) -> nn.Module:  # pragma: no cover - abstract
        """The student module mirrored by ``self.teacher.head``."""
        raise NotImplementedError

    def attach(self, encoder: nn.Module) -> None:
        """Make the teacher's encoder copy now (the engine calls this after building)."""
        self.teacher.attach(encoder)
        super().attach(encoder)

    def on_step_end(self, step: int, total_steps: int) -> None:
        """EMA update of the teacher with the cosine momentum for ``step``."""
        self.teacher.update(self.student_head(), step, total_steps)
        super().on_step_end(step, total_steps)

    def student_parameters(self) -> Iterator[nn.Parameter]:
        """Trainable parameters, never the teacher's (even if someone unfroze them)."""
        frozen = {id(p) for p in self.teacher.parameters()}
        return (p for p in super().student_parameters() if id(p) not in frozen)
