"""Seeding every generator, and deterministic kernels where they are cheap.

``seed_everything`` seeds Python's ``random``, NumPy's global generator and torch
(CPU and every CUDA device), and makes cuDNN pick deterministic kernels (no
autotuning), so that the same seed on the same hardware gives the same run. Fully
deterministic algorithms (``torch.use_deterministic_algorithms``, which is slower and
makes some CUDA ops raise) are opt-in: pass ``strict=True`` or set
``SELFSUP_DETERMINISTIC=1``.

Example:
    >>> seed_everything(0)
    >>> a = torch.rand(2)
    >>> seed_everything(0)
    >>> torch.equal(a, torch.rand(2))
    True
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["epoch_seed", "seed_epoch", "seed_everything"]


def seed_everything(seed: int, strict: bool | None = None) -> None:
    """Seed Python, NumPy and torch (CPU + CUDA); deterministic cuDNN.

    Args:
        seed: The run's seed (any integer; NumPy gets it modulo ``2**32``).
        strict: Also enable ``torch.use_deterministic_algorithms`` (warn-only) and
            the cuBLAS workspace setting it needs. ``None`` reads the
            ``SELFSUP_DETERMINISTIC`` environment variable.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    if strict is None:
        strict = os.environ.get("SELFSUP_DETERMINISTIC", "") in ("1", "true", "yes")
    if strict:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A well-mixed 63-bit seed for one (run seed, epoch, rank)."""
    state = np.random.SeedSequence([seed % 2**32, epoch, rank]).generate_state(2, np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def seed_epoch(seed: int, epoch: int, rank: int = 0) -> None:
    """Reseed Python, NumPy and torch at the start of an epoch, per rank.

    Routines call this so that (1) every rank draws different augmentations (the
    ranks share ``seed``, which must give them identical initial weights), and (2) an
    epoch's randomness depends only on (seed, epoch, rank), so a run resumed from an
    epoch-end checkpoint repeats exactly what the uninterrupted run would have done,
    whatever the world size.
    """
    value = epoch_seed(seed, epoch, rank)
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)
