"""Small artefacts of the frozen-feature evaluators: a confusion matrix as CSV (and PNG).

Artefacts go through :meth:`EvalContext.artefact_path` and :meth:`EvalContext.add_artefact`,
so that ``results.json`` lists them and ``selfsup report`` links to them. They are
written on the main rank only, and only inside a run (``ctx.run_dir`` set): a direct
``evaluate`` call in a notebook or a test writes nothing unless it gives a run directory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from selfsup.interfaces import EvalContext

__all__ = ["confusion_matrix", "write_confusion_matrix"]

#: Above this many classes the PNG is skipped (unreadable, and slow to draw).
MAX_PNG_CLASSES = 50


def confusion_matrix(pred: Tensor, y: Tensor, num_classes: int) -> Tensor:
    """Counts ``[C, C]``: row = true class, column = predicted class (``int64``, CPU).

    Example:
        >>> confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), 2).tolist()
        [[1, 1], [0, 1]]
    """
    y = y.reshape(-1).long().cpu()
    pred = pred.reshape(-1).long().cpu()
    flat = torch.bincount(y * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _class_names(meta: dict[str, Any], num_classes: int) -> list[str]:
    """``meta["class_names"]`` (or ``"classes"``) when it names every class, else indices."""
    for key in ("class_names", "classes"):
        names = meta.get(key)
        if isinstance(names, Sequence) and not isinstance(names, str) and len(names) == num_classes:
            return [str(n) for n in names]
    return [str(i) for i in range(num_classes)]


def write_confusion_matrix(
    ctx: EvalContext,
    matrix: Tensor,
    meta: dict[str, Any],
    split: str,
    prefix: str,
) -> None:
    """Write ``<prefix>_confusion_<split>.csv`` (and ``.png`` with matplotlib) as artefacts.

    Does nothing off the main rank or outside a run (``ctx.run_dir is None``).

    Args:
        ctx: The evaluation context (its run directory and artefact list).
        matrix: Counts ``[C, C]``, rows true, columns predicted.
        meta: The dataset's ``meta`` (class names, when it has them).
        split: The split the predictions are of (``test``, or ``val``).
        prefix: The file-name prefix (the metric family, e.g. ``linear``).
    """
    if not ctx.is_main or ctx.run_dir is None:
        return
    names = _class_names(meta, int(matrix.shape[0]))
    rows = matrix.tolist()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["true \\ predicted", *names])
    writer.writerows([name, *row] for name, row in zip(names, rows, strict=True))
    path = ctx.artefact_path(f"{prefix}_confusion_{split}.csv")
    path.write_text(buf.getvalue(), encoding="utf-8")
    caption = f"confusion matrix on the {split} split (rows: true class, columns: predicted)"
    ctx.add_artefact(path, kind="table", caption=caption)
    if len(names) <= MAX_PNG_CLASSES:
        png = _render_png(matrix, names, f"{prefix} probe, {split} split")
        if png is not None:
            path = ctx.artefact_path(f"{prefix}_confusion_{split}.png")
            path.write_bytes(png)
            ctx.add_artefact(path, kind="image", caption=caption)


def _render_png(matrix: Tensor, names: list[str], title: str) -> bytes | None:
    """The matrix as a PNG, or ``None`` when matplotlib is not installed.

    A standalone matplotlib ``Figure``: no pyplot, no change of the global backend.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    n = len(names)
    size = min(8.0, 2.5 + 0.35 * n)
    fig = Figure(figsize=(size, size), layout="constrained")
    ax = fig.add_subplot()
    counts = matrix.double()
    rates = counts / counts.sum(1, keepdim=True).clamp_min(1.0)
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class")
    ticks = list(range(n))
    ax.set_xticks(ticks, names, rotation=90 if n > 10 else 0, fontsize="small")
    ax.set_yticks(ticks, names, fontsize="small")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize="medium")
    if n <= 15:
        for i in range(n):
            for j in range(n):
                value = int(counts[i, j])
                if value:
                    dark = float(rates[i, j]) > 0.5
                    colour = "white" if dark else "black"
                    ax.text(j, i, value, ha="center", va="center", fontsize=7, color=colour)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()
