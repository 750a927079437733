"""Downstream heads over an encoder's hidden states: the layer-aware TDNN (L-TDNN).

SSL speech encoders spread speaker information over their layers (lower layers hold more
of it than the top one), so a speaker head reads *all* of them: a learned softmax weight
per layer mixes the (per-layer normalised) hidden states, a stack of dilated 1-D
convolutions (TDNN layers) models local context, masked statistics pooling (mean and
standard deviation over the real frames only) summarises the utterance, and a linear
layer gives the speaker embedding; a classifier on top trains it.

Padding never changes the result: every TDNN layer zeroes the padding frames before
convolving, so a real frame sees exactly the zeros that "same" padding of an unpadded
clip would give it, and pooling uses the mask.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup_audio.features import masked_mean_var

__all__ = ["LTDNN", "masked_stats_pool"]


def masked_stats_pool(x: Tensor, mask: Tensor, eps: float = 1e-5) -> Tensor:
    """Mean and standard deviation over the real frames: ``[B, T, C] -> [B, 2C]``.

    Raises:
        ValueError: An item has no real frame.
    """
    if bool((mask.sum(1) == 0).any()):
        raise ValueError("masked_stats_pool: an item has no real frame (length 0)")
    mean, var = masked_mean_var(x, mask)
    return torch.cat([mean, var.clamp_min(eps).sqrt()], dim=-1)


class _TDNNLayer(nn.Module):
    """Dilated 1-D convolution, ReLU and per-frame LayerNorm (no statistics over padding)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, dilation=dilation, padding="same")
        self.norm = nn.LayerNorm(c_out)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x * mask.unsqueeze(-1).to(x.dtype)
        y = F.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        return self.norm(y)


class LTDNN(nn.Module):
    """Layer-aware TDNN head: softmax layer weights, TDNN layers, statistics pooling.

    Args:
        num_layers: Number of hidden states ``L`` it reads.
        in_dim: Width ``D`` of each hidden state (a sequence gives one width per layer:
            layers of other widths are linearly projected to the first one's).
        channels: Width of the TDNN layers.
        kernel_sizes: Kernel of each TDNN layer.
        dilations: Dilation of each TDNN layer (same length as ``kernel_sizes``).
        embed_dim: Size of the speaker embedding.
        num_classes: Classifier outputs (``0``: no classifier, embeddings only).
        dropout: Dropout before the classifier.

    Example:
        >>> head = LTDNN(num_layers=3, in_dim=8, channels=16, embed_dim=4, num_classes=2)
        >>> hs = [torch.randn(2, 10, 8) for _ in range(3)]
        >>> emb, logits = head(hs, torch.ones(2, 10, dtype=torch.bool))
        >>> tuple(emb.shape), tuple(logits.shape)
        ((2, 4), (2, 2))
    """

    def __init__(
        self,
        num_layers: int,
        in_dim: int | Sequence[int],
        channels: int = 256,
        kernel_sizes: Sequence[int] = (5, 3, 3),
        dilations: Sequence[int] = (1, 2, 3),
        embed_dim: int = 128,
        num_classes: int = 0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        dims = [in_dim] * num_layers if isinstance(in_dim, int) else list(in_dim)
        if num_layers < 1 or len(dims) != num_layers:
            raise ValueError(
                f"LTDNN: num_layers={num_layers} must be >= 1 and match the {len(dims)} "
                "widths given in in_dim"
            )
        if len(kernel_sizes) != len(dilations) or not kernel_sizes:
            raise ValueError(
                f"LTDNN: kernel_sizes {list(kernel_sizes)} and dilations {list(dilations)} "
                "must be non-empty and of equal length"
            )
        width = dims[0]
        self.num_layers = num_layers
        self.layer_logits = nn.Parameter(torch.zeros(num_layers))
        self.project = nn.ModuleList(
            nn.Identity() if d == width else nn.Linear(d, width) for d in dims
        )
        self.layer_norm = nn.LayerNorm(width, elementwise_affine=False)
        chans = [width, *([channels] * len(kernel_sizes))]
        self.tdnn = nn.ModuleList(
            _TDNNLayer(chans[k], chans[k + 1], kernel_sizes[k], dilations[k])
            for k in range(len(kernel_sizes))
        )
        self.embedding = nn.Linear(2 * channels, embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(embed_dim, num_classes) if num_classes > 0 else None
        self.embed_dim = embed_dim

    @property
    def layer_weights(self) -> Tensor:
        """The softmax weight of each layer ``[L]``."""
        return torch.softmax(self.layer_logits, 0)

    def mix(self, hidden_states: Sequence[Tensor] | Tensor) -> Tensor:
        """The layer-weighted sum of the normalised hidden states ``[B, T, D]``.

        Raises:
            ValueError: The number of layers or their lengths disagree.
        """
        if len(hidden_states) != self.num_layers:
            raise ValueError(
                f"LTDNN: got {len(hidden_states)} hidden states for a head built for "
                f"{self.num_layers}; build it with num_layers={len(hidden_states)}"
            )
        lengths = {int(h.shape[1]) for h in hidden_states}
        if len(lengths) != 1:
            raise ValueError(f"LTDNN: hidden states of different lengths {sorted(lengths)}")
        w = self.layer_weights
        return sum(
            w[k] * self.layer_norm(proj(h.float()))
            for k, (proj, h) in enumerate(zip(self.project, hidden_states, strict=True))
        )

    def forward(
        self, hidden_states: Sequence[Tensor] | Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """Embeddings ``[B, embed_dim]`` and logits ``[B, num_classes]`` (or ``None``).

        Args:
            hidden_states: ``L`` tensors ``[B, T, D]`` (or one ``[L, B, T, D]``).
            mask: ``[B, T]``, ``True`` for real frames.
        """
        x = self.mix(hidden_states)
        for layer in self.tdnn:
            x = layer(x, mask)
        emb = self.embedding(masked_stats_pool(x, mask))
        logits = self.classifier(self.dropout(F.relu(emb))) if self.classifier else None
        return emb, logits
