"""VoCo: volume contrast by position prediction (Wu, Zhuang and Chen, CVPR 2024).

Each input volume is cut into a ``grid x grid x grid`` set of non-overlapping **base
crops** that tile it. ``num_random`` **random crops** of the same size are drawn at
random positions inside the tiled region; the label of a random crop is its overlap
proportion with each base crop (the proportions sum to 1; a random crop is one base
crop's size, so it never covers the whole volume). Base and random crops go through
the encoder and a projector; the similarity of a random crop to each base crop,
``max(cos, 0)``, predicts its overlap vector (the prediction loss of the paper,
``-log(1 - |label - similarity|)``), and the **base-crop regularisation** pushes the
base crops of different positions of the same volume apart (mean ``|cos|`` between
them), so that the bases act as distinct position classes.

Crops are resized to the nearest size the encoder accepts (``crop_size``), so the
objective works with every encoder that returns a pooled embedding.
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field
from selfsup.interfaces import BatchMeta, Objective, ObjectiveOutput
from torch import Tensor, nn

from selfsup_medical.objectives.common import Projector, fit_size, resize, volumes_of

__all__ = ["VoCo", "overlap_labels"]

_ID = "medical:voco"


def overlap_labels(starts: Tensor, size: tuple[int, int, int], grid: int) -> Tensor:
    """Overlap proportion of random crops with each base crop.

    Args:
        starts: ``[N, 3]`` corner of each random crop (inside the tiled region).
        size: The crop (= base crop) size ``(d, h, w)``.
        grid: Base crops per side.

    Returns:
        ``[N, grid**3]``: the fraction of each random crop's voxels that falls in each
        base crop (row-major over the grid); rows sum to 1.
    """
    per_axis = []
    for axis, side in enumerate(size):
        lo = starts[:, axis : axis + 1].float()  # [N, 1]
        base_lo = torch.arange(grid, device=starts.device).float()[None, :] * side
        inter = (torch.minimum(lo + side, base_lo + side) - torch.maximum(lo, base_lo)).clamp_min(0)
        per_axis.append(inter / side)  # [N, grid]
    a, b, c = per_axis
    return (a[:, :, None, None] * b[:, None, :, None] * c[:, None, None, :]).flatten(1)


class VoCo(Objective):
    """VoCo position prediction with base-crop regularisation.

    Args:
        embed_dim: The encoder's ``embed_dim`` (set by the engine).
        grid: Base crops per side (``grid**3`` base crops per volume; paper: 4 x 4 in
            the axial plane). At least 2.
        num_random: Random crops per volume.
        hidden_dim: Projector hidden width.
        proj_dim: Projection width.
        crop_size: Side the crops are resized to before the encoder; ``None`` uses
            the base-crop size rounded up to what the encoder accepts.
        reg_weight: Weight of the base-crop regularisation.
        detach_bases: Treat base crops as fixed position prototypes in the
            prediction loss (gradients reach them through the regulariser only).
    """

    def __init__(
        self,
        embed_dim: int,
        grid: Annotated[int, Field(ge=2, le=6)] = 2,
        num_random: Annotated[int, Field(ge=1, le=64)] = 4,
        hidden_dim: Annotated[int, Field(ge=8)] = 256,
        proj_dim: Annotated[int, Field(ge=8)] = 128,
        crop_size: Annotated[int, Field(ge=4)] | None = None,
        reg_weight: Annotated[float, Field(ge=0)] = 1.0,
        detach_bases: bool = True,
    ) -> None:
        super().__init__()
        self.grid, self.num_random, self.crop_size = grid, num_random, crop_size
        self.reg_weight, self.detach_bases = reg_weight, detach_bases
        self.projector = Projector(embed_dim, hidden_dim, proj_dim)

    def _crops(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, tuple[int, int, int]]:
        """Base crops ``[B*g^3, ...]``, random crops ``[B*n, ...]`` and their labels."""
        b, c = x.shape[:2]
        g = self.grid
        side = tuple(int(s) // g for s in x.shape[2:])
        if min(side) < 2:
            raise ValueError(
                f"{_ID}: volumes of size {tuple(x.shape[2:])} are too small for grid={g} "
                "(base crops need at least 2 voxels per side); use larger crops or a smaller grid"
            )
        d, h, w = side
        tiled = x[:, :, : g * d, : g * h, : g * w]
        bases = tiled.reshape(b, c, g, d, g, h, g, w).permute(0, 2, 4, 6, 1, 3, 5, 7)
        bases = bases.reshape(b * g**3, c, d, h, w)
        n = self.num_random
        high = torch.tensor([(g - 1) * s + 1 for s in side], device=x.device)
        starts = (torch.rand(b, n, 3, device=x.device) * high).long().clamp_max(high - 1)
        crops = []
        for i in range(b):
            for j in range(n):
                z, y, v = (int(t) for t in starts[i, j])
                crops.append(tiled[i, :, z : z + d, y : y + h, v : v + w])
        labels = overlap_labels(starts.view(b * n, 3), side, g).view(b, n, g**3)
        return bases, torch.stack(crops), labels, side

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """Position-prediction + regularisation loss on the first view's volumes."""
        x = volumes_of(_ID, views)[0]
        b = x.shape[0]
        bases, randoms, labels, side = self._crops(x)
        size = fit_size(encoder, (self.crop_size,) * 3 if self.crop_size else side)
        both = resize(torch.cat([bases, randoms]), size)
        z = F.normalize(self.projector(encoder(both).pooled.float()), dim=-1)
        k = self.grid**3
        zb = z[: b * k].view(b, k, -1)
        zr = z[b * k :].view(b, self.num_random, -1)
        target = zb.detach() if self.detach_bases else zb
        sim = torch.einsum("bnd,bkd->bnk", zr, target).clamp_min(0)
        pred = -torch.log((1 - (labels - sim).abs()).clamp_min(1e-6)).mean()
        base_sim = torch.einsum("bkd,bjd->bkj", zb, zb)
        off = ~torch.eye(k, dtype=torch.bool, device=x.device)
        reg = base_sim[:, off].abs().mean()
        loss = pred + self.reg_weight * reg
        hit = (sim.argmax(-1) == labels.argmax(-1)).float().mean()
        return ObjectiveOutput(
            loss=loss,
            metrics={"pred_loss": pred.detach(), "reg_loss": reg.detach(), "position_acc": hit},
        )
