"""k-means clustering of frozen features, scored against the labels with NMI and ARI.

k-means runs in torch on the runtime's device: greedy k-means++ seeding (each new
centre the best of ``2 + ln k`` candidates drawn proportionally to squared distance),
Lloyd iterations until the centres move less than ``tol`` times the mean feature
variance, empty clusters re-seeded with the points farthest from their centre, and
``n_init`` seeded restarts of which the lowest inertia wins.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from pydantic import NonNegativeFloat, PositiveInt
from torch import Tensor

from selfsup.builtin.evaluators._cluster_metrics import (
    adjusted_rand_index,
    normalized_mutual_info,
)
from selfsup.builtin.evaluators._features import (
    check_labels,
    compute_device,
    cpu_threads_for,
    first_embedded,
    positive_float,
    positive_int,
    require_labelled,
    standardize,
    subsample,
)

if TYPE_CHECKING:
    from torch import nn

    from selfsup.interfaces import DataSplits, EvalContext

__all__ = ["KMeansClustering", "kmeans"]

_OWNER = "core:kmeans"
_PREPROCESS = ("l2", "standardize", "none")


def _sq_dists(x: Tensor, x_sq: Tensor, centres: Tensor) -> Tensor:
    """Squared Euclidean distances ``[N, K]`` (clamped at 0 against rounding)."""
    c_sq = (centres * centres).sum(1)
    return (x_sq[:, None] - 2.0 * x @ centres.T + c_sq[None, :]).clamp_min_(0.0)


def _kmeans_pp(x: Tensor, x_sq: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """Greedy k-means++ seeding: ``k`` centres chosen among the rows of ``x``."""
    n = x.shape[0]
    trials = 2 + int(math.log(k))
    first = int(torch.randint(n, (1,), generator=gen, device=x.device))
    centres = [x[first]]
    closest = _sq_dists(x, x_sq, x[first : first + 1])[:, 0]
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # fewer distinct points than clusters: any point will do
            cand = torch.randint(n, (trials,), generator=gen, device=x.device)
        else:
            cand = torch.multinomial(closest / total, trials, replacement=True, generator=gen)
        cand_d = torch.minimum(closest[None, :], _sq_dists(x, x_sq, x[cand]).T)
        best = int(cand_d.sum(1).argmin())
        centres.append(x[cand[best]])
        closest = cand_d[best]
    return torch.stack(centres)


def kmeans(
    x: Tensor,
    k: int,
    n_init: int = 10,
    max_iter: int = 300,
    tol: float = 1e-4,
    seed: int = 0,
) -> tuple[Tensor, Tensor, float]:
    """Cluster the rows of ``x`` into ``k`` groups; the best of ``n_init`` restarts.

    Args:
        x: Data ``[N, D]`` (any device; computed in float32).
        k: Number of clusters (``1 <= k <= N``).
        n_init: Number of k-means++ restarts.
        max_iter: Maximum Lloyd iterations per restart.
        tol: Convergence threshold on the squared centre shift, relative to the
            mean per-feature variance of ``x``.
        seed: Seed of the restarts (deterministic on a given device).

    Returns:
        ``(labels [N], centres [k, D], inertia)`` of the lowest-inertia restart.

    Raises:
        ValueError: ``k`` is out of range.
    """
    x = x.float()
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"kmeans: k={k} must be between 1 and the number of items ({n})")
    with torch.no_grad(), cpu_threads_for(x.device, x.numel()):
        return _kmeans(x, k, n_init, max_iter, tol, seed)


def _kmeans(
    x: Tensor, k: int, n_init: int, max_iter: int, tol: float, seed: int
) -> tuple[Tensor, Tensor, float]:
    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    x_sq = (x * x).sum(1)
    threshold = tol * float(x.var(0, unbiased=False).mean())
    best: tuple[Tensor, Tensor, float] | None = None
    for _ in range(n_init):
        centres = _kmeans_pp(x, x_sq, k, gen)
        for _ in range(max_iter):
            d = _sq_dists(x, x_sq, centres)
            labels = d.argmin(1)
            counts = torch.bincount(labels, minlength=k)
            sums = torch.zeros_like(centres).index_add_(0, labels, x)
            empty = torch.nonzero(counts == 0).reshape(-1)
            if empty.numel():  # re-seed with the points farthest from their centre
                own = d.gather(1, labels[:, None])[:, 0]
                far = own.topk(empty.numel()).indices
                sums.index_add_(0, labels[far], -x[far])
                counts.index_add_(0, labels[far], -torch.ones_like(far))
                sums[empty], counts[empty] = x[far], 1
            safe = counts.clamp_min(1)[:, None].to(x.dtype)
            new = torch.where(counts[:, None] > 0, sums / safe, centres)
            shift = float((new - centres).pow(2).sum())
            centres = new
            if shift <= threshold:
                break
        d = _sq_dists(x, x_sq, centres)
        inertia_t, labels = d.min(1)
        inertia = float(inertia_t.sum())
        if best is None or inertia < best[2]:
            best = (labels, centres, inertia)
    assert best is not None
    return best


class KMeansClustering:
    """k-means on frozen features, scored with NMI and ARI against the class labels.

    Metrics: ``kmeans_nmi`` (arithmetic normalisation) and ``kmeans_ari``. Clustering
    selects nothing, so it runs on one split: ``split`` if given, else ``test``, else
    ``val``, else ``train``.

    Args:
        n_clusters: Number of clusters; ``None`` uses the dataset's number of classes.
        preprocess: ``"l2"`` (unit-norm features: cosine geometry, the default),
            ``"standardize"`` (zero mean, unit variance per feature) or ``"none"``.
        n_init: k-means++ restarts; the lowest inertia wins.
        max_iter: Maximum Lloyd iterations per restart.
        tol: Relative convergence tolerance (as scikit-learn's ``tol``).
        split: The split to cluster (``train``, ``val`` or ``test``).
        max_items: Cluster a seeded random subset of at most this many items.

    Example:
        >>> KMeansClustering(n_init=3).n_init
        3
    """

    def __init__(
        self,
        n_clusters: PositiveInt | None = None,
        preprocess: Literal["l2", "standardize", "none"] = "l2",
        n_init: PositiveInt = 10,
        max_iter: PositiveInt = 300,
        tol: NonNegativeFloat = 1e-4,
        split: Literal["train", "val", "test"] | None = None,
        max_items: PositiveInt | None = None,
    ) -> None:
        self.n_clusters = (
            None if n_clusters is None else positive_int(_OWNER, "n_clusters", n_clusters)
        )
        if preprocess not in _PREPROCESS:
            raise ValueError(f"{_OWNER}: preprocess={preprocess!r} must be one of {_PREPROCESS}")
        self.preprocess = preprocess
        self.n_init = positive_int(_OWNER, "n_init", n_init)
        self.max_iter = positive_int(_OWNER, "max_iter", max_iter)
        self.tol = positive_float(_OWNER, "tol", tol, allow_zero=True)
        if split is not None and split not in ("train", "val", "test"):
            raise ValueError(f"{_OWNER}: split={split!r} must be 'train', 'val' or 'test'")
        self.split = split
        self.max_items = None if max_items is None else positive_int(_OWNER, "max_items", max_items)

    def evaluate(self, encoder: nn.Module, data: DataSplits, ctx: EvalContext) -> dict[str, float]:
        """Cluster one split's frozen features and compare the clusters with its labels.

        Raises:
            ValueError: The dataset's task is not a class task, it is unlabelled, or
                there are fewer items than clusters.
        """
        runtime, seed = ctx.runtime, ctx.seed
        require_labelled(_OWNER, data)
        split, x, y = first_embedded(
            _OWNER, encoder, data, runtime, self.split, ("test", "val", "train")
        )
        y = check_labels(_OWNER, data, split, y)
        keep = subsample(x.shape[0], self.max_items, seed)
        if keep is not None:
            x, y = x[keep], y[keep]
        k = self.n_clusters or data.num_classes
        if k > x.shape[0]:
            raise ValueError(
                f"{_OWNER}: n_clusters={k} but the {split!r} split has only {x.shape[0]} items"
            )
        x = x.to(compute_device(runtime))
        if self.preprocess == "l2":
            x = F.normalize(x, dim=1)
        elif self.preprocess == "standardize":
            x = standardize(x)[0]
        labels, _, _ = kmeans(x, k, self.n_init, self.max_iter, self.tol, seed)
        pred, true = labels.cpu().numpy(), y.numpy()
        return {
            "kmeans_nmi": normalized_mutual_info(true, pred),
            "kmeans_ari": adjusted_rand_index(true, pred),
        }
