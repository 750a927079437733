"""Spectral signatures (Tran, Li & Madry, NeurIPS 2018) on the embeddings of the pretraining set.

A backdoor leaves a trace in learned representations: within the class the poisoned
items belong to, they shift the embeddings along one direction, which becomes the top
singular direction of the class's centred embeddings. For each group (class) ``c``
with embeddings ``R_c``: centre them (``M = R_c - mean``), take the top right singular
vector ``v`` of ``M``, and score each item by its squared projection ``(M_i . v)^2``
(the paper's Algorithm 1); higher is more likely poisoned. The paper removes the top
``1.5 x`` the expected poison count per class; ``security:poison-detection`` ranks the
scores instead (AUROC over every item, classes pooled).

Groups: the split's labels (``labels="split"``: SSL-Backdoor and CTRL poison
target-class items, which keep their label), a clean probe's predictions
(``"probe"``), or one group for everything (``"none"``: a defender without labels).

Difference from ART's ``SpectralSignatureDefense.spectral_signature_scores``: ART
projects the *uncentred* features on ``v`` and does not square (``|R_i . v|``); the
paper (and ``projection: centred``, the default) squares the projection of the centred
ones. On centred features the two agree exactly (ours is ART's squared), and
``projection: uncentred`` reproduces ART's scores. They differ on real embeddings:
with non-negative (ReLU) features the uncentred score keeps the sign of the shift, so it
ranks one side of the class above the other. Measured on digits (16x16) with a white
bottom-right patch on 3% of the train split (all of class 0), random-init
``vision:small-cnn`` (width 16) embeddings, AUROC over every item, centred / uncentred:
3x3 patch 0.52 / 0.72, 4x4 0.57 / 0.82, 6x6 0.96 / 0.95; on raw pixels 0.86 / 0.87,
0.95 / 0.99, 0.99 / 1.00.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> feats = torch.randn(100, 8, generator=g)
    >>> feats[:5] += 6.0  # five shifted items
    >>> s = SpectralSignatures(labels="none").score(feats, None).score
    >>> sorted(s.topk(5).indices.tolist())
    [0, 1, 2, 3, 4]
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import Tensor

from selfsup_security.detectors.base import DetectorScores, SampleDetector

__all__ = ["SpectralSignatures", "spectral_scores"]


def spectral_scores(features: Tensor, projection: str = "centred") -> Tensor:
    """Outlier scores along the top right singular vector ``v`` of the centred ``features``.

    Args:
        features: ``[N, D]`` embeddings of one group.
        projection: ``"centred"``: ``((R_i - mean) . v)^2`` (the paper); ``"uncentred"``:
            ``|R_i . v|`` (ART's ``spectral_signature_scores``).
    """
    r = features.double()
    m = r - r.mean(0, keepdim=True)
    if m.shape[0] < 2 or not bool(m.abs().max() > 0):
        return torch.zeros(m.shape[0], dtype=torch.float64)
    _, _, vh = torch.linalg.svd(m, full_matrices=False)
    if projection == "uncentred":
        return (r @ vh[0]).abs()
    return (m @ vh[0]).pow(2)


class SpectralSignatures(SampleDetector):
    """Outlier score along each group's top singular direction of the centred embeddings.

    Args:
        labels: How items are grouped: ``"split"`` (the split's own labels),
            ``"probe"`` (predictions of a clean linear probe fit on the labelled splits)
            or ``"none"`` (all items in one group).
        min_group: Groups with fewer items score 0 (too few to estimate a direction).
        projection: ``"centred"`` (the paper: squared projection of the centred
            embedding) or ``"uncentred"`` (ART's variant: absolute projection of the raw
            embedding, which keeps the side of the mean the poison lies on).
    """

    def __init__(
        self,
        labels: Literal["split", "probe", "none"] = "split",
        min_group: Annotated[int, Field(ge=2)] = 2,
        projection: Literal["centred", "uncentred"] = "centred",
    ) -> None:
        if labels not in ("split", "probe", "none"):
            raise ValueError(
                f"security:spectral: labels={labels!r} must be 'split', 'probe' or 'none'"
            )
        if projection not in ("centred", "uncentred"):
            raise ValueError(
                f"security:spectral: projection={projection!r} must be 'centred' or 'uncentred'"
            )
        self.labels = labels
        self.min_group = int(min_group)
        self.projection = projection

    def score(self, features: Tensor, groups: Tensor | None) -> DetectorScores:
        """Score each item (higher: more likely poisoned).

        Args:
            features: ``[N, D]`` frozen embeddings.
            groups: ``[N]`` integer groups (classes), or ``None`` for one group.

        Raises:
            ValueError: ``groups`` has another length than ``features``.
        """
        features = features.detach().reshape(features.shape[0], -1).cpu()
        if groups is None:
            groups = torch.zeros(features.shape[0], dtype=torch.long)
        groups = torch.as_tensor(groups).reshape(-1).cpu()
        if groups.numel() != features.shape[0]:
            raise ValueError(
                f"security:spectral: {groups.numel()} group labels for {features.shape[0]} "
                "embeddings; give one label per item"
            )
        scores = torch.zeros(features.shape[0], dtype=torch.float64)
        for g in torch.unique(groups):
            idx = torch.nonzero(groups == g).reshape(-1)
            if idx.numel() >= self.min_group:
                scores[idx] = spectral_scores(features[idx], self.projection)
        return DetectorScores(score=scores)
