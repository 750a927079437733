"""The SwinUNETR pretext tasks (Tang et al., CVPR 2022): rotation, inpainting, contrast.

Two views of each volume (the first two views the view maker gives, or two copies
of the only one) are each rotated by a random multiple of 90 degrees in the axial
plane and have a random ``mask_ratio`` of ``mask_patch``-sided cubes replaced by
uniform noise in the volume's intensity range (the cut-out of the paper). The
encoder sees the masked, rotated views and three heads learn from it:

* **rotation prediction**: a linear head on ``pooled`` classifies the rotation
  (4 classes, cross-entropy);
* **masked-volume inpainting**: a light decoder on the feature maps restores the
  rotated volume before masking (L1 over the whole volume, as in the paper);
* **contrastive coding**: a projector on ``pooled``, InfoNCE between the two views
  (other volumes of the batch are the negatives).

The loss is ``rot_weight * L_rot + recon_weight * L_rec + contrast_weight * L_con``
(the paper weighs the three equally).
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field
from selfsup.interfaces import BatchMeta, ObjectiveOutput
from selfsup.losses import info_nce_terms
from torch import Tensor, nn

from selfsup_medical.objectives.common import (
    DecoderWidth,
    DecodingObjective,
    MaskPatch,
    MaskRatio,
    Projector,
    cube_mask,
    feature_maps_of,
    rot90_batch,
    volumes_of,
)

__all__ = ["SwinPretext", "noise_fill"]

_ID = "medical:swin-pretext"


def noise_fill(x: Tensor, mask: Tensor) -> Tensor:
    """``x`` with the voxels under ``mask`` replaced by uniform noise in each volume's range."""
    flat = x.flatten(1)
    low = flat.min(1).values.view(-1, 1, 1, 1, 1)
    high = flat.max(1).values.view(-1, 1, 1, 1, 1)
    noise = low + (high - low) * torch.rand_like(x)
    return torch.where(mask, noise, x)


class SwinPretext(DecodingObjective):
    """Rotation prediction + masked-volume inpainting + contrastive coding.

    Args:
        embed_dim: The encoder's ``embed_dim`` (set by the engine).
        mask_ratio: Fraction of cubes cut out of each view.
        mask_patch: Side of the cut-out cubes, in voxels (must divide the crop sides).
        temperature: InfoNCE temperature.
        proj_dim: Contrastive projection width.
        hidden_dim: Projector hidden width.
        decoder_width: Width of the light inpainting decoder.
        rot_weight: Weight of the rotation loss.
        recon_weight: Weight of the inpainting loss.
        contrast_weight: Weight of the contrastive loss.
    """

    def __init__(
        self,
        embed_dim: int,
        mask_ratio: MaskRatio = 0.3,
        mask_patch: MaskPatch = 4,
        temperature: Annotated[float, Field(gt=0)] = 0.5,
        proj_dim: Annotated[int, Field(ge=8)] = 128,
        hidden_dim: Annotated[int, Field(ge=8)] = 256,
        decoder_width: DecoderWidth = 8,
        rot_weight: Annotated[float, Field(ge=0)] = 1.0,
        recon_weight: Annotated[float, Field(ge=0)] = 1.0,
        contrast_weight: Annotated[float, Field(ge=0)] = 1.0,
    ) -> None:
        super().__init__(_ID, decoder_width)
        self.mask_ratio, self.mask_patch, self.temperature = mask_ratio, mask_patch, temperature
        self.weights = (rot_weight, recon_weight, contrast_weight)
        self.rotation_head = nn.Linear(embed_dim, 4)
        self.projector = Projector(embed_dim, hidden_dim, proj_dim)

    def decoder_device(self, encoder: nn.Module) -> torch.device:
        """The inpainting decoder goes where the heads are."""
        return next(self.rotation_head.parameters()).device

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """The three pretext losses on two rotated, masked views."""
        decoder = self.decoder_for(encoder)
        vols = volumes_of(_ID, views)
        pair = vols[:2] if len(vols) >= 2 else [vols[0], vols[0]]
        b = pair[0].shape[0]
        targets, inputs, rots = [], [], []
        for v in pair:
            k = torch.randint(0, 4, (b,), device=v.device)
            rotated = rot90_batch(v, k)
            mask = cube_mask(rotated.shape, self.mask_patch, self.mask_ratio, v.device)
            targets.append(rotated)
            inputs.append(noise_fill(rotated, mask))
            rots.append(k)
        out = encoder(torch.cat(inputs))
        maps = feature_maps_of(_ID, out, len(decoder.proj))
        pooled = out.pooled.float()
        rot_loss = F.cross_entropy(self.rotation_head(pooled), torch.cat(rots))
        recon = decoder(maps, torch.cat(inputs))
        rec_loss = F.l1_loss(recon.float(), torch.cat(targets))
        z = self.projector(pooled)
        con_loss, con_acc = info_nce_terms(z[:b], z[b:], temperature=self.temperature)
        wr, wi, wc = self.weights
        loss = wr * rot_loss + wi * rec_loss + wc * con_loss
        rot_acc = (self.rotation_head(pooled).argmax(1) == torch.cat(rots)).float().mean()
        return ObjectiveOutput(
            loss=loss,
            metrics={
                "rot_loss": rot_loss.detach(),
                "recon_loss": rec_loss.detach(),
                "contrast_loss": con_loss.detach(),
                "rot_acc": rot_acc.detach(),
                "contrast_acc": torch.as_tensor(con_acc).detach().float(),
            },
        )
