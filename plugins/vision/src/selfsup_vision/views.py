"""View makers for images: SimCLR, BYOL (asymmetric) and DINO multi-crop.

Each view maker takes the batch as the routine hands it over (already on the run's
device): a ``[B, C, H, W]`` tensor, or an ``(images, labels)`` pair whose labels are
ignored. Images may be ``uint8`` (converted here) or floats in ``[0, 1]``. Every
random parameter is drawn per sample (see :mod:`selfsup_vision.augment`), so two views
of one image differ and no two images share a crop. Views are floats in ``[0, 1]``;
encoders normalise them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from torch import Tensor

from selfsup_vision import augment as A
from selfsup_vision.encoders import to_unit_float

if TYPE_CHECKING:
    from selfsup.interfaces import BatchMeta

__all__ = ["BYOLViews", "CropPipeline", "MultiCropViews", "SimCLRViews", "images_of"]

# Parameter types: the constraints ``selfsup check`` enforces from the signatures.
Probability = Annotated[float, Field(ge=0, le=1)]
AreaFraction = Annotated[float, Field(gt=0, le=1)]
HueShift = Annotated[float, Field(ge=0, le=0.5)]


def images_of(batch: Any) -> Tensor:
    """The image tensor of a batch: the tensor itself, ``batch[0]`` or ``batch["image"]``.

    Raises:
        TypeError: No image tensor can be found.
    """
    if isinstance(batch, Tensor):
        x = batch
    elif isinstance(batch, list | tuple) and batch and isinstance(batch[0], Tensor):
        x = batch[0]
    elif isinstance(batch, Mapping) and isinstance(batch.get("image"), Tensor):
        x = batch["image"]
    else:
        raise TypeError(
            "image views expect a batch of images [B, C, H, W] (or an (images, labels) "
            f"pair), got {type(batch).__name__}"
        )
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4:
        raise ValueError(f"image views expect [B, C, H, W] images, got shape {tuple(x.shape)}")
    return to_unit_float(x)


def _pair(name: str, value: Sequence[float], lo: float, hi: float) -> tuple[float, float]:
    vals = tuple(float(v) for v in value)
    if len(vals) != 2 or not (lo <= vals[0] <= vals[1] <= hi):
        raise ValueError(
            f"{name}={list(value)!r} must be [min, max] with {lo} <= min <= max <= {hi}"
        )
    return vals  # type: ignore[return-value]


def _prob(name: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name}={value!r} must be a probability in [0, 1]")
    return float(value)


def _size(name: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name}={value!r} must be a positive integer (pixels) or null")
    return value


@dataclass(frozen=True)
class CropPipeline:
    """One augmentation pipeline: crop+flip, colour jitter, grayscale, blur, solarize."""

    size: int | None = None
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0

    def __post_init__(self) -> None:
        _size("size", self.size)
        _pair("scale", self.scale, 1e-6, 1.0)
        _pair("ratio", self.ratio, 1e-3, 1e3)
        _pair("blur_sigma", self.blur_sigma, 1e-6, 1e3)
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            _prob(name, getattr(self, name))
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r} must be >= 0")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"hue={self.hue!r} must be in [0, 0.5]")

    def __call__(self, x: Tensor) -> Tensor:
        """Augment float images ``[B, C, H, W]`` in ``[0, 1]``."""
        x = A.random_resized_crop(x, self.size, self.scale, self.ratio, self.flip_p)
        x = A.color_jitter(
            x, self.brightness, self.contrast, self.saturation, self.hue, self.jitter_p
        )
        x = A.random_grayscale(x, self.grayscale_p)
        x = A.gaussian_blur(x, self.blur_p, self.blur_sigma)
        return A.solarize(x, self.solarize_p)


class SimCLRViews:
    """SimCLR views: ``n_views`` independent augmentations of every image.

    Random resized crop (``scale``), horizontal flip, colour jitter (brightness,
    contrast, saturation and hue where there are 3 channels) with probability
    ``jitter_p``, random grayscale and optional Gaussian blur. Works for 1-channel
    images (saturation, hue and grayscale are skipped). The defaults are the usual
    small-image (CIFAR) settings; ImageNet SimCLR uses ``brightness=contrast=
    saturation=0.8, hue=0.2, blur_p=0.5``.

    Args:
        n_views: Number of views (2 for SimCLR).
        size: Output size in pixels; ``None`` keeps the input size.
        scale: Range of the crop's area fraction.
        ratio: Range of the crop's aspect ratio.
        flip_p: Horizontal flip probability.
        brightness: Brightness jitter strength.
        contrast: Contrast jitter strength.
        saturation: Saturation jitter strength (RGB only).
        hue: Hue jitter strength, at most 0.5 (RGB only).
        jitter_p: Probability of applying the colour jitter.
        grayscale_p: Probability of turning an RGB view gray.
        blur_p: Probability of a Gaussian blur.
        blur_sigma: Blur sigma range, in pixels.
        solarize_p: Probability of solarisation.

    Example:
        >>> import torch
        >>> a, b = SimCLRViews()(torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8))
        >>> a.shape, bool((a != b).any())
        (torch.Size([4, 1, 28, 28]), True)
    """

    def __init__(
        self,
        n_views: PositiveInt = 2,
        size: PositiveInt | None = None,
        scale: tuple[AreaFraction, AreaFraction] = (0.08, 1.0),
        ratio: tuple[PositiveFloat, PositiveFloat] = (3 / 4, 4 / 3),
        flip_p: Probability = 0.5,
        brightness: NonNegativeFloat = 0.4,
        contrast: NonNegativeFloat = 0.4,
        saturation: NonNegativeFloat = 0.4,
        hue: HueShift = 0.1,
        jitter_p: Probability = 0.8,
        grayscale_p: Probability = 0.2,
        blur_p: Probability = 0.0,
        blur_sigma: tuple[PositiveFloat, PositiveFloat] = (0.1, 2.0),
        solarize_p: Probability = 0.0,
    ) -> None:
        if isinstance(n_views, bool) or not isinstance(n_views, int) or n_views < 1:
            raise ValueError(f"n_views={n_views!r} must be a positive integer")
        self.n_views = n_views
        self.pipeline = CropPipeline(
            size, tuple(scale), tuple(ratio), flip_p, brightness, contrast, saturation, hue,
            jitter_p, grayscale_p, blur_p, tuple(blur_sigma), solarize_p,
        )  # fmt: skip

    def __call__(self, batch: Any, meta: BatchMeta | None = None) -> list[Tensor]:
        """Return ``n_views`` augmented views of the batch's images (``meta`` unused)."""
        x = images_of(batch)
        return [self.pipeline(x) for _ in range(self.n_views)]


class BYOLViews:
    """BYOL's two asymmetric views (Grill et al., 2020).

    View 1 is always blurred; view 2 is rarely blurred and sometimes solarised.

    Args:
        size: Output size in pixels; ``None`` keeps the input size.
        scale: Range of the crop's area fraction.
        flip_p: Horizontal flip probability.
        brightness: Brightness jitter strength.
        contrast: Contrast jitter strength.
        saturation: Saturation jitter strength.
        hue: Hue jitter strength.
        jitter_p: Probability of the colour jitter.
        grayscale_p: Probability of grayscale.
        blur_p: Blur probability of view 1 and view 2.
        blur_sigma: Blur sigma range, in pixels (small images need small sigmas).
        solarize_p: Solarisation probability of view 1 and view 2.
    """

    def __init__(
        self,
        size: PositiveInt | None = None,
        scale: tuple[AreaFraction, AreaFraction] = (0.08, 1.0),
        flip_p: Probability = 0.5,
        brightness: NonNegativeFloat = 0.4,
        contrast: NonNegativeFloat = 0.4,
        saturation: NonNegativeFloat = 0.2,
        hue: HueShift = 0.1,
        jitter_p: Probability = 0.8,
        grayscale_p: Probability = 0.2,
        blur_p: tuple[Probability, Probability] = (1.0, 0.1),
        blur_sigma: tuple[PositiveFloat, PositiveFloat] = (0.1, 1.0),
        solarize_p: tuple[Probability, Probability] = (0.0, 0.2),
    ) -> None:
        if len(blur_p) != 2 or len(solarize_p) != 2:
            raise ValueError("blur_p and solarize_p take two values: [view 1, view 2]")
        common = dict(
            size=size, scale=tuple(scale), flip_p=flip_p, brightness=brightness,
            contrast=contrast, saturation=saturation, hue=hue, jitter_p=jitter_p,
            grayscale_p=grayscale_p, blur_sigma=tuple(blur_sigma),
        )  # fmt: skip
        self.pipelines = [
            CropPipeline(blur_p=float(blur_p[i]), solarize_p=float(solarize_p[i]), **common)
            for i in range(2)
        ]

    def __call__(self, batch: Any, meta: BatchMeta | None = None) -> list[Tensor]:
        """Return the two asymmetric views (``meta`` unused)."""
        x = images_of(batch)
        return [p(x) for p in self.pipelines]


class MultiCropViews:
    """DINO multi-crop: ``n_global`` large crops and ``n_local`` small ones.

    Returns a list ``[global_1, ..., global_G, local_1, ..., local_L]``: the globals
    at ``global_size`` pixels, the locals at ``local_size`` pixels (for a ViT, both
    must be multiples of its patch size). Global crop 1 is always blurred, global crop
    2 rarely blurred and sometimes solarised, locals blurred half of the time (DINO).

    Args:
        n_global: Number of global crops (2 in DINO).
        n_local: Number of local crops.
        global_size: Global crop size; ``None`` keeps the input size.
        local_size: Local crop size; ``None`` is 3/7 of the input size (DINO: 96/224).
        global_scale: Area-fraction range of global crops.
        local_scale: Area-fraction range of local crops.
        flip_p: Horizontal flip probability.
        brightness: Brightness jitter strength.
        contrast: Contrast jitter strength.
        saturation: Saturation jitter strength.
        hue: Hue jitter strength.
        jitter_p: Probability of the colour jitter.
        grayscale_p: Probability of grayscale.
        blur_sigma: Blur sigma range, in pixels.
        solarize_p: Solarisation probability of the second global crop.
    """

    def __init__(
        self,
        n_global: PositiveInt = 2,
        n_local: NonNegativeInt = 6,
        global_size: PositiveInt | None = None,
        local_size: PositiveInt | None = None,
        global_scale: tuple[AreaFraction, AreaFraction] = (0.4, 1.0),
        local_scale: tuple[AreaFraction, AreaFraction] = (0.05, 0.4),
        flip_p: Probability = 0.5,
        brightness: NonNegativeFloat = 0.4,
        contrast: NonNegativeFloat = 0.4,
        saturation: NonNegativeFloat = 0.2,
        hue: HueShift = 0.1,
        jitter_p: Probability = 0.8,
        grayscale_p: Probability = 0.2,
        blur_sigma: tuple[PositiveFloat, PositiveFloat] = (0.1, 1.0),
        solarize_p: Probability = 0.2,
    ) -> None:
        if n_global < 1 or n_local < 0:
            raise ValueError(f"need n_global >= 1 and n_local >= 0, got {n_global}, {n_local}")
        self.n_global, self.n_local = int(n_global), int(n_local)
        self.global_size = _size("global_size", global_size)
        self.local_size = _size("local_size", local_size)
        common = dict(
            flip_p=flip_p, brightness=brightness, contrast=contrast, saturation=saturation,
            hue=hue, jitter_p=jitter_p, grayscale_p=grayscale_p, blur_sigma=tuple(blur_sigma),
        )  # fmt: skip
        self._global = [
            CropPipeline(scale=tuple(global_scale), blur_p=1.0, **common),
            CropPipeline(scale=tuple(global_scale), blur_p=0.1, solarize_p=solarize_p, **common),
        ]
        self._local = CropPipeline(scale=tuple(local_scale), blur_p=0.5, **common)

    def __call__(self, batch: Any, meta: BatchMeta | None = None) -> list[Tensor]:
        """Return ``n_global`` global crops then ``n_local`` local crops (``meta`` unused)."""
        x = images_of(batch)
        side = min(x.shape[-2:])
        g_size = self.global_size or side
        l_size = self.local_size or max(1, round(side * 3 / 7))
        views = []
        for i in range(self.n_global):
            p = self._global[min(i, 1)]
            views.append(_with_size(p, g_size)(x))
        local = _with_size(self._local, l_size)
        views.extend(local(x) for _ in range(self.n_local))
        return views


def _with_size(p: CropPipeline, size: int) -> CropPipeline:
    if p.size == size:
        return p
    from dataclasses import replace

    return replace(p, size=size)
