"""The contracting half of a 3-D UNet, from MONAI's residual units."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from selfsup_medical.encoders.base import VolumeEncoder

__all__ = ["UNetEncoder"]


class UNetEncoder(VolumeEncoder):
    """A UNet encoder: one full-resolution level, then one level per stride-2 step.

    Each level is a ``monai.networks.blocks.ResidualUnit`` (as in MONAI's ``UNet``);
    the first keeps the input resolution, each next one halves it. Feature maps are
    the outputs of every level (strides 1, 2, 4, ...), the skip connections a UNet
    decoder takes; ``pooled`` averages the deepest.

    Args:
        in_chans: Input channels.
        channels: Channels of each level, finest first (at least 2 levels).
        subunits: Convolutions per residual unit.
        norm: MONAI norm name (``"instance"``, ``"batch"``...).
        act: MONAI activation name.
        dropout: Dropout rate inside the units.
    """

    def __init__(
        self,
        in_chans: int = 1,
        channels: Sequence[int] = (16, 32, 64, 128, 256),
        subunits: int = 2,
        norm: str = "instance",
        act: str = "prelu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        from monai.networks.blocks import ResidualUnit

        channels = [int(c) for c in channels]
        if len(channels) < 2 or min(channels) < 1:
            raise ValueError(
                f"UNetEncoder: channels={channels} needs at least 2 positive entries "
                "(one per resolution level)"
            )
        levels = []
        previous = in_chans
        for i, width in enumerate(channels):
            levels.append(
                ResidualUnit(
                    spatial_dims=3,
                    in_channels=previous,
                    out_channels=width,
                    strides=1 if i == 0 else 2,
                    kernel_size=3,
                    subunits=subunits,
                    act=act,
                    norm=norm,
                    dropout=dropout,
                )
            )
            previous = width
        self.levels = nn.ModuleList(levels)
        self.in_chans = in_chans
        self.feature_channels = channels
        self.feature_strides = [2**i for i in range(len(channels))]
        self.embed_dim = channels[-1]
        self.size_multiple = self.feature_strides[-1]

    def features(self, x: Tensor) -> list[Tensor]:
        """Every level's output, finest first."""
        maps = []
        for level in self.levels:
            x = level(x)
            maps.append(x)
        return maps
