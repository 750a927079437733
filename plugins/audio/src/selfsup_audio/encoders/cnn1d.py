"""A small 1-D CNN over log-mel frames (``audio:cnn1d``), and the spectral front end.

The CNN is the random-init baseline of ``DATA.md`` and a fast CPU encoder: log-mel
frames, a few strided 1-D convolutions over time (batch-normalised over the real frames
only), and masked mean pooling. It is padding-invariant: every layer zeroes the padded
frames of its output, so a real frame near the end sees the same zeros in a batch as
the convolution's own zero padding alone.

:class:`SpectralFrontEnd` (waveforms or precomputed features in, a ``Padded`` feature
batch out) and the masked layers here are shared by the spectrogram encoders
(``audio:ssast``, ``audio:ecapa-tdnn``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from selfsup.interfaces import Encoder, EncoderOutput, Padded
from torch import Tensor, nn

from selfsup_audio.features import LogMel, masked_mean_var

Norm = Literal["scalar", "bands", "none"]

__all__ = [
    "CNN1d",
    "MaskedBatchNorm",
    "SpectralFrontEnd",
    "conv_lengths",
    "length_mask",
    "masked_mean",
    "masked_mean_std",
]


def length_mask(lengths: Tensor, size: int) -> Tensor:
    """``[B, size]`` booleans, True on the first ``lengths[b]`` positions."""
    steps = torch.arange(size, device=lengths.device)
    return steps[None, :] < lengths[:, None]


def conv_lengths(
    lengths: Tensor, kernel: int, stride: int, padding: int, dilation: int = 1
) -> Tensor:
    """Output lengths of a 1-D convolution (the PyTorch formula), at least 1."""
    span = dilation * (kernel - 1) + 1
    return (torch.div(lengths + 2 * padding - span, stride, rounding_mode="floor") + 1).clamp_min(1)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x [B, T, D]`` over the positions where ``mask [B, T]`` is True."""
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)


def masked_mean_std(x: Tensor, mask: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation of ``x [B, T, D]`` over the real positions of ``mask``.

    Statistics pooling (x-vectors, ECAPA): :func:`~selfsup_audio.features.masked_mean_var`
    with ``sqrt(var + eps)``.
    """
    mean, var = masked_mean_var(x, mask)
    return mean, (var + eps).sqrt()


class MaskedBatchNorm(nn.BatchNorm1d):
    """BatchNorm over channels of ``[B, C, T]`` whose batch statistics use real frames only.

    In training the real frames are packed (``[N_real, C]``) before normalising, so
    padding never shifts the running statistics; padded frames come out as zero.
    """

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # type: ignore[override]
        """Normalise ``x [B, C, T]`` given ``mask [B, T]`` (True = real frame)."""
        frames = x.transpose(1, 2)  # [B, T, C]
        packed = super().forward(frames[mask])
        out = torch.zeros_like(frames)
        out[mask] = packed.to(out.dtype)
        return out.transpose(1, 2)


class SpectralFrontEnd(nn.Module):
    """Waveforms -> normalised log-mel frames; precomputed feature batches pass through.

    Accepts a waveform batch (``Padded`` ``[B, T]`` or a ``[B, T]`` tensor) or a feature
    batch (``Padded`` ``[B, frames, F]``, e.g. from ``audio:specaugment``, or a
    ``[B, frames, F]`` tensor) with ``F == n_mels``.

    Args:
        sample_rate: Input sample rate in Hz.
        n_mels: Mel bands (the feature width ``F``).
        win_ms: Window in milliseconds.
        hop_ms: Hop in milliseconds.
        norm: Per-utterance normalisation of the log-mel (over real frames only):
            ``"scalar"`` (one mean and std over all frames and bands: removes the gain,
            keeps the spectral envelope that carries speaker identity), ``"bands"``
            (per-band mean and variance, as CMVN) or ``"none"``.
        owner: The encoder id, for error messages.
    """

    def __init__(
        self,
        sample_rate: int,
        n_mels: int,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        norm: Norm = "scalar",
        owner: str = "encoder",
    ) -> None:
        super().__init__()
        self.features = LogMel(
            sample_rate=sample_rate,
            n_mels=n_mels,
            win_ms=win_ms,
            hop_ms=hop_ms,
            normalize=norm == "bands",
        )
        self.n_mels = n_mels
        self.norm = norm
        self.owner = owner

    def forward(self, x: Any) -> Padded:
        """A ``Padded`` ``[B, frames, n_mels]`` with zeroed padding frames."""
        if isinstance(x, Tensor) and x.dim() == 3 and x.shape[-1] == self.n_mels:
            x = Padded(x, torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device))
        if isinstance(x, Padded) and x.values.dim() == 3 and x.values.shape[-1] != 1:
            if x.values.shape[-1] != self.n_mels:
                raise ValueError(
                    f"{self.owner}: got a feature batch with {x.values.shape[-1]} features per "
                    f"frame, but the encoder expects n_mels={self.n_mels}; set the views' "
                    "feature width (e.g. audio:specaugment n_mels) to match, and use log-mel"
                )
            values = x.values.float()
            mask = length_mask(x.lengths.to(values.device), values.shape[1])
            return Padded(values * mask.unsqueeze(-1).to(values.dtype), x.lengths.to(values.device))
        if not isinstance(x, (Padded, Tensor)):
            raise TypeError(
                f"{self.owner}: expected waveforms (Padded/Tensor [B, T]) or log-mel features "
                f"(Padded [B, frames, {self.n_mels}]), got {type(x).__name__}"
            )
        out = self.features(x)
        values, lengths = out.values, out.lengths.to(out.values.device)
        if self.norm == "scalar":
            w = length_mask(lengths, values.shape[1]).to(values.dtype)[..., None]
            count = (w.sum((1, 2)) * values.shape[-1]).clamp_min(1.0)
            mean = (values * w).sum((1, 2)) / count
            centred = (values - mean[:, None, None]) * w
            std = ((centred**2).sum((1, 2)) / count + 1e-5).sqrt()
            values = centred / std[:, None, None]
        return Padded(values, lengths)


class MaskedConv(nn.Module):
    """Conv1d -> ReLU -> masked BatchNorm over ``[B, C, T]``, padded frames zeroed after."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1
    ) -> None:
        super().__init__()
        self.padding = dilation * (kernel - 1) // 2
        self.kernel, self.stride, self.dilation = kernel, stride, dilation
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride, self.padding, dilation)
        self.norm = MaskedBatchNorm(c_out)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Returns ``(y [B, C_out, T_out], lengths_out)``."""
        y = torch.relu(self.conv(x))
        out_len = conv_lengths(lengths, self.kernel, self.stride, self.padding, self.dilation)
        out_len = out_len.clamp(max=y.shape[-1])
        return self.norm(y, length_mask(out_len, y.shape[-1])), out_len


class CNN1d(Encoder):
    """Small 1-D CNN over log-mel frames with masked pooling.

    Args:
        sample_rate: Input sample rate in Hz (FSDD: 8000).
        n_mels: Mel bands of the log-mel front end.
        channels: Output channels of each conv layer (the last is ``embed_dim``).
        kernel_size: Kernel of every conv layer (odd).
        strides: Stride of each layer over time (default: 1 for the first, 2 after).
        hop_ms: Frame hop of the log-mel front end in milliseconds.
        norm: Per-utterance log-mel normalisation over real frames: ``"scalar"`` (one
            mean/std: keeps the spectral envelope), ``"bands"`` (per band) or ``"none"``.
        pooling: ``"mean"`` (masked mean of the last layer's frames, ``embed_dim =
            channels[-1]``) or ``"meanstd"`` (statistics pooling as in x-vectors and
            ECAPA: their mean and standard deviation, ``embed_dim = 2 * channels[-1]``;
            the frame ``tokens`` are then zero-padded to ``embed_dim``, as in
            ``audio:mfcc-stats``).

    Raises:
        ValueError: ``strides`` and ``channels`` differ in length, or an even kernel.
    """

    modality = "audio"

    def __init__(
        self,
        sample_rate: Annotated[int, Field(gt=0)] = 16000,
        n_mels: Annotated[int, Field(ge=8)] = 64,
        channels: Sequence[Annotated[int, Field(ge=1)]] = (128, 128, 256),
        kernel_size: Annotated[int, Field(ge=1)] = 5,
        strides: Sequence[Annotated[int, Field(ge=1)]] | None = None,
        hop_ms: Annotated[float, Field(gt=0)] = 10.0,
        norm: Norm = "scalar",
        pooling: Literal["mean", "meanstd"] = "mean",
    ) -> None:
        super().__init__()
        if pooling not in ("mean", "meanstd"):
            raise ValueError(f"audio:cnn1d: pooling={pooling!r} is not one of mean, meanstd")
        channels = list(channels)
        if not channels:
            raise ValueError("audio:cnn1d: channels must list at least one layer width")
        strides = list(strides) if strides is not None else [1] + [2] * (len(channels) - 1)
        if len(strides) != len(channels):
            raise ValueError(
                f"audio:cnn1d: strides has {len(strides)} entries, channels {len(channels)}; "
                "give one stride per layer"
            )
        if kernel_size % 2 == 0:
            raise ValueError(f"audio:cnn1d: kernel_size={kernel_size} must be odd (same padding)")
        self.sample_rate = sample_rate
        self.front = SpectralFrontEnd(
            sample_rate, n_mels, hop_ms=hop_ms, norm=norm, owner="audio:cnn1d"
        )
        widths = [n_mels, *channels]
        self.layers = nn.ModuleList(
            MaskedConv(widths[i], widths[i + 1], kernel_size, strides[i])
            for i in range(len(channels))
        )
        self.pooling = pooling
        self.embed_dim = channels[-1] * (2 if pooling == "meanstd" else 1)

    def forward(self, x: Any) -> EncoderOutput:
        """Encode waveforms or log-mel feature batches.

        Returns:
            ``pooled [B, embed_dim]`` (masked mean over frames), frame ``tokens`` with
            their ``mask``, and every layer's frames in ``hidden_states``.
        """
        feats = self.front(x)
        h, lengths = feats.values.transpose(1, 2), feats.lengths
        hidden = []
        for layer in self.layers:
            h, lengths = layer(h, lengths)
            hidden.append(h.transpose(1, 2))
        frames = hidden[-1]
        mask = length_mask(lengths, frames.shape[1])
        pooled = masked_mean(frames, mask)
        tokens = frames
        if self.pooling == "meanstd":
            pooled = torch.cat(masked_mean_std(frames, mask), dim=-1)
            tokens = nn.functional.pad(frames, (0, self.embed_dim - frames.shape[-1]))
        return EncoderOutput(pooled=pooled, tokens=tokens, mask=mask, hidden_states=tuple(hidden))
