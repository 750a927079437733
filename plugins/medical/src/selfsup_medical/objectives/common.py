"""Pieces shared by the 3-D objectives: input checks, resizing, heads and volume masks.

Every objective receives what the arm's view maker made: a list of volume batches
``[B, C, D, H, W]`` (``medical:crops`` gives two), a single batch, or a dict with an
``"input"`` batch (and optionally a ``"mask"``). :func:`volumes_of` accepts all three.
Objectives that decode (restoration, inpainting, local contrast) need the encoder's
multi-scale ``feature_maps`` and its ``feature_channels`` / ``feature_strides``
attributes (:func:`require_feature_maps` names what is missing);
:class:`DecodingObjective` builds their decoder. ``MaskRatio``, ``MaskPatch`` and
``DecoderWidth`` are the parameter types they share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field
from selfsup.interfaces import Objective
from torch import Tensor, nn

from selfsup_medical.evaluators.decoder import UNETRDecoder

__all__ = [
    "DecoderWidth",
    "DecodingObjective",
    "MaskPatch",
    "MaskRatio",
    "Projector",
    "cube_mask",
    "fit_size",
    "minmax",
    "require_feature_maps",
    "resize",
    "rot90_batch",
    "volumes_of",
]


#: Fraction of cubes a masking objective hides (strictly between 0 and 1).
MaskRatio = Annotated[float, Field(gt=0, lt=1)]
#: Side of the masked cubes, in voxels.
MaskPatch = Annotated[int, Field(ge=1)]
#: Width of an objective's light UNETR-style decoder.
DecoderWidth = Annotated[int, Field(ge=2)]


def volumes_of(owner: str, views: Any) -> list[Tensor]:
    """The views as a list of ``[B, C, D, H, W]`` float batches.

    Args:
        owner: The objective's id, for messages.
        views: A tensor, a list/tuple of tensors, or a dict with an ``"input"`` tensor.

    Raises:
        TypeError: Something other than volume tensors.
        ValueError: A tensor that is not 5-D, or views of different batch sizes.
    """
    if isinstance(views, dict):
        if "input" not in views:
            raise TypeError(
                f"{owner}: a dict of views needs an 'input' volume batch, got keys {sorted(views)}"
            )
        views = [views["input"]]
    elif isinstance(views, Tensor):
        views = [views]
    if not isinstance(views, list | tuple) or not views:
        raise TypeError(
            f"{owner}: expected volume batches [B, C, D, H, W] (use views: medical:crops), "
            f"got {type(views).__name__}"
        )
    out = []
    for i, v in enumerate(views):
        if not isinstance(v, Tensor) or v.dim() != 5:
            shape = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise ValueError(
                f"{owner}: view {i} must be a volume batch [B, C, D, H, W], got {shape}; "
                "use a 3-D view maker such as medical:crops"
            )
        if v.shape[0] != views[0].shape[0]:
            raise ValueError(f"{owner}: views have different batch sizes")
        out.append(v if v.is_floating_point() else v.float())
    return out


def require_feature_maps(owner: str, encoder: nn.Module) -> tuple[list[int], list[int]]:
    """The encoder's ``(feature_channels, feature_strides)``, or a clear error.

    Raises:
        TypeError: The encoder does not declare multi-scale 3-D feature maps.
    """
    module = getattr(encoder, "module", encoder)  # DDP-wrapped
    channels = getattr(module, "feature_channels", None)
    strides = getattr(module, "feature_strides", None)
    if not channels or not strides or len(channels) != len(strides):
        raise TypeError(
            f"{owner}: encoder {type(module).__name__} declares no 3-D feature maps "
            "(feature_channels / feature_strides); this objective decodes them, so use "
            "medical:swin, medical:resnet3d, medical:unet-encoder or medical:vit3d"
        )
    return [int(c) for c in channels], [int(s) for s in strides]


def feature_maps_of(owner: str, out: Any, count: int) -> tuple[Tensor, ...]:
    """``out.feature_maps`` with ``count`` 5-D maps, or a clear error."""
    maps = getattr(out, "feature_maps", None)
    if maps is None or len(maps) != count or any(m.dim() != 5 for m in maps):
        raise ValueError(
            f"{owner}: the encoder returned no (or the wrong number of) 3-D feature maps; "
            f"expected {count} maps [B, C_i, D_i, H_i, W_i]"
        )
    return tuple(maps)


def fit_size(encoder: nn.Module, size: Sequence[int]) -> tuple[int, ...]:
    """The input size closest to ``size`` that ``encoder`` accepts.

    An encoder with a fixed ``img_size`` (a ViT's position embeddings) gets that size;
    otherwise each side is rounded up to the encoder's ``size_multiple``.
    """
    module = getattr(encoder, "module", encoder)
    fixed = getattr(module, "img_size", None)
    if fixed is not None:
        fixed = (fixed,) * 3 if isinstance(fixed, int) else tuple(int(s) for s in fixed)
        return fixed
    k = int(getattr(module, "size_multiple", 1) or 1)
    return tuple(max(k, -(-int(s) // k) * k) for s in size)


def resize(x: Tensor, size: Sequence[int]) -> Tensor:
    """Trilinear resize of ``[B, C, D, H, W]`` to ``size`` (no-op when it already fits)."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="trilinear", align_corners=False)


def minmax(x: Tensor, eps: float = 1e-6) -> tuple[Tensor, Tensor, Tensor]:
    """Per-volume min-max scaling to ``[0, 1]``: returns ``(scaled, low, span)``."""
    flat = x.flatten(1)
    low = flat.min(dim=1).values.view(-1, 1, 1, 1, 1)
    span = (flat.max(dim=1).values.view(-1, 1, 1, 1, 1) - low).clamp_min(eps)
    return (x - low) / span, low, span


def rot90_batch(x: Tensor, k: Tensor, dims: tuple[int, int] = (3, 4)) -> Tensor:
    """Rotate each volume ``x[i]`` by ``k[i] * 90`` degrees in the plane ``dims``.

    Sides in that plane must be equal (cubic crops) so that the batch keeps one shape.
    """
    if x.shape[dims[0]] != x.shape[dims[1]]:
        raise ValueError(
            f"rotation needs equal sides in the rotation plane, got shape {tuple(x.shape)}; "
            "use cubic crops"
        )
    out = x.clone()
    for r in range(1, 4):
        sel = k == r
        if bool(sel.any()):
            out[sel] = torch.rot90(x[sel], r, dims=dims)
    return out


def cube_mask(
    shape: Sequence[int], patch: int, ratio: float, device: torch.device, gen: Any = None
) -> Tensor:
    """A voxel mask ``[B, 1, D, H, W]`` (``True`` = hidden) of random ``patch``-sided cubes.

    Exactly ``round(ratio * N)`` of the ``N`` cubes of each volume are hidden (at least
    one, never all). Sides must be multiples of ``patch``.
    """
    b, _, d, h, w = (int(s) for s in shape)
    if d % patch or h % patch or w % patch:
        raise ValueError(
            f"mask patch {patch} must divide the volume sides {(d, h, w)}; change mask_patch"
        )
    gd, gh, gw = d // patch, h // patch, w // patch
    n = gd * gh * gw
    k = min(n - 1, max(1, round(ratio * n)))
    order = torch.rand(b, n, device=device, generator=gen).argsort(dim=1)
    grid = torch.zeros(b, n, dtype=torch.bool, device=device).scatter_(1, order[:, :k], True)
    grid = grid.view(b, 1, gd, gh, gw)
    return grid.repeat_interleave(patch, 2).repeat_interleave(patch, 3).repeat_interleave(patch, 4)


class Projector(nn.Sequential):
    """A two-layer MLP head (``Linear-LayerNorm-GELU-Linear``) on pooled embeddings."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden_dim),
            nn.LayerNorm(hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, out_dim),
        )


class DecodingObjective(Objective):
    """Base of the objectives that decode the encoder's feature maps (one output channel).

    The decoder is a :class:`UNETRDecoder` without input skip, built by :meth:`attach`
    (or on the first :meth:`decoder_for`) for the encoder's feature maps: all of them,
    or those at a stride of at least ``min_stride`` (:meth:`decoded_maps` picks them).

    Args:
        owner: The objective's id, for messages.
        decoder_width: Width of the decoder.
        min_stride: The finest feature map the decoder reads (input voxels per map
            voxel); 1 reads every map.
    """

    def __init__(self, owner: str, decoder_width: int, min_stride: int = 1) -> None:
        super().__init__()
        self.owner, self.decoder_width, self.min_stride = owner, decoder_width, int(min_stride)
        self.decoder: UNETRDecoder | None = None
        self.levels: list[int] = []
        self.num_maps = 0

    def decoder_device(self, encoder: nn.Module) -> torch.device:
        """Where the decoder goes: the encoder's device (subclasses may override)."""
        return next(encoder.parameters()).device

    def attach(self, encoder: nn.Module) -> None:
        """Build the decoder for the encoder's feature maps."""
        super().attach(encoder)
        channels, strides = require_feature_maps(self.owner, encoder)
        self.levels = [i for i, s in enumerate(strides) if s >= self.min_stride]
        if not self.levels:
            raise ValueError(
                f"{self.owner}: decoder_min_stride={self.min_stride} is coarser than every "
                f"feature map of the encoder (strides {strides}); use at most {max(strides)}"
            )
        self.num_maps = len(strides)
        self.decoder = UNETRDecoder(
            [channels[i] for i in self.levels],
            [strides[i] for i in self.levels],
            1,
            width=self.decoder_width,
            input_skip=False,
        ).to(self.decoder_device(encoder))

    def decoded_maps(self, out: Any) -> tuple[Tensor, ...]:
        """The encoder output's feature maps that the decoder reads (after :meth:`attach`)."""
        maps = feature_maps_of(self.owner, out, self.num_maps)
        return tuple(maps[i] for i in self.levels)

    def decoder_for(self, encoder: nn.Module) -> UNETRDecoder:
        """The decoder, built for ``encoder`` first when :meth:`attach` has not run."""
        if self.decoder is None:
            self.attach(encoder)
        assert self.decoder is not None
        return self.decoder
