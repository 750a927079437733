"""Masked volume modelling: hide random cubes, reconstruct them through a light decoder.

SimMIM-style for 3-D encoders that take whole volumes (the Swin encoder, CNNs, the
ViT): a random ``mask_ratio`` of the ``mask_patch``-sided cubes of each volume is
hidden (replaced by ``fill``, the volume's mean by default, so the encoder sees a
plausible intensity), the encoder runs on the masked volume, and a narrow
UNETR-style decoder on its feature maps (no input skip) predicts the voxels. The
loss is the L1 (or L2) error on the hidden voxels only, against the volume
normalised per volume (``norm_target``, as MAE's normalised-pixel target).

``decoder_min_stride`` keeps the decoder off the encoder's finest maps: a CNN's
full-resolution features see a few voxels around each one, which may be enough to
interpolate a small hidden cube from its visible border; reading only maps at the
cube's scale or coarser makes the reconstruction come from context, as MAE's decoder
reads only the encoder's deepest tokens. (On Colin27 it did not raise segmentation
Dice: ``benchmarks/results/medical_quality_mv_min_stride4.md``.)

A view maker may pass the mask itself as ``{"input": x, "mask": m}`` with ``m`` a
boolean voxel mask ``[B, 1, D, H, W]`` (``True`` = hidden); otherwise the mask is
drawn here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from selfsup.interfaces import BatchMeta, ObjectiveOutput
from torch import Tensor, nn

from selfsup_medical.objectives.common import (
    DecoderWidth,
    DecodingObjective,
    MaskPatch,
    MaskRatio,
    cube_mask,
    volumes_of,
)

__all__ = ["MaskedVolume"]

_ID = "medical:masked-volume"


class MaskedVolume(DecodingObjective):
    """Reconstruct randomly masked cubes of a volume from its visible rest.

    Args:
        embed_dim: The encoder's ``embed_dim`` (set by the engine).
        mask_ratio: Fraction of cubes hidden (SimMIM/MAE: 0.6-0.75).
        mask_patch: Side of the masked cubes in voxels (must divide the crop sides).
        fill: What replaces hidden voxels: the volume's ``mean`` or ``zero``.
        loss: ``l1`` or ``l2`` on hidden voxels.
        norm_target: Normalise the target per volume (zero mean, unit variance).
        decoder_width: Width of the light decoder.
        decoder_min_stride: The finest encoder feature map the decoder reads (1: all;
            e.g. ``mask_patch`` to decode from maps no finer than the hidden cubes).
    """

    def __init__(
        self,
        embed_dim: int,
        mask_ratio: MaskRatio = 0.6,
        mask_patch: MaskPatch = 4,
        fill: Literal["mean", "zero"] = "mean",
        loss: Literal["l1", "l2"] = "l1",
        norm_target: bool = True,
        decoder_width: DecoderWidth = 8,
        decoder_min_stride: Annotated[int, Field(ge=1)] = 1,
    ) -> None:
        super().__init__(_ID, decoder_width, decoder_min_stride)
        self.mask_ratio, self.mask_patch, self.fill = mask_ratio, mask_patch, fill
        self.loss_kind, self.norm_target = loss, norm_target
        self.embed_dim = embed_dim

    def _mask(self, views: Any, x: Tensor) -> Tensor:
        given = views.get("mask") if isinstance(views, dict) else None
        if given is None:
            return cube_mask(x.shape, self.mask_patch, self.mask_ratio, x.device)
        mask = torch.as_tensor(given, device=x.device).bool()
        if mask.dim() == 4:
            mask = mask[:, None]
        if mask.shape[0] != x.shape[0] or mask.shape[2:] != x.shape[2:]:
            raise ValueError(
                f"{_ID}: views['mask'] has shape {tuple(mask.shape)}; expected a voxel mask "
                f"[B, 1, D, H, W] matching the input {tuple(x.shape)}"
            )
        return mask

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """L1/L2 reconstruction loss on the hidden voxels of the first view."""
        decoder = self.decoder_for(encoder)
        x = volumes_of(_ID, views)[0]
        mask = self._mask(views, x)
        mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
        filler = mean.expand_as(x) if self.fill == "mean" else torch.zeros_like(x)
        masked = torch.where(mask, filler, x)
        out = encoder(masked)
        pred = decoder(self.decoded_maps(out), masked).float()
        target = x.float()
        if self.norm_target:
            std = target.std(dim=(1, 2, 3, 4), keepdim=True).clamp_min(1e-6)
            target = (target - mean) / std
        hidden = mask.expand_as(pred)
        if self.loss_kind == "l1":
            err = F.l1_loss(pred[hidden], target[hidden])
        else:
            err = F.mse_loss(pred[hidden], target[hidden])
        return ObjectiveOutput(
            loss=err, metrics={"recon_loss": err.detach(), "mask_ratio": mask.float().mean()}
        )
