"""Helpers shared by the core objectives: view checks, encoding and logged statistics."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.interfaces import EncoderOutput

__all__ = [
    "check_embed_dim",
    "check_positive",
    "check_views",
    "embedding_std",
    "encode",
    "full_precision",
    "positive_cosine",
]


def full_precision(t: Tensor) -> contextlib.AbstractContextManager[Any]:
    """A context that turns autocast off on ``t``'s device (losses compute in fp32).

    Under bf16/fp16 autocast a matmul of fp32 tensors would run in low precision
    again; similarity logits at temperature 0.1 and cross-correlation matrices need
    fp32. Inputs still have to be cast with ``.float()`` inside the context.
    """
    device = t.device.type
    if torch.is_autocast_enabled(device):
        return torch.autocast(device_type=device, enabled=False)
    return contextlib.nullcontext()


def check_views(views: Any, objective: str, exact: int | None = 2, minimum: int = 2) -> list[Any]:
    """Return ``views`` as a list after checking how many there are.

    Args:
        views: What the view maker produced (a list or tuple of batches).
        objective: The objective's id, for the error message.
        exact: The required number of views, or ``None`` for "at least ``minimum``".
        minimum: The smallest number of views accepted when ``exact`` is ``None``.

    Raises:
        TypeError: ``views`` is not a list or tuple.
        ValueError: The number of views is wrong.
    """
    if not isinstance(views, (list, tuple)):
        raise TypeError(
            f"{objective} expects a list of views from the view maker, got "
            f"{type(views).__name__}; pair it with a view maker that returns "
            f"{exact or minimum} or more augmented views"
        )
    n = len(views)
    if (exact is not None and n != exact) or n < minimum:
        want = f"exactly {exact}" if exact is not None else f"at least {minimum}"
        raise ValueError(
            f"{objective} needs {want} views per batch, got {n}; set the view maker's "
            f"number of views accordingly"
        )
    return list(views)


def check_positive(name: str, value: float, objective: str, allow_zero: bool = False) -> float:
    """Return ``float(value)`` if it is a positive (or, if allowed, zero) number.

    Raises:
        ValueError: Naming the objective, the key and the value.
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (value >= 0 if allow_zero else value > 0) and math.isfinite(value)
    if not ok:
        kind = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"{objective}: {name} must be {kind} number, got {value!r}")
    return float(value)


def check_embed_dim(embed_dim: int, objective: str) -> int:
    """Return ``embed_dim`` if it is a positive integer, else raise a clear error."""
    if isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim < 1:
        raise ValueError(
            f"{objective}: embed_dim must be a positive integer (the encoder's width), "
            f"got {embed_dim!r}"
        )
    return embed_dim


def encode(encoder: nn.Module, view: Any, embed_dim: int, objective: str) -> Tensor:
    """The encoder's pooled ``[B, D]`` embedding of one view, with a shape check.

    Raises:
        TypeError: The encoder returned something other than an ``EncoderOutput``
            or a tensor.
        ValueError: The width differs from the ``embed_dim`` the objective was built for.
    """
    out = encoder(view)
    pooled = out.pooled if isinstance(out, EncoderOutput) else out
    if not isinstance(pooled, Tensor):
        raise TypeError(
            f"{objective}: the encoder must return an EncoderOutput (or a tensor), "
            f"got {type(out).__name__}"
        )
    if pooled.dim() != 2 or pooled.shape[1] != embed_dim:
        raise ValueError(
            f"{objective}: the encoder's pooled output has shape {tuple(pooled.shape)}, "
            f"expected [batch, {embed_dim}]; build the objective with "
            f"embed_dim=encoder.embed_dim"
        )
    return pooled


def encode_pair(
    encoder: nn.Module, views: Any, embed_dim: int, objective: str
) -> tuple[Tensor, Tensor]:
    """Check that ``views`` holds exactly two views and encode each with :func:`encode`."""
    v1, v2 = check_views(views, objective)
    return encode(encoder, v1, embed_dim, objective), encode(encoder, v2, embed_dim, objective)


@torch.no_grad()
def embedding_std(z: Tensor) -> Tensor:
    """Mean per-dimension std of the L2-normalised embeddings (collapse monitor).

    About ``1 / sqrt(D)`` for well-spread embeddings, ``0`` for a collapsed encoder.
    """
    if z.shape[0] < 2:
        return z.new_zeros(())
    return F.normalize(z.detach().float(), dim=-1).std(dim=0).mean()


@torch.no_grad()
def positive_cosine(a: Tensor, b: Tensor) -> Tensor:
    """Mean cosine similarity of matching rows (positive pairs)."""
    return F.cosine_similarity(a.detach().float(), b.detach().float(), dim=-1).mean()
