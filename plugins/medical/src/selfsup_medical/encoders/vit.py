"""MONAI's 3-D ViT with UNETR-style feature maps from several depths."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch.nn.functional as F
from pydantic import Field
from selfsup.interfaces import EncoderOutput
from torch import Tensor

from selfsup_medical.encoders.base import VolumeEncoder

__all__ = ["ViT3D"]


class ViT3D(VolumeEncoder):
    """``monai.networks.nets.ViT`` as an encoder of any size that is a multiple of the patch.

    The learnt position embedding is made for ``img_size``; other sizes (sliding
    windows, crops) get it trilinearly resampled to their patch grid. Feature maps
    are the tokens after the blocks ``feature_layers`` (UNETR takes 3, 6, 9, 12),
    reshaped to ``[B, hidden_size, D/p, H/p, W/p]``: all at the patch stride (a
    decoder upsamples them, as UNETR does); ``tokens`` are the last block's output
    after the final norm, and ``pooled`` their mean.

    Args:
        in_chans: Input channels.
        img_size: Side of the volume the position embedding is made for.
        patch_size: Side of a patch (the stride of every feature map).
        hidden_size: Token width.
        mlp_dim: Hidden width of each block's MLP.
        num_layers: Transformer blocks.
        num_heads: Attention heads.
        feature_layers: 1-based block indices whose outputs become feature maps
            (default: evenly spaced, ending at the last block, at most 4).
        dropout_rate: Dropout in the blocks.
    """

    def __init__(
        self,
        in_chans: Annotated[int, Field(ge=1)] = 1,
        img_size: Annotated[int, Field(ge=1)] = 96,
        patch_size: Annotated[int, Field(ge=1)] = 16,
        hidden_size: Annotated[int, Field(ge=1)] = 768,
        mlp_dim: Annotated[int, Field(ge=1)] = 3072,
        num_layers: Annotated[int, Field(ge=1)] = 12,
        num_heads: Annotated[int, Field(ge=1)] = 12,
        feature_layers: Sequence[int] | None = None,
        dropout_rate: float = 0.0,
    ) -> None:
        super().__init__()
        from monai.networks.nets import ViT

        if img_size % patch_size:
            raise ValueError(
                f"ViT3D: img_size={img_size} must be a multiple of patch_size={patch_size}"
            )
        if hidden_size % num_heads:
            raise ValueError(
                f"ViT3D: hidden_size={hidden_size} must be divisible by num_heads={num_heads}"
            )
        if feature_layers is None:
            count = min(4, num_layers)
            feature_layers = [round(num_layers * (i + 1) / count) for i in range(count)]
        layers = sorted({int(i) for i in feature_layers})
        if not layers or layers[0] < 1 or layers[-1] > num_layers:
            raise ValueError(
                f"ViT3D: feature_layers={list(feature_layers)} must be block indices in "
                f"1..num_layers={num_layers}"
            )
        self.vit = ViT(
            in_channels=in_chans,
            img_size=img_size,
            patch_size=patch_size,
            hidden_size=hidden_size,
            mlp_dim=mlp_dim,
            num_layers=num_layers,
            num_heads=num_heads,
            proj_type="conv",
            classification=False,
            dropout_rate=dropout_rate,
            spatial_dims=3,
        )
        self.feature_layers = layers
        self.grid = img_size // patch_size
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.embed_dim = hidden_size
        self.feature_channels = [hidden_size] * len(layers)
        self.feature_strides = [patch_size] * len(layers)
        self.size_multiple = patch_size

    def _embed(self, x: Tensor) -> tuple[Tensor, tuple[int, int, int]]:
        block = self.vit.patch_embedding
        grid = block.patch_embeddings(x)  # [B, C, d, h, w]
        shape = tuple(int(s) for s in grid.shape[2:])
        tokens = grid.flatten(2).transpose(1, 2)
        pos = block.position_embeddings
        if shape != (self.grid,) * 3:
            pos = pos.transpose(1, 2).reshape(1, -1, self.grid, self.grid, self.grid)
            pos = F.interpolate(pos, size=shape, mode="trilinear", align_corners=False)
            pos = pos.flatten(2).transpose(1, 2)
        return block.dropout(tokens + pos), shape  # type: ignore[return-value]

    def _run(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        tokens, shape = self._embed(self.check_input(x))
        maps = []
        for depth, blk in enumerate(self.vit.blocks, start=1):
            tokens = blk(tokens)
            if depth in self.feature_layers:
                maps.append(tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *shape))
        return self.vit.norm(tokens), maps

    def features(self, x: Tensor) -> list[Tensor]:
        """Reshaped tokens after each of ``feature_layers``."""
        return self._run(x)[1]

    def forward(self, x: Tensor) -> EncoderOutput:
        """Encode ``[B, in_chans, D, H, W]``; tokens ``[B, N, hidden_size]``."""
        tokens, maps = self._run(x)
        return EncoderOutput(pooled=tokens.mean(1), tokens=tokens, feature_maps=tuple(maps))
