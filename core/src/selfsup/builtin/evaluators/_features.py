"""Shared helpers of the frozen-feature evaluators: splits, labels, standardisation, accuracy.

Every evaluator gets features only through :meth:`DataSplits.embed`, so that graph
datasets (which return the node embeddings of a mask) work unchanged.

Split protocol of the supervised evaluators (:func:`labelled_splits`):

* ``train`` + ``val`` + ``test``: select on ``val``, report on ``test``.
* ``train`` + ``test`` (no ``val``): a stratified, seeded ``val_fraction`` of ``train`` is
  carved out for selection; the final model is fit on the whole ``train`` split.
* ``train`` + ``val`` (no ``test``): the same carving of ``train`` for selection, and the
  dataset's ``val`` split, never seen during selection, is the held-out split. Metric
  names then end in ``_on_val`` so that nobody mistakes them for test figures.
* ``train`` alone: an error (there is nothing held out to report on).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from torch import nn

    from selfsup.interfaces import DataSplits
    from selfsup.runtime import Runtime

__all__ = [
    "LabelledSplits",
    "accuracy",
    "as_grid",
    "check_finite",
    "check_labels",
    "compute_device",
    "cpu_threads_for",
    "embed_split",
    "first_embedded",
    "has_split",
    "item_labels",
    "labelled_splits",
    "positive_float",
    "positive_int",
    "require_labelled",
    "standardize",
    "stratified_split",
    "subsample",
]


def item_labels(items: Any) -> Tensor:
    """The integer label ``y`` of every ``(x, y)`` item of a map-style split.

    Reads a ``TensorDataset``'s label tensor directly; other splits item by item.
    """
    tensors = getattr(items, "tensors", None)
    if tensors is not None and len(tensors) >= 2:
        return torch.as_tensor(tensors[1]).long()
    return torch.as_tensor([int(items[i][1]) for i in range(len(items))], dtype=torch.long)


def has_split(data: DataSplits, name: str) -> bool:
    """Whether ``data`` has a non-empty split called ``name``."""
    return getattr(data, name, None) is not None


def compute_device(runtime: Runtime) -> torch.device:
    """The device evaluators compute on: the runtime's device (a GPU when there is one)."""
    return runtime.device


#: Below this many feature entries, CPU work runs on one thread (see :func:`cpu_threads_for`).
SMALL_PROBLEM = 1 << 21


@contextlib.contextmanager
def cpu_threads_for(device: torch.device, numel: int) -> Iterator[None]:
    """Run small CPU problems on one intra-op thread, restoring the setting afterwards.

    Iterative solvers on small matrices (thousands of tiny ops) gain nothing from
    several threads, and on a busy machine the threads' synchronisation makes them
    up to 50x slower. Large problems and GPUs keep the configured parallelism.
    """
    before = torch.get_num_threads()
    if device.type != "cpu" or numel > SMALL_PROBLEM or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def positive_int(owner: str, name: str, value: object, minimum: int = 1) -> int:
    """Validate an integer parameter ``>= minimum``.

    Raises:
        ValueError: ``value`` is not an integer or is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}: {name}={value!r} must be an integer >= {minimum}")
    return value


def positive_float(owner: str, name: str, value: object, allow_zero: bool = False) -> float:
    """Validate a finite float parameter ``> 0`` (or ``>= 0`` with ``allow_zero``).

    Raises:
        ValueError: ``value`` is not a number or not in range.
    """
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok:
        v = float(value)  # type: ignore[arg-type]
        ok = v == v and v != float("inf") and (v >= 0 if allow_zero else v > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{owner}: {name}={value!r} must be a finite number {bound}")
    return float(value)  # type: ignore[arg-type]


#: What to use instead of a class-label evaluator, per dataset task.
_INSTEAD = {
    "none": "use a label-free evaluator such as core:rankme or core:alignment-uniformity",
    "multilabel": "use core:rankme or core:alignment-uniformity, or a multi-label evaluator",
    "regression": "use core:rankme or core:alignment-uniformity, or a regression evaluator",
    "segmentation": (
        "use a segmentation evaluator (Dice on a decoder, from a plugin) or the label-free "
        "core:rankme"
    ),
}


def require_labelled(owner: str, data: DataSplits) -> None:
    """Fail early for a label-based evaluator on a dataset without one class per item.

    Linear probes, kNN and k-means need :attr:`DataSplits.task` to be one of
    :data:`~selfsup.interfaces.CLASS_TASKS` (``y`` one integer class per item) and
    ``num_classes >= 1``.

    Raises:
        ValueError: The dataset's task is not a class task (segmentation maps,
            multi-label vectors, regression targets, no labels), or it declares no
            classes (``num_classes < 1``). The message names ``owner``, the task and
            what to use instead.
    """
    from selfsup.interfaces import CLASS_TASKS

    task = getattr(data, "task", None) or ("classification" if data.num_classes else "none")
    if task not in CLASS_TASKS:
        instead = _INSTEAD.get(task, _INSTEAD["none"])
        raise ValueError(
            f"{owner} needs one class label per item, but the dataset's task is {task!r} "
            f"(DataSplits.task, num_classes={data.num_classes}); it applies to the class "
            f"tasks {', '.join(CLASS_TASKS)}: {instead}"
        )
    if data.num_classes < 1:
        raise ValueError(
            f"{owner} needs class labels, but the dataset declares num_classes="
            f"{data.num_classes} (unlabelled); use a label-free evaluator such as "
            "core:rankme, or a labelled dataset"
        )


def check_labels(owner: str, data: DataSplits, split: str, y: Tensor) -> Tensor:
    """Check that a split's labels are usable class indices and return them as ``int64``.

    Raises:
        ValueError: The dataset is unlabelled, or labels are missing (``-1``) or out
            of range ``[0, num_classes)``.
    """
    require_labelled(owner, data)
    y = y.reshape(-1).long()
    missing = int((y < 0).sum())
    if missing:
        raise ValueError(
            f"{owner} needs class labels, but {missing} of {y.numel()} items of the "
            f"{split!r} split have label -1 (unlabelled)"
        )
    if y.numel() and int(y.max()) >= data.num_classes:
        raise ValueError(
            f"{owner}: the {split!r} split has label {int(y.max())} but the dataset "
            f"declares num_classes={data.num_classes}; labels must be in [0, num_classes)"
        )
    return y


def check_finite(owner: str, split: str, x: Tensor) -> Tensor:
    """Check that embeddings are finite (a diverged encoder yields NaN or inf).

    Raises:
        ValueError: Some embedding entries are NaN or infinite.
    """
    bad = int((~torch.isfinite(x)).any(dim=-1).sum()) if x.numel() else 0
    if bad:
        raise ValueError(
            f"{owner}: {bad} of {x.shape[0]} embeddings of the {split!r} split hold NaN or "
            "inf; the encoder has diverged (check the run's loss and learning rate)"
        )
    return x


def stratified_split(y: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Split indices into (rest, held-out) with ``fraction`` of every class held out.

    Each class with at least two items keeps at least one item on both sides, so
    every class that can be is represented in both parts. Deterministic in ``seed``.

    Returns:
        Sorted ``int64`` index tensors ``(rest, held_out)``.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"stratified_split: fraction={fraction!r} must be in (0, 1)")
    gen = torch.Generator().manual_seed(int(seed))
    y = y.reshape(-1).cpu()
    rest, held = [], []
    for cls in torch.unique(y):
        idx = torch.nonzero(y == cls).reshape(-1)
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        n = idx.numel()
        n_held = round(fraction * n)
        if n >= 2:
            n_held = min(max(n_held, 1), n - 1)
        held.append(idx[:n_held])
        rest.append(idx[n_held:])
    return torch.cat(rest).sort().values, torch.cat(held).sort().values


def subsample(n: int, max_items: int | None, seed: int) -> Tensor | None:
    """Seeded random indices of at most ``max_items`` of ``n`` items (``None``: keep all)."""
    if max_items is None or n <= max_items:
        return None
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=gen)[:max_items].sort().values


def standardize(fit: Tensor, *others: Tensor, eps: float = 1e-6) -> list[Tensor]:
    """Zero-mean, unit-variance features using the statistics of ``fit`` only.

    Constant features (standard deviation below ``eps``) are centred but not scaled.
    """
    mean = fit.mean(0, keepdim=True)
    std = fit.std(0, unbiased=False, keepdim=True)
    std = torch.where(std < eps, torch.ones_like(std), std)
    return [(t - mean) / std for t in (fit, *others)]


def accuracy(pred: Tensor, y: Tensor) -> float:
    """Fraction of ``pred`` equal to ``y`` (``nan`` for an empty split)."""
    if y.numel() == 0:
        return float("nan")
    return float((pred.reshape(-1) == y.reshape(-1)).double().mean())


@dataclass
class LabelledSplits:
    """Features and labels for selection and final reporting.

    Attributes:
        select_x, select_y: What candidate models are fit on during selection.
        val_x, val_y: Where candidates are scored (dataset ``val`` or carved from train).
        final_x, final_y: What the chosen model is fit on.
        heldout_x, heldout_y: Where the chosen model is reported once.
        heldout: ``"test"``, or ``"val"`` when the dataset has no test split.
        val_carved: Whether the validation part was carved out of ``train``.
    """

    select_x: Tensor
    select_y: Tensor
    val_x: Tensor
    val_y: Tensor
    final_x: Tensor
    final_y: Tensor
    heldout_x: Tensor
    heldout_y: Tensor
    heldout: str
    val_carved: bool

    def name(self, metric: str) -> str:
        """The reported metric's name: ``metric``, or ``metric + "_on_val"`` without test."""
        return metric if self.heldout == "test" else f"{metric}_on_val"


def embed_split(
    owner: str, encoder: nn.Module, data: DataSplits, split: str, runtime: Runtime
) -> tuple[Tensor, Tensor] | None:
    """Frozen embeddings and labels of ``split``, or ``None`` when the dataset lacks it.

    A split is missing when its attribute is ``None``, unless the dataset overrides
    :meth:`DataSplits.embed` (graph datasets keep one graph in ``train`` and select
    nodes by mask): then ``embed`` decides, and a ``KeyError`` from it means missing,
    as :meth:`DataSplits.split` raises.

    Raises:
        ValueError: The embeddings hold NaN or inf.
    """
    from selfsup.interfaces import DataSplits

    overrides = type(data).embed is not DataSplits.embed
    if not has_split(data, split) and not overrides:
        return None
    try:
        x, y = data.embed(encoder, split, runtime)
    except KeyError:
        if has_split(data, split):
            raise
        return None
    return check_finite(owner, split, x.float()), y


@torch.no_grad()
def labelled_splits(
    owner: str,
    encoder: nn.Module,
    data: DataSplits,
    runtime: Runtime,
    seed: int,
    val_fraction: float = 0.1,
    refit_on_val: bool = False,
) -> LabelledSplits:
    """Embed the splits and arrange them for select-on-val, report-on-held-out.

    See the module docstring for the protocol. With ``refit_on_val`` the final model
    is fit on ``train`` plus the dataset's own ``val`` split (only when ``val`` is the
    selection split; a carved validation part always returns to ``train``).

    Raises:
        ValueError: No train or held-out split exists, or labels are unusable.
    """
    require_labelled(owner, data)
    loaded: dict[str, tuple[Tensor, Tensor]] = {}
    for split in ("train", "val", "test"):
        got = embed_split(owner, encoder, data, split, runtime)
        if got is not None:
            loaded[split] = (got[0], check_labels(owner, data, split, got[1]))
    if "train" not in loaded:
        raise ValueError(f"{owner} needs a 'train' split to fit on; the dataset has none")
    if "val" not in loaded and "test" not in loaded:
        raise ValueError(
            f"{owner} needs a held-out split, but the dataset has only 'train'; give the "
            "dataset a 'val' or 'test' split (most dataset plugins take a split parameter)"
        )
    x_tr, y_tr = loaded["train"]
    if "val" in loaded and "test" in loaded:
        (x_va, y_va), (x_te, y_te) = loaded["val"], loaded["test"]
        final_x, final_y = x_tr, y_tr
        if refit_on_val:
            final_x, final_y = torch.cat([x_tr, x_va]), torch.cat([y_tr, y_va])
        return LabelledSplits(x_tr, y_tr, x_va, y_va, final_x, final_y, x_te, y_te, "test", False)
    heldout = "test" if "test" in loaded else "val"
    x_ho, y_ho = loaded[heldout]
    rest, held = stratified_split(y_tr, val_fraction, seed)
    if rest.numel() == 0 or held.numel() == 0:
        raise ValueError(
            f"{owner}: the train split ({y_tr.numel()} items) is too small to carve a "
            f"validation part of val_fraction={val_fraction}"
        )
    return LabelledSplits(
        x_tr[rest], y_tr[rest], x_tr[held], y_tr[held], x_tr, y_tr, x_ho, y_ho, heldout, True
    )


def first_embedded(
    owner: str,
    encoder: nn.Module,
    data: DataSplits,
    runtime: Runtime,
    split: str | None,
    order: Sequence[str],
) -> tuple[str, Tensor, Tensor]:
    """Embed ``split``, or without one the first split of ``order`` the dataset has.

    Returns:
        ``(split name, features, labels)``.

    Raises:
        ValueError: The asked split (or every split of ``order``) is missing.
    """
    for name in (split,) if split is not None else order:
        got = embed_split(owner, encoder, data, name, runtime)
        if got is not None:
            return name, got[0], got[1]
    what = f"split={split!r}" if split is not None else f"any of the splits {list(order)}"
    raise ValueError(f"{owner}: the dataset has no {what}")


def as_grid(owner: str, name: str, values: Sequence[float] | float) -> tuple[float, ...]:
    """Validate a non-empty grid of positive numbers (a single number is a grid of one).

    Raises:
        ValueError: The grid is empty or holds a non-positive value.
    """
    seq = [values] if isinstance(values, int | float) else list(values)
    if not seq:
        raise ValueError(f"{owner}: {name} must hold at least one value")
    return tuple(positive_float(owner, f"{name} entry", v, allow_zero=True) for v in seq)
