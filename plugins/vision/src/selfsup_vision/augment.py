"""Batched image augmentations with per-sample random parameters, on any device.

torchvision's ``transforms.v2`` draws ONE set of random parameters per call, so a
whole batch would share a crop and a colour change. These functions draw parameters
per sample and apply them in a few vectorised tensor operations, so augmentation
runs on the GPU with the model (or on the CPU without a Python loop per image):

* random resized crop + horizontal flip as one affine sampling grid
  (``F.affine_grid`` / ``F.grid_sample``), any output size;
* colour jitter (brightness, contrast, saturation, hue) with per-sample factors;
* random grayscale, Gaussian blur (per-sample sigma, grouped separable convolution)
  and solarisation, each applied to a random subset of the batch.

All functions take and return float images in ``[0, 1]``, shape ``[B, C, H, W]``, and
use the global torch RNG of the batch's device (seeded by the engine).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "adjust_hue",
    "color_jitter",
    "gaussian_blur",
    "random_grayscale",
    "random_resized_crop",
    "solarize",
    "to_grayscale",
]

_LUMA = (0.299, 0.587, 0.114)


def _uniform(n: int, low: float, high: float, device: torch.device) -> Tensor:
    return torch.rand(n, device=device) * (high - low) + low


def _coin(n: int, p: float, device: torch.device) -> Tensor:
    """Per-sample booleans, ``True`` with probability ``p``."""
    return torch.rand(n, device=device) < p


def crop_boxes(
    n: int,
    scale: Sequence[float],
    ratio: Sequence[float],
    device: torch.device,
    aspect: float = 1.0,
    tries: int = 10,
) -> tuple[Tensor, Tensor]:
    """Per-sample crop width and height as fractions of the image (torchvision semantics).

    Like ``RandomResizedCrop.get_params``: an area fraction from ``scale`` and a log-
    uniform aspect ratio from ``ratio``; up to ``tries`` draws per sample, the first that
    fits is used, else the whole image (clipped to ``ratio``).

    Args:
        n: Number of samples.
        scale: ``(min, max)`` fraction of the image area.
        ratio: ``(min, max)`` crop aspect ratio (width / height).
        device: Where to draw.
        aspect: The images' width / height.
        tries: Attempts per sample.

    Returns:
        ``(w, h)`` in ``(0, 1]``, each of shape ``[n]``.
    """
    area = _uniform(n * tries, scale[0], scale[1], device).view(n, tries)
    log_r = _uniform(n * tries, math.log(ratio[0]), math.log(ratio[1]), device).view(n, tries)
    r = torch.exp(log_r) / aspect  # aspect in the unit square of fractions
    w = torch.sqrt(area * r)
    h = torch.sqrt(area / r)
    ok = (w <= 1.0) & (h <= 1.0)
    first = torch.argmax(ok.int(), dim=1, keepdim=True)  # first fitting try (0 if none)
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)
    # Fallback (no try fitted): the whole image, its aspect ratio clipped into ``ratio``.
    # Computed unconditionally: no host-device synchronisation on a GPU.
    none = ~ok.any(dim=1)
    r_fb = min(max(aspect, ratio[0]), ratio[1]) / aspect
    w_fb, h_fb = (r_fb, 1.0) if r_fb < 1.0 else (1.0, 1.0 / r_fb)
    w = torch.where(none, torch.full_like(w, w_fb), w)
    h = torch.where(none, torch.full_like(h, h_fb), h)
    return w, h


def random_resized_crop(
    x: Tensor,
    size: int | tuple[int, int] | None = None,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    flip_p: float = 0.5,
) -> Tensor:
    """Per-sample random resized crop and horizontal flip, as one affine resampling.

    Args:
        x: Images ``[B, C, H, W]`` (float).
        size: Output size (``int`` for square); ``None`` keeps ``H, W``.
        scale: Range of the crop's area fraction.
        ratio: Range of the crop's aspect ratio.
        flip_p: Probability of a horizontal flip per sample.

    Returns:
        ``[B, C, size, size]`` crops (bilinear resampling).
    """
    b, c, h_in, w_in = x.shape
    if size is None:
        out_h, out_w = h_in, w_in
    elif isinstance(size, int):
        out_h = out_w = size
    else:
        out_h, out_w = size
    dev = x.device
    w, h = crop_boxes(b, scale, ratio, dev, aspect=w_in / h_in)
    # Centres in normalised coordinates [-1, 1] such that the crop stays inside.
    cx = (torch.rand(b, device=dev) * 2 - 1) * (1 - w)
    cy = (torch.rand(b, device=dev) * 2 - 1) * (1 - h)
    sign = torch.where(_coin(b, flip_p, dev), -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=dev, dtype=x.dtype)
    theta[:, 0, 0] = w * sign
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, [b, c, out_h, out_w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def to_grayscale(x: Tensor) -> Tensor:
    """Luma of RGB images, ``[B, 1, H, W]`` (1-channel images are returned as they are)."""
    if x.shape[1] == 1:
        return x
    if x.shape[1] != 3:
        raise ValueError(f"grayscale needs 1 or 3 channels, got {x.shape[1]}")
    w = x.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _blend(a: Tensor, b: Tensor, factor: Tensor) -> Tensor:
    """``factor * a + (1 - factor) * b`` with per-sample ``factor``, clamped to [0, 1]."""
    f = factor.view(-1, 1, 1, 1).to(a.dtype)
    return (f * a + (1 - f) * b).clamp_(0.0, 1.0)


def _rgb_to_hsv(x: Tensor) -> Tensor:
    r, g, b = x.unbind(1)
    maxc, which = x.max(1)  # first maximal channel on ties: red, then green (as colorsys)
    delta = maxc - x.amin(1)
    s = delta / maxc.clamp_min(1e-12)  # 0 where maxc is 0 (delta is 0 there too)
    num = torch.where(which == 0, g - b, torch.where(which == 1, b - r, r - g))
    h = (which.to(x.dtype) * 2.0 + num / torch.where(delta > 0, delta, 1.0)) / 6.0 % 1.0
    return torch.stack([torch.where(delta > 0, h, 0.0), s, maxc], 1)


def _hsv_to_rgb(x: Tensor) -> Tensor:
    """HSV to RGB in closed form, without building all six sectors.

    ``v - v s clamp(min(k, 4 - k), 0, 1)`` with ``k = (n + 6 h) mod 6`` and
    ``n = 5, 3, 1`` for red, green, blue.
    """
    h, s, v = x.unbind(1)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    k = (n + h.unsqueeze(1) * 6.0) % 6.0
    m = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * m


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue of RGB images by per-sample ``shift`` (fractions of a turn)."""
    hsv = _rgb_to_hsv(x)
    hue = (hsv[:, 0] + shift.view(-1, 1, 1).to(x.dtype)) % 1.0
    return _hsv_to_rgb(torch.stack([hue, hsv[:, 1], hsv[:, 2]], 1))


def color_jitter(
    x: Tensor,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    p: float = 0.8,
) -> Tensor:
    """Colour jitter with per-sample factors, applied to each sample with probability ``p``.

    Factors are drawn as in torchvision (``U(1 - s, 1 + s)``, hue ``U(-h, h)``); the
    order of the four operations is shuffled once per call. Saturation and hue need
    3 channels and are skipped for grayscale images.
    """
    b, c = x.shape[:2]
    dev = x.device
    if p <= 0:
        return x
    apply = _coin(b, p, dev)
    out = x
    for op in torch.randperm(4).tolist():
        if op == 0 and brightness > 0:
            f = _uniform(b, max(0.0, 1 - brightness), 1 + brightness, dev)
            out = (out * f.view(-1, 1, 1, 1)).clamp(0.0, 1.0)
        elif op == 1 and contrast > 0:
            f = _uniform(b, max(0.0, 1 - contrast), 1 + contrast, dev)
            mean = to_grayscale(out).mean(dim=(1, 2, 3), keepdim=True)
            out = _blend(out, mean.expand_as(out), f)
        elif op == 2 and saturation > 0 and c == 3:
            f = _uniform(b, max(0.0, 1 - saturation), 1 + saturation, dev)
            out = _blend(out, to_grayscale(out).expand_as(out), f)
        elif op == 3 and hue > 0 and c == 3:
            out = adjust_hue(out, _uniform(b, -hue, hue, dev))
    return torch.where(apply.view(-1, 1, 1, 1), out, x)


def random_grayscale(x: Tensor, p: float = 0.2) -> Tensor:
    """Turn a random ``p`` fraction of RGB images gray (kept 3-channel); no-op for 1 channel."""
    if x.shape[1] != 3 or p <= 0:
        return x
    gray = to_grayscale(x).expand_as(x)
    return torch.where(_coin(x.shape[0], p, x.device).view(-1, 1, 1, 1), gray, x)


def gaussian_blur(
    x: Tensor,
    p: float = 0.5,
    sigma: Sequence[float] = (0.1, 2.0),
    kernel_frac: float = 0.1,
) -> Tensor:
    """Gaussian blur with per-sample sigma on a random ``p`` fraction of the batch.

    The kernel size is ``kernel_frac`` of the image side (odd, at least 3), as in
    SimCLR. ``sigma`` is in pixels of the image being blurred: SimCLR's ``(0.1, 2.0)``
    is meant for 224-pixel images, so use smaller values for 28-32 pixel images.
    """
    if p <= 0:
        return x
    b, c, h, w = x.shape
    dev = x.device
    apply = _coin(b, p, dev)
    k = max(3, round(kernel_frac * min(h, w)) | 1)
    s = _uniform(b, sigma[0], sigma[1], dev).to(x.dtype)
    r = torch.arange(k, device=dev, dtype=x.dtype) - (k - 1) / 2
    kern = torch.exp(-(r.view(1, -1) ** 2) / (2 * s.view(-1, 1) ** 2))
    kern = kern / kern.sum(1, keepdim=True)  # [B, k]
    kern = kern.repeat_interleave(c, dim=0)  # [B*C, k]
    y = x.reshape(1, b * c, h, w)
    pad = k // 2
    y = F.pad(y, (pad, pad, 0, 0), mode="reflect" if w > pad else "replicate")
    y = F.conv2d(y, kern.view(b * c, 1, 1, k), groups=b * c)
    y = F.pad(y, (0, 0, pad, pad), mode="reflect" if h > pad else "replicate")
    y = F.conv2d(y, kern.view(b * c, 1, k, 1), groups=b * c)
    return torch.where(apply.view(-1, 1, 1, 1), y.view(b, c, h, w), x)


def solarize(x: Tensor, p: float = 0.2, threshold: float = 0.5) -> Tensor:
    """Invert pixels above ``threshold`` on a random ``p`` fraction of the batch."""
    if p <= 0:
        return x
    sol = torch.where(x >= threshold, 1.0 - x, x)
    return torch.where(_coin(x.shape[0], p, x.device).view(-1, 1, 1, 1), sol, x)
