"""A small wav2vec2-style encoder on torchaudio's ``wav2vec2_model`` (``audio:wav2vec2``).

The model is torchaudio's :class:`~torchaudio.models.Wav2Vec2Model` (convolutional
feature extractor, feature projection, convolutional positional embedding, transformer),
built at a configurable, small size. The encoder adds what selfsup needs around it:

* it is length-aware: a :class:`~selfsup.interfaces.Padded` batch gives every item the
  embedding it has alone (the feature extractor runs in ``"layer_norm"`` mode, whose
  normalisation is per frame, torchaudio zeroes padded frames before the positional
  convolution and masks them out of attention, and ``pooled`` is a masked mean);
* every layer's output in ``hidden_states`` (the projected conv features first);
* :meth:`Wav2Vec2Encoder.forward_masked`, which replaces masked frames with a learned
  mask embedding before the transformer, for masked-prediction and contrastive
  objectives, with :meth:`~Wav2Vec2Encoder.conv_features` and
  :meth:`~Wav2Vec2Encoder.frame_lengths` to build their masks and targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import torch
from pydantic import Field
from selfsup.interfaces import Encoder, EncoderOutput, Padded
from torch import Tensor, nn
from torchaudio.models import wav2vec2_model

__all__ = ["Wav2Vec2Encoder"]

#: The wav2vec2 conv stack (kernel, stride) per layer: 400-sample receptive field,
#: stride 320 (20 ms at 16 kHz, 40 ms at 8 kHz).
_KERNELS_STRIDES = ((10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2))


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x [B, T, D]`` over the positions where ``mask [B, T]`` is True."""
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)


def as_wave_batch(x: Any, name: str) -> Padded:
    """A waveform batch as :class:`Padded` ``[B, T]`` (a plain ``[B, T]`` tensor is all real).

    Raises:
        TypeError: ``x`` is neither a tensor nor a :class:`Padded`.
        ValueError: ``x`` is not a mono waveform batch ``[B, T]``.
    """
    if isinstance(x, Padded):
        batch = x
    elif isinstance(x, Tensor):
        batch = Padded(x, torch.full((x.shape[0],), x.shape[-1], dtype=torch.long))
    else:
        raise TypeError(
            f"{name}: expected a waveform batch (Padded or Tensor [B, T]), got {type(x).__name__}"
        )
    if batch.values.dim() == 3 and batch.values.shape[-1] == 1:
        batch = Padded(batch.values[..., 0], batch.lengths)
    if batch.values.dim() != 2:
        raise ValueError(
            f"{name}: expected mono waveforms [B, T], got values of shape "
            f"{tuple(batch.values.shape)}; this encoder reads raw audio, not features "
            "(use audio:wave-views, not audio:specaugment, as its views)"
        )
    return Padded(batch.values.float(), batch.lengths.to(batch.values.device))


class Wav2Vec2Encoder(Encoder):
    """wav2vec2-style speech encoder (torchaudio ``wav2vec2_model``) at a small size.

    Args:
        sample_rate: Sample rate of the input audio (recorded; the conv stack's stride
            of 320 samples is 20 ms at 16 kHz and 40 ms at 8 kHz).
        conv_dim: Channels of every conv feature-extractor layer (512 in wav2vec2).
        conv_layers: Number of the wav2vec2 conv layers kept (1-7; fewer layers give a
            finer frame rate: 5 layers = stride 80).
        embed_dim: Transformer width (768 in wav2vec2 base).
        num_layers: Transformer layers.
        num_heads: Attention heads (must divide ``embed_dim``).
        ff_dim: Feed-forward inner width.
        pos_conv_kernel: Kernel of the convolutional positional embedding (128 in base).
        pos_conv_groups: Groups of that convolution (must divide ``embed_dim``).
        dropout: Dropout in the transformer (attention, feed-forward, projection).
        layer_drop: Probability of skipping a transformer layer in training.
        layer_norm_first: Pre-LN transformer (wav2vec2 large) instead of post-LN (base).
        normalize: Normalise each waveform to zero mean, unit variance over its real
            samples first.

    Raises:
        ValueError: Widths that do not divide, or an unknown setting.
    """

    modality = "audio"

    def __init__(
        self,
        sample_rate: Annotated[int, Field(gt=0)] = 16000,
        conv_dim: Annotated[int, Field(ge=8)] = 128,
        conv_layers: Annotated[int, Field(ge=1, le=7)] = 7,
        embed_dim: Annotated[int, Field(ge=8)] = 192,
        num_layers: Annotated[int, Field(ge=1)] = 4,
        num_heads: Annotated[int, Field(ge=1)] = 4,
        ff_dim: Annotated[int, Field(ge=8)] = 768,
        pos_conv_kernel: Annotated[int, Field(ge=2)] = 32,
        pos_conv_groups: Annotated[int, Field(ge=1)] = 16,
        dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1,
        layer_drop: Annotated[float, Field(ge=0, lt=1)] = 0.0,
        layer_norm_first: bool = False,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        for what, div in (("num_heads", num_heads), ("pos_conv_groups", pos_conv_groups)):
            if embed_dim % div:
                raise ValueError(
                    f"audio:wav2vec2: embed_dim={embed_dim} is not divisible by {what}={div}; "
                    f"choose an embed_dim that is a multiple of {div}"
                )
        self.sample_rate = sample_rate
        self.embed_dim = embed_dim
        self.normalize = normalize
        self.num_layers = num_layers
        convs: Sequence[tuple[int, int, int]] = [
            (conv_dim, k, s) for k, s in _KERNELS_STRIDES[:conv_layers]
        ]
        self.model = wav2vec2_model(
            extractor_mode="layer_norm",  # per-frame norm: padding never leaks in
            extractor_conv_layer_config=list(convs),
            extractor_conv_bias=False,
            encoder_embed_dim=embed_dim,
            encoder_projection_dropout=dropout,
            encoder_pos_conv_kernel=pos_conv_kernel,
            encoder_pos_conv_groups=pos_conv_groups,
            encoder_num_layers=num_layers,
            encoder_num_heads=num_heads,
            encoder_attention_dropout=dropout,
            encoder_ff_interm_features=ff_dim,
            encoder_ff_interm_dropout=dropout,
            encoder_dropout=dropout,
            encoder_layer_norm_first=layer_norm_first,
            encoder_layer_drop=layer_drop,
            aux_num_out=None,
        )
        self.conv_dim = conv_dim
        self.mask_embedding = nn.Parameter(torch.empty(embed_dim).uniform_())
        self._convs = [(k, s) for _, k, s in convs]
        self.min_samples = self._receptive_field()

    # ------------------------------------------------------------------ shapes

    def _receptive_field(self) -> int:
        """Samples needed for one output frame."""
        need = 1
        for k, s in reversed(self._convs):
            need = (need - 1) * s + k
        return need

    def frame_lengths(self, lengths: Tensor) -> Tensor:
        """Conv-feature frames of waveforms of ``lengths`` samples (torchaudio's rule)."""
        out = lengths.long()
        for k, s in self._convs:
            out = torch.div(out - k, s, rounding_mode="floor") + 1
            out = out.clamp_min(0)
        return out

    # ------------------------------------------------------------------ pieces

    def _prepare(self, x: Any) -> Padded:
        batch = as_wave_batch(x, "audio:wav2vec2")
        short = (batch.lengths < self.min_samples).nonzero().flatten().tolist()
        if short:
            raise ValueError(
                f"audio:wav2vec2: items {short[:5]} have {batch.lengths[short].tolist()[:5]} "
                f"samples, fewer than the {self.min_samples} one frame needs; drop or pad "
                "such clips (e.g. min_seconds in the dataset) or use fewer conv_layers"
            )
        if not self.normalize:
            return batch
        mask = batch.mask.to(batch.values.dtype)
        n = mask.sum(1, keepdim=True)
        mean = (batch.values * mask).sum(1, keepdim=True) / n
        var = (((batch.values - mean) * mask) ** 2).sum(1, keepdim=True) / n
        values = (batch.values - mean) / (var + 1e-7).sqrt() * mask
        return Padded(values, batch.lengths)

    def conv_features(self, x: Any) -> tuple[Tensor, Tensor]:
        """The conv feature extractor's output and its frame lengths.

        Args:
            x: Waveforms (:class:`Padded` ``[B, T]`` or a ``[B, T]`` tensor).

        Returns:
            ``(features [B, T', conv_dim], frame_lengths [B])``.
        """
        batch = self._prepare(x)
        feats, lengths = self.model.feature_extractor(batch.values, batch.lengths)
        return feats, lengths

    def _transform(self, feats: Tensor, lengths: Tensor, time_mask: Tensor | None) -> EncoderOutput:
        encoder = self.model.encoder
        x = encoder.feature_projection(feats)
        steps = torch.arange(x.shape[1], device=x.device)
        real = steps[None, :] < lengths.to(x.device)[:, None]
        if time_mask is not None:
            if tuple(time_mask.shape) != tuple(real.shape):
                raise ValueError(
                    f"audio:wav2vec2: time_mask has shape {tuple(time_mask.shape)}; it must be "
                    f"[B, T'] = {tuple(real.shape)} (frames of conv features, see frame_lengths)"
                )
            m = (time_mask.to(x.device) & real).unsqueeze(-1)
            x = torch.where(m, self.mask_embedding.to(x.dtype), x)
        elif self.training:  # every parameter in the graph: DDP without find_unused_parameters
            x = x + 0.0 * self.mask_embedding.sum()
        x = x * real.unsqueeze(-1).to(x.dtype)  # padded frames are zero, as torchaudio does
        attn = (~real)[:, None, None, :].to(x.dtype) * -10000.0
        attn = attn.expand(x.shape[0], 1, x.shape[1], x.shape[1])
        transformer = encoder.transformer
        hidden = [x]
        x = transformer._preprocess(x)
        bias = None
        for layer in transformer.layers:
            drop = self.training and transformer.layer_drop > 0
            if drop and torch.rand(1).item() <= transformer.layer_drop:
                hidden.append(x)
                continue
            x, bias = layer(x, attn, position_bias=bias)
            hidden.append(x)
        if not transformer.layer_norm_first:
            x = transformer.layer_norm(x)
            hidden[-1] = x
        return EncoderOutput(
            pooled=masked_mean(x, real),
            tokens=x,
            mask=real,
            hidden_states=tuple(hidden),
        )

    # ------------------------------------------------------------------ API

    def forward(self, x: Any) -> EncoderOutput:
        """Encode waveforms (:class:`Padded` ``[B, T]`` or ``[B, T]``).

        Returns:
            ``pooled`` (masked mean of the last layer), frame ``tokens`` with their
            ``mask`` and ``hidden_states`` (projected conv features, then every layer).
        """
        feats, lengths = self.conv_features(x)
        return self._transform(feats, lengths, None)

    def forward_masked(self, wave: Padded | Tensor, time_mask: Tensor) -> EncoderOutput:
        """Encode with some frames replaced by the learned mask embedding.

        Args:
            wave: Waveforms (:class:`Padded` ``[B, T]`` or ``[B, T]``).
            time_mask: ``[B, T']`` booleans over conv-feature frames (``T'`` from
                :meth:`frame_lengths` of the padded length); True frames are masked
                (padded frames are ignored).

        Returns:
            As :meth:`forward`, computed on the masked input.
        """
        feats, lengths = self.conv_features(wave)
        return self._transform(feats, lengths, time_mask.bool())

    def forward_features(
        self, feats: Tensor, lengths: Tensor, time_mask: Tensor | None = None
    ) -> EncoderOutput:
        """The transformer part on precomputed :meth:`conv_features` (optionally masked)."""
        return self._transform(feats, lengths, None if time_mask is None else time_mask.bool())
