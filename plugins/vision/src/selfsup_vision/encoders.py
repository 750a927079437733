"""Image encoders: the shared input handling and the small CPU-friendly CNN.

Every encoder of this plugin takes a batch ``[B, C, H, W]`` of ``uint8`` pixels (0-255,
what the datasets store) or floats in ``[0, 1]`` (what the view makers return) and
does its own preprocessing: conversion to float, channel adaptation (a grayscale
batch is repeated for a 3-channel network; an RGB batch is converted to luma for a
1-channel network) and per-channel normalisation. Evaluators can therefore feed raw
dataset items.

The timm-based encoders (``vision:timm``, ``vision:resnet-small``, ``vision:vit-tiny``)
live in :mod:`selfsup_vision.timm_encoders`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import PositiveFloat, PositiveInt
from selfsup.interfaces import Encoder, EncoderOutput
from torch import Tensor, nn

__all__ = ["ImageEncoder", "Pixels", "SmallCNN", "default_stats", "to_unit_float"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_LUMA = (0.299, 0.587, 0.114)


def to_unit_float(x: Tensor) -> Tensor:
    """Images as floats in ``[0, 1]``: ``uint8`` is divided by 255, floats pass through."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if not x.is_floating_point():
        raise TypeError(
            f"images must be uint8 (0-255) or floating point (0-1), got dtype {x.dtype}"
        )
    return x


def default_stats(in_chans: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Normalisation statistics used when none are given.

    ImageNet's for 3 channels; ``0.5 / 0.25`` per channel otherwise (grayscale data
    such as digits or Fashion-MNIST, whose pixel mean is about 0.3 and std about 0.35).
    """
    if in_chans == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    return (0.5,) * in_chans, (0.25,) * in_chans


def _stats(
    name: str, value: float | Sequence[float] | None, in_chans: int, default: Sequence[float]
) -> Tensor:
    if value is None:
        values = list(default)
    elif isinstance(value, int | float):
        values = [float(value)] * in_chans
    else:
        values = [float(v) for v in value]
    if len(values) != in_chans:
        raise ValueError(
            f"{name} has {len(values)} value(s) but the encoder has in_chans={in_chans}; "
            f"give one number or {in_chans} numbers"
        )
    if name == "std" and any(v <= 0 for v in values):
        raise ValueError(f"std must be positive, got {values}")
    return torch.tensor(values, dtype=torch.float32).view(1, in_chans, 1, 1)


class ImageEncoder(Encoder):
    """Base of the image encoders: input conversion, channel adaptation, normalisation.

    Args:
        in_chans: Channels the network expects.
        mean: Per-channel mean (one number or ``in_chans`` numbers); ``None`` for
            :func:`default_stats`.
        std: Per-channel standard deviation, likewise.
    """

    modality = "image"

    def __init__(
        self,
        in_chans: PositiveInt = 3,
        mean: float | Sequence[float] | None = None,
        std: PositiveFloat | Sequence[PositiveFloat] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
            raise ValueError(f"in_chans={in_chans!r} must be a positive integer")
        self.in_chans = in_chans
        d_mean, d_std = default_stats(in_chans)
        self.register_buffer("pixel_mean", _stats("mean", mean, in_chans, d_mean), False)
        self.register_buffer("pixel_std", _stats("std", std, in_chans, d_std), False)

    def prepare(self, x: Tensor) -> Tensor:
        """Convert a raw batch into the normalised float input of the network.

        Raises:
            ValueError: The batch is not ``[B, C, H, W]`` or its channels cannot be
                adapted to ``in_chans``.
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"{type(self).__name__} expects an image tensor, got {type(x)}")
        if x.ndim == 3 and self.in_chans == 1:
            x = x.unsqueeze(1)  # [B, H, W] grayscale
        if x.ndim != 4:
            raise ValueError(
                f"{type(self).__name__} expects images [B, C, H, W], got shape {tuple(x.shape)}"
            )
        x = to_unit_float(x)
        c = x.shape[1]
        if c != self.in_chans:
            if c == 1:
                x = x.expand(-1, self.in_chans, -1, -1)
            elif c == 3 and self.in_chans == 1:
                w = x.new_tensor(_LUMA).view(1, 3, 1, 1)
                x = (x * w).sum(1, keepdim=True)
            else:
                raise ValueError(
                    f"{type(self).__name__} was built with in_chans={self.in_chans} but got "
                    f"{c}-channel images; set the encoder's in_chans to {c}"
                )
        x = (x - self.pixel_mean.to(x.dtype)) / self.pixel_std.to(x.dtype)
        if self._wants_channels_last():
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _wants_channels_last(self) -> bool:
        """Whether the network's convolutions are in ``channels_last`` format.

        Looks at the first 4-D weight whose layout is unambiguous (more than one input
        channel and a spatial kernel), so that ``model.to(memory_format=...)`` done by
        the engine is followed by the inputs too.
        """
        for p in self.parameters():
            if p.ndim == 4 and p.shape[1] > 1 and p.shape[2] * p.shape[3] > 1:
                return not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last)
        return False


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SmallCNN(ImageEncoder):
    """A small 4-stage CNN for 8-64 pixel images; about 0.39M parameters at ``width=32``.

    Four ``3x3 conv -> BatchNorm -> ReLU`` stages of ``width x (1, 2, 4, 8)`` channels,
    2x2 max-pooling between them, global average pooling at the end
    (``embed_dim = 8 * width``). Cheap enough to pretrain on Fashion-MNIST on a CPU.

    Args:
        in_chans: Input channels (1 for grayscale data; 3-channel input is converted).
        width: Channels of the first stage.
        mean: Normalisation mean (see :class:`ImageEncoder`).
        std: Normalisation std.

    Example:
        >>> enc = SmallCNN(in_chans=1)
        >>> enc(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)).pooled.shape
        torch.Size([2, 256])
    """

    def __init__(
        self,
        in_chans: PositiveInt = 1,
        width: PositiveInt = 32,
        mean: float | Sequence[float] | None = None,
        std: PositiveFloat | Sequence[PositiveFloat] | None = None,
    ) -> None:
        super().__init__(in_chans, mean, std)
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width={width!r} must be a positive integer")
        widths = [width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        cin = in_chans
        for i, cout in enumerate(widths):
            if i > 0:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            layers.append(_conv_bn(cin, cout))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.embed_dim = widths[-1]

    def forward(self, x: Tensor) -> EncoderOutput:
        """Encode images: ``pooled [B, 8w]`` and the last feature map as ``tokens``."""
        fmap = self.features(self.prepare(x))
        pooled = fmap.mean(dim=(2, 3))
        tokens = fmap.flatten(2).transpose(1, 2)
        return EncoderOutput(pooled=pooled, tokens=tokens)


class Pixels(ImageEncoder):
    """Raw pixels as the embedding: the normalised image, flattened (a baseline).

    Has no parameters, so "pretraining" it is meaningless; use it in an arm without an
    objective to get the raw-pixel linear-probe or kNN baseline.

    Args:
        size: Image side in pixels (``embed_dim = in_chans * size * size``); inputs of
            another size are resized (bilinear, antialiased).
        in_chans: Channels.
        mean: Normalisation mean.
        std: Normalisation std.

    Example:
        >>> Pixels(size=8)(torch.zeros(2, 1, 8, 8, dtype=torch.uint8)).pooled.shape
        torch.Size([2, 64])
    """

    def __init__(
        self,
        size: PositiveInt = 28,
        in_chans: PositiveInt = 1,
        mean: float | Sequence[float] | None = None,
        std: PositiveFloat | Sequence[PositiveFloat] | None = None,
    ) -> None:
        super().__init__(in_chans, mean, std)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size={size!r} must be a positive integer (pixels)")
        self.size = size
        self.embed_dim = in_chans * size * size

    def forward(self, x: Tensor) -> EncoderOutput:
        """The flattened, normalised pixels ``[B, in_chans * size * size]``."""
        x = self.prepare(x)
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = torch.nn.functional.interpolate(
                x, size=(self.size, self.size), mode="bilinear", antialias=True
            )
        return EncoderOutput(pooled=x.flatten(1))
