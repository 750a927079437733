"""Sparse convolution emulated on dense 3-D CNNs, for masked volume modelling (SparK).

A dense CNN fed a masked volume sees the hidden cubes as flat regions, and every
convolution smears visible voxels into them, so the mask pattern fades with depth and
the encoder trains on inputs unlike any it will fine-tune on (Tian et al., "Designing
BERT for Convolutional Networks: Sparse and Hierarchical Masked Modeling", ICLR 2023;
Wald et al., "Revisiting MAE pre-training for 3D medical image segmentation", CVPR
2025). SparK runs sparse convolutions on the visible voxels only. :func:`sparse_masking`
gets the same result from the dense layers: while it is active, every layer's output
is zeroed where the input was hidden, and instance and batch norms take their
statistics over visible voxels only. With nothing hidden the layers are untouched, so
fine-tuning runs the very network that was pretrained.

The mask must be made of cubes aligned with the encoder's coarsest feature map (cube
side a multiple of its largest stride), so that each map voxel is wholly visible or
wholly hidden; :func:`check_sparse_encoder` refuses other encoders and masks with an
error naming the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from selfsup_medical.objectives.common import require_feature_maps

__all__ = ["check_sparse_encoder", "check_sparse_mask", "sparse_masking", "visible_at"]

#: Leaf layers whose output is re-masked (zero in, zero out, or a window over voxels).
_MASKED = (nn.Conv3d, nn.MaxPool3d, nn.AvgPool3d)
#: Leaf layers that keep zeros at zero voxel by voxel, so need nothing.
_POINTWISE = (
    nn.ReLU, nn.PReLU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Dropout, nn.Dropout3d,
    nn.Identity,
)  # fmt: skip
_NORMS = (_InstanceNorm, _BatchNorm)


def check_sparse_encoder(owner: str, encoder: nn.Module, mask_patch: int) -> None:
    """Refuse an encoder or cube size the emulation cannot make exact.

    Args:
        owner: The objective's id, for messages.
        encoder: The encoder (DDP-wrapped or not).
        mask_patch: Side of the hidden cubes in voxels.

    Raises:
        TypeError: A layer that mixes voxels other than a convolution, pooling or norm
            (attention, a linear layer on tokens): sparse masking needs a CNN.
        ValueError: ``mask_patch`` is not a multiple of the encoder's coarsest stride.
    """
    module = getattr(encoder, "module", encoder)
    for name, layer in module.named_modules():
        if list(layer.children()):
            continue
        if not isinstance(layer, (*_MASKED, *_POINTWISE, *_NORMS)):
            raise TypeError(
                f"{owner}: sparse: true emulates sparse convolution on convolutional "
                f"encoders, but layer {name!r} of {type(module).__name__} is a "
                f"{type(layer).__name__}; use medical:unet-encoder or medical:resnet3d, "
                "or set sparse: false"
            )
    coarsest = max(require_feature_maps(owner, encoder)[1])
    if mask_patch % coarsest:
        raise ValueError(
            f"{owner}: sparse: true needs mask_patch to be a multiple of the encoder's "
            f"coarsest stride ({coarsest}) so each feature voxel is wholly hidden or "
            f"visible; got mask_patch={mask_patch}: use {coarsest} or a multiple"
        )


def check_sparse_mask(owner: str, encoder: nn.Module, mask: Tensor) -> None:
    """Refuse a voxel mask that splits cells of the encoder's coarsest feature map.

    ``mask`` is ``[B, 1, D, H, W]`` (``True`` = hidden), e.g. from a view maker.

    Raises:
        ValueError: Some cell of ``stride^3`` voxels is partly hidden.
    """
    stride = max(require_feature_maps(owner, encoder)[1])
    cells = mask.float()
    if any(side % stride for side in cells.shape[2:]) or not torch.equal(
        F.max_pool3d(cells, stride), -F.max_pool3d(-cells, stride)
    ):
        raise ValueError(
            f"{owner}: with sparse: true, views['mask'] must hide whole {stride}^3 cells "
            f"aligned with the encoder's coarsest feature map (stride {stride}); got a mask "
            f"of shape {tuple(mask.shape)} that splits some; make the view maker's cubes "
            "a multiple of that stride"
        )


def visible_at(visible: Tensor, size: tuple[int, ...]) -> Tensor:
    """The visible-voxel mask ``[B, 1, D, H, W]`` (float) at another grid ``size``."""
    if tuple(visible.shape[2:]) == tuple(size):
        return visible
    return F.interpolate(visible, size=tuple(size), mode="nearest")


def _masked_norm(layer: nn.Module, x: Tensor, keep: Tensor) -> Tensor:
    """Instance/batch norm of ``x`` with statistics over the voxels where ``keep`` is 1."""
    dtype, x = x.dtype, x.float()
    dims = (2, 3, 4) if isinstance(layer, _InstanceNorm) else (0, 2, 3, 4)
    keep = keep.float()
    count = keep.expand_as(x).sum(dim=dims, keepdim=True).clamp_min(1.0)
    mean = (x * keep).sum(dim=dims, keepdim=True) / count
    var = ((x - mean) ** 2 * keep).sum(dim=dims, keepdim=True) / count
    y = (x - mean) * torch.rsqrt(var + layer.eps)
    if getattr(layer, "affine", False) and layer.weight is not None:
        shape = (1, -1, 1, 1, 1)
        y = y * layer.weight.view(shape) + layer.bias.view(shape)
    return (y * keep).to(dtype)


@contextmanager
def sparse_masking(encoder: nn.Module, visible: Tensor) -> Iterator[None]:
    """Run ``encoder`` as if its convolutions were sparse over ``visible`` voxels.

    Args:
        encoder: A convolutional encoder (see :func:`check_sparse_encoder`).
        visible: ``[B, 1, D, H, W]`` mask of the input grid, 1 where a voxel is seen.

    Example:
        >>> with sparse_masking(encoder, (~mask).float()):  # doctest: +SKIP
        ...     out = encoder(x * (~mask))
    """
    module = getattr(encoder, "module", encoder)
    visible = visible.float()

    def remask(layer: nn.Module, args: tuple[Any, ...], out: Tensor) -> Tensor:
        if out.dim() != 5:
            return out
        keep = visible_at(visible, tuple(out.shape[2:])).to(out.dtype)
        if isinstance(layer, _NORMS) and (layer.training or isinstance(layer, _InstanceNorm)):
            return _masked_norm(layer, args[0], keep)
        return out * keep

    handles = [
        layer.register_forward_hook(remask)
        for layer in module.modules()
        if isinstance(layer, (*_MASKED, *_NORMS))
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
