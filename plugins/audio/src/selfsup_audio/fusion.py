"""Spectral + SSL fusion detectors for speech deepfakes ("Two Views, One Truth" design).

Two views of one clip: hand-crafted spectral frames (LFCC or MFCC, fine-grained
vocoder/codec cues) and the frozen SSL encoder's frame representations (a learned softmax
mix of all its hidden states). Each goes through a small branch to a common width
``C``; a fusion module combines them; masked statistics pooling and an MLP give one
logit per clip (higher: fake). The modes:

* ``spectral``: the spectral branch alone (a small TDNN over the features).
* ``ssl``: the SSL branch alone (layer mix + projection).
* ``concat``: the two pooled branch vectors concatenated.
* ``cross-attention``: SSL frames (queries) attend to the spectral frames (keys and
  values), residual + LayerNorm; the attended SSL frames are pooled and concatenated
  with the pooled spectral frames.
* ``gated``: a learned sigmoid gate per channel, ``g = sigma(W [a; b])``, blends the
  pooled views, ``g * a + (1 - g) * b``.

The fusion modes are residual over score-level fusion: their logit mixes the two
single-view heads' scores and adds a correction from the fused vector,
``w_a s_a(a) + w_b s_b(b) + c + r(fuse(a, b))``, where ``r``'s last layer starts at
zero. Warm-started from trained single-view detectors and mix weights
(:meth:`FusionDetector.init_from_views`), a fusion detector *is* the score-level fusion
of those detectors before its first step (with the default mix ``(1, 0, 0)``: the
spectral detector), so training it with the epoch kept on validation (epoch 0 included)
moves away from that only where the fused features lower the validation error.

Every module masks padding (attention key padding, masked pooling, zeroed frames
before each convolution), so a clip's score does not depend on its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup_audio.heads import masked_stats_pool

__all__ = ["FUSION_MODES", "FusionDetector", "SSLBranch", "SpectralBranch"]

FusionMode = Literal["spectral", "ssl", "concat", "cross-attention", "gated"]
#: Every detector the deepfake evaluator trains, single views first.
FUSION_MODES: tuple[str, ...] = ("spectral", "ssl", "concat", "cross-attention", "gated")


class SpectralBranch(nn.Module):
    """A small TDNN over spectral frames ``[B, T, F] -> [B, T, C]`` (padding zeroed).

    Args:
        in_features: Feature width ``F`` (e.g. 40 LFCCs).
        channels: Output width ``C``.
        kernel_sizes: Kernels of the dilated convolutions.
        dilations: Their dilations.
    """

    def __init__(
        self,
        in_features: int,
        channels: int = 64,
        kernel_sizes: Sequence[int] = (5, 3, 3),
        dilations: Sequence[int] = (1, 2, 3),
    ) -> None:
        super().__init__()
        widths = [in_features, *([channels] * len(kernel_sizes))]
        self.convs = nn.ModuleList(
            nn.Conv1d(
                widths[k], widths[k + 1], kernel_sizes[k], dilation=dilations[k], padding="same"
            )
            for k in range(len(kernel_sizes))
        )
        self.norms = nn.ModuleList(nn.LayerNorm(channels) for _ in kernel_sizes)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """Frame features ``[B, T, C]``."""
        m = mask.unsqueeze(-1).to(x.dtype)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = norm(F.relu(conv((x * m).transpose(1, 2)).transpose(1, 2)))
        return x * m


class SSLBranch(nn.Module):
    """Softmax-weighted mix of ``L`` hidden states, normalised and projected to ``C``.

    Args:
        widths: The width ``D_l`` of each hidden state (layers of another width than the
            first are linearly projected to it before mixing).
        channels: Output width ``C``.
    """

    def __init__(self, widths: Sequence[int], channels: int = 64) -> None:
        super().__init__()
        widths = list(widths)
        if not widths:
            raise ValueError("SSLBranch: needs at least one hidden state width")
        self.layer_logits = nn.Parameter(torch.zeros(len(widths)))
        self.align = nn.ModuleList(
            nn.Identity() if d == widths[0] else nn.Linear(d, widths[0]) for d in widths
        )
        self.norm = nn.LayerNorm(widths[0], elementwise_affine=False)
        self.proj = nn.Linear(widths[0], channels)

    @property
    def layer_weights(self) -> Tensor:
        """The softmax weight of each layer ``[L]``."""
        return torch.softmax(self.layer_logits, 0)

    def forward(self, hidden: Sequence[Tensor], mask: Tensor) -> Tensor:
        """``L`` hidden states ``[B, T, D_l]`` -> frames ``[B, T, C]``."""
        if len(hidden) != self.layer_logits.numel():
            raise ValueError(
                f"SSLBranch: got {len(hidden)} hidden states, built for {self.layer_logits.numel()}"
            )
        w = self.layer_weights
        mixed = sum(
            w[k] * self.norm(align(h))
            for k, (align, h) in enumerate(zip(self.align, hidden, strict=True))
        )
        return F.relu(self.proj(mixed)) * mask.unsqueeze(-1).to(mixed.dtype)


class FusionDetector(nn.Module):
    """A deepfake detector over one or both views (see the module docstring).

    Args:
        mode: ``spectral``, ``ssl``, ``concat``, ``cross-attention`` or ``gated``.
        spectral_features: Width of the spectral frames (unused by ``ssl``).
        ssl_widths: Width of each SSL hidden state (unused by ``spectral``).
        channels: Branch width ``C``.
        heads: Attention heads (``cross-attention``; must divide ``channels``).
        dropout: Dropout before the classifier.

    Example:
        >>> det = FusionDetector("gated", spectral_features=20, ssl_widths=(8, 8))
        >>> spec, ssl = torch.randn(3, 30, 20), [torch.randn(3, 15, 8) for _ in range(2)]
        >>> m1, m2 = torch.ones(3, 30, dtype=torch.bool), torch.ones(3, 15, dtype=torch.bool)
        >>> det(spec, m1, ssl, m2).shape
        torch.Size([3])
    """

    def __init__(
        self,
        mode: FusionMode,
        spectral_features: int = 40,
        ssl_widths: Sequence[int] = (64,),
        channels: int = 64,
        heads: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if mode not in FUSION_MODES:
            raise ValueError(f"FusionDetector: mode={mode!r} is not one of {list(FUSION_MODES)}")
        if mode == "cross-attention" and channels % heads:
            raise ValueError(f"FusionDetector: heads={heads} must divide channels={channels}")
        self.mode = mode
        self.spectral = SpectralBranch(spectral_features, channels) if mode != "ssl" else None
        self.ssl = SSLBranch(ssl_widths, channels) if mode != "spectral" else None
        pooled = 2 * channels
        if mode == "cross-attention":
            self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)
            self.attn_norm = nn.LayerNorm(channels)
        if mode == "gated":
            self.gate = nn.Linear(2 * pooled, pooled)
        width = 2 * pooled if mode in ("concat", "cross-attention") else pooled
        self.classifier = _mlp(width, channels, dropout)
        self.spectral_head = self.ssl_head = self.mix = None
        if self.fusion:
            # the single-view detectors' heads, their scores mixed, plus a correction from
            # the fused vector that starts at zero
            self.spectral_head = _mlp(pooled, channels, dropout)
            self.ssl_head = _mlp(pooled, channels, dropout)
            self.mix = nn.Linear(2, 1)
            with torch.no_grad():
                self.mix.weight.copy_(torch.tensor([[1.0, 0.0]]))  # spectral score alone
                self.mix.bias.zero_()
            last = self.classifier[-1]
            nn.init.zeros_(last.weight)  # type: ignore[arg-type]
            nn.init.zeros_(last.bias)  # type: ignore[arg-type]

    @property
    def fusion(self) -> bool:
        """Whether this detector fuses both views (not ``spectral`` or ``ssl`` alone)."""
        return self.mode not in ("spectral", "ssl")

    def init_from_views(
        self,
        spectral: FusionDetector,
        ssl: FusionDetector | None = None,
        mix: tuple[float, float, float] | None = None,
    ) -> None:
        """Start from trained single-view detectors.

        A single-view detector copies the one of its mode (a warm restart, the same
        budget). A fusion detector copies the spectral (and SSL) detector's branch and
        classifier into its branch and head of that view, and ``mix = (w_spectral, w_ssl,
        bias)`` into the score mix (default ``(1, 0, 0)``: the spectral score alone); its
        fused correction stays at zero, so it scores as ``w_spectral * spectral + w_ssl *
        ssl + bias`` before training.

        Raises:
            ValueError: A detector of the wrong mode, or of other shapes.
        """
        want = {"spectral": spectral, "ssl": ssl}
        bad = [(m, d.mode) for m, d in want.items() if d is not None and d.mode != m]
        if bad or (self.mode == "ssl" and ssl is None):
            raise ValueError(
                f"init_from_views: needs a 'spectral' (and an 'ssl') detector for "
                f"{self.mode!r}; got {[d.mode for d in want.values() if d is not None]}"
            )
        try:
            if not self.fusion:
                self.load_state_dict(want[self.mode].state_dict())  # type: ignore[union-attr]
                return
            assert self.spectral is not None and self.spectral_head is not None
            assert self.ssl is not None and self.ssl_head is not None and self.mix is not None
            self.spectral.load_state_dict(spectral.spectral.state_dict())  # type: ignore[union-attr]
            self.spectral_head.load_state_dict(spectral.classifier.state_dict())
            if ssl is not None:
                self.ssl.load_state_dict(ssl.ssl.state_dict())  # type: ignore[union-attr]
                self.ssl_head.load_state_dict(ssl.classifier.state_dict())
        except (RuntimeError, AttributeError) as err:
            raise ValueError(f"init_from_views: the detectors' shapes differ ({err})") from err
        if mix is not None:
            with torch.no_grad():
                self.mix.weight.copy_(torch.tensor([[float(mix[0]), float(mix[1])]]))
                self.mix.bias.fill_(float(mix[2]))

    def fused(
        self,
        spec: Tensor | None,
        spec_mask: Tensor | None,
        ssl: Sequence[Tensor] | None,
        ssl_mask: Tensor | None,
    ) -> Tensor:
        """The clip vector fed to the classifier ``[B, width]``."""
        return self._parts(spec, spec_mask, ssl, ssl_mask)[2]

    def _parts(
        self,
        spec: Tensor | None,
        spec_mask: Tensor | None,
        ssl: Sequence[Tensor] | None,
        ssl_mask: Tensor | None,
    ) -> tuple[Tensor | None, Tensor | None, Tensor]:
        """The pooled spectral and SSL vectors and the classifier's input.

        A vector a mode does not use is ``None``; the SSL vector is taken before any
        cross-attention.
        """
        a = b = b0 = None
        if self.spectral is not None:
            if spec is None or spec_mask is None:
                raise ValueError(f"FusionDetector({self.mode}) needs the spectral frames")
            frames_a = self.spectral(spec, spec_mask)
            a = masked_stats_pool(frames_a, spec_mask)
        if self.ssl is not None:
            if ssl is None or ssl_mask is None:
                raise ValueError(f"FusionDetector({self.mode}) needs the SSL hidden states")
            frames_b = self.ssl(ssl, ssl_mask)
            b0 = masked_stats_pool(frames_b, ssl_mask)
            if self.mode == "cross-attention":
                att, _ = self.attn(
                    frames_b, frames_a, frames_a, key_padding_mask=~spec_mask, need_weights=False
                )
                frames_b = self.attn_norm(frames_b + att)
            b = masked_stats_pool(frames_b, ssl_mask) if self.mode == "cross-attention" else b0
        if self.mode == "spectral":
            return a, None, a  # type: ignore[return-value]
        if self.mode == "ssl":
            return None, b0, b  # type: ignore[return-value]
        if self.mode == "gated":
            g = torch.sigmoid(self.gate(torch.cat([a, b], -1)))  # type: ignore[list-item]
            return a, b0, g * a + (1 - g) * b  # type: ignore[operator]
        return a, b0, torch.cat([a, b], -1)  # type: ignore[list-item]

    def forward(
        self,
        spec: Tensor | None,
        spec_mask: Tensor | None,
        ssl: Sequence[Tensor] | None,
        ssl_mask: Tensor | None,
    ) -> Tensor:
        """One logit per clip ``[B]`` (higher: fake).

        Args:
            spec: Spectral frames ``[B, T_s, F]`` (``None`` for ``ssl``).
            spec_mask: ``[B, T_s]``, ``True`` for real frames.
            ssl: ``L`` hidden states ``[B, T_h, D_l]`` (``None`` for ``spectral``).
            ssl_mask: ``[B, T_h]``.
        """
        a, b0, fused = self._parts(spec, spec_mask, ssl, ssl_mask)
        logit = self.classifier(fused).squeeze(-1)
        if self.fusion:  # the mixed single-view scores + the fused correction
            assert self.spectral_head is not None and self.ssl_head is not None
            views = torch.cat([self.spectral_head(a), self.ssl_head(b0)], -1)
            logit = logit + self.mix(views).squeeze(-1)  # type: ignore[misc]
        return logit


def _mlp(width: int, channels: int, dropout: float) -> nn.Sequential:
    """Dropout, ``width -> channels``, ReLU, ``channels -> 1``."""
    return nn.Sequential(
        nn.Dropout(dropout), nn.Linear(width, channels), nn.ReLU(), nn.Linear(channels, 1)
    )
