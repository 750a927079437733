"""Reading volumes: NIfTI files and DICOM-series folders through MONAI's dictionary transforms.

* :class:`LoadVolumed`: a dictionary transform on MONAI's ``LoadImage`` (nibabel for
  NIfTI, pydicom for a DICOM-series folder), channel first, with clear errors naming the
  file for a missing, broken, truncated or mis-shaped file (or a DICOM slice the reader
  would skip), and for a label map on another grid.
* :func:`preprocess`: orientation, spacing, intensity scaling (a fixed window, e.g.
  CT Hounsfield units, or percentiles for MRI) and foreground crop.
* :func:`random_crop`: random crops by position or balanced over label classes.
* :func:`cached`: MONAI's ``CacheDataset`` (memory) or ``PersistentDataset`` (disk) so
  that large collections are not decoded every epoch.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import MapTransform
from torch import Tensor

__all__ = [
    "NIFTI_SUFFIXES",
    "LoadVolumed",
    "VolumeFileError",
    "cached",
    "is_dicom_series",
    "is_volume_path",
    "load_volume",
    "preprocess",
    "random_crop",
    "volume_errors",
    "volume_stem",
]

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_GRID_ATOL = 1e-3
_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


class VolumeFileError(ValueError):
    """A volume or label file that cannot be used; the message names the file and the fix."""


def volume_stem(path: str | Path) -> str:
    """The name of a NIfTI file without ``.nii``/``.nii.gz`` (a folder's name for DICOM)."""
    name = Path(path).name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_dicom_series(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding ``.dcm`` files (one DICOM series)."""
    path = Path(path)
    return path.is_dir() and any(p.suffix.lower() == ".dcm" for p in path.iterdir())


def is_volume_path(path: str | Path) -> bool:
    """Whether ``path`` is a NIfTI file or a DICOM-series folder."""
    path = Path(path)
    return (path.is_file() and path.name.endswith(NIFTI_SUFFIXES)) or is_dicom_series(path)


def _reader(path: Path) -> str:
    if path.is_dir():
        if not is_dicom_series(path):
            raise VolumeFileError(
                f"{path}: a folder without .dcm files; give a NIfTI file (.nii/.nii.gz) or "
                "a folder holding one DICOM series"
            )
        return "PydicomReader"
    if path.name.endswith(NIFTI_SUFFIXES):
        return "NibabelReader"
    if path.suffix.lower() == ".dcm":
        raise VolumeFileError(
            f"{path}: a single DICOM file is one slice; give the folder holding the whole "
            "series (all its .dcm files)"
        )
    raise VolumeFileError(
        f"{path}: unknown volume format; use NIfTI (.nii, .nii.gz) or a DICOM-series folder"
    )


def load_volume(path: str | Path) -> Tensor:
    """Load one volume channel first, as MONAI's ``LoadImage`` does (a ``MetaTensor``).

    Args:
        path: A NIfTI file or a DICOM-series folder.

    Returns:
        ``[C, D, H, W]`` float32 with its affine in ``.affine`` (``C`` is 1, or the
        frames of a 4-D NIfTI file).

    Raises:
        VolumeFileError: Missing, unreadable, truncated or not 3-D; the message names
            the file.
    """
    from monai.transforms import LoadImage

    path = Path(path)
    if not path.exists():
        raise VolumeFileError(f"{path}: no such file or folder")
    reader = _reader(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = LoadImage(reader=reader, ensure_channel_first=True, dtype=np.float32)(str(path))
    except Exception as exc:
        raise VolumeFileError(
            f"{path}: cannot be read as a volume ({type(exc).__name__}: {exc}); the file may "
            "be truncated or not a NIfTI/DICOM file"
        ) from exc
    skipped = [str(w.message) for w in caught if "skip it" in str(w.message)]
    if skipped:
        raise VolumeFileError(
            f"{path}: the DICOM reader skipped {len(skipped)} slice(s) of the series "
            f"(broken or truncated files): {'; '.join(skipped)}; remove or repair them"
        )
    if image.dim() != 4:
        raise VolumeFileError(
            f"{path}: has shape {tuple(image.shape[1:])} (channel first: "
            f"{tuple(image.shape)}); a 3-D volume is needed (a single 2-D slice or a "
            "one-slice series is not one)"
        )
    if min(image.shape[1:]) < 2:
        raise VolumeFileError(
            f"{path}: has spatial shape {tuple(image.shape[1:])}; every side needs at least "
            "2 voxels (a 2-D image stored as 3-D?)"
        )
    if not torch.isfinite(image).all():
        raise VolumeFileError(f"{path}: holds NaN or infinite values")
    return image


class LoadVolumed(MapTransform):
    """MONAI dictionary transform (cacheable by ``CacheDataset``): load ``keys`` as volumes.

    The first key is the image; any other key (``"label"``) must be a single-channel
    map on the image's grid (same shape and affine), else :class:`VolumeFileError`
    names both files. Label maps must hold integers.

    Args:
        keys: Dictionary keys holding paths, the image first.
        allow_missing_keys: Skip keys absent from the dictionary.
    """

    def __init__(self, keys: Sequence[str] | str, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.keys = [keys] if isinstance(keys, str) else list(keys)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Load every key of ``data`` and check the labels' grids."""
        out = dict(data)
        image_key = self.keys[0]
        for key in self.keys:
            if key not in out:
                if self.allow_missing_keys:
                    continue
                raise KeyError(f"LoadVolumed: the item has no {key!r} entry: {sorted(out)}")
            out[key] = load_volume(out[key])
        for key in self.keys[1:]:
            if key in out:
                check_label(out[image_key], out[key], str(data[image_key]), str(data[key]))
        return out


def check_label(image: Tensor, label: Tensor, image_path: str, label_path: str) -> None:
    """Raise :class:`VolumeFileError` unless ``label`` is an integer map on ``image``'s grid."""
    if label.shape[0] != 1:
        raise VolumeFileError(
            f"{label_path}: a label map needs one channel, it has {label.shape[0]}"
        )
    if tuple(label.shape[1:]) != tuple(image.shape[1:]):
        raise VolumeFileError(
            f"{label_path}: label map of shape {tuple(label.shape[1:])} is on another grid "
            f"than its image {image_path} {tuple(image.shape[1:])}; resample it onto the "
            "image (e.g. monai.transforms.ResampleToMatchd with mode='nearest')"
        )
    a = getattr(image, "affine", None)
    b = getattr(label, "affine", None)
    if (
        a is not None
        and b is not None
        and not torch.allclose(a.double(), b.double(), atol=_GRID_ATOL)
    ):
        raise VolumeFileError(
            f"{label_path}: label map has another affine (voxel-to-world) than its image "
            f"{image_path}; resample it onto the image (monai.transforms.ResampleToMatchd "
            "with mode='nearest')"
        )
    if not torch.equal(label, label.round()):
        raise VolumeFileError(
            f"{label_path}: a label map must hold integer classes, it holds fractions"
        )


def preprocess(
    keys: Sequence[str],
    spacing: float | Sequence[float] | None = None,
    intensity: str = "percentiles",
    window: tuple[float, float] = (0.5, 99.5),
    orientation: str | None = "RAS",
    crop_foreground: bool = True,
    foreground_margin: int = 0,
    load: bool = True,
    keep_meta: bool = False,
) -> Callable[[Mapping[Hashable, Any]], dict[Hashable, Any]]:
    """The deterministic part of a volume pipeline (what a cache stores), as a MONAI Compose.

    Args:
        keys: The image key, then label keys (resampled with nearest neighbours).
        spacing: Target voxel size in mm (``2.0`` halves a 1 mm volume); ``None`` keeps it.
        intensity: ``"percentiles"`` (MRI: ``window`` are lower/upper percentiles mapped
            to 0..1), ``"window"`` (CT: ``window`` in raw units, e.g. (-1000, 1000) HU,
            mapped to 0..1 and clipped) or ``"none"``.
        window: See ``intensity``.
        orientation: Axis codes to reorient to, or ``None``.
        crop_foreground: Crop to the image's non-zero bounding box (after scaling).
        foreground_margin: Voxels kept around the foreground box.
        load: Start with :class:`LoadVolumed` (``False`` when the items are tensors).
        keep_meta: Keep MONAI's ``MetaTensor`` (with the affine) in the output.

    Raises:
        ValueError: Unknown ``intensity`` or a bad ``window``.
    """
    from monai.transforms import (
        Compose,
        CropForegroundd,
        EnsureTyped,
        Orientationd,
        ScaleIntensityRanged,
        ScaleIntensityRangePercentilesd,
        Spacingd,
    )

    keys = list(keys)
    image, labels = keys[0], keys[1:]
    modes = ["bilinear"] + ["nearest"] * len(labels)
    low, high = (float(v) for v in window)
    if not low < high:
        raise ValueError(f"preprocess: window={tuple(window)} needs low < high")
    steps: list[Any] = [LoadVolumed(keys)] if load else []
    if orientation:
        steps.append(Orientationd(keys=keys, axcodes=orientation, labels=_RAS_LABELS))
    if spacing is not None:
        pixdim = (float(spacing),) * 3 if isinstance(spacing, int | float) else tuple(spacing)
        steps.append(Spacingd(keys=keys, pixdim=pixdim, mode=modes))
    if intensity == "percentiles":
        if not 0 <= low < high <= 100:
            raise ValueError(f"preprocess: percentiles window={tuple(window)} must be in 0..100")
        steps.append(
            ScaleIntensityRangePercentilesd(
                keys=image, lower=low, upper=high, b_min=0.0, b_max=1.0, clip=True
            )
        )
    elif intensity == "window":
        steps.append(
            ScaleIntensityRanged(keys=image, a_min=low, a_max=high, b_min=0.0, b_max=1.0, clip=True)
        )
    elif intensity != "none":
        raise ValueError(
            f"preprocess: intensity={intensity!r}; choose 'percentiles', 'window' or 'none'"
        )
    if crop_foreground:
        steps.append(
            CropForegroundd(
                keys=keys, source_key=image, margin=foreground_margin, allow_smaller=True
            )
        )
    steps.append(EnsureTyped(keys=keys, track_meta=keep_meta))
    return Compose(steps)


def random_crop(
    keys: Sequence[str],
    roi: Sequence[int],
    sampler: str = "uniform",
    num_classes: int = 0,
    ratios: Sequence[float] | None = None,
    seed: int = 0,
) -> Callable[[Mapping[Hashable, Any]], Any]:
    """A random crop of ``roi`` voxels (padded first when the volume is smaller).

    Args:
        keys: Image key, then label keys.
        roi: Crop shape ``(d, h, w)``.
        sampler: ``"uniform"`` (``RandSpatialCropd``: any position) or ``"classes"``
            (``RandCropByLabelClassesd``: centred on a voxel of a class drawn by
            ``ratios``, equal by default; needs a label key).
        num_classes: Classes of the label map (``"classes"`` only).
        ratios: Per-class sampling weights (``"classes"`` only).
        seed: Seed of the crops' random state.

    Raises:
        ValueError: Unknown sampler, or ``"classes"`` without a label key.
    """
    from monai.transforms import (
        Compose,
        RandCropByLabelClassesd,
        RandSpatialCropd,
        SpatialPadd,
    )

    keys = list(keys)
    roi = tuple(int(r) for r in roi)
    pad = SpatialPadd(keys=keys, spatial_size=roi, mode="constant")
    if sampler == "uniform":
        crop = RandSpatialCropd(keys=keys, roi_size=roi, random_size=False)
    elif sampler == "classes":
        if len(keys) < 2 or num_classes < 1:
            raise ValueError(
                "random_crop: sampler='classes' needs a label key and num_classes >= 1; "
                "use sampler='uniform' for unlabelled volumes"
            )
        crop = RandCropByLabelClassesd(
            keys=keys,
            label_key=keys[1],
            spatial_size=roi,
            num_classes=num_classes,
            ratios=list(ratios) if ratios is not None else None,
            num_samples=1,
            warn=False,
        )
    else:
        raise ValueError(f"random_crop: sampler={sampler!r}; choose 'uniform' or 'classes'")
    out = Compose([pad, crop])
    out.set_random_state(seed=seed)
    return out


def cached(
    data: Sequence[Mapping[Hashable, Any]],
    transform: Callable[..., Any],
    cache: str = "memory",
    cache_dir: str | Path | None = None,
) -> torch.utils.data.Dataset:
    """A MONAI dataset over ``data`` that caches ``transform``'s deterministic steps.

    Args:
        data: Item dictionaries (paths).
        transform: A MONAI ``Compose``: its steps up to the first random one are cached.
        cache: ``"memory"`` (``CacheDataset``), ``"disk"`` (``PersistentDataset`` in
            ``cache_dir``) or ``"none"`` (decode every time).
        cache_dir: Folder of the disk cache (needed for ``"disk"``).

    Raises:
        ValueError: Unknown ``cache`` or ``"disk"`` without ``cache_dir``.
    """
    from monai.data import CacheDataset, Dataset, PersistentDataset

    with volume_errors():
        if cache == "memory":
            base = CacheDataset(data=list(data), transform=transform, progress=False, num_workers=0)
        elif cache == "disk":
            if cache_dir is None:
                raise ValueError("cached: cache='disk' needs cache_dir (a writable folder)")
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            base = PersistentDataset(data=list(data), transform=transform, cache_dir=cache_dir)
        elif cache == "none":
            base = Dataset(data=list(data), transform=transform)
        else:
            raise ValueError(f"cached: cache={cache!r}; choose 'memory', 'disk' or 'none'")
    return _Unwrapped(base)


@contextlib.contextmanager
def volume_errors() -> Iterator[None]:
    """Re-raise the :class:`VolumeFileError` that MONAI wraps in ``RuntimeError``."""
    try:
        yield
    except RuntimeError as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, VolumeFileError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None


class _Unwrapped(torch.utils.data.Dataset):
    """A MONAI dataset whose items raise :class:`VolumeFileError` unwrapped."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> Any:
        with volume_errors():
            return self.base[index]
