"""Alignment and uniformity of embeddings on the hypersphere (Wang & Isola, ICML 2020).

For L2-normalised embeddings ``f`` of two views ``x, y`` of the same items:

* ``alignment = E ||f(x) - f(y)||^alpha`` over positive pairs (lower: views agree);
* ``uniformity = log E exp(-t ||f(u) - f(v)||^2)`` over distinct items ``u != v``
  (lower: embeddings spread over the sphere), averaged over the two views.

Both are lower-is-better. Positive pairs come from the arm's own view maker: the runner
passes it as ``views=`` to every evaluator whose ``evaluate`` accepts that keyword.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from selfsup.builtin.evaluators._features import (
    check_finite,
    compute_device,
    has_split,
    positive_float,
    positive_int,
    subsample,
)
from selfsup.engine.runtime import to_device

if TYPE_CHECKING:
    from torch import nn

    from selfsup.engine.runtime import Runtime
    from selfsup.interfaces import DataSplits

__all__ = ["AlignmentUniformity", "alignment", "uniformity"]

_OWNER = "core:alignment-uniformity"


def alignment(z1: Tensor, z2: Tensor, alpha: float = 2.0) -> float:
    """Mean ``||z1_i - z2_i||^alpha`` of paired, L2-normalised embeddings."""
    return float((z1 - z2).norm(dim=1).pow(alpha).mean())


def uniformity(z: Tensor, t: float = 2.0) -> float:
    """``log mean exp(-t ||z_i - z_j||^2)`` over all pairs ``i < j`` (needs two rows)."""
    if z.shape[0] < 2:
        raise ValueError("uniformity needs at least two embeddings")
    sq = torch.pdist(z.double()).pow(2)
    return float(torch.logsumexp(-t * sq, dim=0) - math.log(sq.numel()))


def _inputs(batch: Any) -> Any:
    """The model input of a collated batch: ``x`` of ``(x, y, ...)``, else the batch.

    The same rule as the mini-batch training loop, so views see what they saw in training.
    """
    if isinstance(batch, list | tuple):
        return batch[0]
    return batch


def _as_views(out: Any) -> list[Any]:
    if isinstance(out, dict):
        raise ValueError(
            f"{_OWNER}: the arm's view maker returns a dict ({sorted(out)}), as masked "
            "objectives do; alignment needs augmented views (a list of inputs). Use this "
            "evaluator with an augmentation-based view maker"
        )
    return list(out) if isinstance(out, list | tuple) else [out]


def _two_views(views: Callable[[Any], Any], x: Any) -> tuple[Any, Any]:
    """Two views of ``x``: the first two the view maker returns, or two separate calls."""
    first = _as_views(views(x))
    if len(first) >= 2:
        return first[0], first[1]
    second = _as_views(views(x))
    if not first or not second:
        raise ValueError(f"{_OWNER}: the arm's view maker returned no views")
    return first[0], second[0]


class AlignmentUniformity:
    """Alignment of positive pairs and uniformity of embeddings (both lower-is-better).

    Metrics: ``alignment`` and ``uniformity``. The items come from ``split`` if given,
    else ``val``, else ``test``, else ``train``; a seeded subset of at most
    ``max_items`` of them is used (uniformity compares all pairs). View makers that
    return one view per call are called twice per batch, which gives two independent
    augmentations (and alignment 0 for a deterministic view maker).

    Args:
        alpha: Exponent of the alignment distance.
        t: Temperature of the uniformity kernel.
        split: The split whose items are viewed (``train``, ``val`` or ``test``).
        max_items: At most this many items (seeded random subset); ``None`` uses all.
        batch_size: Items per batch when embedding the views.

    Example:
        >>> AlignmentUniformity(max_items=512).max_items
        512
    """

    def __init__(
        self,
        alpha: float = 2.0,
        t: float = 2.0,
        split: str | None = None,
        max_items: int | None = 4096,
        batch_size: int = 256,
    ) -> None:
        self.alpha = positive_float(_OWNER, "alpha", alpha)
        self.t = positive_float(_OWNER, "t", t)
        if split is not None and split not in ("train", "val", "test"):
            raise ValueError(f"{_OWNER}: split={split!r} must be 'train', 'val' or 'test'")
        self.split = split
        self.max_items = (
            None if max_items is None else positive_int(_OWNER, "max_items", max_items, 2)
        )
        self.batch_size = positive_int(_OWNER, "batch_size", batch_size)

    def _pick_split(self, data: DataSplits) -> str:
        if self.split is not None:
            if not has_split(data, self.split):
                raise ValueError(
                    f"{_OWNER}: split={self.split!r} but the dataset has no such split"
                )
            return self.split
        return next(s for s in ("val", "test", "train") if has_split(data, s))

    @torch.no_grad()
    def evaluate(
        self,
        encoder: nn.Module,
        data: DataSplits,
        runtime: Runtime,
        seed: int = 0,
        views: Callable[[Any], Any] | None = None,
    ) -> dict[str, float]:
        """Embed two views of each item and return alignment and uniformity.

        Raises:
            ValueError: No view maker was given, or the split has fewer than two items.
        """
        if views is None:
            raise ValueError(
                f"{_OWNER} needs the arm's view maker to make positive pairs: call "
                "evaluate(..., views=view_maker) (the runner passes it automatically to "
                "evaluators whose evaluate() accepts 'views')"
            )
        split = self._pick_split(data)
        dataset = data.split(split)
        keep = subsample(len(dataset), self.max_items, seed)
        if keep is not None:
            dataset = torch.utils.data.Subset(dataset, keep.tolist())
        if len(dataset) < 2:
            raise ValueError(f"{_OWNER}: the {split!r} split needs at least two items")
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=self.batch_size, shuffle=False, collate_fn=data.collate
        )
        dev = compute_device(runtime)
        was_training = encoder.training
        encoder.eval()
        z1s, z2s = [], []
        try:
            with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
                torch.manual_seed(seed)
                for batch in loader:
                    v1, v2 = _two_views(views, to_device(_inputs(batch), dev))
                    with runtime.autocast():
                        z1, z2 = encoder(v1).pooled, encoder(v2).pooled
                    z1s.append(F.normalize(z1.float(), dim=1))
                    z2s.append(F.normalize(z2.float(), dim=1))
        finally:
            encoder.train(was_training)
        z1 = check_finite(_OWNER, split, torch.cat(z1s))
        z2 = check_finite(_OWNER, split, torch.cat(z2s))
        return {
            "alignment": alignment(z1, z2, self.alpha),
            "uniformity": 0.5 * (uniformity(z1, self.t) + uniformity(z2, self.t)),
        }
