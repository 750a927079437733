"""BEYOND: an input against its augmented neighbours in the SSL encoder (He et al., ICML 2024).

"Be Your Own Neighborhood: Detecting Adversarial Examples by the Neighborhood Relations
Built on Self-Supervised Learning". A clean input and its augmentations ("neighbours")
stay close in the SSL representation and keep the classifier's label; an adversarial
input, pushed just across a decision boundary, loses both. For each input ``x``:

* ``k`` neighbours are drawn with the arm's own view maker (the augmentations the SSL
  encoder was trained with). A view maker returns ``v`` views per call (SimCLR and
  BYOL: 2; DINO multi-crop: 2 global + n local); every view counts as one neighbour:
  the maker is called ``ceil(k / v)`` times on the batch and the first ``k`` views are
  kept, in order (call 1's views ``1..v``, then call 2's, ...). Separate calls rather
  than one call on repeated inputs, because a maker may draw some choices once per
  call (``vision:simclr`` draws the order of its colour-jitter operations per batch);
  the reference code and ART also call the augmentation once per neighbour.
  Asymmetric makers (BYOL: view 1 always blurred) thus give a mix of both kinds of
  neighbour; multi-crop makers give neighbours of several sizes (the encoder pools each).
* **Representation similarity**: the cosine similarity between the encoder's pooled
  embedding of ``x`` and of each neighbour. The paper uses the SSL projector's output;
  an evaluator only holds the encoder, so this is the projector-free embedding.
* **Label consistency**: whether the clean probe gives a neighbour the label it gives
  ``x`` (for an adversarial ``x`` that is the adversarial label).

Scores (higher: more likely adversarial), all returned as components:

* ``similarity = 1 - mean cosine``, ``consistency = 1 - fraction of agreeing labels``;
* ``sum = similarity + consistency`` (the default main score: continuous, for AUROC);
* ``paper``: the reference code's statistic (its ``detect_cifar10.py``, and ART's
  ``BeyondDetectorPyTorch``): per neighbour ``alpha * cos(onehot(label(x)),
  logits(neighbour)) + (1 - alpha) * cos(z(x), z(neighbour))``, sorted, and the
  ``rank``-th largest value negated. The paper thresholds it at the 5th percentile of
  clean inputs; AUROC ranks it.

Example:
    >>> BEYOND(k=8, rank=4).describe()["k"]
    8
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from selfsup_security.detectors.base import DetectorScores, InputDetector

__all__ = ["BEYOND", "neighbour_views"]

_OWNER = "security:beyond"


def _as_list(out: Any) -> list[Tensor]:
    if isinstance(out, dict):
        raise ValueError(
            f"{_OWNER}: the arm's view maker returns a dict ({sorted(out)}), as masked "
            "objectives do; BEYOND needs augmented views of each input (a list of tensors). "
            "Give the arm an augmentation view maker such as vision:simclr"
        )
    views = list(out) if isinstance(out, list | tuple) else [out]
    if not views or not all(isinstance(v, Tensor) for v in views):
        raise ValueError(
            f"{_OWNER}: the arm's view maker must return a list of tensors, got "
            f"{type(out).__name__}"
        )
    return views


def neighbour_views(views: Any, x: Tensor, k: int) -> list[Tensor]:
    """``k`` augmented neighbours of each input: ``k`` view tensors of ``[B, ...]``.

    Tensor ``j`` holds neighbour ``j`` of every input (see the module docstring for
    the order).

    Raises:
        ValueError: ``views`` is ``None`` or does not return a list of tensors.
    """
    if views is None:
        raise ValueError(
            f"{_OWNER} draws neighbours with the arm's view maker, but the evaluation "
            "context has none (ctx.views is None): give the arm a 'views' entry (the "
            "augmentations the encoder was pretrained with, e.g. vision:simclr)"
        )
    out: list[Tensor] = []
    while len(out) < k:
        got = _as_list(views(x))
        bad = [tuple(v.shape) for v in got if v.shape[0] != x.shape[0]]
        if bad:
            raise ValueError(
                f"{_OWNER}: the arm's view maker returned views of shapes {bad} for a batch of "
                f"{x.shape[0]} inputs; each view must hold one augmentation per input"
            )
        out.extend(got)
    return out[:k]


@contextlib.contextmanager
def _seeded(device: torch.device, seed: int) -> Iterator[None]:
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


class BEYOND(InputDetector):
    """BEYOND: representation similarity and label consistency with augmented neighbours.

    Args:
        k: Neighbours per input (the paper: 50).
        score: The main score: ``"sum"`` (``similarity + consistency``, continuous) or
            ``"paper"`` (the reference code's ``rank``-th largest weighted similarity).
        alpha: Weight of label similarity in the ``paper`` score (the paper: 0.8).
        rank: Which order statistic the ``paper`` score takes (the paper's ``K``: 20);
            at most ``k``.
        batch_size: Inputs whose neighbours are embedded together.
    """

    def __init__(
        self,
        k: Annotated[int, Field(ge=1)] = 50,
        score: Literal["sum", "paper"] = "sum",
        alpha: Annotated[float, Field(ge=0, le=1)] = 0.8,
        rank: Annotated[int, Field(ge=1)] = 20,
        batch_size: Annotated[int, Field(ge=1)] = 64,
    ) -> None:
        if rank > k:
            raise ValueError(
                f"{_OWNER}: rank={rank} must be at most k={k} (the paper score takes the "
                "rank-th largest of k neighbour similarities); lower rank or raise k"
            )
        if score not in ("sum", "paper"):
            raise ValueError(f"{_OWNER}: score={score!r} must be 'sum' or 'paper'")
        self.k, self.score_name, self.alpha, self.rank = int(k), score, float(alpha), int(rank)
        self.batch_size = int(batch_size)

    def _embed(self, model: Any, x: Tensor) -> tuple[Tensor, Tensor]:
        pooled = model.encoder(x).pooled.float()
        return pooled, model.head.to(pooled.device)(pooled).float()

    def _batch(self, model: Any, x: Tensor, views: Any) -> dict[str, Tensor]:
        b = x.shape[0]
        z_x, logits_x = self._embed(model, x)
        label_x = logits_x.argmax(1)
        zs, logits = [], []
        # one forward pass per run of same-shaped neighbours (multi-crop: several sizes)
        for _, run in itertools.groupby(neighbour_views(views, x, self.k), key=lambda v: v.shape):
            z_v, l_v = self._embed(model, torch.cat(list(run)).to(x.device))
            zs.append(z_v.reshape(-1, b, z_v.shape[-1]))
            logits.append(l_v.reshape(-1, b, l_v.shape[-1]))
        z_n = torch.cat(zs).transpose(0, 1)  # [B, k, D]
        l_n = torch.cat(logits).transpose(0, 1)  # [B, k, C]
        cos = F.cosine_similarity(z_x.unsqueeze(1), z_n, dim=2)  # [B, k]
        agree = (l_n.argmax(2) == label_x.unsqueeze(1)).float()
        label_sim = l_n.gather(2, label_x.view(b, 1, 1).expand(b, self.k, 1)).squeeze(2)
        label_sim = label_sim / l_n.norm(dim=2).clamp_min(1e-12)  # cos(onehot, logits)
        weighted = self.alpha * label_sim + (1 - self.alpha) * cos
        kth = weighted.sort(dim=1, descending=True).values[:, self.rank - 1]
        similarity, consistency = 1 - cos.mean(1), 1 - agree.mean(1)
        return {
            "similarity": similarity,
            "consistency": consistency,
            "sum": similarity + consistency,
            "paper": -kth,
        }

    @torch.no_grad()
    def score(self, model: Any, x: Tensor, views: Any, seed: int) -> DetectorScores:
        """Score inputs ``x`` in ``[0, 1]`` (higher: more likely adversarial).

        Raises:
            ValueError: No view maker, or one that does not return views.
        """
        parts: dict[str, list[Tensor]] = {}
        was_training = model.training
        model.eval()
        try:
            with _seeded(x.device, seed):
                for start in range(0, x.shape[0], self.batch_size):
                    got = self._batch(model, x[start : start + self.batch_size], views)
                    for name, value in got.items():
                        parts.setdefault(name, []).append(value.cpu())
        finally:
            model.train(was_training)
        named = {name: torch.cat(values) for name, values in parts.items()}
        return DetectorScores(score=named[self.score_name], components=named)

    def describe(self) -> dict[str, Any]:
        """The parameters, with what the main score is."""
        out = super().describe()
        out["score"] = out.pop("score_name")
        out["representation"] = "encoder pooled embedding (projector-free)"
        out["labels"] = "clean linear probe on the encoder"
        return out
