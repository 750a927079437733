"""``vision:image-folder``: a class-per-subfolder image collection read with PIL.

Layouts::

    root/cat/001.jpg, root/dog/002.png, ...            # one pool, split here (seeded)
    root/train/cat/..., root/val/cat/..., root/test/cat/...   # given splits

Images are decoded once, converted to grayscale or RGB, resized and kept as
``uint8 [N, C, H, W]`` tensors (compact; floats are made on the device).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import Field, PositiveInt
from selfsup.interfaces import DataSplits
from torch import Tensor

from selfsup_vision.datasets import ImageTensorDataset, split_indices

__all__ = ["IMAGE_SUFFIXES", "image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


#: Decoding errors listed in one error message (the rest are counted).
MAX_LISTED = 5

_UNLABELLED_HINT = (
    "or set data.params.unlabelled: true to pretrain on the images without labels "
    "(label-free evaluators such as core:rankme only)"
)


def _classes(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files(folder: Path) -> list[Path]:
    """Image files below ``folder``; hidden files (``.DS_Store``, ``._x.png``) are skipped."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def _load(path: Path, mode: str, size: tuple[int, int]) -> Tensor:
    """One image as ``uint8 [C, H, W]``.

    Raises:
        ValueError: The file is not a readable image (says why, without the fix).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert(mode).resize((size[1], size[0]), Image.Resampling.BILINEAR)
            data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    except UnidentifiedImageError as exc:
        raise ValueError(
            f"{str(path)!r} is not an image PIL can read (empty, truncated in its header, "
            "or not an image at all)"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise ValueError(f"{str(path)!r} is too large to decode safely ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"{str(path)!r} is truncated or corrupt ({exc})") from exc
    channels = 1 if mode == "L" else 3
    return data.view(size[0], size[1], channels).permute(2, 0, 1).clone()


def _refuse_unreadable(folder: Path, errors: list[str]) -> None:
    if not errors:
        return
    listed = "; ".join(errors[:MAX_LISTED])
    more = f"; and {len(errors) - MAX_LISTED} more" if len(errors) > MAX_LISTED else ""
    raise ValueError(
        f"image folder {str(folder)!r}: {len(errors)} unreadable image file(s): {listed}{more}; "
        "remove or replace these files (re-copy them from the source; a file that is not "
        "an image must not carry an image suffix)"
    )


def _read_split(
    folder: Path,
    class_names: list[str] | None,
    mode: str,
    size: tuple[int, int],
    labelled: bool = True,
) -> tuple[ImageTensorDataset, list[str]]:
    """The images of one split folder and the class names.

    Class folders without images are reported with a warning and dropped (they are not
    classes: no label index, not counted in ``num_classes``). A labelled training (or
    single-pool) folder with fewer than two classes left is refused before any image
    is decoded. Every unreadable image is collected and the first few are named in one
    error.
    """
    dirs = _classes(folder)
    if not dirs:
        raise ValueError(
            f"{str(folder)!r} has no class subfolders; expected one folder per class, "
            "e.g. root/cat/1.jpg and root/dog/2.jpg"
        )
    files = {d.name: _files(d) for d in dirs}
    if not any(files.values()):
        raise ValueError(
            f"no images found under {str(folder)!r} (looked for {', '.join(IMAGE_SUFFIXES)} "
            "files inside the class subfolders)"
        )
    for d in dirs:
        if not files[d.name]:
            warnings.warn(
                f"image folder {str(folder)!r}: class folder {str(d)!r} holds no images "
                f"(looked for {', '.join(IMAGE_SUFFIXES)}); the class is dropped. Put "
                "images in it or remove it",
                UserWarning,
                stacklevel=3,
            )
    dirs = [d for d in dirs if files[d.name]]
    names = class_names or [d.name for d in dirs]
    if class_names is None and labelled:
        _refuse_single_class(folder, names)
    index = {n: i for i, n in enumerate(names)}
    images: list[Tensor] = []
    labels: list[int] = []
    errors: list[str] = []
    for d in dirs:
        if d.name not in index:
            raise ValueError(
                f"{str(d)!r}: class {d.name!r} is not among the training classes {names}; "
                "add its images to the train folder too, or remove the folder"
            )
        for f in files[d.name]:
            try:
                images.append(_load(f, mode, size))
            except ValueError as exc:
                errors.append(str(exc))
                continue
            labels.append(index[d.name])
    _refuse_unreadable(folder, errors)
    return ImageTensorDataset(torch.stack(images), torch.tensor(labels)), names


def _refuse_single_class(folder: Path, names: list[str]) -> None:
    if len(names) >= 2:
        return
    raise ValueError(
        f"image folder {str(folder)!r} has {len(names)} class ({', '.join(names)}) with "
        "images: a linear probe / kNN needs at least 2 classes; add class folders "
        f"(root/<class>/<image>), {_UNLABELLED_HINT}"
    )


def image_folder(
    root: str,
    size: PositiveInt | tuple[PositiveInt, PositiveInt] = 32,
    channels: Literal[1, 3] = 3,
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1,
    test_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2,
    split_seed: int = 0,
    unlabelled: bool = False,
) -> DataSplits:
    """Images in class subfolders (``root/<class>/<image>``), decoded with PIL.

    If ``root`` holds ``train/`` (and optionally ``val/``, ``test/``) folders, those
    are the splits; otherwise the images are split here, stratified and seeded.

    A class folder without images is dropped with a warning (it gets no label index
    and does not count in ``num_classes``). Labelled data needs at least two classes
    (a probe or kNN on one class scores 1.0 whatever the encoder); a single-class
    folder is refused unless ``unlabelled`` is set. Hidden files are skipped.

    Args:
        root: The folder.
        size: Output size: ``int`` for square or ``[height, width]``.
        channels: 1 (grayscale) or 3 (RGB).
        val_fraction: Fraction of each class for validation (single-pool layout).
        test_fraction: Fraction of each class for test (single-pool layout).
        split_seed: Seed of the split.
        unlabelled: Read the images without labels (``y = -1``, ``num_classes = 0``):
            for pretraining on a folder of one class, with label-free evaluators only.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: No class folders, no images, fewer than two classes (labelled),
            or unreadable images (named, with the fix).
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
    labelled = not unlabelled
    if (folder / "train").is_dir():
        train, names = _read_split(folder / "train", None, mode, hw, labelled)
        known = names if labelled else None
        val, test = (
            _read_split(folder / name, known, mode, hw, labelled)[0]
            if (folder / name).is_dir()
            else None
            for name in ("val", "test")
        )
    else:
        if not (
            0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1
        ):
            raise ValueError("val_fraction and test_fraction must be in [0, 1) and sum below 1")
        full, names = _read_split(folder, None, mode, hw, labelled)
        tr, va, te = split_indices(full.labels, [0.0, val_fraction, test_fraction], split_seed)
        train = full.subset(tr)
        val = full.subset(va) if va.numel() else None
        test = full.subset(te) if te.numel() else None
    if unlabelled:
        train, val, test = (_unlabel(ds) for ds in (train, val, test))
        names = []
    meta["class_names"] = names
    return DataSplits(
        train=train, val=val, test=test, num_classes=len(names), modality="image", meta=meta
    )


def _unlabel(ds: ImageTensorDataset | None) -> ImageTensorDataset | None:
    if ds is None:
        return None
    return ImageTensorDataset(ds.images, torch.full_like(ds.labels, -1))
