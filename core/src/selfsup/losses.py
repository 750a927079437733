"""Modality-free loss terms and the DDP-aware collectives they use (public).

In the spirit of ``lightly.loss``: the pieces of the core objectives, for plugins that
build their own objective (GRACE reuses the InfoNCE terms on node embeddings, a
speaker DINO reuses :func:`dino_loss`). Every function works on one process and under
``torchrun``: contrastive terms gather negatives with :func:`gather_with_grad`,
statistics-based terms all-reduce (see the gradient convention in
:func:`gather_with_grad`'s module, documented there and tested against one process on
the global batch).

Example:
    >>> import torch
    >>> from selfsup.losses import info_nce
    >>> z = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    >>> float(info_nce(z, z, temperature=0.1)) < float(info_nce(z, z.roll(1, 0), 0.1))
    True
"""

from __future__ import annotations

from selfsup.builtin.objectives.barlow_twins import (
    barlow_twins_loss,
    barlow_twins_terms,
    cross_correlation,
)
from selfsup.builtin.objectives.barlow_twins import standardize as standardize_batch
from selfsup.builtin.objectives.dino import dino_loss, teacher_entropy, update_center
from selfsup.builtin.objectives.infonce import info_nce, info_nce_terms
from selfsup.builtin.objectives.vicreg import vicreg_loss, vicreg_terms
from selfsup.engine.distributed import (
    all_reduce_mean,
    all_reduce_sum,
    gather_with_grad,
    is_distributed,
    rank,
    world_size,
)

__all__ = [
    "all_reduce_mean",
    "all_reduce_sum",
    "barlow_twins_loss",
    "barlow_twins_terms",
    "cross_correlation",
    "dino_loss",
    "gather_with_grad",
    "info_nce",
    "info_nce_terms",
    "is_distributed",
    "rank",
    "standardize_batch",
    "teacher_entropy",
    "update_center",
    "vicreg_loss",
    "vicreg_terms",
    "world_size",
]
