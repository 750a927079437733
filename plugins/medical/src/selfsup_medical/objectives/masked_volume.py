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

``sparse`` runs a convolutional encoder as SparK does (Tian et al., ICLR 2023; the
3-D MAE of Wald et al., CVPR 2025): hidden voxels are zero and stay zero through every
layer, norms take statistics over visible voxels (:mod:`.sparse`), and before the
decoder each hidden position of each feature map gets a learned mask token of that
map (SparK's densifying). The cubes must then align with the coarsest feature map
(``mask_patch`` a multiple of its stride, e.g. 8 for ``medical:unet-encoder`` with 4
levels); ``fill`` is unused.

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
    require_feature_maps,
    volumes_of,
)
from selfsup_medical.objectives.sparse import (
    check_sparse_encoder,
    check_sparse_mask,
    sparse_masking,
    visible_at,
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
        sparse: Emulate sparse convolution (SparK) in a convolutional encoder, with
            learned mask tokens before the decoder.
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
        sparse: bool = False,
    ) -> None:
        super().__init__(_ID, decoder_width, decoder_min_stride)
        self.mask_ratio, self.mask_patch, self.fill = mask_ratio, mask_patch, fill
        self.loss_kind, self.norm_target = loss, norm_target
        self.embed_dim, self.sparse = embed_dim, sparse
        self.mask_tokens = nn.ParameterList()

    def attach(self, encoder: nn.Module) -> None:
        """Build the decoder (and, with ``sparse``, check the encoder and make mask tokens)."""
        super().attach(encoder)
        if not self.sparse:
            return
        check_sparse_encoder(_ID, encoder, self.mask_patch)
        channels, _ = require_feature_maps(_ID, encoder)
        device = self.decoder_device(encoder)
        self.mask_tokens = nn.ParameterList(
            nn.Parameter(torch.zeros(1, channels[i], 1, 1, 1, device=device)) for i in self.levels
        )
        for token in self.mask_tokens:
            nn.init.trunc_normal_(token, std=0.02)

    def _densify(self, maps: tuple[Tensor, ...], visible: Tensor) -> tuple[Tensor, ...]:
        """Each map with its hidden voxels replaced by the map's mask token."""
        out = []
        for fmap, token in zip(maps, self.mask_tokens, strict=True):
            keep = visible_at(visible, tuple(fmap.shape[2:])).to(fmap.dtype)
            out.append(fmap * keep + token.to(fmap.dtype) * (1 - keep))
        return tuple(out)

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
        if self.sparse:
            if isinstance(views, dict) and views.get("mask") is not None:
                check_sparse_mask(_ID, encoder, mask)
            visible = (~mask).to(x.dtype)
            masked = x * visible
            with sparse_masking(encoder, visible):
                out = encoder(masked)
            maps = self._densify(self.decoded_maps(out), visible)
        else:
            filler = mean.expand_as(x) if self.fill == "mean" else torch.zeros_like(x)
            masked = torch.where(mask, filler, x)
            maps = self.decoded_maps(encoder(masked))
        pred = decoder(maps, masked).float()
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
