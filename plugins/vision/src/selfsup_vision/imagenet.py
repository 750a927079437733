"""ImageNet-1k (ILSVRC2012) from its train/val folders on the user's disk, streamed.

Layouts (``root`` is either)::

    root/ILSVRC/Data/CLS-LOC/{train,val}/   + root/LOC_synset_mapping.txt
                                            + root/LOC_val_solution.csv      (Kaggle)
    root/{train,val}/                       (+ the same two files, optional)

``train/<wnid>/*.JPEG``. ``val/`` is either sorted into ``<wnid>/`` folders (what
torchvision's and most scripts' preparation produces) or flat
(``ILSVRC2012_val_00000001.JPEG``...) with its labels in ``LOC_val_solution.csv``
(``ImageId,PredictionString``, the first word of the string is the wnid) or in a
``val_labels`` file of ``<file name> <wnid or class index>`` lines (the Caffe
``val.txt``). The class index is the line order of ``LOC_synset_mapping.txt``
(``n01440764 tench, Tinca tinca``), else the sorted wnids (the same order).

The official val set is the test split (ImageNet's test labels are not public); the
validation split is carved from train. Images are always streamed
(:class:`~selfsup_vision.streaming.StreamingImageDataset`).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Literal

import torch
from pydantic import NonNegativeInt, PositiveInt
from selfsup.interfaces import DataSplits

from selfsup_vision.datasets import split_indices
from selfsup_vision.decode import Resize
from selfsup_vision.image_folder import IMAGE_SUFFIXES
from selfsup_vision.streaming import OnError, StreamingImageDataset, StreamingSplits

__all__ = ["imagenet", "read_synsets"]

_LAYOUT = (
    "expected root/train/<wnid>/*.JPEG and root/val/ (or root/ILSVRC/Data/CLS-LOC/"
    "{train,val}, the Kaggle layout)"
)


def _data_dir(root: Path) -> Path:
    for folder in (root / "ILSVRC" / "Data" / "CLS-LOC", root):
        if (folder / "train").is_dir():
            return folder
    raise FileNotFoundError(f"ImageNet not found under {str(root)!r}: no train folder; {_LAYOUT}")


def read_synsets(path: Path) -> tuple[list[str], list[str]]:
    """The wnids and descriptions of ``LOC_synset_mapping.txt``, in class-index order.

    Raises:
        ValueError: A line is not ``<wnid> <description>`` or a wnid repeats (named).
    """
    wnids, words = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        wnid, _, desc = line.strip().partition(" ")
        if not (wnid.startswith("n") and wnid[1:].isdigit()):
            raise ValueError(
                f"{path}:{n}: {line.strip()[:60]!r} does not start with a WordNet id such as "
                "n01440764; the file must hold '<wnid> <description>' lines"
            )
        wnids.append(wnid)
        words.append(desc)
    if len(set(wnids)) != len(wnids):
        raise ValueError(f"{path}: a wnid appears twice; restore the original file")
    return wnids, words


def _images(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return sorted(
            e.name
            for e in it
            if e.is_file()
            and not e.name.startswith(".")
            and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES
        )


def _class_files(folder: Path, index: dict[str, int]) -> tuple[list[str], list[int]]:
    files: list[str] = []
    labels: list[int] = []
    for wnid, label in index.items():
        if not (folder / wnid).is_dir():
            continue
        names = _images(folder / wnid)
        files += [f"{wnid}/{n}" for n in names]
        labels += [label] * len(names)
    unknown = sorted(e.name for e in os.scandir(folder) if e.is_dir() and e.name not in index)
    if unknown:
        raise ValueError(
            f"{str(folder)!r}: class folder(s) {unknown[:5]} are not in the class index "
            "(LOC_synset_mapping.txt or the train folders); remove them or fix the index"
        )
    return files, labels


def _val_labels(root: Path, val_labels: str | None) -> dict[str, str]:
    """File stem -> wnid or class index (as text) of the flat val folder."""
    if val_labels:
        path = Path(val_labels).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"val_labels file {str(path)!r} does not exist")
        out = {}
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(
                    f"{path}:{n}: {line[:60]!r} is not '<file name> <wnid or class index>'"
                )
            out[os.path.splitext(parts[0])[0]] = parts[1]
        return out
    path = root / "LOC_val_solution.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"the val folder is flat (no class subfolders) and {str(path)!r} does not exist: "
            "put LOC_val_solution.csv there, sort val/ into <wnid>/ folders, or give "
            "data.params.val_labels: a file of '<file name> <wnid or index>' lines"
        )
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows or rows[0][:2] != ["ImageId", "PredictionString"]:
        raise ValueError(f"{path}: the header is not 'ImageId,PredictionString'")
    try:
        return {r[0]: r[1].split()[0] for r in rows[1:] if r}
    except IndexError as exc:
        raise ValueError(f"{path}: a row has no PredictionString") from exc


def _flat_val(
    folder: Path, labels_of: dict[str, str], index: dict[str, int]
) -> tuple[list[str], list[int]]:
    files, labels = _images(folder), []
    for name in files:
        value = labels_of.get(os.path.splitext(name)[0])
        if value is None:
            raise ValueError(f"{str(folder / name)!r} has no label in the val labels file")
        if value.isdigit() and int(value) < len(index):
            labels.append(int(value))
        elif value in index:
            labels.append(index[value])
        else:
            raise ValueError(f"{str(folder / name)!r}: label {value!r} is not a known class")
    return files, labels


def imagenet(
    root: str,
    size: PositiveInt = 224,
    resize: Resize = "crop",
    val_size: NonNegativeInt = 10000,
    val_labels: str | None = None,
    on_error: OnError = "raise",
    decode: Literal["workers", "device"] = "workers",
    eval_workers: NonNegativeInt = 0,
    split_seed: int = 0,
) -> DataSplits:
    """ImageNet-1k train (pretraining, probe fitting) and val (test), streamed from disk.

    Args:
        root: The dataset folder (see the module docstring for the layouts).
        size: Output side in pixels.
        resize: ``crop`` (shorter side to ``size``, centre crop) or ``stretch``.
        val_size: Training images carved (stratified, seeded) for validation.
        val_labels: Labels of a flat val folder when ``LOC_val_solution.csv`` is absent.
        on_error: ``raise`` (the error names the file) or ``skip`` unreadable images.
        decode: ``workers`` (PIL) or ``device`` (train JPEGs decoded on the GPU).
        eval_workers: DataLoader workers while evaluators embed a split.
        split_seed: Seed of the validation carving.

    Raises:
        FileNotFoundError: No train folder, or a flat val folder without labels.
        ValueError: A class folder outside the class index, an image without a label,
            a malformed index or labels file (named).
    """
    base = Path(root).expanduser()
    data = _data_dir(base)
    mapping = base / "LOC_synset_mapping.txt"
    if mapping.is_file():
        wnids, words = read_synsets(mapping)
    else:
        wnids = sorted(e.name for e in os.scandir(data / "train") if e.is_dir())
        words = list(wnids)
    present = [(w, d) for w, d in zip(wnids, words, strict=True) if (data / "train" / w).is_dir()]
    if len(present) < 2:
        raise ValueError(f"{str(data / 'train')!r} holds {len(present)} class folder(s); {_LAYOUT}")
    index = {w: i for i, (w, _) in enumerate(present)}
    files, labels = _class_files(data / "train", index)
    hw = (size, size)
    encoded = decode == "device"
    train = StreamingImageDataset(
        data / "train", files, torch.tensor(labels), 3, hw, resize, on_error
    )
    test = None
    if (data / "val").is_dir():
        has_dirs = any(e.is_dir() for e in os.scandir(data / "val"))
        if has_dirs:
            vfiles, vlabels = _class_files(data / "val", index)
        else:
            vfiles, vlabels = _flat_val(data / "val", _val_labels(base, val_labels), index)
        test = StreamingImageDataset(
            data / "val", vfiles, torch.tensor(vlabels), 3, hw, resize, on_error
        )
    val = None
    if val_size:
        if val_size >= len(train):
            raise ValueError(f"val_size={val_size} must be below the {len(train)} train images")
        tr, va = split_indices(train.labels, [0.0, val_size / len(train)], split_seed)
        train, val = train.subset(tr), train.subset(va)
    meta = {
        "root": str(base), "channels": 3, "class_names": [w for w, _ in present],
        "descriptions": [d for _, d in present], "mode": "stream",
    }  # fmt: skip
    return StreamingSplits(
        train=train.decoding(True) if encoded else train, val=val, test=test,
        num_classes=len(present), modality="image", meta=meta, workers=eval_workers,
    )  # fmt: skip
