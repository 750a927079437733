"""A UNETR/SwinUNETR-style decoder on an encoder's multi-scale 3-D feature maps.

SwinUNETR projects each encoder stage with a residual block, then climbs from the
coarsest stage to the finest with transposed-convolution up-blocks that concatenate
the next finer projection (skip connection), and finishes at full resolution with a
skip from the input volume. :class:`UNETRDecoder` does the same from the encoder's
declared ``feature_channels`` / ``feature_strides`` (finest first), with MONAI's
``UnetrBasicBlock``, ``UnetrUpBlock`` and ``UnetOutBlock``, so it fits every encoder
of the plugin (strides 2-32 for Swin, equal strides for the ViT's reshaped tokens).
The objectives reuse it, narrow and without the input skip, as their light decoder
(the input skip would let a restoration decoder copy its input instead of making
the encoder learn).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["RawLinear", "SegmentationNet", "UNETRDecoder"]


def _ratio(fine: int, coarse: int) -> int:
    if coarse % fine:
        raise ValueError(
            f"feature strides must divide each other (finest first), got {fine} then {coarse}"
        )
    return coarse // fine


class _Upsample(nn.Sequential):
    """Transposed-convolution upsampling by a power-of-two factor, in steps of 2."""

    def __init__(self, in_c: int, out_c: int, factor: int, norm: tuple | str) -> None:
        from monai.networks.blocks import UnetrBasicBlock

        layers: list[nn.Module] = []
        c = in_c
        while factor > 1:
            step = 2 if factor % 2 == 0 else factor
            layers.append(nn.ConvTranspose3d(c, out_c, kernel_size=step, stride=step))
            c, factor = out_c, factor // step
        layers.append(UnetrBasicBlock(3, c, out_c, 3, 1, norm_name=norm, res_block=True))
        super().__init__(*layers)


class UNETRDecoder(nn.Module):
    """Decode feature maps (finest first) into a full-resolution ``out_channels`` map.

    Args:
        feature_channels: Channels of each encoder map, finest first.
        feature_strides: Stride of each map (input voxels per map voxel), finest first.
        out_channels: Output channels (classes for segmentation, 1 for restoration).
        width: Decoder width at the finest level; level ``i`` uses ``width * 2**i``
            (capped at 8x).
        in_chans: Channels of the input volume (for the input skip).
        input_skip: Concatenate a projection of the input volume at full resolution
            (SwinUNETR's ``encoder1``); off for self-supervised restoration.
        norm: Normalisation of MONAI's blocks: ``"group"`` (one group: channels and
            space together, which also works on the 1-voxel maps of small crops),
            ``"instance"`` or ``"batch"``.
    """

    def __init__(
        self,
        feature_channels: Sequence[int],
        feature_strides: Sequence[int],
        out_channels: int,
        width: int = 16,
        in_chans: int = 1,
        input_skip: bool = True,
        norm: str = "group",
    ) -> None:
        super().__init__()
        from monai.networks.blocks import UnetOutBlock, UnetrBasicBlock, UnetrUpBlock

        if len(feature_channels) != len(feature_strides) or not feature_channels:
            raise ValueError(
                f"feature_channels {list(feature_channels)} and feature_strides "
                f"{list(feature_strides)} must be non-empty and of equal length"
            )
        norm_arg: tuple | str = ("group", {"num_groups": 1}) if norm == "group" else norm
        norm = norm_arg  # type: ignore[assignment]
        levels = len(feature_channels)
        widths = [width * min(2**i, 8) for i in range(levels)]
        self.strides = [int(s) for s in feature_strides]
        self.proj = nn.ModuleList(
            UnetrBasicBlock(3, int(c), w, 3, 1, norm_name=norm, res_block=True)
            for c, w in zip(feature_channels, widths, strict=True)
        )
        self.up = nn.ModuleList(
            UnetrUpBlock(
                3,
                widths[i + 1],
                widths[i],
                3,
                upsample_kernel_size=_ratio(self.strides[i], self.strides[i + 1]),
                norm_name=norm,
                res_block=True,
            )
            for i in range(levels - 1)
        )
        first = self.strides[0]
        self.input_skip = input_skip
        if input_skip:
            self.stem = UnetrBasicBlock(3, in_chans, width, 3, 1, norm_name=norm, res_block=True)
            self.final = _Upsample(widths[0], width, first, norm)
            self.fuse = UnetrBasicBlock(3, 2 * width, width, 3, 1, norm_name=norm, res_block=True)
        else:
            self.final = _Upsample(widths[0], width, first, norm)
        self.head = UnetOutBlock(3, width, out_channels)

    def forward(self, maps: Sequence[Tensor], x: Tensor | None = None) -> Tensor:
        """Decode ``maps`` (finest first); ``x`` is the input volume (for the skip)."""
        if len(maps) != len(self.proj):
            raise ValueError(f"decoder built for {len(self.proj)} feature maps, got {len(maps)}")
        feats = [p(m) for p, m in zip(self.proj, maps, strict=True)]
        h = feats[-1]
        for i in reversed(range(len(self.up))):
            skip = feats[i]
            h = self.up[i](_match(h, skip, self.strides[i + 1] // self.strides[i]), skip)
        h = self.final(h)
        if self.input_skip:
            if x is None:
                raise ValueError("this decoder has an input skip: call it with the input volume")
            h = _fit(h, x.shape[2:])
            h = self.fuse(torch.cat([h, self.stem(x)], dim=1))
        elif x is not None:
            h = _fit(h, x.shape[2:])
        return self.head(h)


def _match(h: Tensor, skip: Tensor, ratio: int) -> Tensor:
    """Resize ``h`` so that upsampling it by ``ratio`` gives ``skip``'s size."""
    want = [s // ratio for s in skip.shape[2:]]
    return _fit(h, want)


def _fit(h: Tensor, size: Sequence[int]) -> Tensor:
    if list(h.shape[2:]) == [int(s) for s in size]:
        return h
    return F.interpolate(h, size=[int(s) for s in size], mode="trilinear", align_corners=False)


class SegmentationNet(nn.Module):
    """An encoder (its feature maps) and a :class:`UNETRDecoder`: volume in, logits out."""

    def __init__(self, encoder: nn.Module, num_classes: int, width: int = 16) -> None:
        super().__init__()
        self.encoder = encoder
        self.num_classes = int(num_classes)
        self.decoder = UNETRDecoder(
            encoder.feature_channels,
            encoder.feature_strides,
            num_classes,
            width=width,
            in_chans=int(getattr(encoder, "in_chans", 1)),
            input_skip=True,
        )

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, D, H, W]`` -> logits ``[B, num_classes, D, H, W]``."""
        maps = self.encoder(x).feature_maps
        if not maps:
            raise ValueError(
                f"encoder {type(self.encoder).__name__} returned no feature maps; "
                "segmentation needs a medical: encoder"
            )
        return self.decoder(maps, x)


class RawLinear(nn.Module):
    """The no-learning baseline: a linear classifier of each voxel's raw neighbourhood.

    One ``kernel``-sided convolution from the intensities to class logits: a linear
    probe on raw intensities that segments, trained and scored exactly as the encoder
    + decoder (same crops, loss, steps, sliding window and Dice).
    """

    def __init__(self, in_chans: int, num_classes: int, kernel: int = 3) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.conv = nn.Conv3d(in_chans, num_classes, kernel, padding=kernel // 2)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, D, H, W]`` -> logits ``[B, num_classes, D, H, W]``."""
        return self.conv(x)
