"""``vision:image-folder``: a class-per-subfolder image collection read with PIL.

Layouts::

    root/cat/001.jpg, root/dog/002.png, ...            # one pool, split here (seeded)
    root/train/cat/..., root/val/cat/..., root/test/cat/...   # given splits

Images are decoded once, converted to grayscale or RGB, resized and kept as
``uint8 [N, C, H, W]`` tensors (compact; floats are made on the device).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import Field, PositiveInt
from selfsup.interfaces import DataSplits
from torch import Tensor

from selfsup_vision.datasets import ImageTensorDataset, split_indices

__all__ = ["IMAGE_SUFFIXES", "image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def _classes(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _load(path: Path, mode: str, size: tuple[int, int]) -> Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert(mode).resize((size[1], size[0]), Image.Resampling.BILINEAR)
            data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise ValueError(
            f"cannot read image {str(path)!r}: {exc}; remove or replace the file"
        ) from exc
    channels = 1 if mode == "L" else 3
    return data.view(size[0], size[1], channels).permute(2, 0, 1).clone()


def _read_split(
    folder: Path, class_names: list[str] | None, mode: str, size: tuple[int, int]
) -> tuple[ImageTensorDataset, list[str]]:
    dirs = _classes(folder)
    if not dirs:
        raise ValueError(
            f"{str(folder)!r} has no class subfolders; expected one folder per class, "
            "e.g. root/cat/1.jpg and root/dog/2.jpg"
        )
    names = class_names or [d.name for d in dirs]
    index = {n: i for i, n in enumerate(names)}
    images: list[Tensor] = []
    labels: list[int] = []
    for d in dirs:
        if d.name not in index:
            raise ValueError(
                f"{str(d)!r}: class {d.name!r} is not among the training classes {names}"
            )
        for f in _files(d):
            images.append(_load(f, mode, size))
            labels.append(index[d.name])
    if not images:
        raise ValueError(
            f"no images found under {str(folder)!r} (looked for {', '.join(IMAGE_SUFFIXES)} "
            "files inside the class subfolders)"
        )
    return ImageTensorDataset(torch.stack(images), torch.tensor(labels)), names


def image_folder(
    root: str,
    size: PositiveInt | tuple[PositiveInt, PositiveInt] = 32,
    channels: Literal[1, 3] = 3,
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1,
    test_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2,
    split_seed: int = 0,
) -> DataSplits:
    """Images in class subfolders (``root/<class>/<image>``), decoded with PIL.

    If ``root`` holds ``train/`` (and optionally ``val/``, ``test/``) folders, those
    are the splits; otherwise the images are split here, stratified and seeded.

    Args:
        root: The folder.
        size: Output size: ``int`` for square or ``[height, width]``.
        channels: 1 (grayscale) or 3 (RGB).
        val_fraction: Fraction of each class for validation (single-pool layout).
        test_fraction: Fraction of each class for test (single-pool layout).
        split_seed: Seed of the split.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: No class folders, no images, or an unreadable image (named).
    """
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"image folder {str(folder)!r} does not exist; expected root/<class>/<image> "
            "files (or root/train/<class>/..., root/val/..., root/test/...)"
        )
    if channels not in (1, 3):
        raise ValueError(f"channels={channels!r} must be 1 (grayscale) or 3 (RGB)")
    hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    mode = "L" if channels == 1 else "RGB"
    meta: dict[str, object] = {"root": str(folder), "channels": channels}
    if (folder / "train").is_dir():
        train, names = _read_split(folder / "train", None, mode, hw)
        val = _read_split(folder / "val", names, mode, hw)[0] if (folder / "val").is_dir() else None
        test = (
            _read_split(folder / "test", names, mode, hw)[0] if (folder / "test").is_dir() else None
        )
    else:
        if not (
            0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1
        ):
            raise ValueError("val_fraction and test_fraction must be in [0, 1) and sum below 1")
        full, names = _read_split(folder, None, mode, hw)
        tr, va, te = split_indices(full.labels, [0.0, val_fraction, test_fraction], split_seed)
        train = full.subset(tr)
        val = full.subset(va) if va.numel() else None
        test = full.subset(te) if te.numel() else None
    meta["class_names"] = names
    return DataSplits(
        train=train, val=val, test=test, num_classes=len(names), modality="image", meta=meta
    )
