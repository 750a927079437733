"""SSAST-style patch transformer over log-mel spectrograms (``audio:ssast``).

After Gong et al., "SSAST: Self-Supervised Audio Spectrogram Transformer" (AAAI 2022):
the log-mel spectrogram ``[frames, n_mels]`` is cut into non-overlapping patches (no
patch overlap, as SSAST pretrains), each patch is linearly embedded, positional
embeddings are added and a transformer encodes the sequence. Two patch shapes:

* ``"frame"``: ``n_mels x 2`` frames (SSAST's 128x2 frame patches, adapted to
  ``n_mels``), which SSAST found better for speech;
* ``"square"``: ``16 x 16`` (time x frequency) patches, as AST.

Clips of any length are supported: the time axis is cut into ``ceil(frames /
patch_time)`` patches (the last one zero-filled), positions along time use fixed
sin-cos embeddings (no maximum length) and along frequency learned ones, and padded
patches are masked out of attention and pooling, so ``pooled`` does not depend on the
padding. :meth:`SSASTEncoder.encode_patches` takes a patch mask: masked patches are
replaced by a learned mask embedding before the transformer, which is how the
``audio:ssast`` objective pretrains it.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from selfsup.interfaces import Encoder, EncoderOutput, Padded
from torch import Tensor, nn

from selfsup_audio.encoders.cnn1d import Norm, SpectralFrontEnd, length_mask, masked_mean

__all__ = ["PatchBatch", "SSASTEncoder", "sincos_1d"]


def sincos_1d(n: int, dim: int, device: torch.device) -> Tensor:
    """Fixed sin-cos position embeddings ``[n, dim]`` (Transformer style)."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=device) / max(half, 1))
    emb = torch.cat([torch.sin(pos * freq), torch.cos(pos * freq)], 1)
    return nn.functional.pad(emb, (0, dim - emb.shape[1]))


class PatchBatch:
    """Patches of a spectrogram batch.

    Attributes:
        patches: ``[B, N, patch_dim]`` patch values, time-major (``index = t * n_freq + f``).
        mask: ``[B, N]`` booleans, True on real patches.
        n_time: Time patches of the padded batch.
        n_freq: Frequency patches.
    """

    def __init__(self, patches: Tensor, mask: Tensor, n_time: int, n_freq: int) -> None:
        self.patches, self.mask, self.n_time, self.n_freq = patches, mask, n_time, n_freq


class SSASTEncoder(Encoder):
    """Patch transformer over log-mel (SSAST), frame-shaped or square patches.

    Args:
        sample_rate: Input sample rate in Hz (FSDD: 8000).
        n_mels: Mel bands of the log-mel front end (and of feature-batch inputs).
        patch: ``"frame"`` (``n_mels x 2``) or ``"square"`` (``16 x 16``) patches.
        patch_freq: Mel bands per patch (default: ``n_mels`` for frame, 16 for square);
            must divide ``n_mels``.
        patch_time: Frames per patch (default: 2 for frame, 16 for square).
        embed_dim: Transformer width.
        depth: Transformer layers.
        num_heads: Attention heads (must divide ``embed_dim``).
        mlp_ratio: Feed-forward width as a multiple of ``embed_dim``.
        dropout: Dropout in the transformer layers.
        hop_ms: Frame hop of the log-mel front end in milliseconds.
        norm: Per-utterance log-mel normalisation over real frames: ``"scalar"`` (one
            mean/std: keeps the spectral envelope), ``"bands"`` (per band) or ``"none"``.

    Raises:
        ValueError: A patch size that does not divide ``n_mels``, or heads that do not
            divide ``embed_dim``.
    """

    modality = "audio"

    def __init__(
        self,
        sample_rate: Annotated[int, Field(gt=0)] = 16000,
        n_mels: Annotated[int, Field(ge=2)] = 64,
        patch: Literal["frame", "square"] = "frame",
        patch_freq: Annotated[int, Field(ge=1)] | None = None,
        patch_time: Annotated[int, Field(ge=1)] | None = None,
        embed_dim: Annotated[int, Field(ge=8)] = 192,
        depth: Annotated[int, Field(ge=1)] = 4,
        num_heads: Annotated[int, Field(ge=1)] = 4,
        mlp_ratio: Annotated[float, Field(gt=0)] = 4.0,
        dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0,
        hop_ms: Annotated[float, Field(gt=0)] = 10.0,
        norm: Norm = "scalar",
    ) -> None:
        super().__init__()
        pf = patch_freq or (n_mels if patch == "frame" else 16)
        pt = patch_time or (2 if patch == "frame" else 16)
        if n_mels % pf:
            raise ValueError(
                f"audio:ssast: patch_freq={pf} does not divide n_mels={n_mels}; choose a "
                f"patch_freq that divides it (frame patches use patch_freq=n_mels)"
            )
        if embed_dim % num_heads:
            raise ValueError(
                f"audio:ssast: embed_dim={embed_dim} is not divisible by num_heads={num_heads}"
            )
        self.sample_rate = sample_rate
        self.embed_dim = embed_dim
        self.patch_freq, self.patch_time = pf, pt
        self.n_freq = n_mels // pf
        self.patch_dim = pf * pt
        self.front = SpectralFrontEnd(
            sample_rate, n_mels, hop_ms=hop_ms, norm=norm, owner="audio:ssast"
        )
        self.patch_embed = nn.Linear(self.patch_dim, embed_dim)
        self.freq_pos = nn.Parameter(torch.zeros(self.n_freq, embed_dim))
        self.mask_embed = nn.Parameter(torch.zeros(embed_dim))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                embed_dim,
                num_heads,
                int(embed_dim * mlp_ratio),
                dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim)
        nn.init.trunc_normal_(self.freq_pos, std=0.02)
        nn.init.trunc_normal_(self.mask_embed, std=0.02)

    # ------------------------------------------------------------------ patches

    def patchify(self, feats: Padded) -> PatchBatch:
        """Cut a ``Padded`` ``[B, frames, n_mels]`` feature batch into patches.

        Time patches of an item: ``ceil(frames / patch_time)``; the last is zero-filled.
        """
        x, lengths = feats.values, feats.lengths.to(feats.values.device)
        b, frames, _ = x.shape
        pt, pf = self.patch_time, self.patch_freq
        n_t = max(1, -(-frames // pt))
        x = x * length_mask(lengths, frames).unsqueeze(-1).to(x.dtype)
        x = nn.functional.pad(x, (0, 0, 0, n_t * pt - frames))
        x = x.reshape(b, n_t, pt, self.n_freq, pf).permute(0, 1, 3, 2, 4)
        patches = x.reshape(b, n_t * self.n_freq, pt * pf)
        real_t = torch.div(lengths + pt - 1, pt, rounding_mode="floor").clamp_min(1)
        mask = length_mask(real_t, n_t).repeat_interleave(self.n_freq, dim=1)
        return PatchBatch(patches, mask, n_t, self.n_freq)

    def prepare_patches(self, x: Any) -> PatchBatch:
        """Waveforms or log-mel feature batches -> :class:`PatchBatch`."""
        return self.patchify(self.front(x))

    def encode_patches(self, batch: PatchBatch, masked: Tensor | None = None) -> EncoderOutput:
        """Encode patches, with the patches where ``masked [B, N]`` is True hidden.

        Masked patches are replaced by the learned mask embedding before the positional
        embeddings are added (SSAST); padded patches are left out of attention.

        Returns:
            ``pooled`` (mean of the real output tokens), ``tokens [B, N, D]``, ``mask``
            and ``hidden_states`` (the embedded input, then every layer).
        """
        x = self.patch_embed(batch.patches)
        if masked is not None:
            if tuple(masked.shape) != tuple(batch.mask.shape):
                raise ValueError(
                    f"audio:ssast: patch mask of shape {tuple(masked.shape)} for "
                    f"{tuple(batch.mask.shape)} patches"
                )
            x = torch.where(masked.unsqueeze(-1), self.mask_embed.to(x.dtype), x)
        elif self.training:  # every parameter in the graph: DDP without find_unused_parameters
            x = x + 0.0 * self.mask_embed.sum()
        pos = sincos_1d(batch.n_time, self.embed_dim, x.device).to(x.dtype)
        pos = (pos[:, None, :] + self.freq_pos[None].to(x.dtype)).reshape(-1, self.embed_dim)
        x = x + pos[None]
        pad = ~batch.mask
        hidden = [x]
        for block in self.blocks:
            x = block(x, src_key_padding_mask=pad)
            hidden.append(x)
        x = self.norm(x)
        hidden[-1] = x
        return EncoderOutput(
            pooled=masked_mean(x, batch.mask),
            tokens=x,
            mask=batch.mask,
            hidden_states=tuple(hidden),
        )

    def forward(self, x: Any) -> EncoderOutput:
        """Encode waveforms (``Padded``/``[B, T]``) or log-mel feature batches."""
        return self.encode_patches(self.prepare_patches(x))
