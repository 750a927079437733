"""Volume datasets: Colin27 + AAL regions, and a user's folder of NIfTI/DICOM volumes.

Both return :class:`~selfsup.interfaces.DataSplits` of ``(image [1, d, h, w] float,
label [d, h, w] long)`` items of one crop shape (``label_shape``): seeded random
crops in ``train`` and a fixed grid of tiles in ``val``/``test``. The whole volumes
of each split are in ``meta["volumes"][split]`` (a dataset of ``(image [1, D, H, W],
label [D, H, W])``) for sliding-window inference, and the voxel-to-world matrices of
the evaluation volumes in ``meta["affines"][split]``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import Field
from selfsup.interfaces import DataSplits

from selfsup_medical.atlas import REGIONS, atlas_paths, label_names, region_lookup
from selfsup_medical.io import (
    VolumeFileError,
    cached,
    is_volume_path,
    preprocess,
    random_crop,
    volume_stem,
)
from selfsup_medical.patches import RandomCrops, Tiles, VolumePairs

__all__ = ["colin27_aal", "nifti_folder"]


def _roi(crop_size: int | Sequence[int]) -> tuple[int, int, int]:
    roi = (crop_size,) * 3 if isinstance(crop_size, int) else tuple(int(c) for c in crop_size)
    if len(roi) != 3 or min(roi) < 1:
        raise ValueError(f"crop_size={crop_size!r} must be a positive int or 3 positive ints")
    return roi  # type: ignore[return-value]


def colin27_aal(
    root: str | None = None,
    spacing: Annotated[float, Field(gt=0)] = 2.0,
    crop_size: int | Sequence[int] = 32,
    train_crops: Annotated[int, Field(ge=1)] = 128,
    sampler: Literal["classes", "uniform"] = "classes",
    image: Literal["ch2", "ch2bet"] = "ch2",
    seed: int = 0,
) -> DataSplits:
    """Colin27's T1 with the AAL atlas grouped into 7 regions (8 classes with background).

    The volume is reoriented to RAS, resampled to ``spacing`` mm and scaled to 0..1
    (0.5-99.5th percentiles), then cut at the mid-sagittal plane (world x = 0): the
    left hemisphere gives ``train`` (seeded random crops) and ``val`` (a fixed grid of
    tiles of the same voxels, for model selection only), the right hemisphere gives
    ``test`` (a fixed grid of tiles). Voxels with x = 0 belong to neither, so no test
    voxel is ever trained on. Each half is cropped to its foreground.

    Args:
        root: Folder of ``ch2.nii.gz``, ``aal.nii.gz`` and ``aal.nii.txt``; default
            Debian's ``/usr/share/mricron/templates`` (``SELFSUP_MRICRON`` overrides).
        spacing: Voxel size in mm (1 is the atlas's; 2 runs on a CPU).
        crop_size: Crop and tile shape (``label_shape``): an int or ``(d, h, w)``.
        train_crops: Number of training crops (item ``i`` is always the same crop).
        sampler: ``"classes"`` (crops centred on a voxel of a class drawn uniformly
            over the 8 classes) or ``"uniform"`` (any position).
        image: ``"ch2"`` (T1 with skull) or ``"ch2bet"`` (skull-stripped).
        seed: Seed of the training crops.

    Raises:
        FileNotFoundError: The Debian files are missing (the message says how to get them).
        ValueError: A bad parameter.
    """
    if image not in ("ch2", "ch2bet"):
        raise ValueError(f"colin27_aal: image={image!r}; choose 'ch2' or 'ch2bet'")
    if spacing <= 0:
        raise ValueError(f"colin27_aal: spacing={spacing} must be > 0 (mm)")
    roi = _roi(crop_size)
    paths = atlas_paths(root)
    lut = region_lookup(label_names(paths["names"]))
    from monai.transforms import EnsureTyped, MapLabelValued

    load = preprocess(["image", "label"], spacing=spacing, crop_foreground=False, keep_meta=True)
    item = load(
        {"image": str(paths["image"].parent / f"{image}.nii.gz"), "label": str(paths["label"])}
    )
    mapped = MapLabelValued(
        keys="label", orig_labels=list(range(len(lut))), target_labels=lut.tolist()
    )(item)
    volume, labels = mapped["image"], mapped["label"]
    affine = volume.affine
    x = affine[0, 0] * torch.arange(volume.shape[1], dtype=torch.float64) + affine[0, 3]
    left, right = (x < -1e-6).nonzero()[:, 0], (x > 1e-6).nonzero()[:, 0]
    halves = {
        name: _half(volume, labels, x, index) for name, index in (("left", left), ("right", right))
    }
    keep = EnsureTyped(keys=["image", "label"], track_meta=False)
    left_pairs = VolumePairs(cached([_tensors(halves["left"])], keep))
    right_pairs = VolumePairs(cached([_tensors(halves["right"])], keep))
    num_classes = len(REGIONS) + 1
    crop = random_crop(["image", "label"], roi, sampler=sampler, num_classes=num_classes)
    return DataSplits(
        train=RandomCrops(left_pairs, crop, train_crops, seed=seed),
        val=Tiles(left_pairs, roi),
        test=Tiles(right_pairs, roi),
        num_classes=num_classes,
        modality="volume",
        task="segmentation",
        label_shape=roi,
        meta={
            "class_names": ["background", *REGIONS],
            "spacing_mm": float(spacing),
            "volumes": {"train": left_pairs, "val": left_pairs, "test": right_pairs},
            "split_rule": (
                "train/val: left hemisphere (world x < 0), test: right hemisphere (x > 0); "
                "val tiles share voxels with train (model selection only)"
            ),
            "x_range_mm": {k: v["x_range_mm"] for k, v in halves.items()},
            "affines": {
                "train": [halves["left"]["affine"]],
                "val": [halves["left"]["affine"]],
                "test": [halves["right"]["affine"]],
            },
            "source": {k: str(v) for k, v in paths.items()},
        },
    )


def _half(volume: Any, labels: Any, x: torch.Tensor, index: torch.Tensor) -> dict[str, Any]:
    """One hemisphere's voxels, cropped to the foreground, with its voxel-to-world affine."""
    from monai.transforms.utils import generate_spatial_bounding_box

    lo, hi = int(index.min()), int(index.max()) + 1
    image = volume[:, lo:hi].as_tensor()
    start, end = generate_spatial_bounding_box(image)
    box = (slice(None), *(slice(int(a), int(b)) for a, b in zip(start, end, strict=True)))
    affine = np.asarray(volume.affine, dtype=np.float64).copy()
    affine[:3, 3] += affine[:3, :3] @ np.array(
        [lo + start[0], start[1], start[2]], dtype=np.float64
    )
    return {
        "image": image[box].clone(),
        "label": labels[:, lo:hi].as_tensor()[box].round().long().clone(),
        "affine": affine,
        "x_range_mm": (float(x[lo + start[0]]), float(x[lo + end[0] - 1])),
    }


def _tensors(half: dict[str, Any]) -> dict[str, Any]:
    return {"image": half["image"], "label": half["label"]}


def _find_volumes(root: Path, label_suffix: str | None) -> tuple[list[Path], dict[str, Path]]:
    images, labels = [], {}
    for entry in sorted(root.iterdir()):
        if not is_volume_path(entry):
            continue
        stem = volume_stem(entry)
        if label_suffix and stem.endswith(label_suffix) and stem != label_suffix:
            labels[stem[: -len(label_suffix)]] = entry
        else:
            images.append(entry)
    return images, labels


def nifti_folder(
    root: str,
    label_suffix: str | None = "_label",
    num_classes: int | None = None,
    spacing: float | Sequence[float] | None = None,
    intensity: Literal["percentiles", "window", "none"] = "percentiles",
    window: Sequence[float] = (0.5, 99.5),
    crop_size: int | Sequence[int] = 96,
    crops_per_volume: Annotated[int, Field(ge=1)] = 4,
    sampler: Literal["uniform", "classes"] = "uniform",
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1,
    test_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2,
    cache: Literal["memory", "disk", "none"] = "memory",
    cache_dir: str | None = None,
    seed: int = 0,
) -> DataSplits:
    """A folder of NIfTI volumes (``.nii``/``.nii.gz``) and DICOM-series subfolders.

    Label maps are found by name: ``<stem><label_suffix>.nii.gz`` beside image
    ``<stem>.nii.gz`` (or beside the DICOM folder ``<stem>/``). With no label file the
    data is unlabelled (task ``"none"``); with some, every image needs one. Volumes
    are split into train/val/test by file (seeded), preprocessed by
    :func:`~selfsup_medical.io.preprocess` and cached (``cache``).

    Args:
        root: The folder.
        label_suffix: Suffix of label maps' stems, or ``None`` to ignore labels.
        num_classes: Label classes; default ``max label + 1`` over the volumes.
        spacing: Resample to this voxel size (mm), or ``None``.
        intensity: ``"percentiles"`` (MRI), ``"window"`` (CT, ``window`` in HU) or ``"none"``.
        window: Percentiles or raw-unit window (see ``intensity``).
        crop_size: Crop/tile shape (``label_shape`` of labelled data).
        crops_per_volume: Training crops per training volume.
        sampler: ``"uniform"`` or ``"classes"`` (labelled data only).
        val_fraction: Share of volumes for validation.
        test_fraction: Share of volumes for test.
        cache: ``"memory"``, ``"disk"`` (needs ``cache_dir``) or ``"none"``.
        cache_dir: Folder of the disk cache.
        seed: Seed of the split and the crops.

    Raises:
        FileNotFoundError: ``root`` is missing or holds no volume.
        VolumeFileError: A missing label, or a broken/mis-shaped file (named).
        ValueError: Bad fractions or parameters.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise FileNotFoundError(f"nifti_folder: root={root!r} is not a folder")
    images, label_files = _find_volumes(folder, label_suffix)
    if not images:
        raise FileNotFoundError(
            f"nifti_folder: no NIfTI file (.nii, .nii.gz) or DICOM-series folder in {folder}"
        )
    labelled = bool(label_files)
    if labelled:
        missing = [str(p) for p in images if volume_stem(p) not in label_files]
        if missing:
            raise VolumeFileError(
                f"nifti_folder: no label map '<stem>{label_suffix}.nii.gz' for {missing}; "
                "label every volume, or set label_suffix=null to use the folder unlabelled"
            )
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"nifti_folder: val_fraction={val_fraction} and test_fraction={test_fraction} "
            "must be in [0, 1) with a sum below 1"
        )
    order = list(range(len(images)))
    random.Random(seed).shuffle(order)
    n_test = round(test_fraction * len(images))
    n_val = round(val_fraction * len(images))
    if len(images) - n_test - n_val < 1:
        raise ValueError(
            f"nifti_folder: {len(images)} volume(s) leave none for training with "
            f"val_fraction={val_fraction}, test_fraction={test_fraction}"
        )
    parts = {
        "test": order[:n_test],
        "val": order[n_test : n_test + n_val],
        "train": order[n_test + n_val :],
    }
    keys = ["image", "label"] if labelled else ["image"]
    transform = preprocess(
        keys, spacing=spacing, intensity=intensity, window=tuple(window), keep_meta=True
    )
    roi = _roi(crop_size)
    pairs: dict[str, VolumePairs | None] = {}
    for name, members in parts.items():
        items = [
            {
                "image": str(images[i]),
                **({"label": str(label_files[volume_stem(images[i])])} if labelled else {}),
            }
            for i in members
        ]
        sub_dir = None if cache_dir is None else str(Path(cache_dir) / name)
        pairs[name] = (
            VolumePairs(cached(items, transform, cache, sub_dir), labelled) if items else None
        )
    if labelled and num_classes is None:
        num_classes = 1 + max(
            int(p[i][1].max()) for p in pairs.values() if p is not None for i in range(len(p))
        )
    crop = random_crop(keys, roi, sampler=sampler, num_classes=num_classes or 0, seed=seed)
    train = RandomCrops(pairs["train"], crop, crops_per_volume * len(parts["train"]), seed)  # type: ignore[arg-type]
    return DataSplits(
        train=train,
        val=Tiles(pairs["val"], roi) if pairs["val"] is not None else None,
        test=Tiles(pairs["test"], roi) if pairs["test"] is not None else None,
        num_classes=int(num_classes or 0),
        modality="volume",
        task="segmentation" if labelled else "none",
        label_shape=roi if labelled else (),
        meta={
            "volumes": {k: v for k, v in pairs.items() if v is not None},
            "files": {k: [str(images[i]) for i in v] for k, v in parts.items()},
            "affines": {
                k: [np.asarray(v.base[i]["image"].affine, dtype=np.float64) for i in range(len(v))]
                for k, v in pairs.items()
                if v is not None and k != "train"  # evaluation volumes only: train may be huge
            },
        },
    )
