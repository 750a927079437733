"""``medical:colin27-patches``: Colin27 cubes classified by their dominant AAL region.

A classification view of :func:`~selfsup_medical.datasets.colin27_aal` for methods that
need one integer class per item (linear probes, ``security:poison`` and
``security:backdoor``). Each hemisphere of the 2 mm Colin27 T1 is cut into a fixed grid
of ``patch``-sided cubes (``stride`` apart, so neighbouring cubes overlap when
``stride < patch``); a cube is kept when labelled AAL grey matter covers at least
``min_foreground`` of it and is labelled with the region (of the 7 groups of
:data:`~selfsup_medical.atlas.REGIONS`) that covers most of it. Background-dominated
cubes are left out, so the task is "which region is this", as in
``medical:patch-probe``.

Splits: ``train`` = cubes of the left hemisphere (world x < 0) less a seeded stratified
``val_fraction`` of them (``val``, for model selection only: with overlapping cubes,
val shares voxels with train); ``test`` = cubes of the right hemisphere (x > 0), so no
test voxel is ever trained on. Items are ``(image [1, p, p, p] float in 0..1, class)``.

Example (needs Debian's ``mricron-data``)::

    data = colin27_patches(patch=16, stride=8)
    x, y = data.train[0]          # x: [1, 16, 16, 16], y: a region index 0..6
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from selfsup.evaluation import stratified_split
from selfsup.interfaces import DataSplits
from torch import Tensor
from torch.utils.data import TensorDataset

from selfsup_medical.atlas import REGIONS
from selfsup_medical.datasets import colin27_aal
from selfsup_medical.patches import tile_starts

__all__ = ["colin27_patches", "patches_of", "region_cubes"]

_ID = "medical:colin27-patches"


def region_cubes(
    image: Tensor, label: Tensor, patch: int, stride: int, min_foreground: float
) -> tuple[Tensor, Tensor, Tensor]:
    """The labelled cubes of one volume.

    Args:
        image: ``[C, D, H, W]``.
        label: ``[D, H, W]`` region classes (0 = background, 1..K regions).
        patch: Cube side in voxels.
        stride: Distance between cube starts (the last cube of an axis is moved back inside).
        min_foreground: Minimum fraction of the cube covered by a region (class > 0).

    Returns:
        ``cubes [M, C, p, p, p]``, ``classes [M]`` (region ``1..K`` minus one) and the
        cube starts ``[M, 3]`` (voxels) of the kept cubes.
    """
    shape = tuple(int(s) for s in image.shape[1:])
    if min(shape) < patch:
        raise ValueError(
            f"{_ID}: patch={patch} is larger than the hemisphere ({shape} voxels); lower patch"
        )
    axes = [sorted({*range(0, s - patch + 1, stride), *tile_starts(s, patch)}) for s in shape]
    cubes, classes, starts = [], [], []
    for a in axes[0]:
        for b in axes[1]:
            for c in axes[2]:
                lab = label[a : a + patch, b : b + patch, c : c + patch].reshape(-1)
                counts = torch.bincount(lab.clamp_min(0), minlength=len(REGIONS) + 1)[1:]
                if float(counts.sum()) < min_foreground * lab.numel():
                    continue
                cubes.append(image[:, a : a + patch, b : b + patch, c : c + patch])
                classes.append(int(counts.argmax()))
                starts.append((a, b, c))
    if not cubes:
        raise ValueError(
            f"{_ID}: no cube of side {patch} has a region cover >= min_foreground="
            f"{min_foreground}; lower min_foreground or patch"
        )
    return (
        torch.stack(cubes).float().contiguous(),
        torch.tensor(classes, dtype=torch.long),
        torch.tensor(starts, dtype=torch.long),
    )


def colin27_patches(
    root: str | None = None,
    spacing: Annotated[float, Field(gt=0)] = 2.0,
    patch: Annotated[int, Field(ge=4)] = 16,
    stride: Annotated[int, Field(ge=1)] = 8,
    min_foreground: Annotated[float, Field(gt=0, le=1)] = 0.3,
    val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2,
    image: Literal["ch2", "ch2bet"] = "ch2",
    seed: int = 0,
) -> DataSplits:
    """Colin27 cubes labelled by their dominant AAL region; left = train/val, right = test.

    Args:
        root: Folder of ``ch2.nii.gz``, ``aal.nii.gz``, ``aal.nii.txt``; default Debian's
            ``/usr/share/mricron/templates`` (``SELFSUP_MRICRON`` overrides).
        spacing: Voxel size in mm.
        patch: Cube side in voxels (a multiple of the encoder's ``size_multiple``).
        stride: Distance between cube starts (``patch``: no overlap).
        min_foreground: Minimum region cover of a kept cube.
        val_fraction: Stratified share of the left-hemisphere cubes held out as ``val``.
        image: ``"ch2"`` (T1 with skull) or ``"ch2bet"`` (skull-stripped).
        seed: Seed of the train/val split.

    Raises:
        FileNotFoundError: The Debian files are missing (the message says how to get them).
        ValueError: A bad parameter (named).
    """
    if patch < 4 or stride < 1:
        raise ValueError(f"{_ID}: patch={patch} must be >= 4 and stride={stride} >= 1")
    if not 0 < min_foreground <= 1:
        raise ValueError(f"{_ID}: min_foreground={min_foreground} must be in (0, 1]")
    if not 0 < val_fraction < 1:
        raise ValueError(f"{_ID}: val_fraction={val_fraction} must be in (0, 1)")
    base = colin27_aal(root=root, spacing=spacing, crop_size=patch, train_crops=1, image=image)
    return patches_of(base, patch, stride, min_foreground, val_fraction, seed)


def patches_of(
    base: DataSplits,
    patch: int = 16,
    stride: int = 8,
    min_foreground: float = 0.3,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> DataSplits:
    """The cubes of an already loaded ``medical:colin27-aal`` dataset (its whole hemispheres).

    Args:
        base: What :func:`~selfsup_medical.datasets.colin27_aal` returned.
        patch: Cube side in voxels.
        stride: Distance between cube starts.
        min_foreground: Minimum region cover of a kept cube.
        val_fraction: Stratified share of the left-hemisphere cubes held out as ``val``.
        seed: Seed of the train/val split.
    """
    volumes = base.meta["volumes"]
    spacing = base.meta["spacing_mm"]
    left_x, left_y, left_at = region_cubes(*volumes["train"][0], patch, stride, min_foreground)
    test_x, test_y, test_at = region_cubes(*volumes["test"][0], patch, stride, min_foreground)
    fit, val = stratified_split(left_y, val_fraction, seed)
    fit, val = fit.sort().values, val.sort().values
    return DataSplits(
        train=TensorDataset(left_x[fit], left_y[fit]),
        val=TensorDataset(left_x[val], left_y[val]),
        test=TensorDataset(test_x, test_y),
        num_classes=len(REGIONS),
        modality="volume",
        task="classification",
        meta={
            "class_names": list(REGIONS),
            "spacing_mm": float(spacing),
            "patch": patch,
            "stride": stride,
            "cube_starts": {"train": left_at[fit], "val": left_at[val], "test": test_at},
            "split_rule": (
                "train/val: cubes of the left hemisphere (world x < 0), val a seeded stratified "
                f"{val_fraction} of them (overlapping cubes: model selection only); test: "
                "cubes of the right hemisphere (x > 0)"
            ),
            "affines": base.meta["affines"],
            "source": base.meta["source"],
        },
    )
