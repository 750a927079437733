"""ECAPA-TDNN speaker encoder (``audio:ecapa-tdnn``), length-aware.

Desplanques et al., "ECAPA-TDNN: Emphasized Channel Attention, Propagation and
Aggregation in TDNN Based Speaker Verification" (Interspeech 2020): a TDNN front layer,
three SE-Res2Blocks with dilations 2, 3 and 4, multi-layer feature aggregation (the
blocks' outputs concatenated, then a 1x1 convolution), channel- and context-dependent
attentive statistics pooling, and a linear embedding layer.

Built from torch blocks rather than SpeechBrain's ``ECAPA_TDNN`` (which is not a
dependency here and whose reflect-padded convolutions would make an item's embedding
depend on the padding of its batch). Every layer here is padding-safe: convolutions
zero-pad, padded frames are zeroed after each layer, batch statistics and the SE
squeeze are computed over real frames only, and the attention of the pooling is a
softmax over the real frames only, so an item's embedding is the same alone or
padded in a batch.
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
from pydantic import Field
from selfsup.interfaces import Encoder, EncoderOutput
from torch import Tensor, nn

from selfsup_audio.encoders.cnn1d import (
    MaskedConv,
    Norm,
    SpectralFrontEnd,
    length_mask,
    masked_mean,
    masked_mean_std,
)

__all__ = ["ECAPATDNN", "AttentiveStatsPool", "SERes2Block"]


class SqueezeExcite(nn.Module):
    """Channel gates from the masked mean over time (``[B, C, T]`` in and out)."""

    def __init__(self, channels: int, bottleneck: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, bottleneck),
            nn.ReLU(),
            nn.Linear(bottleneck, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """Scale the channels of ``x`` by gates computed over its real frames."""
        gates = self.fc(masked_mean(x.transpose(1, 2), mask))
        return x * gates[:, :, None]


class SERes2Block(nn.Module):
    """1x1 TDNN -> Res2Net dilated convolutions -> 1x1 TDNN -> SE, plus the residual.

    Args:
        channels: Width (divisible by ``scale``).
        kernel: Kernel of the Res2Net convolutions.
        dilation: Their dilation.
        scale: Res2Net splits.
        se_dim: SE bottleneck width.
    """

    def __init__(self, channels: int, kernel: int, dilation: int, scale: int, se_dim: int) -> None:
        super().__init__()
        self.scale = scale
        width = channels // scale
        self.pre = MaskedConv(channels, channels, 1)
        self.res2 = nn.ModuleList(
            MaskedConv(width, width, kernel, dilation=dilation) for _ in range(scale - 1)
        )
        self.post = MaskedConv(channels, channels, 1)
        self.se = SqueezeExcite(channels, se_dim)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """``[B, C, T]`` -> ``[B, C, T]`` (padded frames zero)."""
        mask = length_mask(lengths, x.shape[-1])
        h, _ = self.pre(x, lengths)
        chunks = h.chunk(self.scale, dim=1)
        outs, y = [chunks[0]], None
        for i, conv in enumerate(self.res2, start=1):
            y, _ = conv(chunks[i] if y is None else chunks[i] + y, lengths)
            outs.append(y)
        h, _ = self.post(torch.cat(outs, 1), lengths)
        h = self.se(h, mask)
        return (h + x) * mask[:, None, :].to(h.dtype)


class AttentiveStatsPool(nn.Module):
    """Channel- and context-dependent attentive statistics pooling over real frames.

    The attention sees each frame with the utterance's (masked) mean and standard
    deviation (global context); weights are a softmax over the real frames only.

    Args:
        channels: Input width ``C``; the output is ``[B, 2C]`` (weighted mean and std).
        attn_dim: Hidden width of the attention.
    """

    def __init__(self, channels: int, attn_dim: int) -> None:
        super().__init__()
        self.tdnn = MaskedConv(3 * channels, attn_dim, 1)
        self.score = nn.Conv1d(attn_dim, channels, 1)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """``x [B, C, T]`` -> ``[B, 2C]``."""
        mask = length_mask(lengths, x.shape[-1])
        frames = x.transpose(1, 2)
        mean, std = masked_mean_std(frames, mask)
        t = x.shape[-1]
        ctx = torch.cat(
            [x, mean[:, :, None].expand(-1, -1, t), std[:, :, None].expand(-1, -1, t)], 1
        )
        h, _ = self.tdnn(ctx, lengths)
        logits = self.score(torch.tanh(h)).masked_fill(~mask[:, None, :], float("-inf"))
        w = logits.softmax(-1)
        mu = (w * x).sum(-1)
        sigma = ((w * x * x).sum(-1) - mu * mu).clamp_min(1e-5).sqrt()
        return torch.cat([mu, sigma], 1)


class ECAPATDNN(Encoder):
    """ECAPA-TDNN over log-mel frames (small by default; the paper uses C=512/1024).

    Args:
        sample_rate: Input sample rate in Hz (FSDD: 8000).
        n_mels: Mel bands of the log-mel front end (the paper: 80 filterbanks).
        channels: Width ``C`` of the TDNN and SE-Res2Blocks (divisible by ``scale``).
        embed_dim: Speaker embedding size (192 in the paper).
        scale: Res2Net scale (splits).
        dilations: Dilation of each SE-Res2Block (the paper: 2, 3, 4).
        se_dim: SE bottleneck width.
        attn_dim: Hidden width of the attentive statistics pooling.
        hop_ms: Frame hop of the front end in milliseconds.
        norm: Per-utterance log-mel normalisation (see ``audio:ssast``).

    ``tokens`` are frame embeddings ``[B, T, embed_dim]``: the embedding layer's
    weights for the pooled mean applied to each aggregated frame (the pooled mean is
    the attention-weighted average of the frames, so these are each frame's share of
    the embedding's mean part); ``hidden_states`` are the front layer's and each
    block's frames ``[B, T, C]`` with zeroed padding.

    Raises:
        ValueError: ``channels`` not divisible by ``scale``.
    """

    modality = "audio"

    def __init__(
        self,
        sample_rate: Annotated[int, Field(gt=0)] = 16000,
        n_mels: Annotated[int, Field(ge=8)] = 64,
        channels: Annotated[int, Field(ge=8)] = 256,
        embed_dim: Annotated[int, Field(ge=2)] = 192,
        scale: Annotated[int, Field(ge=2)] = 8,
        dilations: tuple[Annotated[int, Field(ge=1)], ...] = (2, 3, 4),
        se_dim: Annotated[int, Field(ge=1)] = 128,
        attn_dim: Annotated[int, Field(ge=1)] = 128,
        hop_ms: Annotated[float, Field(gt=0)] = 10.0,
        norm: Norm = "scalar",
    ) -> None:
        super().__init__()
        if channels % scale:
            raise ValueError(
                f"audio:ecapa-tdnn: channels={channels} is not divisible by scale={scale}; "
                f"choose channels as a multiple of {scale}"
            )
        if not dilations:
            raise ValueError("audio:ecapa-tdnn: dilations must list at least one block")
        self.sample_rate = sample_rate
        self.embed_dim = embed_dim
        self.front = SpectralFrontEnd(
            sample_rate, n_mels, hop_ms=hop_ms, norm=norm, owner="audio:ecapa-tdnn"
        )
        self.layer0 = MaskedConv(n_mels, channels, 5)
        self.blocks = nn.ModuleList(SERes2Block(channels, 3, d, scale, se_dim) for d in dilations)
        agg = channels * len(dilations)
        self.mfa = MaskedConv(agg, agg, 1)
        self.pool = AttentiveStatsPool(agg, attn_dim)
        self.pool_norm = nn.BatchNorm1d(2 * agg)
        self.fc = nn.Linear(2 * agg, embed_dim)

    def forward(self, x: Any) -> EncoderOutput:
        """Encode waveforms or log-mel feature batches into speaker embeddings."""
        feats = self.front(x)
        lengths = feats.lengths
        h, _ = self.layer0(feats.values.transpose(1, 2), lengths)
        hidden, outs = [h.transpose(1, 2)], []
        for block in self.blocks:
            h = block(h, lengths)
            outs.append(h)
            hidden.append(h.transpose(1, 2))
        agg, _ = self.mfa(torch.cat(outs, 1), lengths)
        pooled = self.fc(self.pool_norm(self.pool(agg, lengths)))
        mask = length_mask(lengths, agg.shape[-1])
        w_mean = self.fc.weight[:, : agg.shape[1]]  # the mean half of the embedding layer
        tokens = agg.transpose(1, 2) @ w_mean.t() * mask[..., None].to(agg.dtype)
        return EncoderOutput(pooled=pooled, tokens=tokens, mask=mask, hidden_states=tuple(hidden))
