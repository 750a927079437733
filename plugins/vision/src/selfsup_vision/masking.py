"""Patch masks for masked image modelling, and the ``vision:mae-mask`` view maker.

A mask is a boolean tensor ``[B, N]`` over the ``N = (H / p) * (W / p)`` patches in
row-major order, ``True`` where a patch is hidden. Every generator hides exactly
``round(ratio * N)`` patches in every sample, so that the visible patches of a batch
stack into one tensor (what MAE's encoder needs).

Generators (``generator`` parameter of :class:`MAEMaskViews`):

* ``random``: a uniformly random subset (MAE).
* ``block``: BEiT-style block-wise masking: random rectangles of random area and
  aspect ratio until the ratio is reached.
* ``grid``: one visible patch per ``s x s`` cell at a random per-sample offset
  (``ratio = 1 - 1/s^2``, e.g. 0.75 for ``s = 2``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import torch
from pydantic import Field, PositiveInt
from torch import Tensor

from selfsup_vision import augment as A
from selfsup_vision.views import AreaFraction, images_of

if TYPE_CHECKING:
    from selfsup.interfaces import BatchMeta

__all__ = ["MAEMaskViews", "block_mask", "grid_mask", "make_exact", "random_mask"]


def _n_masked(n: int, ratio: float) -> int:
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"mask_ratio={ratio!r} must be in (0, 1)")
    return min(n - 1, max(1, round(ratio * n)))


def make_exact(mask: Tensor, n_masked: int) -> Tensor:
    """Adjust every row of ``mask`` to exactly ``n_masked`` hidden patches.

    Rows with too few hidden patches get random extra ones; rows with too many lose
    random ones. Patches already hidden are preferred, so the structure is kept.
    """
    score = mask.float() * 2.0 + torch.rand(mask.shape, device=mask.device)
    idx = score.topk(n_masked, dim=1).indices
    out = torch.zeros_like(mask)
    return out.scatter_(1, idx, True)


def random_mask(b: int, gh: int, gw: int, ratio: float, device: torch.device) -> Tensor:
    """Hide a uniformly random ``ratio`` of the patches of each sample (MAE)."""
    n = gh * gw
    k = _n_masked(n, ratio)
    order = torch.rand(b, n, device=device).argsort(dim=1)
    mask = torch.zeros(b, n, dtype=torch.bool, device=device)
    return mask.scatter_(1, order[:, :k], True)


def block_mask(
    b: int,
    gh: int,
    gw: int,
    ratio: float,
    device: torch.device,
    min_patches: int = 4,
    aspect: Sequence[float] = (0.3, 1 / 0.3),
    max_blocks: int = 32,
) -> Tensor:
    """BEiT-style block-wise masking, vectorised over the batch.

    Draws ``max_blocks`` random rectangles per sample (area between ``min_patches``
    and what is still to be masked, log-uniform aspect ratio), takes their running
    union until the target count is reached, then :func:`make_exact` trims or fills
    the last few patches.
    """
    n = gh * gw
    k = _n_masked(n, ratio)
    t = max_blocks
    max_area = max(float(min_patches), k / 4)
    area = torch.rand(b, t, device=device) * (max_area - min_patches) + min_patches
    log_a = torch.rand(b, t, device=device) * (math.log(aspect[1]) - math.log(aspect[0]))
    ar = torch.exp(log_a + math.log(aspect[0]))
    h = torch.sqrt(area * ar).round().clamp(1, gh).long()
    w = torch.sqrt(area / ar).round().clamp(1, gw).long()
    top = (torch.rand(b, t, device=device) * (gh - h + 1).float()).long()
    left = (torch.rand(b, t, device=device) * (gw - w + 1).float()).long()
    rows = torch.arange(gh, device=device).view(1, 1, gh, 1)
    cols = torch.arange(gw, device=device).view(1, 1, 1, gw)
    inside = (
        (rows >= top[..., None, None])
        & (rows < (top + h)[..., None, None])
        & (cols >= left[..., None, None])
        & (cols < (left + w)[..., None, None])
    ).view(b, t, n)  # [B, T, N]
    union = inside.int().cummax(dim=1).values.bool()  # running union over blocks
    counts = union.sum(-1)  # [B, T]
    reached = counts >= k
    first = torch.where(
        reached.any(1), reached.int().argmax(1), torch.full_like(counts[:, 0], t - 1)
    )
    chosen = union.gather(1, first.view(b, 1, 1).expand(-1, 1, n)).squeeze(1)
    return make_exact(chosen, k)


def grid_mask(b: int, gh: int, gw: int, ratio: float, device: torch.device) -> Tensor:
    """Keep one patch per ``s x s`` cell (random offset per sample), ``ratio = 1 - 1/s^2``.

    Raises:
        ValueError: ``ratio`` is not of the form ``1 - 1/s^2`` for an integer ``s >= 2``.
    """
    s = round(1.0 / math.sqrt(1.0 - ratio))
    if s < 2 or abs((1 - 1 / s**2) - ratio) > 1e-3:
        raise ValueError(
            f"grid masking needs mask_ratio = 1 - 1/s^2 (0.75, 0.889, 0.9375, ...), got {ratio}"
        )
    k = _n_masked(gh * gw, ratio)
    oy = torch.randint(0, s, (b, 1, 1), device=device)
    ox = torch.randint(0, s, (b, 1, 1), device=device)
    rows = torch.arange(gh, device=device).view(1, gh, 1)
    cols = torch.arange(gw, device=device).view(1, 1, gw)
    keep = ((rows + oy) % s == 0) & ((cols + ox) % s == 0)
    return make_exact(~keep.view(b, gh * gw), k)


GENERATORS: dict[str, Callable[..., Tensor]] = {
    "random": random_mask,
    "block": block_mask,
    "grid": grid_mask,
}


class MAEMaskViews:
    """Input and patch mask for MAE: returns ``{"input": x, "mask": m}``.

    ``x`` is the (optionally cropped and flipped) float image batch in ``[0, 1]`` and
    ``m`` a boolean ``[B, N]`` mask over its ``patch_size`` patches (``True`` = hidden),
    with exactly ``round(mask_ratio * N)`` hidden patches per sample.

    Args:
        patch_size: Patch size of the ViT that will read the mask.
        mask_ratio: Fraction of hidden patches (0.75 in MAE).
        generator: ``random``, ``block`` (BEiT-style) or ``grid``.
        size: Output size; ``None`` keeps the input size (must be a multiple of
            ``patch_size``).
        crop_scale: Random-resized-crop area range, or ``None`` for no crop.
        flip_p: Horizontal flip probability.

    Example:
        >>> v = MAEMaskViews(patch_size=4)(torch.rand(2, 1, 28, 28))
        >>> v["mask"].shape, int(v["mask"][0].sum())
        (torch.Size([2, 49]), 37)
    """

    def __init__(
        self,
        patch_size: PositiveInt = 4,
        mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.75,
        generator: Literal["random", "block", "grid"] = "random",
        size: PositiveInt | None = None,
        crop_scale: tuple[AreaFraction, AreaFraction] | None = (0.2, 1.0),
        flip_p: Annotated[float, Field(ge=0, le=1)] = 0.5,
    ) -> None:
        if generator not in GENERATORS:
            raise ValueError(
                f"generator={generator!r} is not a mask generator; choose one of "
                f"{', '.join(GENERATORS)}"
            )
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
            raise ValueError(f"patch_size={patch_size!r} must be a positive integer")
        _n_masked(4, mask_ratio)  # validates the ratio
        if generator == "grid":
            grid_mask(1, 4, 4, mask_ratio, torch.device("cpu"))  # validates the ratio
        self.patch_size = patch_size
        self.mask_ratio = float(mask_ratio)
        self.generator = generator
        self.size = size
        self.crop_scale = tuple(crop_scale) if crop_scale is not None else None
        self.flip_p = float(flip_p)

    def __call__(self, batch: Any, meta: BatchMeta | None = None) -> dict[str, Tensor]:
        """Crop/flip the images and draw one mask per sample (``meta`` unused)."""
        x = images_of(batch)
        if self.crop_scale is not None:
            x = A.random_resized_crop(x, self.size, self.crop_scale, flip_p=self.flip_p)
        elif self.size is not None:
            x = torch.nn.functional.interpolate(
                x, size=(self.size, self.size), mode="bilinear", antialias=True
            )
        h, w = x.shape[-2:]
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(
                f"images of {h}x{w} pixels do not split into {p}x{p} patches; set the "
                f"views' size to a multiple of {p} (or change patch_size)"
            )
        mask = GENERATORS[self.generator](x.shape[0], h // p, w // p, self.mask_ratio, x.device)
        return {"input": x, "mask": mask}
