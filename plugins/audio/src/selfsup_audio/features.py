"""Batched frame features of waveforms on the input's device: log-mel, MFCC, LFCC.

Each feature module takes a waveform batch (a :class:`selfsup.interfaces.Padded` with
``values [B, T]`` and ``lengths [B]``, or a plain ``[B, T]`` / ``[T]`` tensor whose
samples are all real) and returns a ``Padded`` of frames, ``values [B, frames, F]``
with the frame ``lengths``; padding frames are zero.

Frames are not centred (``center=False``): frame ``t`` covers samples
``[t * hop, t * hop + win)``, so every real frame sees only real samples and an item's
features do not depend on how much padding its batch has. A clip shorter than one
window gives one frame (zero-padded to the window). With ``normalize=True`` each
utterance's features are mean/variance normalised over its real frames only.

Example:
    >>> import torch
    >>> from selfsup.interfaces import Padded
    >>> mel = LogMel(sample_rate=8000, n_mels=40)
    >>> out = mel(Padded(torch.randn(2, 8000), torch.tensor([8000, 4000])))
    >>> out.values.shape, out.lengths.tolist()
    (torch.Size([2, 98, 40]), [98, 48])
"""

from __future__ import annotations

from typing import Annotated

import torch
import torchaudio
from pydantic import Field
from selfsup.interfaces import Padded
from torch import Tensor, nn

__all__ = ["LFCC", "MFCC", "FrameFeatures", "LogMel", "build_features", "frame_lengths"]

_EPS = 1e-6


def frame_lengths(lengths: Tensor, hop: int, win: int) -> Tensor:
    """The number of non-centred frames of clips of ``lengths`` samples.

    ``1 + (length - win) // hop`` for clips of at least one window, and 1 for shorter
    clips (they are zero-padded to one window).

    Args:
        lengths: ``[B]`` clip lengths in samples.
        hop: Hop between frames in samples.
        win: Window (and FFT) size in samples.

    Returns:
        ``[B]`` long tensor of frame counts (each >= 1).
    """
    lengths = torch.as_tensor(lengths, dtype=torch.long)
    return (torch.div(lengths - win, hop, rounding_mode="floor") + 1).clamp(min=1)


def _as_padded(x: Padded | Tensor) -> Padded:
    if isinstance(x, Padded):
        values = x.values
        if values.ndim == 3 and values.shape[-1] == 1:
            values = values.squeeze(-1)
        if values.ndim != 2:
            raise ValueError(
                f"audio features expect a waveform batch [B, T]; got a Padded with values "
                f"of shape {tuple(x.values.shape)} (features are computed from waveforms)"
            )
        return Padded(values=values, lengths=x.lengths)
    if not isinstance(x, Tensor):
        raise TypeError(f"audio features expect a Padded or a Tensor, got {type(x).__name__}")
    if x.ndim == 1:
        x = x[None]
    if x.ndim == 3 and x.shape[1] == 1:  # [B, 1, T] channel-first mono
        x = x[:, 0]
    if x.ndim != 2:
        raise ValueError(f"audio features expect a waveform [B, T] or [T]; got {tuple(x.shape)}")
    lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device)
    return Padded(values=x, lengths=lengths)


def masked_mean_var(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and (biased) variance over dim 1 of ``values [B, T, F]`` where ``mask [B, T]``.

    Returns:
        ``([B, F], [B, F])``.
    """
    m = mask.to(values.dtype).unsqueeze(-1)
    count = m.sum(1).clamp(min=1.0)
    mean = (values * m).sum(1) / count
    var = (((values - mean[:, None]) * m) ** 2).sum(1) / count
    return mean, var


class FrameFeatures(nn.Module):
    """Base class: a torchaudio transform applied per frame, batched, with frame lengths.

    Subclasses set ``self.transform`` (waveform ``[B, T]`` -> ``[B, F, frames]``) and
    ``out_features``.

    Args:
        sample_rate: Input sample rate in Hz.
        win_ms: Window length in milliseconds.
        hop_ms: Hop in milliseconds.
        normalize: Per-utterance mean/variance normalisation over real frames.

    Attributes:
        sample_rate: Input sample rate in Hz.
        win: Window size in samples.
        hop: Hop in samples.
        normalize: Per-utterance mean/variance normalisation over real frames.
        out_features: ``F``, the feature width.
    """

    out_features: int
    transform: nn.Module

    def __init__(
        self,
        sample_rate: int,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        if sample_rate <= 0:
            raise ValueError(f"sample_rate={sample_rate}: must be a positive number of Hz")
        if win_ms <= 0 or hop_ms <= 0:
            raise ValueError(f"win_ms={win_ms}, hop_ms={hop_ms}: both must be > 0")
        self.sample_rate = int(sample_rate)
        self.win = max(2, round(sample_rate * win_ms / 1000.0))
        self.hop = max(1, round(sample_rate * hop_ms / 1000.0))
        self.normalize = normalize

    def _spec_kwargs(self) -> dict[str, object]:
        return {
            "n_fft": self.win,
            "win_length": self.win,
            "hop_length": self.hop,
            "center": False,
        }

    def _mel_kwargs(self, n_mels: int, f_min: float, f_max: float | None) -> dict[str, object]:
        """The mel filterbank and framing arguments of torchaudio's mel transforms."""
        return {"n_mels": n_mels, "f_min": f_min, "f_max": f_max, **self._spec_kwargs()}

    def frame_lengths(self, lengths: Tensor) -> Tensor:
        """Frame counts of clips of ``lengths`` samples (see :func:`frame_lengths`)."""
        return frame_lengths(lengths, self.hop, self.win)

    def forward(self, x: Padded | Tensor) -> Padded:
        """Frames of a waveform batch.

        Args:
            x: ``Padded`` waveforms (``values [B, T]``) or a ``[B, T]`` / ``[T]`` tensor.

        Returns:
            ``Padded(values [B, frames, out_features], lengths [B])``; padding frames are 0.
        """
        wave = _as_padded(x)
        values = wave.values
        if not values.is_floating_point():
            values = values.float()
        buffers = list(self.transform.buffers())
        if buffers and buffers[0].device != values.device:
            self.transform.to(values.device)
        if values.shape[1] < self.win:
            values = nn.functional.pad(values, (0, self.win - values.shape[1]))
        with torch.autocast(device_type=values.device.type, enabled=False):
            feats = self.transform(values.float()).transpose(1, 2)  # [B, frames, F]
        lengths = self.frame_lengths(wave.lengths).to(feats.device).clamp(max=feats.shape[1])
        mask = torch.arange(feats.shape[1], device=feats.device)[None, :] < lengths[:, None]
        if self.normalize:
            mean, var = masked_mean_var(feats, mask)
            feats = (feats - mean[:, None]) / (var[:, None] + 1e-5).sqrt()
        feats = feats * mask.unsqueeze(-1).to(feats.dtype)
        return Padded(values=feats, lengths=lengths.to(wave.lengths.device))


class LogMel(FrameFeatures):
    """Log mel filterbank energies, ``log(mel + 1e-6)``.

    Args:
        n_mels: Number of mel bands.
        f_min: Lowest band edge in Hz.
        f_max: Highest band edge in Hz (default: Nyquist).
        sample_rate, win_ms, hop_ms, normalize: As :class:`FrameFeatures`.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: Annotated[int, Field(ge=1)] = 64,
        win_ms: Annotated[float, Field(gt=0)] = 25.0,
        hop_ms: Annotated[float, Field(gt=0)] = 10.0,
        normalize: bool = True,
        f_min: float = 0.0,
        f_max: float | None = None,
    ) -> None:
        super().__init__(sample_rate, win_ms, hop_ms, normalize)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, **self._mel_kwargs(n_mels, f_min, f_max)
        )
        self.transform = _Log(self.mel)
        self.out_features = int(n_mels)


class _Log(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return torch.log(self.inner(x) + _EPS)


class MFCC(FrameFeatures):
    """Mel-frequency cepstral coefficients (DCT-II of log mel energies).

    Args:
        n_mfcc: Number of coefficients (including c0).
        n_mels, f_min, f_max: The mel bands before the DCT, as :class:`LogMel`.
        sample_rate, win_ms, hop_ms, normalize: As :class:`FrameFeatures` (``normalize``
            is cepstral mean and variance normalisation).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mfcc: Annotated[int, Field(ge=1)] = 40,
        n_mels: Annotated[int, Field(ge=1)] = 64,
        win_ms: Annotated[float, Field(gt=0)] = 25.0,
        hop_ms: Annotated[float, Field(gt=0)] = 10.0,
        normalize: bool = True,
        f_min: float = 0.0,
        f_max: float | None = None,
    ) -> None:
        super().__init__(sample_rate, win_ms, hop_ms, normalize)
        if n_mfcc > n_mels:
            raise ValueError(f"n_mfcc={n_mfcc} must be <= n_mels={n_mels}")
        self.transform = torchaudio.transforms.MFCC(
            sample_rate=sample_rate,
            n_mfcc=n_mfcc,
            log_mels=True,
            melkwargs=self._mel_kwargs(n_mels, f_min, f_max),
        )
        self.out_features = int(n_mfcc)


class LFCC(FrameFeatures):
    """Linear-frequency cepstral coefficients (the classic spoofing-detection feature).

    Args:
        n_lfcc: Number of coefficients.
        n_filter: Number of linear triangular filters.
        sample_rate, win_ms, hop_ms, normalize: As :class:`FrameFeatures`.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_lfcc: Annotated[int, Field(ge=1)] = 40,
        n_filter: Annotated[int, Field(ge=1)] = 64,
        win_ms: Annotated[float, Field(gt=0)] = 25.0,
        hop_ms: Annotated[float, Field(gt=0)] = 10.0,
        normalize: bool = True,
    ) -> None:
        super().__init__(sample_rate, win_ms, hop_ms, normalize)
        if n_lfcc > n_filter:
            raise ValueError(f"n_lfcc={n_lfcc} must be <= n_filter={n_filter}")
        self.transform = torchaudio.transforms.LFCC(
            sample_rate=sample_rate,
            n_filter=n_filter,
            n_lfcc=n_lfcc,
            log_lf=True,
            speckwargs=self._spec_kwargs(),
        )
        self.out_features = int(n_lfcc)


FEATURES: dict[str, type[FrameFeatures]] = {"logmel": LogMel, "mfcc": MFCC, "lfcc": LFCC}


def build_features(kind: str, sample_rate: int, **params: object) -> FrameFeatures:
    """Build a feature module by name (``"logmel"``, ``"mfcc"`` or ``"lfcc"``).

    Raises:
        ValueError: An unknown ``kind``, naming the choices.
    """
    if kind not in FEATURES:
        raise ValueError(f"features={kind!r} is not known; choose one of {sorted(FEATURES)}")
    return FEATURES[kind](sample_rate=sample_rate, **params)  # type: ignore[arg-type]
