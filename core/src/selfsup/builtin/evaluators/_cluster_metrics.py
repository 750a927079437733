"""Agreement between two partitions: NMI and ARI from a contingency table (numpy).

Both follow scikit-learn's conventions (NMI with the arithmetic-mean normaliser, its
default; ARI of Hubert and Arabie) without depending on it, which the core does not.
Counts are exact integers and pair counts use Python integers, so large datasets
cannot overflow.
"""

from __future__ import annotations

from math import comb

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["adjusted_rand_index", "contingency_table", "normalized_mutual_info"]


def contingency_table(labels_a: ArrayLike, labels_b: ArrayLike) -> np.ndarray:
    """Counts ``n[i, j]`` of items in class ``i`` of ``labels_a`` and ``j`` of ``labels_b``.

    Labels may be any integers (or hashable numpy values); only their identity matters.

    Raises:
        ValueError: The labelings are not 1-D or differ in length.
    """
    a, b = np.asarray(labels_a).reshape(-1), np.asarray(labels_b).reshape(-1)
    if np.ndim(labels_a) > 1 or np.ndim(labels_b) > 1:
        raise ValueError("partition metrics need 1-D label arrays")
    if a.shape != b.shape:
        raise ValueError(f"labelings differ in length: {a.shape[0]} vs {b.shape[0]}")
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    ia, ib = ia.reshape(-1), ib.reshape(-1)
    na = int(ia.max()) + 1 if ia.size else 0
    nb = int(ib.max()) + 1 if ib.size else 0
    flat = np.bincount(ia * nb + ib, minlength=na * nb)
    return flat.reshape(na, nb).astype(np.int64)


def _entropy(counts: np.ndarray) -> float:
    """Shannon entropy (nats) of a vector of counts."""
    counts = counts[counts > 0].astype(np.float64)
    if counts.size == 0:
        return 0.0
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def normalized_mutual_info(labels_true: ArrayLike, labels_pred: ArrayLike) -> float:
    """Normalised mutual information, ``MI / mean(H(true), H(pred))``.

    Two labelings that each put everything in one cluster (or are empty) score 1;
    otherwise zero mutual information scores 0.
    """
    table = contingency_table(labels_true, labels_pred)
    if table.shape[0] == table.shape[1] and table.shape[0] <= 1:
        return 1.0
    n = float(table.sum())
    rows, cols = table.sum(1).astype(np.float64), table.sum(0).astype(np.float64)
    i, j = np.nonzero(table)
    nij = table[i, j].astype(np.float64)
    mi = float((nij / n * (np.log(nij) + np.log(n) - np.log(rows[i]) - np.log(cols[j]))).sum())
    if table.shape[0] == 1 or table.shape[1] == 1 or mi <= np.finfo(np.float64).eps * 10:
        return 0.0
    normaliser = 0.5 * (_entropy(rows) + _entropy(cols))
    return float(mi / normaliser)


def adjusted_rand_index(labels_true: ArrayLike, labels_pred: ArrayLike) -> float:
    """Adjusted Rand index: pair agreement corrected for chance (1 = identical partitions).

    Partitions that agree on every pair (including the degenerate all-in-one and
    all-singleton cases) score exactly 1.
    """
    table = contingency_table(labels_true, labels_pred)
    n = int(table.sum())
    pairs = comb(n, 2)
    same_both = sum(comb(int(v), 2) for v in table[table > 1])
    same_true = sum(comb(int(v), 2) for v in table.sum(1))
    same_pred = sum(comb(int(v), 2) for v in table.sum(0))
    if same_both == same_true == same_pred:
        return 1.0
    # (index - expected) / (max - expected), multiplied through by ``pairs``.
    numerator = same_both * pairs - same_true * same_pred
    denominator = (same_true + same_pred) * pairs - 2 * same_true * same_pred
    return float(2 * numerator / denominator)
