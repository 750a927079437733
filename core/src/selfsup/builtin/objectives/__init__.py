"""Modality-free self-supervised objectives (the ``core:`` objectives) and their losses.

Each module holds one objective family: its pure loss function(s), which plugins
reuse (the graph plugin's GRACE calls :func:`info_nce`), and the ``Objective`` that
owns the projector / predictor / teacher heads:

=====================  =====================================  =========================
module                 objectives                             loss functions
=====================  =====================================  =========================
``infonce``            ``SimCLR``, ``DCL``                    ``info_nce``
``barlow_twins``       ``BarlowTwins``                        ``barlow_twins_loss``
``vicreg``             ``VICReg``                             ``vicreg_loss``
``byol``               ``BYOL`` (EMA teacher)                 ``byol_loss``
``simsiam``            ``SimSiam``                            ``negative_cosine``
``dino``               ``DINO`` (EMA teacher, multi-crop)     ``dino_loss``
=====================  =====================================  =========================

``heads`` holds the MLP and DINO heads, ``ema`` the EMA teacher. Distributed
behaviour (gathered negatives, all-reduced statistics) is documented in
:mod:`selfsup.engine.distributed`.
"""

from __future__ import annotations

from selfsup.builtin.objectives.barlow_twins import barlow_twins_loss
from selfsup.builtin.objectives.byol import byol_loss
from selfsup.builtin.objectives.dino import dino_loss
from selfsup.builtin.objectives.infonce import info_nce
from selfsup.builtin.objectives.simsiam import negative_cosine
from selfsup.builtin.objectives.vicreg import vicreg_loss

__all__ = [
    "barlow_twins_loss",
    "byol_loss",
    "dino_loss",
    "info_nce",
    "negative_cosine",
    "vicreg_loss",
]
