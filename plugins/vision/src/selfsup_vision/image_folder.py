"""``vision:image-folder``: a class-per-subfolder image collection read with PIL.

Layouts::

    root/cat/001.jpg, root/dog/002.png, ...            # one pool, split here (seeded)
    root/train/cat/..., root/val/cat/..., root/test/cat/...   # given splits

In memory (small collections), images are decoded once, converted to grayscale or
RGB, resized and kept as ``uint8 [N, C, H, W]`` tensors (compact; floats are made on
the device). Streamed (large collections, ``mode: stream`` or ``auto``), only the paths
are kept and the DataLoader workers decode each image when it is fetched
(:mod:`selfsup_vision.streaming`).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, NonNegativeInt, PositiveInt
from selfsup.interfaces import DataSplits

from selfsup_vision.datasets import ImageTensorDataset, split_indices
from selfsup_vision.decode import Resize, decode_file
from selfsup_vision.streaming import OnError, StreamingImageDataset, StreamingSplits

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


def _scan_split(
    folder: Path, class_names: list[str] | None, labelled: bool = True
) -> tuple[list[Path], list[int], list[str]]:
    """The image files of one split folder, their labels and the class names.

    Class folders without images are reported with a warning and dropped (they are not
    classes: no label index, not counted in ``num_classes``). A labelled training (or
    single-pool) folder with fewer than two classes left is refused before any image
    is decoded.
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
    paths: list[Path] = []
    labels: list[int] = []
    for d in dirs:
        if d.name not in index:
            raise ValueError(
                f"{str(d)!r}: class {d.name!r} is not among the training classes {names}; "
                "add its images to the train folder too, or remove the folder"
            )
        paths += files[d.name]
        labels += [index[d.name]] * len(files[d.name])
    return paths, labels, names


def _decode_all(
    folder: Path,
    paths: list[Path],
    labels: list[int],
    channels: int,
    size: tuple[int, int],
    resize: Resize,
    on_error: OnError,
) -> ImageTensorDataset:
    """Decode every image into one ``uint8`` tensor (the in-memory path).

    Every unreadable image is collected: the first few are named in one error, or
    (``on_error="skip"``) they are left out with one warning that counts them.
    """
    images = torch.empty(len(paths), channels, *size, dtype=torch.uint8)  # filled in place
    kept: list[int] = []
    errors: list[str] = []
    for f, label in zip(paths, labels, strict=True):
        try:
            images[len(kept)] = decode_file(str(f), channels, size, resize)
        except ValueError as exc:
            errors.append(str(exc))
            continue
        kept.append(label)
    if on_error == "raise":
        _refuse_unreadable(folder, errors)
    elif errors:
        more = f"; and {len(errors) - MAX_LISTED} more" if len(errors) > MAX_LISTED else ""
        warnings.warn(
            f"image folder {str(folder)!r}: on_error=skip: skipped {len(errors)} unreadable "
            f"image file(s): {'; '.join(errors[:MAX_LISTED])}{more}",
            UserWarning,
            stacklevel=3,
        )
    if not kept:
        raise ValueError(f"image folder {str(folder)!r}: none of its images is readable")
    return ImageTensorDataset(images[: len(kept)], torch.tensor(kept))


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
    mode: Literal["auto", "memory", "stream"] = "auto",
    memory_limit_mb: PositiveInt = 1024,
    on_error: OnError = "raise",
    resize: Resize = "stretch",
    decode: Literal["workers", "device"] = "workers",
    eval_workers: NonNegativeInt = 0,
) -> DataSplits:
    """Images in class subfolders (``root/<class>/<image>``), decoded with PIL.

    If ``root`` holds ``train/`` (and optionally ``val/``, ``test/``) folders, those
    are the splits; otherwise the images are split here, stratified and seeded.

    Small collections are decoded once into one ``uint8`` tensor (``mode="memory"``);
    large ones are streamed (``mode="stream"``): each image is decoded when the
    DataLoader fetches it, in its workers (``train.num_workers``), so that memory does
    not grow with the number of images. ``mode="auto"`` streams when the decoded
    images would take more than ``memory_limit_mb``.

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
        mode: ``auto``, ``memory`` (decode everything up front) or ``stream``.
        memory_limit_mb: ``auto`` streams above this many MB of decoded images.
        on_error: ``raise`` (an error names the unreadable files) or ``skip`` them with
            a warning that counts them (in ``stream`` mode, a skipped image is replaced
            by the next readable one, so batches keep their size).
        resize: ``stretch`` to ``size``, or ``crop``: shorter side to ``size``, centre crop.
        decode: ``workers`` (PIL in the DataLoader workers) or ``device``: JPEGs of the
            training split are decoded a batch at a time where the routine sends the
            batch (nvJPEG on a GPU); ``stream`` mode only.
        eval_workers: DataLoader workers that decode while evaluators embed a split
            (``stream`` mode).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: No class folders, no images, fewer than two classes (labelled),
            unreadable images (named, with the fix) or a bad parameter value.
    """
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"image folder {str(folder)!r} does not exist; expected root/<class>/<image> "
            "files (or root/train/<class>/..., root/val/..., root/test/...)"
        )
    _check_choices(channels, mode, on_error, resize, decode)
    hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    labelled = not unlabelled
    given = (folder / "train").is_dir()
    if given:
        scans = {"train": _scan_split(folder / "train", None, labelled)}
        names = scans["train"][2]
        for name in ("val", "test"):
            if (folder / name).is_dir():
                scans[name] = _scan_split(folder / name, names if labelled else None, labelled)
    else:
        if not (
            0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1
        ):
            raise ValueError("val_fraction and test_fraction must be in [0, 1) and sum below 1")
        scans = {"all": _scan_split(folder, None, labelled)}
        names = scans["all"][2]
    count = sum(len(s[0]) for s in scans.values())
    stream = mode == "stream" or (
        mode == "auto" and count * channels * hw[0] * hw[1] > memory_limit_mb * 2**20
    )
    if decode == "device" and not stream:
        raise ValueError(
            "image folder: decode='device' needs mode='stream' (in memory the images are "
            "decoded once, up front); set data.params.mode: stream or decode: workers"
        )
    splits: dict[str, Any] = {}
    for name, (paths, labels, _) in scans.items():
        base = folder / name if given else folder
        if stream:
            rel = [str(p.relative_to(base)) for p in paths]
            splits[name] = StreamingImageDataset(
                base, rel, torch.tensor(labels), channels, hw, resize, on_error
            )
        else:
            splits[name] = _decode_all(base, paths, labels, channels, hw, resize, on_error)
    if not given:
        full = splits.pop("all")
        tr, va, te = split_indices(full.labels, [0.0, val_fraction, test_fraction], split_seed)
        splits = {"train": full.subset(tr)}
        splits["val"] = full.subset(va) if va.numel() else None
        splits["test"] = full.subset(te) if te.numel() else None
    if unlabelled:
        splits = {k: _unlabel(ds) for k, ds in splits.items()}
        names = []
    if decode == "device":
        splits["train"] = splits["train"].decoding(True)
    meta: dict[str, object] = {
        "root": str(folder), "channels": channels, "class_names": names,
        "mode": "stream" if stream else "memory", "images": count,
    }  # fmt: skip
    common = {
        "train": splits["train"], "val": splits.get("val"), "test": splits.get("test"),
        "num_classes": len(names), "modality": "image", "meta": meta,
    }  # fmt: skip
    if stream:
        return StreamingSplits(**common, workers=eval_workers)
    return DataSplits(**common)


def _check_choices(channels: int, mode: str, on_error: str, resize: str, decode: str) -> None:
    for key, value, allowed in [
        ("channels", channels, (1, 3)),
        ("mode", mode, ("auto", "memory", "stream")),
        ("on_error", on_error, ("raise", "skip")),
        ("resize", resize, ("stretch", "crop")),
        ("decode", decode, ("workers", "device")),
    ]:
        if value not in allowed:
            raise ValueError(
                f"image folder: {key}={value!r} is not one of {', '.join(map(repr, allowed))}"
            )


def _unlabel(ds: Any) -> Any:
    if ds is None:
        return None
    if isinstance(ds, StreamingImageDataset):
        return ds.with_labels(torch.full_like(ds.labels, -1))
    return ImageTensorDataset(ds.images, torch.full_like(ds.labels, -1))
