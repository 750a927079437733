"""BYOL: an online network predicts an EMA target network's projection of the other view.

Reference:
    Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised
    Learning", NeurIPS 2020.

``loss = (l(p1, t2) + l(p2, t1)) / 2`` with ``l(p, t) = 2 - 2 cos(p, t)`` (the
normalised MSE of the paper); the paper *sums* the two directions, we average them
(a factor 2 that only rescales the learning rate). With lightly's
``NegativeCosineSimilarity`` ``C``: ``l(p, t) = 2 + 2 C(p, t)``. A per-sample loss:
under DDP the mean over ranks is the global loss, with no collective.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, PositiveInt
from torch import Tensor, nn

from selfsup.builtin.objectives.common import (
    check_embed_dim,
    check_views,
    embedding_std,
    encode,
    positive_cosine,
)
from selfsup.builtin.objectives.ema import EMATeacher, TeacherStudentObjective
from selfsup.builtin.objectives.heads import MLPHead
from selfsup.builtin.objectives.simsiam import negative_cosine
from selfsup.interfaces import BatchMeta, ObjectiveOutput

__all__ = ["BYOL", "byol_loss"]


def byol_loss(p: Tensor, t: Tensor) -> Tensor:
    """``mean_i (2 - 2 cos(p_i, t_i))``: squared distance of the L2-normalised rows.

    The target ``t`` is detached (it comes from the EMA teacher).

    Example:
        >>> import torch
        >>> z = torch.randn(4, 8)
        >>> round(float(byol_loss(z, z)), 4)
        0.0
    """
    return 2.0 + 2.0 * negative_cosine(p, t, stop_gradient=True)


class BYOL(TeacherStudentObjective):
    """BYOL with a projector, a predictor and an EMA target (encoder + projector).

    Args:
        embed_dim: The encoder's ``embed_dim`` (set by the engine).
        hidden_dim: Projector and predictor hidden width (paper: 4096).
        proj_dim: Projection width (paper: 256).
        base_momentum: Target EMA momentum at step 0 (paper: 0.996).
        final_momentum: Momentum at the last step (paper: 1.0, cosine schedule).
    """

    name = "core:byol"

    def __init__(
        self,
        embed_dim: int,
        hidden_dim: PositiveInt = 1024,
        proj_dim: PositiveInt = 256,
        base_momentum: Annotated[float, Field(ge=0, le=1)] = 0.996,
        final_momentum: Annotated[float, Field(ge=0, le=1)] = 1.0,
    ) -> None:
        super().__init__()
        self.embed_dim = check_embed_dim(embed_dim, self.name)
        self.projector: nn.Module = MLPHead(embed_dim, hidden_dim, proj_dim, 2)
        self.predictor: nn.Module = MLPHead(proj_dim, hidden_dim, proj_dim, 2)
        self.teacher = EMATeacher(self.projector, base_momentum, final_momentum)

    def student_head(self) -> nn.Module:
        """The projector (the target network has no predictor)."""
        return self.projector

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """Symmetric BYOL loss of the online predictions against the target projections."""
        v1, v2 = check_views(views, self.name)
        self.teacher.attach(encoder)
        h1 = encode(encoder, v1, self.embed_dim, self.name)
        h2 = encode(encoder, v2, self.embed_dim, self.name)
        z1, z2 = self.projector(h1), self.projector(h2)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        t1, t2 = self.teacher(v1), self.teacher(v2)
        loss = 0.5 * (byol_loss(p1, t2) + byol_loss(p2, t1))
        return ObjectiveOutput(
            loss=loss,
            metrics={
                "pos_cosine": positive_cosine(z1, z2),
                "pred_target_cosine": 0.5 * (positive_cosine(p1, t2) + positive_cosine(p2, t1)),
                "proj_std": embedding_std(z1),
                "embed_std": embedding_std(h1),
                "ema_momentum": self.teacher.momentum.detach().clone(),
            },
        )
