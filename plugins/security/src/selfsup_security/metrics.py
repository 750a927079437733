"""Detection metrics: ROC curve, AUROC and the true-positive rate at a false-positive rate.

Convention everywhere in this plugin: ``labels`` are ``1`` for the positive class (an
adversarial input, a poisoned sample) and ``0`` for clean; a **higher score means more
likely positive**. Ties are handled exactly: AUROC counts a tied positive/negative pair
as one half (the Mann-Whitney statistic with mid-ranks, which is what scikit-learn's
``roc_auc_score`` computes), and the ROC curve moves diagonally through a group of tied
scores (one point per distinct threshold, as ``sklearn.metrics.roc_curve``).

:func:`tpr_at_fpr` reads the ROC curve as a step function and never interpolates: it
is the highest TPR of a threshold ``score >= t`` whose FPR does not exceed ``fpr``
(a detector cannot split a group of tied scores, so no threshold inside it is offered).

Example:
    >>> import torch
    >>> s = torch.tensor([0.1, 0.4, 0.35, 0.8])
    >>> y = torch.tensor([0, 0, 1, 1])
    >>> auroc(s, y)
    0.75
    >>> tpr_at_fpr(s, y, fpr=0.0)
    0.5
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["auroc", "roc_curve", "tpr_at_fpr"]


def _check(scores: Any, labels: Any, owner: str) -> tuple[Tensor, Tensor]:
    s = torch.as_tensor(scores).detach().reshape(-1).double().cpu()
    y = torch.as_tensor(labels).detach().reshape(-1).cpu()
    if s.numel() != y.numel():
        raise ValueError(
            f"{owner}: {s.numel()} scores but {y.numel()} labels; give one score per labelled item"
        )
    if not torch.isfinite(s).all():
        bad = int((~torch.isfinite(s)).sum())
        raise ValueError(
            f"{owner}: {bad} of {s.numel()} scores are NaN or infinite; a detector must give "
            "every item a finite score (check the encoder's embeddings for NaN)"
        )
    if y.dtype == torch.bool:
        y = y.long()
    values = set(torch.unique(y).tolist())
    if not values <= {0, 1}:
        raise ValueError(
            f"{owner}: labels must be 0 (clean) or 1 (positive: adversarial, poisoned), "
            f"got the values {sorted(values)}"
        )
    y = y.long()
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.numel():
        which = "positive (1)" if n_pos == 0 else "clean (0)"
        raise ValueError(
            f"{owner} needs both classes, but there is no {which} item among {y.numel()} "
            "labels: the ROC curve is undefined (did the attack never succeed, or does the "
            "split hold no poisoned item?)"
        )
    return s, y


def roc_curve(
    scores: Sequence[float] | Tensor, labels: Sequence[int] | Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The ROC curve: one point per distinct score, from the highest threshold down.

    Args:
        scores: One score per item; higher means more likely positive.
        labels: ``1`` positive, ``0`` clean (bool or integer).

    Returns:
        ``(fpr, tpr, thresholds)``, float64, starting at ``(0, 0)`` with threshold
        ``+inf``; point ``i`` predicts positive for ``score >= thresholds[i]``.

    Raises:
        ValueError: Lengths differ, a score is not finite, a label is not 0/1, or only
            one class is present.
    """
    s, y = _check(scores, labels, "roc_curve")
    order = torch.argsort(s, descending=True, stable=True)
    s, y = s[order], y[order].double()
    tps, fps = torch.cumsum(y, 0), torch.cumsum(1.0 - y, 0)
    # the last position of every run of tied scores: a threshold cannot split ties
    last = torch.ones_like(s, dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]
    tps, fps, thr = tps[last], fps[last], s[last]
    zero = torch.zeros(1, dtype=torch.float64)
    tpr = torch.cat([zero, tps / tps[-1]])
    fpr = torch.cat([zero, fps / fps[-1]])
    return fpr, tpr, torch.cat([torch.tensor([float("inf")], dtype=torch.float64), thr])


def auroc(scores: Sequence[float] | Tensor, labels: Sequence[int] | Tensor) -> float:
    """Area under the ROC curve (ties count one half).

    The probability that a random positive scores above a random clean item, plus half
    the probability of a tie: ``0.5`` is chance, ``1.0`` perfect separation.

    Raises:
        ValueError: As :func:`roc_curve`.
    """
    s, y = _check(scores, labels, "auroc")
    # mid-ranks of the scores (ties share the mean of their ranks)
    _, inverse, counts = torch.unique(s, return_inverse=True, return_counts=True)
    upper = torch.cumsum(counts, 0).double()
    mid = upper - (counts.double() - 1.0) / 2.0
    ranks = mid[inverse]
    n_pos = int(y.sum())
    n_neg = y.numel() - n_pos
    u = float(ranks[y == 1].sum()) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def tpr_at_fpr(
    scores: Sequence[float] | Tensor, labels: Sequence[int] | Tensor, fpr: float = 0.05
) -> float:
    """The highest TPR of a threshold whose false-positive rate is at most ``fpr``.

    Args:
        scores: One score per item; higher means more likely positive.
        labels: ``1`` positive, ``0`` clean.
        fpr: The false-positive budget, in ``[0, 1]``.

    Raises:
        ValueError: ``fpr`` is outside ``[0, 1]``, or as :func:`roc_curve`.
    """
    if not 0.0 <= float(fpr) <= 1.0:
        raise ValueError(f"tpr_at_fpr: fpr={fpr!r} must be in [0, 1] (0.05 for 5%)")
    fprs, tprs, _ = roc_curve(scores, labels)
    ok = fprs <= float(fpr) + 1e-12
    return float(tprs[ok].max())
