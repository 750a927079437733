"""Models Genesis: learn by restoring deformed volumes (Zhou et al., MICCAI 2019 / MedIA 2021).

Each volume is scaled to ``[0, 1]`` and deformed by the paper's transformations, each
applied with its own probability:

* **non-linear intensity**: a random monotonic cubic Bezier curve remaps intensities
  (flipped half of the time);
* **local pixel shuffling**: the voxels inside ``shuffle_blocks`` small random blocks
  are permuted;
* **in-painting** (probability ``inpaint_rate`` of the painting step) fills a few
  random boxes with noise, otherwise **out-painting** fills everything with noise but
  a few random boxes.

The encoder sees the deformed volume (mapped back to its intensity range) and a
decoder on its feature maps restores the original (sigmoid output, mean squared
error against the ``[0, 1]`` volume, as in the paper).
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field
from selfsup.interfaces import BatchMeta, ObjectiveOutput
from torch import Tensor, nn

from selfsup_medical.objectives.common import (
    DecoderWidth,
    DecodingObjective,
    feature_maps_of,
    minmax,
    volumes_of,
)

__all__ = ["ModelsGenesis", "bezier_intensity", "local_shuffle", "paint"]

_ID = "medical:genesis"


def bezier_intensity(x: Tensor, gen: torch.Generator | None = None) -> Tensor:
    """Remap ``[0, 1]`` intensities of each volume through a random cubic Bezier curve.

    The curve runs from (0, 0) to (1, 1) through two random control points, which keeps
    it a function of ``t``; half of the volumes get the mirrored curve (intensities
    inverted), as in the paper.
    """
    b = x.shape[0]
    p = torch.rand(b, 4, device=x.device, generator=gen)  # (x1, y1, x2, y2)
    t = torch.linspace(0, 1, 256, device=x.device)[None, :]
    u = 1 - t

    def curve(a: Tensor, c: Tensor, start: float, end: float) -> Tensor:
        return u**3 * start + 3 * u**2 * t * a[:, None] + 3 * u * t**2 * c[:, None] + t**3 * end

    xs, ys = curve(p[:, 0], p[:, 2], 0.0, 1.0), curve(p[:, 1], p[:, 3], 0.0, 1.0)
    xs, order = xs.sort(dim=1)
    ys = ys.gather(1, order)
    flip = torch.rand(b, device=x.device, generator=gen) < 0.5
    ys = torch.where(flip[:, None], 1 - ys, ys)
    flat = x.flatten(1).clamp(0, 1).contiguous()
    idx = torch.searchsorted(xs.contiguous(), flat).clamp(1, xs.shape[1] - 1)
    x0, x1 = xs.gather(1, idx - 1), xs.gather(1, idx)
    y0, y1 = ys.gather(1, idx - 1), ys.gather(1, idx)
    w = ((flat - x0) / (x1 - x0).clamp_min(1e-6)).clamp(0, 1)
    return (y0 + w * (y1 - y0)).view_as(x)


def _box(shape: tuple[int, ...], low: float, high: float, gen: Any) -> tuple[slice, ...]:
    """A random box whose sides are ``low``-``high`` fractions of ``shape``."""
    out = []
    for s in shape:
        side = max(1, int(s * (low + (high - low) * float(torch.rand(1, generator=gen)))))
        start = int(torch.randint(0, s - side + 1, (1,), generator=gen))
        out.append(slice(start, start + side))
    return tuple(out)


def local_shuffle(x: Tensor, blocks: int, max_frac: float = 0.125, gen: Any = None) -> Tensor:
    """Permute the voxels inside ``blocks`` random small blocks of every volume."""
    out = x.clone()
    spatial = tuple(int(s) for s in x.shape[2:])
    for i in range(x.shape[0]):
        for _ in range(blocks):
            box = _box(spatial, 0.03, max_frac, gen)
            patch = out[i, :, box[0], box[1], box[2]]
            flat = patch.reshape(patch.shape[0], -1)
            perm = torch.randperm(flat.shape[1], generator=gen).to(x.device)
            out[i, :, box[0], box[1], box[2]] = flat[:, perm].view_as(patch)
    return out


def paint(x: Tensor, inpaint: bool, boxes: int = 5, gen: Any = None) -> Tensor:
    """In-painting (noise in a few boxes) or out-painting (noise outside a few boxes)."""
    spatial = tuple(int(s) for s in x.shape[2:])
    noise = torch.rand(x.shape, generator=gen).to(x.device)
    if inpaint:
        out = x.clone()
        for _ in range(boxes):
            box = _box(spatial, 1 / 6, 1 / 3, gen)
            out[:, :, box[0], box[1], box[2]] = noise[:, :, box[0], box[1], box[2]]
        return out
    out = noise
    for _ in range(boxes):
        box = _box(spatial, 3 / 7, 4 / 7, gen)
        out[:, :, box[0], box[1], box[2]] = x[:, :, box[0], box[1], box[2]]
    return out


class ModelsGenesis(DecodingObjective):
    """Restoration of non-linearly remapped, locally shuffled, in/out-painted volumes.

    Args:
        embed_dim: The encoder's ``embed_dim`` (set by the engine).
        nonlinear_rate: Probability of the Bezier intensity remap (paper: 0.9).
        shuffle_rate: Probability of local pixel shuffling (paper: 0.5).
        shuffle_blocks: Blocks shuffled per volume.
        paint_rate: Probability of in- or out-painting (paper: 0.9).
        inpaint_rate: Share of in-painting among painting (paper: 0.2).
        decoder_width: Width of the restoration decoder.
    """

    def __init__(
        self,
        embed_dim: int,
        nonlinear_rate: Annotated[float, Field(ge=0, le=1)] = 0.9,
        shuffle_rate: Annotated[float, Field(ge=0, le=1)] = 0.5,
        shuffle_blocks: Annotated[int, Field(ge=0)] = 20,
        paint_rate: Annotated[float, Field(ge=0, le=1)] = 0.9,
        inpaint_rate: Annotated[float, Field(ge=0, le=1)] = 0.2,
        decoder_width: DecoderWidth = 16,
    ) -> None:
        super().__init__(_ID, decoder_width)
        self.rates = (nonlinear_rate, shuffle_rate, paint_rate, inpaint_rate)
        self.shuffle_blocks = shuffle_blocks
        self.embed_dim = embed_dim

    def deform(self, x01: Tensor) -> Tensor:
        """Apply the Models Genesis transformations to ``[0, 1]`` volumes (a new tensor)."""
        nonlinear, shuffle, paint_rate, inpaint = self.rates
        out = x01.clone()
        b = x01.shape[0]
        for i in range(b):
            v = out[i : i + 1]
            if float(torch.rand(1)) < nonlinear:
                v = bezier_intensity(v)
            if self.shuffle_blocks and float(torch.rand(1)) < shuffle:
                v = local_shuffle(v, self.shuffle_blocks)
            if float(torch.rand(1)) < paint_rate:
                v = paint(v, inpaint=float(torch.rand(1)) < inpaint)
            out[i : i + 1] = v
        return out

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """Restore the first view's volumes from their deformed copies."""
        decoder = self.decoder_for(encoder)
        x = volumes_of(_ID, views)[0]
        with torch.no_grad():
            x01, low, span = minmax(x)
            deformed = self.deform(x01) * span + low
        out = encoder(deformed)
        maps = feature_maps_of(_ID, out, len(decoder.proj))
        restored = torch.sigmoid(decoder(maps, deformed).float())
        loss = F.mse_loss(restored, x01)
        return ObjectiveOutput(loss=loss, metrics={"restore_mse": loss.detach()})
