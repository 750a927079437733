"""Weighted k-nearest-neighbour classifier on frozen features (InstDisc / DINO protocol).

Features are L2-normalised, so similarity is the cosine. Each of a query's ``k``
nearest neighbours in the memory bank votes for its class with weight
``exp(cos / temperature)``; the class with the largest summed vote wins. ``k`` is
chosen on validation data from a small grid (or fixed), and the held-out split is
scored once with the bank of the final fitting set (see
:func:`~selfsup.builtin.evaluators._features.labelled_splits`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveFloat, PositiveInt
from torch import Tensor

from selfsup.builtin.evaluators._features import (
    accuracy,
    compute_device,
    labelled_splits,
    positive_float,
    positive_int,
)

if TYPE_CHECKING:
    from torch import nn

    from selfsup.interfaces import DataSplits, EvalContext

__all__ = ["KNN", "knn_predict"]

_OWNER = "core:knn"
#: Default grid of neighbour counts (DINO reports 20 and 200).
DEFAULT_K_GRID: tuple[int, ...] = (10, 20, 50, 100, 200)


@torch.no_grad()
def knn_predict(
    bank: Tensor,
    bank_y: Tensor,
    queries: Tensor,
    ks: Sequence[int],
    num_classes: int,
    temperature: float = 0.07,
    batch_size: int = 1024,
) -> dict[int, Tensor]:
    """Temperature-weighted kNN predictions of ``queries`` for several ``k`` at once.

    Args:
        bank: Memory-bank features ``[N, D]``, L2-normalised.
        bank_y: Class indices of the bank ``[N]``.
        queries: Query features ``[M, D]``, L2-normalised, on the bank's device.
        ks: Neighbour counts, each ``<= N``.
        num_classes: Number of classes.
        temperature: Vote temperature: weight ``exp(cos / temperature)``.
        batch_size: Queries per similarity block (bounds memory to ``batch_size * N``).

    Returns:
        ``{k: predicted class indices [M]}``.
    """
    k_max = max(ks)
    preds: dict[int, list[Tensor]] = {k: [] for k in ks}
    for start in range(0, queries.shape[0], batch_size):
        sim = queries[start : start + batch_size] @ bank.T
        top_sim, top_idx = sim.topk(k_max, dim=1)  # sorted, most similar first
        top_y = bank_y[top_idx]
        # Subtracting the row maximum keeps exp() finite and does not change the argmax.
        weight = ((top_sim - top_sim[:, :1]) / temperature).exp()
        for k in ks:
            votes = torch.zeros(top_y.shape[0], num_classes, device=bank.device, dtype=weight.dtype)
            votes.scatter_add_(1, top_y[:, :k], weight[:, :k])
            preds[k].append(votes.argmax(1))
    return {k: torch.cat(v) if v else bank_y.new_empty(0) for k, v in preds.items()}


class KNN:
    """Weighted kNN accuracy with cosine similarity; ``k`` chosen on validation data.

    Metrics: ``knn_acc`` (held-out test accuracy; ``knn_acc_on_val`` when the dataset
    has no test split), ``knn_val_acc`` (validation accuracy of the chosen ``k``) and
    ``knn_k`` (the ``k`` used; grid values above the bank size are clipped to it).

    Args:
        k: A fixed number of neighbours; ``None`` chooses it from ``k_grid``.
        k_grid: Candidate neighbour counts searched on validation data.
        temperature: Vote temperature (0.07 as in InstDisc and DINO).
        val_fraction: Fraction of ``train`` carved out (stratified, seeded) for
            validation when the dataset has no usable ``val`` split.
        refit_on_val: Add the dataset's ``val`` split to the bank for the final score.
        batch_size: Queries per similarity block.

    Example:
        >>> KNN(k=20).k
        20
    """

    def __init__(
        self,
        k: PositiveInt | None = None,
        k_grid: Annotated[Sequence[PositiveInt], Field(min_length=1)]
        | PositiveInt = DEFAULT_K_GRID,
        temperature: PositiveFloat = 0.07,
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1,
        refit_on_val: bool = False,
        batch_size: PositiveInt = 1024,
    ) -> None:
        self.k = None if k is None else positive_int(_OWNER, "k", k)
        grid = [k_grid] if isinstance(k_grid, int) else list(k_grid)
        if not grid:
            raise ValueError(f"{_OWNER}: k_grid must hold at least one value, e.g. [10, 20, 50]")
        self.k_grid = tuple(sorted({positive_int(_OWNER, "k_grid entry", v) for v in grid}))
        self.temperature = positive_float(_OWNER, "temperature", temperature)
        self.val_fraction = positive_float(_OWNER, "val_fraction", val_fraction)
        if self.val_fraction >= 1:
            raise ValueError(f"{_OWNER}: val_fraction={val_fraction!r} must be in (0, 1)")
        self.refit_on_val = bool(refit_on_val)
        self.batch_size = positive_int(_OWNER, "batch_size", batch_size)

    def evaluate(self, encoder: nn.Module, data: DataSplits, ctx: EvalContext) -> dict[str, float]:
        """Choose ``k`` on validation data and report held-out kNN accuracy.

        Raises:
            ValueError: The dataset's task is not a class task, it is unlabelled, or
                it has no held-out split.
        """
        runtime, seed = ctx.runtime, ctx.seed
        s = labelled_splits(
            _OWNER, encoder, data, runtime, seed, self.val_fraction, self.refit_on_val
        )
        dev = compute_device(runtime)

        def norm(x: Tensor) -> Tensor:
            return F.normalize(x.to(dev), dim=1)

        def run(bank: Tensor, bank_y: Tensor, q: Tensor, ks: Sequence[int]) -> dict[int, Tensor]:
            return knn_predict(
                norm(bank), bank_y.to(dev), norm(q), ks, data.num_classes,
                self.temperature, self.batch_size,
            )  # fmt: skip

        grid = (self.k,) if self.k is not None else self.k_grid
        ks = sorted({min(k, s.select_x.shape[0]) for k in grid})
        val_preds = run(s.select_x, s.select_y, s.val_x, ks)
        val_y = s.val_y.to(dev)
        val_accs = {k: accuracy(p, val_y) for k, p in val_preds.items()}
        best_k = max(ks, key=lambda k: (val_accs[k], -k))  # ties: the smaller k
        final_k = min(best_k, s.final_x.shape[0])
        pred = run(s.final_x, s.final_y, s.heldout_x, [final_k])[final_k]
        return {
            s.name("knn_acc"): accuracy(pred, s.heldout_y.to(dev)),
            "knn_val_acc": val_accs[best_k],
            "knn_k": float(final_k),
        }
