"""Decoding one image file (PIL) or a batch of JPEG bytes (torchvision, any device).

Both paths produce what every vision dataset stores: ``uint8 [C, H, W]`` at a fixed
size. ``resize="stretch"`` resizes to ``size`` whatever the aspect ratio (what
``vision:image-folder`` always did); ``resize="crop"`` resizes the shorter side to
``size`` and takes the centre (the usual ImageNet evaluation resize), so that no
image is distorted.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Resize", "decode_file", "decode_jpeg_batch", "fit_size", "is_jpeg"]

Resize = Literal["stretch", "crop"]

#: JPEG files start with the SOI marker and a segment marker.
_JPEG_MAGIC = b"\xff\xd8\xff"


def is_jpeg(head: bytes) -> bool:
    """Whether the first bytes of a file are a JPEG header."""
    return head[:3] == _JPEG_MAGIC


def _crop_box(width: int, height: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The centre box of ``width x height`` with the aspect ratio of ``size`` (h, w)."""
    target = size[1] / size[0]
    if width / height > target:
        w = max(1, round(height * target))
        left = (width - w) // 2
        return left, 0, left + w, height
    h = max(1, round(width / target))
    top = (height - h) // 2
    return 0, top, width, top + h


def decode_file(
    path: str, channels: int, size: tuple[int, int], resize: Resize = "stretch"
) -> Tensor:
    """One image file as ``uint8 [channels, H, W]`` (PIL; JPEGs are draft-decoded).

    For a JPEG, PIL's ``draft`` decodes at the smallest power-of-two reduction that is
    still at least the output size (the DCT does the first downscaling, cheaply).

    Raises:
        ValueError: The file is not a readable image (names the file and why).
    """
    from PIL import Image, UnidentifiedImageError

    mode = "L" if channels == 1 else "RGB"
    try:
        with Image.open(path) as img:
            if img.format == "JPEG":
                img.draft(mode, (size[1], size[0]))
            box = _crop_box(*img.size, size) if resize == "crop" else None
            img = img.convert(mode).resize(
                (size[1], size[0]), Image.Resampling.BILINEAR, box=box, reducing_gap=None
            )
            data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    except UnidentifiedImageError as exc:
        raise ValueError(
            f"{path!r} is not an image PIL can read (empty, truncated in its header, "
            "or not an image at all)"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise ValueError(f"{path!r} is too large to decode safely ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"{path!r} is truncated or corrupt ({exc})") from exc
    return data.view(size[0], size[1], channels).permute(2, 0, 1).clone()


def fit_size(image: Tensor, size: tuple[int, int], resize: Resize = "stretch") -> Tensor:
    """Resize one ``uint8 [C, h, w]`` image on its device (bilinear, antialiased)."""
    if resize == "crop":
        left, top, right, bottom = _crop_box(image.shape[-1], image.shape[-2], size)
        image = image[:, top:bottom, left:right]
    if tuple(image.shape[-2:]) == size:
        return image
    y = F.interpolate(image[None].float(), size=size, mode="bilinear", antialias=True)
    return y[0].round_().clamp_(0, 255).to(torch.uint8)


def decode_jpeg_batch(
    data: list[Tensor],
    channels: int,
    size: tuple[int, int],
    device: torch.device,
    resize: Resize = "stretch",
) -> list[Tensor]:
    """Decode JPEG byte tensors on ``device`` (nvJPEG on CUDA, one batched call).

    Returns:
        One ``uint8 [channels, H, W]`` image per input, on ``device``.

    Raises:
        RuntimeError: torchvision could not decode one of the files (the caller
            finds which one).
    """
    from torchvision.io import ImageReadMode, decode_jpeg

    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    if device.type == "cuda":
        images = decode_jpeg(data, mode=mode, device=device)
    else:
        images = [decode_jpeg(d, mode=mode) for d in data]
    return [fit_size(img, size, resize) for img in images]
