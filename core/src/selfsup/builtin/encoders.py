"""Modality-free encoders: a multi-layer perceptron over flattened items (``core:mlp``).

Example:
    >>> import torch
    >>> enc = MLP(in_dim=64, widths=(128,), embed_dim=32)
    >>> out = enc(torch.randn(4, 8, 8))
    >>> out.pooled.shape, len(out.hidden_states)
    (torch.Size([4, 32]), 2)
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import Field, PositiveInt
from torch import Tensor, nn

from selfsup.interfaces import Encoder, EncoderOutput

__all__ = ["MLP"]

_NORMS = ("batch", "layer", "none")
_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


def _norm(kind: str, width: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()


class MLP(Encoder):
    """Flatten, then blocks of Linear -> norm -> activation; the last block is the embedding.

    Args:
        in_dim: Features per item after flattening (64 for 8x8 digits).
        widths: Widths of the hidden blocks, first to last (may be empty).
        embed_dim: Width of the output embedding (``pooled``).
        norm: ``"batch"``, ``"layer"`` or ``"none"``.
        activation: ``"relu"``, ``"gelu"``, ``"silu"`` or ``"tanh"``.
        dropout: Dropout after each hidden block's activation.

    Raises:
        ValueError: An unknown ``norm`` or ``activation``, or non-positive widths.
    """

    modality = "any"

    def __init__(
        self,
        in_dim: PositiveInt,
        widths: Sequence[PositiveInt] = (256,),
        embed_dim: PositiveInt = 128,
        norm: Literal["batch", "layer", "none"] = "batch",
        activation: Literal["relu", "gelu", "silu", "tanh"] = "relu",
        dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0,
    ) -> None:
        super().__init__()
        if norm not in _NORMS:
            raise ValueError(f"core:mlp: norm={norm!r}; choose one of {', '.join(_NORMS)}")
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"core:mlp: activation={activation!r}; choose one of {', '.join(_ACTIVATIONS)}"
            )
        dims = [int(in_dim), *(int(w) for w in widths), int(embed_dim)]
        if min(dims) < 1:
            raise ValueError(f"core:mlp: in_dim, widths and embed_dim must be >= 1, got {dims}")
        self.in_dim = dims[0]
        self.embed_dim = dims[-1]
        blocks = []
        for i, (a, b) in enumerate(itertools.pairwise(dims)):
            layers: list[nn.Module] = [
                nn.Linear(a, b, bias=norm != "batch"),
                _norm(norm, b),
                _ACTIVATIONS[activation](),
            ]
            if dropout > 0 and i < len(dims) - 2:
                layers.append(nn.Dropout(dropout))
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> EncoderOutput:
        """Encode ``x`` of shape ``[B, ...]`` (flattened to ``[B, in_dim]``).

        Raises:
            ValueError: The items do not have ``in_dim`` features.
        """
        h = x.flatten(1) if x.ndim != 2 else x
        if h.shape[1] != self.in_dim:
            raise ValueError(
                f"core:mlp was built with in_dim={self.in_dim} but the batch has items of "
                f"shape {tuple(x.shape[1:])} ({h.shape[1]} features); set "
                f"encoder.params.in_dim={h.shape[1]}"
            )
        hidden = []
        for block in self.blocks:
            h = block(h)
            hidden.append(h)
        return EncoderOutput(pooled=h, hidden_states=tuple(hidden))
