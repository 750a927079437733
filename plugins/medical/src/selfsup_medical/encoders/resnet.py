"""MONAI's 3-D ResNet as a multi-scale selfsup encoder."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from torch import Tensor, nn

from selfsup_medical.encoders.base import VolumeEncoder

__all__ = ["ResNet3D"]

_LAYERS = {10: [1, 1, 1, 1], 18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3]}


class ResNet3D(VolumeEncoder):
    """``monai.networks.nets.ResNet`` (MedicalNet-style 3-D ResNet) without its head.

    Feature maps: the stem (stride 2) and the four stages (strides 4-32 with the
    max-pool, 2-16 without); ``pooled`` averages the last stage.

    Args:
        in_chans: Input channels.
        depth: 10, 18, 34 (basic blocks) or 50 (bottlenecks).
        width: Channels of the stem and first stage (64 in the paper; 16 runs on a CPU);
            the stages have ``width * (1, 2, 4, 8)`` (times 4 for depth 50).
        stem_kernel: Kernel of the stride-2 stem convolution.
        no_max_pool: Drop the stem's max-pool (strides halve, ``size_multiple`` 16).
        norm: MONAI norm name (``"batch"``, ``"instance"``, ``"group"``...).
    """

    def __init__(
        self,
        in_chans: int = 1,
        depth: Literal[10, 18, 34, 50] = 18,
        width: Annotated[int, Field(ge=1)] = 64,
        stem_kernel: Annotated[int, Field(ge=1)] = 7,
        no_max_pool: bool = False,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        from monai.networks.nets.resnet import ResNet

        if depth not in _LAYERS:
            raise ValueError(f"ResNet3D: depth={depth}; choose one of {sorted(_LAYERS)}")
        if width < 1:
            raise ValueError(f"ResNet3D: width={width} must be a positive int")
        block = "bottleneck" if depth == 50 else "basic"
        net = ResNet(
            block=block,
            layers=_LAYERS[depth],
            block_inplanes=[width, 2 * width, 4 * width, 8 * width],
            spatial_dims=3,
            n_input_channels=in_chans,
            conv1_t_size=stem_kernel,
            conv1_t_stride=2,
            no_max_pool=no_max_pool,
            feed_forward=False,
            norm=norm,
        )
        self.stem = nn.Sequential(net.conv1, net.bn1, net.act)
        self.pool = nn.Identity() if no_max_pool else net.maxpool
        self.stages = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        expansion = 4 if depth == 50 else 1
        self.in_chans = in_chans
        self.feature_channels = [width] + [width * m * expansion for m in (1, 2, 4, 8)]
        first = 2 if no_max_pool else 4
        self.feature_strides = [2] + [first * 2**i for i in range(4)]
        self.embed_dim = self.feature_channels[-1]
        self.size_multiple = self.feature_strides[-1]

    def features(self, x: Tensor) -> list[Tensor]:
        """The stem and the four stages, finest first."""
        x = self.stem(x)
        maps = [x]
        x = self.pool(x)
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps
