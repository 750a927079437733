"""Masked prediction of discrete frame targets (HuBERT / BEATs, first iteration).

Spans of frames are masked (span starts drawn with probability ``mask_prob`` per real
frame, each ``mask_length`` frames long: HuBERT's p = 8 %, l = 10) and the encoder
predicts, at every masked frame, the code that a tokenizer gives the *unmasked* audio
(:mod:`selfsup_audio.objectives.tokenizers`: k-means over MFCC frames, or BEATs'
random projection). The loss is the cross-entropy over the masked real frames plus
``unmasked_weight`` times the one over the unmasked real frames (HuBERT's alpha/beta;
the paper found masked-only best). Logits are HuBERT's: cosine similarity between a
projection of the frame token and one learned embedding per code, over a temperature
of 0.1.

Masking, two ways (``masking``):

* ``"encoder"``: the encoder masks its own frames. Encoders with
  ``forward_masked(wave, time_mask)`` (``audio:wav2vec2``) replace masked conv
  frames by a learned embedding before the transformer, as HuBERT does; the mask is
  drawn at the encoder's frame rate.
* ``"input"``: any other encoder. The mask is drawn at the tokenizer's frame rate and
  every sample inside a masked frame's window is zeroed before encoding.
* ``"auto"`` (default): ``"encoder"`` when the encoder has ``forward_masked``.

Alignment (stated): the encoder's frame tokens and the tokenizer's frames (10 ms hop)
need not share a rate. Each item's tokens are linearly interpolated in time onto its
own target frames (target frame ``f`` of ``F`` sits at encoder position
``(f + 0.5) * L / F - 0.5`` for ``L`` real tokens), so padding never leaks in; an
encoder-rate mask maps to target frames by the nearest encoder frame.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from selfsup.interfaces import BatchMeta, EncoderOutput, Objective, ObjectiveOutput, Padded
from torch import Tensor, nn

from selfsup_audio.objectives.tokenizers import FrameTokenizer, build_tokenizer

__all__ = [
    "MaskedPrediction",
    "align_tokens",
    "as_wave",
    "encoder_frame_lengths",
    "nearest_index",
    "padded_frames",
    "span_mask",
]


def as_wave(views: Any, owner: str) -> Padded:
    """The waveform batch of ``views``.

    ``views`` is a ``Padded`` ``[B, T]``, a ``[B, T]`` tensor, or a list/tuple whose first
    element is one (``core:identity``, ``audio:wave-views``).

    Raises:
        TypeError: Anything else, naming what was given and what to configure.
    """
    if isinstance(views, list | tuple):
        if not views:
            raise TypeError(f"{owner}: got an empty list of views")
        views = views[0]
    if isinstance(views, Tensor):
        if views.ndim != 2:
            raise TypeError(f"{owner}: expected waveforms [B, T], got {tuple(views.shape)}")
        lengths = torch.full((views.shape[0],), views.shape[1], dtype=torch.long)
        return Padded(values=views, lengths=lengths.to(views.device))
    if isinstance(views, Padded):
        if views.values.ndim != 2:
            raise TypeError(
                f"{owner}: expected a waveform batch (Padded values [B, T]), got values of "
                f"shape {tuple(views.values.shape)}; use views core:identity or "
                f"audio:wave-views, not feature views"
            )
        return views
    raise TypeError(
        f"{owner}: expected a waveform batch (Padded [B, T] or a list of them), got "
        f"{type(views).__name__}; use views core:identity or audio:wave-views"
    )


def span_mask(
    lengths: Tensor,
    max_len: int,
    mask_prob: float,
    mask_length: int,
    min_masks: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random span masks over the real frames of each item.

    Each item of ``L`` real frames gets ``round_stochastic(mask_prob * L)`` (at least
    ``min_masks``) distinct span starts in ``[0, L - mask_length]``; each span covers
    ``mask_length`` frames (cut at ``L``). Spans may overlap, as in wav2vec 2.0/HuBERT.

    Args:
        lengths: ``[B]`` real frame counts.
        max_len: ``T``, the padded length of the mask.
        mask_prob: Probability that a real frame starts a span.
        mask_length: Span length in frames.
        min_masks: Least spans per item with real frames.
        generator: CPU generator (default: torch's global one).

    Returns:
        ``[B, T]`` bool on ``lengths``' device; never ``True`` on padding.
    """
    lens = lengths.detach().cpu().long().tolist()
    mask = torch.zeros(len(lens), max_len, dtype=torch.bool)
    for b, length in enumerate(lens):
        length = min(int(length), max_len)
        if length <= 0:
            continue
        draw = float(torch.rand((), generator=generator))
        n = max(int(mask_prob * length + draw), min_masks)
        positions = max(length - mask_length + 1, 1)
        starts = torch.randperm(positions, generator=generator)[: min(n, positions)]
        for s in starts.tolist():
            mask[b, s : min(s + mask_length, length)] = True
    return mask.to(lengths.device)


def encoder_frame_lengths(encoder: nn.Module, lengths: Tensor) -> Tensor:
    """Token counts an encoder with a conv front-end gives clips of ``lengths`` samples.

    Uses ``encoder.frame_lengths(lengths)`` when it exists, else the kernel sizes and
    strides of a torchaudio ``Wav2Vec2Model``'s feature extractor (``encoder.model``).

    Raises:
        TypeError: The encoder exposes neither.
    """
    fn = getattr(encoder, "frame_lengths", None)
    if callable(fn):
        return torch.as_tensor(fn(lengths), dtype=torch.long, device=lengths.device)
    model = getattr(encoder, "model", None)
    layers = getattr(getattr(model, "feature_extractor", None), "conv_layers", None)
    if layers is None:
        raise TypeError(
            f"{type(encoder).__name__}: cannot tell its frame rate (no frame_lengths() and "
            f"no torchaudio wav2vec2 .model); use masking='input'"
        )
    out = lengths.long()
    for layer in layers:
        out = (torch.div(out - layer.kernel_size, layer.stride, rounding_mode="floor") + 1).clamp(
            min=0
        )
    return out


def padded_frames(encoder: nn.Module, wave: Padded) -> int:
    """Frames the encoder's conv front-end gives the batch's padded length ``T``."""
    total = torch.tensor([wave.values.shape[1]], device=wave.lengths.device)
    return int(encoder_frame_lengths(encoder, total)[0])


def _positions(src_lengths: Tensor, dst_lengths: Tensor, dst_len: int) -> Tensor:
    """``[B, dst_len]`` fractional source positions of each destination frame."""
    f = torch.arange(dst_len, device=src_lengths.device, dtype=torch.float32)[None, :]
    src = src_lengths.float().clamp(min=1)[:, None]
    dst = dst_lengths.float().clamp(min=1)[:, None]
    pos = (f + 0.5) * src / dst - 0.5
    return torch.minimum(pos.clamp(min=0), src - 1)


def nearest_index(src_lengths: Tensor, dst_lengths: Tensor, dst_len: int) -> Tensor:
    """``[B, dst_len]`` index of the nearest source frame of each destination frame."""
    return _positions(src_lengths, dst_lengths, dst_len).round().long()


def align_tokens(
    tokens: Tensor, token_lengths: Tensor, frame_lengths: Tensor, num_frames: int
) -> Tensor:
    """Linearly interpolate each item's real tokens onto its target frames.

    Args:
        tokens: ``[B, L, D]`` encoder tokens.
        token_lengths: ``[B]`` real tokens per item.
        frame_lengths: ``[B]`` real target frames per item.
        num_frames: ``F``, the padded target length.

    Returns:
        ``[B, F, D]``; frames past an item's length repeat its last token.
    """
    pos = _positions(token_lengths.to(tokens.device), frame_lengths.to(tokens.device), num_frames)
    lo = pos.floor().long()
    hi = torch.minimum(lo + 1, (token_lengths.to(tokens.device).clamp(min=1) - 1)[:, None])
    w = (pos - lo.float()).unsqueeze(-1).to(tokens.dtype)
    dim = tokens.shape[-1]
    a = tokens.gather(1, lo.unsqueeze(-1).expand(-1, -1, dim))
    b = tokens.gather(1, hi.unsqueeze(-1).expand(-1, -1, dim))
    return a * (1 - w) + b * w


def _token_lengths(out: EncoderOutput, owner: str) -> Tensor:
    if out.tokens is None:
        raise TypeError(f"{owner}: the encoder returns no frame tokens (EncoderOutput.tokens)")
    if out.mask is None:
        return torch.full(
            (out.tokens.shape[0],), out.tokens.shape[1], dtype=torch.long, device=out.tokens.device
        )
    return out.mask.long().sum(1)


def _dilate(sample_mask: Tensor, width: int) -> Tensor:
    """Extend each ``True`` run to the right by ``width`` samples."""
    if width <= 0:
        return sample_mask
    x = F.pad(sample_mask.float()[:, None], (width, 0))
    return F.max_pool1d(x, kernel_size=width + 1, stride=1)[:, 0] > 0


class MaskedPrediction(Objective):
    """HuBERT/BEATs-style masked prediction of tokenizer codes.

    Args:
        embed_dim: The encoder's ``embed_dim`` (set by the engine).
        tokenizer: ``"mfcc-kmeans"`` (HuBERT iteration 1) or ``"random-projection"``
            (BEATs iteration 1).
        sample_rate: The waveforms' sample rate in Hz.
        num_codes: k-means clusters or random codebook size.
        mask_prob: Probability that a real frame starts a masked span (HuBERT: 0.08).
        mask_length: Masked span length in frames (HuBERT: 10).
        unmasked_weight: Weight of the cross-entropy on unmasked frames (HuBERT: 0).
        proj_dim: Width of the projection and code embeddings (HuBERT: 256).
        temperature: Temperature of the cosine logits (HuBERT: 0.1).
        masking: ``"auto"``, ``"encoder"`` (``forward_masked``) or ``"input"``.
        fit_batches: Training batches that fit the k-means codebook (mfcc-kmeans).
        n_mfcc: MFCC coefficients before deltas (mfcc-kmeans).
        code_dim: Random projection width (random-projection).
        n_mels: Log-mel bands (random-projection).
        seed: Tokenizer seed; ``None`` draws it from the run's seeded generator.
    """

    name = "audio:masked-prediction"

    def __init__(
        self,
        embed_dim: int,
        tokenizer: Literal["mfcc-kmeans", "random-projection"] = "mfcc-kmeans",
        sample_rate: PositiveInt = 16000,
        num_codes: Annotated[int, Field(ge=2)] = 100,
        mask_prob: Annotated[float, Field(gt=0, le=1)] = 0.08,
        mask_length: PositiveInt = 10,
        unmasked_weight: Annotated[float, Field(ge=0)] = 0.0,
        proj_dim: PositiveInt = 256,
        temperature: Annotated[float, Field(gt=0)] = 0.1,
        masking: Literal["auto", "encoder", "input"] = "auto",
        fit_batches: PositiveInt = 8,
        n_mfcc: PositiveInt = 13,
        code_dim: PositiveInt = 16,
        n_mels: PositiveInt = 64,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if int(embed_dim) < 1:
            raise ValueError(f"{self.name}: embed_dim={embed_dim!r} must be >= 1")
        if not 0 < mask_prob <= 1:
            raise ValueError(f"{self.name}: mask_prob={mask_prob!r} must be in (0, 1]")
        if temperature <= 0 or unmasked_weight < 0:
            raise ValueError(
                f"{self.name}: temperature={temperature!r} must be > 0 and "
                f"unmasked_weight={unmasked_weight!r} >= 0"
            )
        if masking not in ("auto", "encoder", "input"):
            raise ValueError(f"{self.name}: masking={masking!r}; choose auto, encoder or input")
        self.tokenizer: FrameTokenizer = build_tokenizer(
            tokenizer, sample_rate, num_codes, seed, fit_batches, n_mfcc, code_dim, n_mels
        )
        self.mask_prob, self.mask_length = float(mask_prob), int(mask_length)
        self.unmasked_weight, self.temperature = float(unmasked_weight), float(temperature)
        self.masking = masking
        self.proj = nn.Linear(embed_dim, proj_dim)
        self.code_embed = nn.Parameter(torch.randn(num_codes, proj_dim) * proj_dim**-0.5)

    def _encode_masked(
        self, encoder: nn.Module, wave: Padded, frame_lengths: Tensor, num_frames: int
    ) -> tuple[EncoderOutput, Tensor]:
        """Encode with a mask; returns the output and the ``[B, F]`` target-frame mask."""
        use_encoder = self.masking == "encoder" or (
            self.masking == "auto" and callable(getattr(encoder, "forward_masked", None))
        )
        if use_encoder:
            if not callable(getattr(encoder, "forward_masked", None)):
                raise TypeError(
                    f"{self.name}: masking='encoder' needs an encoder with forward_masked "
                    f"(audio:wav2vec2); {type(encoder).__name__} has none: use masking='input'"
                )
            enc_lengths = encoder_frame_lengths(encoder, wave.lengths)
            enc_mask = span_mask(
                enc_lengths, padded_frames(encoder, wave), self.mask_prob, self.mask_length
            )
            out = encoder.forward_masked(wave, enc_mask)
            tok_lengths = _token_lengths(out, self.name)
            idx = nearest_index(tok_lengths, frame_lengths, num_frames)
            enc_mask = F.pad(enc_mask, (0, max(0, out.tokens.shape[1] - enc_mask.shape[1])))
            return out, enc_mask.gather(1, idx.clamp(max=enc_mask.shape[1] - 1))
        frame_mask = span_mask(frame_lengths, num_frames, self.mask_prob, self.mask_length)
        hop, win = self.tokenizer.hop, self.tokenizer.win
        samples = frame_mask.repeat_interleave(hop, dim=1)
        samples = _dilate(samples, win - hop)
        total = wave.values.shape[1]
        samples = F.pad(samples, (0, max(0, total - samples.shape[1])))[:, :total]
        masked = wave.values.masked_fill(samples.to(wave.values.device), 0.0)
        return encoder(Padded(values=masked, lengths=wave.lengths)), frame_mask

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """Cross-entropy of the predicted codes on masked (and unmasked) frames."""
        wave = as_wave(views, self.name)
        with torch.no_grad():
            frames = self.tokenizer.frames(wave)
            if self.training or not self.tokenizer.ready:
                self.tokenizer.observe(frames)
            codes = self.tokenizer.encode(frames.values.float())
        real = frames.mask
        num_frames = int(real.shape[1])
        out, mask = self._encode_masked(encoder, wave, frames.lengths, num_frames)
        mask = mask.to(real.device) & real
        tokens = align_tokens(
            out.tokens, _token_lengths(out, self.name), frames.lengths, num_frames
        )
        z = F.normalize(self.proj(tokens).float(), dim=-1)
        logits = z @ F.normalize(self.code_embed.float(), dim=-1).T / self.temperature
        ce = F.cross_entropy(logits.transpose(1, 2), codes, reduction="none")  # [B, F]
        n_masked = mask.sum().clamp(min=1)
        unmasked = real & ~mask
        n_unmasked = unmasked.sum().clamp(min=1)
        loss_m = (ce * mask).sum() / n_masked
        loss_u = (ce * unmasked).sum() / n_unmasked
        loss = loss_m + self.unmasked_weight * loss_u
        with torch.no_grad():
            hit = logits.argmax(-1) == codes
            usage = torch.bincount(codes[real], minlength=self.tokenizer.num_codes).float()
            p = usage / usage.sum().clamp(min=1)
            perplexity = torch.exp(-(p * (p + 1e-12).log()).sum())
        return ObjectiveOutput(
            loss=loss,
            metrics={
                "loss_masked": loss_m.detach(),
                "loss_unmasked": loss_u.detach(),
                "acc_masked": (hit & mask).sum() / n_masked,
                "acc_unmasked": (hit & unmasked).sum() / n_unmasked,
                "mask_ratio": mask.sum() / real.sum().clamp(min=1),
                "target_perplexity": perplexity,
            },
        )
