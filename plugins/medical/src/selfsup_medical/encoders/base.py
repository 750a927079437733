"""The interface of the plugin's 3-D encoders (:class:`VolumeEncoder`).

Decoders and objectives rely only on these attributes:

* ``in_chans``: input channels (1 for a CT/MRI intensity volume).
* ``embed_dim``: width of ``pooled`` and of ``tokens``.
* ``feature_channels`` / ``feature_strides``: channels and stride (input voxels per
  map voxel, per side) of each feature map, finest first.
* ``size_multiple``: every input side must be a multiple of it.
"""

from __future__ import annotations

from selfsup.interfaces import Encoder, EncoderOutput
from torch import Tensor

__all__ = ["VolumeEncoder", "check_volume"]


def check_volume(x: Tensor, in_chans: int, size_multiple: int, name: str) -> Tensor:
    """Validate a volume batch and return it as floats.

    Args:
        x: ``[B, C, D, H, W]`` (a single ``[C, D, H, W]`` volume is rejected: batch it).
        in_chans: The channels the encoder expects.
        size_multiple: Every spatial side must be a multiple of it.
        name: The encoder's name for messages.

    Raises:
        TypeError: ``x`` is not a tensor.
        ValueError: Wrong rank, channels or spatial size.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a tensor [B, C, D, H, W], got {type(x).__name__}")
    if x.dim() != 5:
        raise ValueError(
            f"{name}: expected a 5-D batch [B, C, D, H, W], got shape {tuple(x.shape)}; "
            "add the batch (and channel) dimension"
        )
    if x.shape[1] != in_chans:
        raise ValueError(
            f"{name}: expected {in_chans} input channel(s), got {x.shape[1]} "
            f"(shape {tuple(x.shape)}); set in_chans={x.shape[1]}"
        )
    bad = [int(s) for s in x.shape[2:] if s % size_multiple]
    if bad:
        raise ValueError(
            f"{name}: spatial size {tuple(int(s) for s in x.shape[2:])} must be a multiple "
            f"of {size_multiple} on every side; crop or pad the volume (e.g. "
            f"monai.transforms.DivisiblePadd(k={size_multiple}))"
        )
    return x if x.is_floating_point() else x.float()


class VolumeEncoder(Encoder):
    """Base class: subclasses implement :meth:`features` (maps finest first).

    The default :meth:`forward` validates the input, takes the feature maps, pools
    the coarsest one (global average) into ``pooled`` and flattens it into
    ``tokens``; the coarsest map therefore has ``embed_dim`` channels.

    Attributes:
        in_chans: Input channels.
        embed_dim: Width of ``pooled`` (the coarsest map's channels).
        feature_channels: Channels of each feature map, finest first.
        feature_strides: Stride of each feature map, finest first.
        size_multiple: Input sides must be multiples of it.
    """

    modality = "volume"
    in_chans: int
    feature_channels: list[int]
    feature_strides: list[int]
    size_multiple: int

    def features(self, x: Tensor) -> list[Tensor]:  # pragma: no cover - abstract
        """The multi-scale feature maps of a validated batch, finest first."""
        raise NotImplementedError

    def check_input(self, x: Tensor) -> Tensor:
        """Validate ``x`` (see :func:`check_volume`) and return it as floats."""
        return check_volume(x, self.in_chans, self.size_multiple, type(self).__name__)

    def forward(self, x: Tensor) -> EncoderOutput:
        """Encode ``[B, in_chans, D, H, W]`` into pooled, tokens and feature maps."""
        maps = self.features(self.check_input(x))
        last = maps[-1]
        tokens = last.flatten(2).transpose(1, 2)
        return EncoderOutput(
            pooled=last.mean(dim=(2, 3, 4)), tokens=tokens, feature_maps=tuple(maps)
        )

    def extra_repr(self) -> str:
        """The interface attributes, shown in ``repr``."""
        return (
            f"in_chans={self.in_chans}, embed_dim={self.embed_dim}, "
            f"feature_channels={self.feature_channels}, feature_strides={self.feature_strides}, "
            f"size_multiple={self.size_multiple}"
        )
