"""Graph evaluators: link prediction on held-out edges.

Node classification and clustering need no graph-specific evaluator: graph datasets
return node embeddings through :meth:`GraphSplits.embed`, so ``core:linear-probe``,
``core:knn`` and ``core:kmeans`` evaluate nodes as they are.

Link-prediction protocol: the dataset's ``holdout_edges`` removes a share of the edges
from the graph *before* pretraining (``RandomLinkSplit``, fixed ``split_seed``), so
neither pretraining nor embedding ever sees them. The frozen encoder embeds every node
from the training graph; each held-out edge and each sampled non-edge is scored by the
dot product (or cosine) of its end nodes' embeddings, and ROC-AUC and average precision
are reported. No parameter is fit on the test edges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from selfsup.interfaces import EvalContext
    from torch import nn

__all__ = ["LinkPrediction", "link_scores"]

_OWNER = "graph:link-prediction"


def link_scores(emb: Tensor, pairs: Tensor, score: str = "dot") -> Tensor:
    """Scores of node pairs ``[2, P]`` from node embeddings ``[N, D]``."""
    if score == "cosine":
        emb = F.normalize(emb, dim=-1)
    return (emb[pairs[0]] * emb[pairs[1]]).sum(-1)


class LinkPrediction:
    """ROC-AUC and average precision of held-out edges against non-edges.

    Metrics: ``link_auc`` and ``link_ap`` on the test edges, and ``link_val_auc`` /
    ``link_val_ap`` when the dataset also held out validation edges.

    Args:
        score: ``dot`` (inner product) or ``cosine``.

    Example:
        >>> LinkPrediction(score="cosine").score
        'cosine'
    """

    def __init__(self, score: Literal["dot", "cosine"] = "dot") -> None:
        if score not in ("dot", "cosine"):
            raise ValueError(f"{_OWNER}: score={score!r} must be 'dot' or 'cosine'")
        self.score = score

    def evaluate(self, encoder: nn.Module, data: Any, ctx: EvalContext) -> dict[str, float]:
        """Score the held-out edges of ``data`` with the frozen encoder (no labels used).

        Raises:
            ValueError: The dataset holds no edges out (set its ``holdout_edges``).
        """
        from sklearn.metrics import average_precision_score, roc_auc_score

        link = getattr(data, "meta", {}).get("link_split")
        node_embeddings = getattr(data, "node_embeddings", None)
        if not link or not callable(node_embeddings):
            raise ValueError(
                f"{_OWNER} needs edges held out from pretraining: set the graph dataset's "
                "parameter holdout_edges (e.g. data.params.holdout_edges: 0.1)"
            )
        emb = node_embeddings(encoder, ctx.runtime).float()
        out: dict[str, float] = {}
        for split, prefix in (("test", "link"), ("val", "link_val")):
            if split not in link:
                continue
            pos, neg = link[split]
            scores = torch.cat(
                [link_scores(emb, pos, self.score), link_scores(emb, neg, self.score)]
            )
            if not bool(torch.isfinite(scores).all()):
                raise ValueError(
                    f"{_OWNER}: the embeddings hold NaN or inf; the encoder has diverged"
                )
            labels = torch.cat([torch.ones(pos.size(1)), torch.zeros(neg.size(1))])
            y, s = labels.numpy(), scores.numpy()
            out[f"{prefix}_auc"] = float(roc_auc_score(y, s))
            out[f"{prefix}_ap"] = float(average_precision_score(y, s))
        return out
