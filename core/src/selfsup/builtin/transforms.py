"""Modality-free data transforms (``core:subsample``, ``core:label-noise``).

A transform changes a loaded dataset before views, with the run's seed; configs list
them under ``data.transforms``. Both work on any map-style split of ``(x, y)`` items
(images, clips, rows), keep the per-item flags of the split aligned, and never mutate
the dataset they receive (the engine caches it across arms).

Example:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from selfsup.interfaces import DataSplits
    >>> data = DataSplits(train=TensorDataset(torch.randn(100, 4), torch.arange(100) % 2),
    ...                   num_classes=2)
    >>> len(Subsample(fraction=0.25)(data, seed=0).train)
    25
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch.utils.data import Dataset, Subset

from selfsup.builtin.evaluators._features import item_labels
from selfsup.interfaces import DataSplits, Transform

__all__ = ["LabelNoise", "Subsample"]

SplitName = Literal["train", "val", "test"]


def _map_split(owner: str, data: DataSplits, split: str) -> Any:
    """The split, which must be a map-style dataset of ``(x, y)`` items."""
    try:
        items = data.split(split)
    except KeyError:
        raise ValueError(f"{owner}: the dataset has no {split!r} split") from None
    if getattr(items, "num_nodes", None) is not None or not hasattr(items, "__len__"):
        raise ValueError(
            f"{owner}: the {split!r} split is not a list of items (a whole graph?); "
            "use a transform of the dataset's own plugin"
        )
    return items


class Subsample(Transform):
    """Keep a seeded random part of one split (the label budget, or a smaller pretraining set).

    Args:
        fraction: Part of the split to keep, in (0, 1].
        max_items: Keep at most this many items (applied after ``fraction``).
        split: Which split to subsample.
        stratified: Keep the class proportions (needs class labels).
    """

    def __init__(
        self,
        fraction: Annotated[float, Field(gt=0, le=1)] = 1.0,
        max_items: Annotated[int, Field(ge=1)] | None = None,
        split: SplitName = "train",
        stratified: bool = False,
    ) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f"core:subsample: fraction={fraction} must be in (0, 1]")
        self.fraction = fraction
        self.max_items = max_items
        self.split = split
        self.stratified = stratified
        self._summary: dict[str, Any] = {}

    def __call__(self, data: DataSplits, seed: int) -> DataSplits:
        """Return the splits with ``split`` subsampled (flags sliced alike)."""
        items = _map_split("core:subsample", data, self.split)
        n = len(items)
        keep_n = max(1, round(n * self.fraction))
        if self.max_items is not None:
            keep_n = min(keep_n, self.max_items)
        gen = torch.Generator().manual_seed(seed)
        if self.stratified:
            if not data.has_class_labels:
                raise ValueError(
                    "core:subsample: stratified=true needs class labels; the dataset's task "
                    f"is {data.task!r} (set stratified: false)"
                )
            keep = _stratified(item_labels(items), keep_n, gen)
        else:
            keep = torch.randperm(n, generator=gen)[:keep_n].sort().values
        flags = {k: dict(v) for k, v in data.flags.items()}
        if self.split in flags:
            flags[self.split] = {k: v[keep] for k, v in flags[self.split].items()}
        self._summary = {"split": self.split, "items_before": n, "items_after": len(keep)}
        return data.replace(**{self.split: Subset(items, keep.tolist())}, flags=flags)

    def summary(self) -> dict[str, Any]:
        """Items before and after."""
        return dict(self._summary)


def _stratified(labels: torch.Tensor, count: int, gen: torch.Generator) -> torch.Tensor:
    """``count`` indices with the class proportions of ``labels`` (at least one per class)."""
    classes = labels.unique()
    picked = []
    for cls in classes:
        idx = (labels == cls).nonzero().flatten()
        share = max(1, round(count * len(idx) / len(labels)))
        picked.append(idx[torch.randperm(len(idx), generator=gen)[:share]])
    return torch.cat(picked).sort().values


class _Relabelled(Dataset):
    """A split whose labels are replaced (the items are read from the original)."""

    def __init__(self, items: Any, labels: torch.Tensor) -> None:
        self.items = items
        self.labels = labels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor]:
        x = self.items[index][0]
        return x, self.labels[index]


class LabelNoise(Transform):
    """Replace a seeded fraction of one split's labels by another class, flagging them.

    The flipped items carry the flag ``"label_noise"`` (``True``), so an evaluator or
    an objective can tell them apart. Symmetric noise: the new class is drawn
    uniformly among the other classes.

    Args:
        rate: Fraction of the split's labelled items to flip, in [0, 1].
        split: Which split (``"train"`` for noisy probe labels).
    """

    def __init__(
        self, rate: Annotated[float, Field(ge=0, le=1)] = 0.1, split: SplitName = "train"
    ) -> None:
        if not 0 <= rate <= 1:
            raise ValueError(f"core:label-noise: rate={rate} must be in [0, 1]")
        self.rate = rate
        self.split = split
        self._summary: dict[str, Any] = {}

    def __call__(self, data: DataSplits, seed: int) -> DataSplits:
        """Return the splits with noisy labels on ``split`` and a ``label_noise`` flag."""
        if not data.has_class_labels or data.num_classes < 2:
            raise ValueError(
                "core:label-noise needs a dataset with at least two classes; this one has "
                f"task {data.task!r} and {data.num_classes} class(es)"
            )
        items = _map_split("core:label-noise", data, self.split)
        labels = item_labels(items)
        gen = torch.Generator().manual_seed(seed)
        labelled = (labels >= 0).nonzero().flatten()
        count = round(len(labelled) * self.rate)
        flip = labelled[torch.randperm(len(labelled), generator=gen)[:count]]
        shift = torch.randint(1, data.num_classes, (len(flip),), generator=gen)
        noisy = labels.clone()
        noisy[flip] = (labels[flip] + shift) % data.num_classes
        mask = torch.zeros(len(labels), dtype=torch.bool)
        mask[flip] = True
        self._summary = {"split": self.split, "flipped": int(count), "items": len(labels)}
        out = data.replace(**{self.split: _Relabelled(items, noisy)})
        return out.with_flags(self.split, label_noise=mask)

    def summary(self) -> dict[str, Any]:
        """How many labels were flipped."""
        return dict(self._summary)
