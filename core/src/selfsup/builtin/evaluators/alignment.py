"""Alignment and uniformity of embeddings on the hypersphere (Wang & Isola, ICML 2020).

For L2-normalised embeddings ``f`` of two views ``x, y`` of the same items:

* ``alignment = E ||f(x) - f(y)||^alpha`` over positive pairs (lower: views agree);
* ``uniformity = log E exp(-t ||f(u) - f(v)||^2)`` over distinct items ``u != v``
  (lower: embeddings spread over the sphere), averaged over the two views.

Both are lower-is-better. Positive pairs come from the arm's own view maker, which the
runner passes in the evaluation context (``ctx.views``), called as ``views(x)``. Labels
are not used: it works for any dataset task.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveFloat, PositiveInt
from torch import Tensor

from selfsup.builtin.evaluators._features import (
    check_finite,
    compute_device,
    has_split,
    positive_float,
    positive_int,
    subsample,
)
from selfsup.runtime import to_device

if TYPE_CHECKING:
    from torch import nn

    from selfsup.interfaces import DataSplits, EvalContext, ViewMaker

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


def _two_views(views: ViewMaker, x: Any) -> tuple[Any, Any]:
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
        alpha: PositiveFloat = 2.0,
        t: PositiveFloat = 2.0,
        split: Literal["train", "val", "test"] | None = None,
        max_items: Annotated[int, Field(ge=2)] | None = 4096,
        batch_size: PositiveInt = 256,
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
    def evaluate(self, encoder: nn.Module, data: DataSplits, ctx: EvalContext) -> dict[str, float]:
        """Embed two views of each item and return alignment and uniformity.

        Raises:
            ValueError: The context has no view maker, or the split has fewer than two
                items.
        """
        runtime, seed, views = ctx.runtime, ctx.seed, ctx.views
        if views is None:
            raise ValueError(
                f"{_OWNER} needs the arm's view maker to make positive pairs, but the "
                "evaluation context has none (ctx.views is None): give the arm a 'views' "
                "entry, or call evaluate(encoder, data, EvalContext(runtime, views=maker))"
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
