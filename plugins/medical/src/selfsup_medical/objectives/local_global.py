"""Global + local contrastive learning for segmentation with limited labels.

After Chaitanya et al. (NeurIPS 2020). Two spatially aligned views of each volume are
made by intensity transformations only (random gamma, contrast, brightness, noise),
so that a position means the same anatomy in both views:

* the **global** loss is InfoNCE on projected ``pooled`` embeddings: the two views of
  a volume are positives, the other volumes of the batch negatives (the paper's
  random strategy, G^R);
* the **local** loss is InfoNCE on region embeddings of a feature map (level
  ``local_level``, finest first): the map is average-pooled into ``local_grid`` cubed
  regions and projected by a 1x1x1 convolution; the same region in the other view is
  the positive, every other region of the batch in either view a negative. The
  paper's local loss acts on decoder features; here only the encoder transfers, so
  it acts on an encoder scale that keeps spatial detail.

The loss is ``global + local_weight * local``. The arm's view maker only supplies the
volumes (its first view); the aligned views are made here.
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field
from selfsup.interfaces import BatchMeta, Objective, ObjectiveOutput
from selfsup.losses import info_nce_terms
from torch import Tensor, nn

from selfsup_medical.objectives.common import (
    Projector,
    feature_maps_of,
    minmax,
    require_feature_maps,
    volumes_of,
)

__all__ = ["LocalGlobalContrast", "intensity_view"]

_ID = "medical:local-global"


def intensity_view(x: Tensor, strength: float = 1.0) -> Tensor:
    """A spatially unchanged view: random gamma, contrast, brightness and noise per volume."""
    b = x.shape[0]
    shape = (b, 1, 1, 1, 1)
    x01, low, span = minmax(x)
    gamma = torch.exp((torch.rand(shape, device=x.device) * 2 - 1) * 0.4 * strength)
    out = x01.clamp_min(0) ** gamma
    scale = 1 + (torch.rand(shape, device=x.device) * 2 - 1) * 0.2 * strength
    shift = (torch.rand(shape, device=x.device) * 2 - 1) * 0.1 * strength
    out = out * scale + shift + 0.03 * strength * torch.randn_like(out)
    return out * span + low


class LocalGlobalContrast(Objective):
    """Global (pooled) and local (feature-map region) InfoNCE on aligned intensity views.

    Args:
        embed_dim: The encoder's ``embed_dim`` (set by the engine).
        temperature: InfoNCE temperature (paper: 0.1).
        local_weight: Weight of the local loss.
        local_level: Feature map for the local loss (0 = finest); negative values
            count from the coarsest (-1).
        local_grid: Regions per side of the local loss.
        proj_dim: Projection width (global and local).
        hidden_dim: Global projector hidden width.
        strength: Strength of the intensity transformations.
    """

    def __init__(
        self,
        embed_dim: int,
        temperature: Annotated[float, Field(gt=0)] = 0.1,
        local_weight: Annotated[float, Field(ge=0)] = 1.0,
        local_level: int = 1,
        local_grid: Annotated[int, Field(ge=1, le=8)] = 3,
        proj_dim: Annotated[int, Field(ge=8)] = 128,
        hidden_dim: Annotated[int, Field(ge=8)] = 256,
        strength: Annotated[float, Field(gt=0, le=2)] = 1.0,
    ) -> None:
        super().__init__()
        self.temperature, self.local_weight = temperature, local_weight
        self.local_level, self.local_grid, self.strength = local_level, local_grid, strength
        self.proj_dim = proj_dim
        self.projector = Projector(embed_dim, hidden_dim, proj_dim)
        self.local_head: nn.Module | None = None

    def attach(self, encoder: nn.Module) -> None:
        """Build the local projection for the chosen feature map's channels."""
        super().attach(encoder)
        channels, _ = require_feature_maps(_ID, encoder)
        if not -len(channels) <= self.local_level < len(channels):
            raise ValueError(
                f"{_ID}: local_level={self.local_level} is out of range for an encoder "
                f"with {len(channels)} feature maps; choose 0..{len(channels) - 1}"
            )
        c = channels[self.local_level]
        device = next(self.projector.parameters()).device
        self.local_head = nn.Sequential(
            nn.Conv3d(c, c, 1), nn.GELU(), nn.Conv3d(c, self.proj_dim, 1)
        ).to(device)
        self.n_maps = len(channels)

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """Global + local InfoNCE between two intensity views of the first view's volumes."""
        if self.local_head is None:
            self.attach(encoder)
        assert self.local_head is not None
        x = volumes_of(_ID, views)[0]
        b = x.shape[0]
        with torch.no_grad():
            pair = torch.cat([intensity_view(x, self.strength), intensity_view(x, self.strength)])
        out = encoder(pair)
        z = self.projector(out.pooled.float())
        glob, glob_acc = info_nce_terms(z[:b], z[b:], temperature=self.temperature)
        fmap = feature_maps_of(_ID, out, self.n_maps)[self.local_level].float()
        grid = [min(self.local_grid, int(s)) for s in fmap.shape[2:]]
        regions = self.local_head(F.adaptive_avg_pool3d(fmap, grid))  # [2B, P, g, g, g]
        regions = regions.flatten(2).transpose(1, 2)  # [2B, R, P]
        r1, r2 = regions[:b].reshape(-1, self.proj_dim), regions[b:].reshape(-1, self.proj_dim)
        local, local_acc = info_nce_terms(r1, r2, temperature=self.temperature)
        loss = glob + self.local_weight * local
        return ObjectiveOutput(
            loss=loss,
            metrics={
                "global_loss": glob.detach(),
                "local_loss": local.detach(),
                "global_acc": torch.as_tensor(glob_acc).float(),
                "local_acc": torch.as_tensor(local_acc).float(),
            },
        )
