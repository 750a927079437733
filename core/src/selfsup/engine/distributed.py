"""Small, explicit helpers on :mod:`torch.distributed` for losses and statistics.

Every helper is an identity (or returns ``1`` / ``0``) when no process group is
initialised, so objectives call them unconditionally and behave the same on one
process.

Gradient convention (what makes a distributed loss equal to the single-process one).
DDP *averages* parameter gradients over the ``W`` ranks. Each rank ``r`` computes a
loss ``L_r``; the autograd-aware collectives here (:func:`gather_with_grad`,
:func:`all_reduce_sum` / :func:`all_reduce_mean` on tensors that require grad) send
the gradient of every rank's loss back to the rank that owns the input, summed. So the
gradient that rank ``r`` sees for its local inputs ``x_r`` is ``sum_r' dL_r'/dx_r``,
and after DDP's averaging the parameters get ``d/dθ [(1/W) sum_r L_r]``. A loss is
therefore exact under DDP when the mean of the per-rank losses equals the loss of one
process on the concatenated global batch:

* per-sample losses (InfoNCE rows against gathered negatives, BYOL, DINO's cross
  entropy) average their *local* rows; the mean over ranks is the global mean;
* statistics-based losses (Barlow Twins, VICReg variance/covariance) reduce their
  statistics, so every rank computes the *global* value itself.

In both cases ``grad_on_rank_r(x_r) / W`` equals the single-process gradient with
respect to those rows, which is what ``core/tests/test_objectives_ddp.py`` checks.
All ranks must call the collectives in the same order with equally sized tensors
(use ``drop_last`` in the distributed sampler).

Example:
    >>> import torch
    >>> world_size(), rank()
    (1, 0)
    >>> gather_with_grad(torch.ones(2, 3)).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "all_reduce_mean",
    "all_reduce_sum",
    "gather_with_grad",
    "is_distributed",
    "rank",
    "world_size",
]


def is_distributed() -> bool:
    """Whether a process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """The number of ranks (``1`` without an initialised process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def rank() -> int:
    """This process's global rank (``0`` without an initialised process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


def gather_with_grad(t: Tensor) -> Tensor:
    """Concatenate ``t`` from every rank along dim 0, keeping the autograd graph.

    Uses :func:`torch.distributed.nn.functional.all_gather`, whose backward sums the
    gradients that every rank's loss sends to each slice and returns each rank its
    own (see the module docstring for why this is the right scaling under DDP).
    Every rank must pass a tensor of the same shape.

    Args:
        t: The local tensor, ``[n, ...]``.

    Returns:
        ``[world_size * n, ...]``, rank 0's rows first; ``t`` itself on one process.
    """
    if not is_distributed():
        return t
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(t), dim=0)


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum ``t`` over ranks, out of place.

    Autograd-aware when ``t`` requires grad (the backward all-reduces the incoming
    gradients, so each rank receives the sum of every rank's gradient); a plain
    collective on a copy otherwise. The input is never modified.

    Args:
        t: The local tensor (the same shape on every rank).

    Returns:
        The sum over ranks; ``t`` itself on one process.
    """
    if not is_distributed():
        return t
    if t.requires_grad and torch.is_grad_enabled():
        from torch.distributed.nn.functional import all_reduce

        return all_reduce(t)
    out = t.detach().clone(memory_format=torch.contiguous_format)
    dist.all_reduce(out)
    return out


def all_reduce_mean(t: Tensor) -> Tensor:
    """Mean of ``t`` over ranks (see :func:`all_reduce_sum` for autograd)."""
    if not is_distributed():
        return t
    return all_reduce_sum(t) / dist.get_world_size()
