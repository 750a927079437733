"""Audio view makers, batched on the device: ``audio:wave-views`` and ``audio:specaugment``.

Both take the collated waveform batch (``Padded(values [B, T], lengths [B])`` or a plain
``[B, T]`` tensor) and return a list of ``Padded`` views; nothing loops over items in
Python and the input is never modified.

* :class:`WaveViews`: random crop, gain, additive noise at a random SNR, speed
  perturbation, and two content-destroying, voice-preserving views for speaker
  embeddings (segment shuffling and time reversal), each item drawing its own values;
  views stay waveforms.
* :class:`SpecAugmentViews`: frame features (log-mel, MFCC or LFCC) with SpecAugment
  time and frequency masks (torchaudio's ``TimeMasking`` / ``FrequencyMasking`` with
  independent masks per item); views are feature batches ``[B, frames, F]``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from selfsup.interfaces import BatchMeta, Padded
from torch import Tensor

from selfsup_audio.features import build_features

__all__ = ["SpecAugmentViews", "WaveViews", "as_padded_wave"]


def as_padded_wave(batch: Padded | Tensor | tuple | list) -> Padded:
    """A waveform batch as ``Padded`` (``[B, T]`` tensors are all real; ``[T]`` is one item)."""
    if isinstance(batch, tuple | list):  # an (x, y) pair handed over whole
        batch = batch[0]
    if isinstance(batch, Padded):
        return batch
    if not isinstance(batch, Tensor):
        raise TypeError(
            f"audio views expect a Padded or a Tensor batch, got {type(batch).__name__}"
        )
    x = batch[None] if batch.ndim == 1 else batch
    if x.ndim != 2:
        raise ValueError(f"audio views expect waveforms [B, T]; got shape {tuple(batch.shape)}")
    return Padded(x, torch.full((x.shape[0],), x.shape[1], dtype=torch.long, device=x.device))


def _uniform(low: float, high: float, n: int, device: torch.device) -> Tensor:
    return low + (high - low) * torch.rand(n, device=device)


class WaveViews:
    """Waveform views: random crop, gain, noise, speed, segment shuffle and reversal.

    Every item draws its own values. Speed changes shift pitch and formants, i.e. the
    voice; for speaker embeddings set ``speed_prob: 0`` and use ``shuffle_prob`` /
    ``reverse_prob`` instead: they keep every sample of the clip (so its long-term
    spectrum, the voice) and destroy the word order, so two views of one utterance
    agree on who speaks and not on what is said.

    Args:
        n_views: How many views to return.
        crop_seconds: Length of the random crop (items shorter keep their length);
            ``None`` keeps the whole clip.
        sample_rate: The batch's sample rate (for ``crop_seconds``).
        gain_db: Range of the random gain in dB.
        noise_prob: Probability of adding white noise to an item.
        snr_db: Range of the noise's signal-to-noise ratio in dB.
        speed_prob: Probability of a speed change for an item.
        speed: Range of the speed factor (> 1 is faster and shorter; linear
            interpolation, so pitch moves with speed, as in Kaldi's speed perturbation).
        shuffle_prob: Probability of shuffling an item's segments (after the crop): the
            whole ``segment_seconds`` segments of its real samples are put in a random
            order; a shorter tail segment stays last. Length and samples are kept.
        segment_seconds: Length of the shuffled segments.
        reverse_prob: Probability of reversing an item's real samples in time.
    """

    def __init__(
        self,
        n_views: Annotated[int, Field(ge=1)] = 2,
        crop_seconds: Annotated[float, Field(gt=0)] | None = None,
        sample_rate: Annotated[int, Field(gt=0)] = 16000,
        gain_db: tuple[float, float] = (-6.0, 6.0),
        noise_prob: Annotated[float, Field(ge=0, le=1)] = 0.5,
        snr_db: tuple[float, float] = (5.0, 30.0),
        speed_prob: Annotated[float, Field(ge=0, le=1)] = 0.5,
        speed: tuple[float, float] = (0.9, 1.1),
        shuffle_prob: Annotated[float, Field(ge=0, le=1)] = 0.0,
        segment_seconds: Annotated[float, Field(gt=0)] = 0.1,
        reverse_prob: Annotated[float, Field(ge=0, le=1)] = 0.0,
    ) -> None:
        if gain_db[0] > gain_db[1] or snr_db[0] > snr_db[1] or speed[0] > speed[1]:
            raise ValueError(
                f"ranges must be (low, high): gain_db={gain_db}, snr_db={snr_db}, speed={speed}"
            )
        if speed[0] <= 0:
            raise ValueError(f"speed={speed}: factors must be > 0")
        self.n_views = n_views
        self.crop = None if crop_seconds is None else max(1, round(crop_seconds * sample_rate))
        self.gain_db, self.noise_prob, self.snr_db = gain_db, noise_prob, snr_db
        self.speed_prob, self.speed = speed_prob, speed
        self.shuffle_prob, self.reverse_prob = shuffle_prob, reverse_prob
        self.segment = max(1, round(segment_seconds * sample_rate))

    def _speed(self, wave: Padded) -> Padded:
        x, lengths = wave.values, wave.lengths.to(wave.values.device)
        b = x.shape[0]
        factor = torch.where(
            torch.rand(b, device=x.device) < self.speed_prob,
            _uniform(self.speed[0], self.speed[1], b, x.device),
            torch.ones(b, device=x.device),
        )
        new_len = (lengths.float() / factor).floor().long().clamp(min=1)
        t_out = int(new_len.max())
        pos = torch.arange(t_out, device=x.device)[None].float() * factor[:, None]
        last = (lengths - 1).clamp(min=0)[:, None].float()
        pos = torch.minimum(pos, last)
        lo = pos.floor().long()
        hi = torch.minimum(lo + 1, last.long())
        frac = (pos - lo.float()).to(x.dtype)
        out = torch.gather(x, 1, lo) * (1 - frac) + torch.gather(x, 1, hi) * frac
        mask = torch.arange(t_out, device=x.device)[None] < new_len[:, None]
        return Padded(out * mask, new_len.to(wave.lengths.device))

    def _crop(self, wave: Padded) -> Padded:
        if self.crop is None:
            return wave
        x, lengths = wave.values, wave.lengths.to(wave.values.device)
        size = min(self.crop, x.shape[1])
        new_len = lengths.clamp(max=size)
        offset = (torch.rand(x.shape[0], device=x.device) * (lengths - new_len + 1)).long()
        idx = (offset[:, None] + torch.arange(size, device=x.device)[None]).clamp(
            max=x.shape[1] - 1
        )
        mask = torch.arange(size, device=x.device)[None] < new_len[:, None]
        return Padded(torch.gather(x, 1, idx) * mask, new_len.to(wave.lengths.device))

    def _shuffle(self, wave: Padded) -> Padded:
        """Permute the whole segments of the chosen items' real samples (tail stays)."""
        if self.shuffle_prob == 0.0:
            return wave
        x, lengths = wave.values, wave.lengths.to(wave.values.device)
        b, t = x.shape
        k = -(-t // self.segment)  # segments covering the padded width
        chosen = torch.rand(b, device=x.device) < self.shuffle_prob
        n_full = torch.where(chosen, torch.div(lengths, self.segment, rounding_mode="floor"), 0)
        seg = torch.arange(k, device=x.device)[None].expand(b, k)
        # Whole real segments get random keys in [0, 1); the others keep their place.
        keys = torch.where(seg < n_full[:, None], torch.rand(b, k, device=x.device), seg + 1.0)
        perm = keys.argsort(dim=1)  # [B, K]: source segment of each output segment
        pos = torch.arange(t, device=x.device)
        src = perm[:, pos // self.segment] * self.segment + (pos % self.segment)[None]
        return Padded(torch.gather(x, 1, src.clamp(max=t - 1)), wave.lengths)

    def _reverse(self, wave: Padded) -> Padded:
        """Reverse the chosen items' real samples in time (padding stays at the end)."""
        if self.reverse_prob == 0.0:
            return wave
        x, lengths = wave.values, wave.lengths.to(wave.values.device)
        b, t = x.shape
        chosen = torch.rand(b, device=x.device) < self.reverse_prob
        pos = torch.arange(t, device=x.device)[None].expand(b, t)
        flipped = (lengths[:, None] - 1 - pos).clamp(min=0)
        src = torch.where(chosen[:, None] & (pos < lengths[:, None]), flipped, pos)
        return Padded(torch.gather(x, 1, src), wave.lengths)

    def view(self, wave: Padded) -> Padded:
        """One view of a padded waveform batch."""
        wave = self._reverse(self._shuffle(self._crop(self._speed(wave))))
        x, mask = wave.values, wave.mask
        b, dev = x.shape[0], x.device
        gain = 10.0 ** (_uniform(self.gain_db[0], self.gain_db[1], b, dev) / 20.0)
        x = x * gain[:, None].to(x.dtype)
        power = (x.float() ** 2 * mask).sum(1) / mask.sum(1).clamp(min=1)
        snr = _uniform(self.snr_db[0], self.snr_db[1], b, dev)
        scale = (power / 10.0 ** (snr / 10.0)).sqrt() * (
            torch.rand(b, device=dev) < self.noise_prob
        )
        x = x + torch.randn_like(x) * scale[:, None].to(x.dtype) * mask
        return Padded(x.clamp(-1.0, 1.0), wave.lengths)

    def __call__(self, batch: Padded | Tensor, meta: BatchMeta | None = None) -> list[Padded]:
        """``n_views`` independent views of ``batch``."""
        wave = as_padded_wave(batch)
        wave = Padded(wave.values.float(), wave.lengths)
        return [self.view(wave) for _ in range(self.n_views)]


class SpecAugmentViews:
    """Frame features with SpecAugment masking (independent masks per item and view).

    Args:
        features: ``logmel``, ``mfcc`` or ``lfcc``.
        sample_rate: The batch's sample rate.
        n_features: Width of the features (mel bands / coefficients).
        n_views: How many views to return.
        time_masks: Time masks per view.
        time_mask_param: Longest time mask in frames.
        time_mask_frac: Longest time mask as a fraction of the clip's frames.
        freq_masks: Frequency masks per view.
        freq_mask_param: Widest frequency mask in bins.
        crop_seconds: Optional random crop of the waveform before the features.
        win_ms: Window in milliseconds.
        hop_ms: Hop in milliseconds.
    """

    def __init__(
        self,
        features: Literal["logmel", "mfcc", "lfcc"] = "logmel",
        sample_rate: Annotated[int, Field(gt=0)] = 16000,
        n_features: Annotated[int, Field(ge=1)] = 64,
        n_views: Annotated[int, Field(ge=1)] = 2,
        time_masks: Annotated[int, Field(ge=0)] = 2,
        time_mask_param: Annotated[int, Field(ge=0)] = 20,
        time_mask_frac: Annotated[float, Field(gt=0, le=1)] = 0.2,
        freq_masks: Annotated[int, Field(ge=0)] = 2,
        freq_mask_param: Annotated[int, Field(ge=0)] = 8,
        crop_seconds: Annotated[float, Field(gt=0)] | None = None,
        win_ms: Annotated[float, Field(gt=0)] = 25.0,
        hop_ms: Annotated[float, Field(gt=0)] = 10.0,
    ) -> None:
        import torchaudio

        width = {"logmel": "n_mels", "mfcc": "n_mfcc", "lfcc": "n_lfcc"}[features]
        extra = {"n_mels": max(64, n_features)} if features == "mfcc" else {}
        if features == "lfcc":
            extra = {"n_filter": max(64, n_features)}
        self.features = build_features(
            features, sample_rate, win_ms=win_ms, hop_ms=hop_ms, **{width: n_features}, **extra
        )
        self.n_views, self.time_masks, self.freq_masks = n_views, time_masks, freq_masks
        self.time_mask = torchaudio.transforms.TimeMasking(
            time_mask_param, iid_masks=True, p=time_mask_frac
        )
        self.freq_mask = torchaudio.transforms.FrequencyMasking(freq_mask_param, iid_masks=True)
        self.crop = (
            None
            if crop_seconds is None
            else WaveViews(1, crop_seconds, sample_rate, (0.0, 0.0), 0.0, (0.0, 0.0), 0.0)
        )

    def view(self, wave: Padded) -> Padded:
        """One masked feature view of a padded waveform batch."""
        if self.crop is not None:
            wave = self.crop.view(wave)
        feats = self.features(wave)
        spec = feats.values.transpose(1, 2).unsqueeze(1)  # [B, 1, F, frames]
        for _ in range(self.time_masks):
            spec = self.time_mask(spec)
        for _ in range(self.freq_masks):
            spec = self.freq_mask(spec)
        values = spec.squeeze(1).transpose(1, 2) * feats.mask.unsqueeze(-1).to(spec.dtype)
        return Padded(values.contiguous(), feats.lengths)

    def __call__(self, batch: Padded | Tensor, meta: BatchMeta | None = None) -> list[Padded]:
        """``n_views`` independently masked feature views of ``batch``."""
        wave = as_padded_wave(batch)
        return [self.view(wave) for _ in range(self.n_views)]
