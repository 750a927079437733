"""3-D encoders on MONAI networks: pooled embeddings and multi-scale feature maps.

Every encoder subclasses :class:`~selfsup_medical.encoders.base.VolumeEncoder`:
input ``[B, in_chans, D, H, W]`` floats with sides a multiple of ``size_multiple``;
output :class:`~selfsup.interfaces.EncoderOutput` with ``pooled`` ``[B, embed_dim]``,
``feature_maps`` finest first (``feature_channels[i]`` channels at
``feature_strides[i]``) and ``tokens`` (the coarsest map's positions).
"""

from __future__ import annotations

from selfsup_medical.encoders.base import VolumeEncoder

__all__ = ["VolumeEncoder"]
