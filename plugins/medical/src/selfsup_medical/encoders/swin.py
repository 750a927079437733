"""The Swin transformer encoder of MONAI's SwinUNETR, as a selfsup encoder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import Field
from torch import Tensor

from selfsup_medical.encoders.base import VolumeEncoder

__all__ = ["SwinEncoder"]


class SwinEncoder(VolumeEncoder):
    """``monai.networks.nets.swin_unetr.SwinTransformer`` (the SwinUNETR encoder).

    Five feature maps: the patch embedding (stride 2, ``feature_size`` channels) and
    the four stages (strides 4-32, channels doubling); ``pooled`` is the average of
    the last (``16 * feature_size`` channels). Input sides must be multiples of 32.
    SwinUNETR's published setting is ``feature_size=48``; 12 runs on a CPU.

    Args:
        in_chans: Input channels.
        feature_size: Channels of the patch embedding (divisible by ``num_heads[0]``
            times 1, and each stage's width by its heads).
        depths: Swin blocks per stage.
        num_heads: Attention heads per stage.
        window_size: Attention window (voxels of the stage's grid) per side.
        drop_path_rate: Stochastic depth.
        use_checkpoint: Gradient checkpointing (saves memory at 96^3 and above).
        use_v2: SwinUNETR-v2's residual convolution before each stage.
    """

    def __init__(
        self,
        in_chans: Annotated[int, Field(ge=1)] = 1,
        feature_size: Annotated[int, Field(ge=1)] = 24,
        depths: Sequence[int] = (2, 2, 2, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: Annotated[int, Field(ge=1)] = 7,
        drop_path_rate: Annotated[float, Field(ge=0, lt=1)] = 0.0,
        use_checkpoint: bool = False,
        use_v2: bool = False,
    ) -> None:
        super().__init__()
        from monai.networks.nets.swin_unetr import SwinTransformer

        if len(depths) != 4 or len(num_heads) != 4:
            raise ValueError(
                f"SwinEncoder: depths={list(depths)} and num_heads={list(num_heads)} need "
                "4 entries each (one per stage)"
            )
        for i, heads in enumerate(num_heads):
            width = feature_size * 2**i
            if heads < 1 or width % heads:
                raise ValueError(
                    f"SwinEncoder: stage {i} has {width} channels (feature_size={feature_size} "
                    f"* 2^{i}), not divisible by num_heads[{i}]={heads}; use a feature_size "
                    "that is a multiple of 12 with the default heads"
                )
        self.swin = SwinTransformer(
            in_chans=in_chans,
            embed_dim=feature_size,
            window_size=(window_size,) * 3,
            patch_size=(2, 2, 2),
            depths=tuple(depths),
            num_heads=tuple(num_heads),
            drop_path_rate=drop_path_rate,
            use_checkpoint=use_checkpoint,
            spatial_dims=3,
            use_v2=use_v2,
        )
        self.in_chans = in_chans
        self.feature_channels = [feature_size * 2**i for i in range(5)]
        self.feature_strides = [2**i for i in range(1, 6)]
        self.embed_dim = self.feature_channels[-1]
        self.size_multiple = 32

    def features(self, x: Tensor) -> list[Tensor]:
        """The patch embedding and the four stages (layer-normalised), finest first."""
        return list(self.swin(x, normalize=True))
