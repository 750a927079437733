"""DINO on utterances with cluster-aware pseudo-label weighting (``audio:cluster-dino``).

Reference:
    Han et al., "Self-Supervised Learning with Cluster-Aware-DINO for High-Performance
    Robust Speaker Verification", arXiv:2304.05754 (2023).

The DINO part is the core's (the loss terms :func:`selfsup.losses.dino_loss`,
:func:`~selfsup.losses.update_center`, :func:`~selfsup.losses.teacher_entropy`): a
weight-normalised prototype head, a centred and sharpened EMA teacher on the two
global views (the first two of the view list), the student on every view.

The cluster-aware part. CA-DINO draws a positive pair from two *different* utterances
of one pseudo-speaker cluster instead of two crops of one utterance, and gates
unreliable pseudo-labels. Here, online and inside the batch:

* the teacher's utterance embeddings (mean of the two global views, minus their
  running mean, l2-normalised) are clustered by online mini-batch k-means
  (``num_clusters`` prototypes, buffers; the first batch seeds them, every training
  step moves each prototype towards its members with rate ``1 / count``; sums are
  all-reduced under ``torchrun``);
* each utterance's pseudo-label is its nearest prototype, its confidence the softmax
  probability of that prototype (cosines over ``cluster_temp``);
* the cluster-aware term: the student's views of utterance ``i`` must also predict
  the mean teacher distribution of the *other* utterances of its cluster in the batch,
  each utterance weighted by its confidence, and ignored below ``confidence_gate``
  (the loss-gate of the paper, with a fixed threshold);
* its weight rises linearly from 0 to ``cluster_weight`` between ``cluster_start``
  and ``cluster_ramp_end`` (fractions of the run): pseudo-labels from an untrained
  teacher are noise, which is why the paper starts from a trained DINO.
"""

from __future__ import annotations

import copy
import math
import weakref
from collections.abc import Iterator
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveFloat, PositiveInt
from selfsup.interfaces import BatchMeta, EncoderOutput, Objective, ObjectiveOutput
from selfsup.losses import (
    all_reduce_sum,
    dino_loss,
    is_distributed,
    teacher_entropy,
    update_center,
)
from torch import Tensor, nn

__all__ = ["ClusterDINO", "DINOProjector"]


class DINOProjector(nn.Module):
    """DINO's head: an MLP to a bottleneck, l2-normalised, then weight-normed prototypes."""

    def __init__(self, in_dim: int, hidden_dim: int, bottleneck_dim: int, out_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, bottleneck_dim),
        )
        self.last = nn.utils.parametrizations.weight_norm(
            nn.Linear(bottleneck_dim, out_dim, bias=False)
        )
        self.last.parametrizations.weight.original0.data.fill_(1.0)
        self.last.parametrizations.weight.original0.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        """Prototype logits ``[B, out_dim]`` of embeddings ``[B, in_dim]``."""
        return self.last(F.normalize(self.mlp(x), dim=-1))


def _frozen(module: nn.Module) -> nn.Module:
    clone = copy.deepcopy(module)
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


@torch.no_grad()
def _ema(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.lerp_(s.detach(), 1.0 - momentum)
    for t, s in zip(teacher.buffers(), student.buffers(), strict=True):
        if t.is_floating_point():
            t.lerp_(s.detach().to(t.dtype), 1.0 - momentum)
        else:
            t.copy_(s)


def _pooled(out: Any, owner: str) -> Tensor:
    pooled = out.pooled if isinstance(out, EncoderOutput) else out
    if not isinstance(pooled, Tensor) or pooled.dim() != 2:
        raise TypeError(f"{owner}: the encoder must return EncoderOutput with pooled [B, D]")
    return pooled


class ClusterDINO(Objective):
    """DINO with an EMA teacher and an online cluster-aware pseudo-label term.

    Args:
        embed_dim: The encoder's ``embed_dim`` (set by the engine).
        hidden_dim: Head MLP width.
        bottleneck_dim: Head bottleneck width.
        out_dim: DINO prototypes.
        student_temp: Student temperature (DINO: 0.1).
        teacher_temp: Teacher temperature (DINO: 0.04-0.07).
        center_momentum: EMA momentum of the centre (DINO: 0.9).
        base_momentum: Teacher EMA momentum at step 0, cosine to ``final_momentum``.
        final_momentum: Teacher EMA momentum at the last step.
        num_clusters: Pseudo-label clusters (about the number of speakers).
        cluster_temp: Temperature of the cluster confidences.
        cluster_weight: Final weight of the cluster-aware term (0 = plain DINO).
        confidence_gate: Utterances below this confidence get weight 0.
        cluster_start: Fraction of the run before the term starts.
        cluster_ramp_end: Fraction of the run where it reaches ``cluster_weight``.
    """

    name = "audio:cluster-dino"

    def __init__(
        self,
        embed_dim: int,
        hidden_dim: PositiveInt = 512,
        bottleneck_dim: PositiveInt = 128,
        out_dim: PositiveInt = 1024,
        student_temp: PositiveFloat = 0.1,
        teacher_temp: PositiveFloat = 0.04,
        center_momentum: Annotated[float, Field(ge=0, le=1)] = 0.9,
        base_momentum: Annotated[float, Field(ge=0, le=1)] = 0.996,
        final_momentum: Annotated[float, Field(ge=0, le=1)] = 1.0,
        num_clusters: Annotated[int, Field(ge=2)] = 8,
        cluster_temp: PositiveFloat = 0.1,
        cluster_weight: Annotated[float, Field(ge=0)] = 1.0,
        confidence_gate: Annotated[float, Field(ge=0, le=1)] = 0.5,
        cluster_start: Annotated[float, Field(ge=0, le=1)] = 0.2,
        cluster_ramp_end: Annotated[float, Field(ge=0, le=1)] = 0.5,
    ) -> None:
        super().__init__()
        if int(embed_dim) < 1:
            raise ValueError(f"{self.name}: embed_dim={embed_dim!r} must be >= 1")
        for key, value in (("base_momentum", base_momentum), ("final_momentum", final_momentum)):
            if not 0 <= value <= 1:
                raise ValueError(f"{self.name}: {key}={value!r} must be in [0, 1]")
        if cluster_ramp_end < cluster_start:
            raise ValueError(
                f"{self.name}: cluster_ramp_end={cluster_ramp_end} must be >= "
                f"cluster_start={cluster_start}"
            )
        if student_temp <= 0 or teacher_temp <= 0 or cluster_temp <= 0:
            raise ValueError(f"{self.name}: temperatures must be > 0")
        self.student_temp, self.teacher_temp = float(student_temp), float(teacher_temp)
        self.center_momentum = float(center_momentum)
        self.base_momentum, self.final_momentum = float(base_momentum), float(final_momentum)
        self.cluster_temp, self.cluster_weight = float(cluster_temp), float(cluster_weight)
        self.confidence_gate = float(confidence_gate)
        self.cluster_start, self.cluster_ramp_end = float(cluster_start), float(cluster_ramp_end)
        self.head = DINOProjector(embed_dim, hidden_dim, bottleneck_dim, out_dim)
        self.teacher_head = _frozen(self.head)
        self.register_module("teacher_encoder", None)
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.register_buffer("prototypes", torch.zeros(num_clusters, embed_dim))
        self.register_buffer("proto_counts", torch.zeros(num_clusters))
        self.register_buffer("emb_mean", torch.zeros(embed_dim))
        self.register_buffer("progress", torch.zeros(()))
        self._student: weakref.ref[nn.Module] | None = None

    # ------------------------------------------------------------------ hooks

    def attach(self, encoder: nn.Module) -> None:
        """Copy the encoder as the EMA teacher (once) and remember the student."""
        self._student = weakref.ref(encoder)
        if self.teacher_encoder is None:
            self.teacher_encoder = _frozen(encoder)
        super().attach(encoder)

    def on_step_end(self, step: int, total_steps: int) -> None:
        """Cosine-scheduled EMA update of the teacher; records the run's progress."""
        total = max(1, int(total_steps))
        frac = min(max(int(step), 0), total) / total
        self.progress.fill_(frac)
        m = (
            self.final_momentum
            - (self.final_momentum - self.base_momentum) * (math.cos(math.pi * frac) + 1.0) / 2.0
        )
        student = self._student() if self._student is not None else None
        if self.teacher_encoder is not None and student is not None:
            _ema(self.teacher_encoder, student, m)
            _ema(self.teacher_head, self.head, m)
        super().on_step_end(step, total_steps)

    def student_parameters(self) -> Iterator[nn.Parameter]:
        """Trainable parameters, never the teacher's."""
        frozen = {id(p) for p in self.teacher_head.parameters()}
        if self.teacher_encoder is not None:
            frozen |= {id(p) for p in self.teacher_encoder.parameters()}
        return (p for p in super().student_parameters() if id(p) not in frozen)

    def current_cluster_weight(self) -> float:
        """The cluster-aware term's weight at the current progress (linear ramp)."""
        frac = float(self.progress)
        if frac < self.cluster_start or self.cluster_weight == 0:
            return 0.0
        if self.cluster_ramp_end <= self.cluster_start or frac >= self.cluster_ramp_end:
            return self.cluster_weight
        ramp = (frac - self.cluster_start) / (self.cluster_ramp_end - self.cluster_start)
        return self.cluster_weight * ramp

    # ------------------------------------------------------------------ clusters

    @torch.no_grad()
    def _centred(self, pooled: Tensor) -> Tensor:
        """L2-normalised embeddings minus the running mean (updated in training).

        Pooled utterance embeddings share a large common component; without removing
        it every cosine is near 1 and one prototype takes every utterance.
        """
        batch_mean = all_reduce_sum(pooled.sum(0)) / all_reduce_sum(
            torch.tensor(float(pooled.shape[0]), device=pooled.device)
        )
        if self.training:
            if float(self.proto_counts.sum()) == 0:
                self.emb_mean.copy_(batch_mean)
            else:
                self.emb_mean.lerp_(batch_mean, 1.0 - self.center_momentum)
        return F.normalize(pooled - self.emb_mean, dim=-1)

    @torch.no_grad()
    def _update_prototypes(self, emb: Tensor) -> None:
        """One online mini-batch k-means step on normalised embeddings ``[B, D]``."""
        k = self.prototypes.shape[0]
        if float(self.proto_counts.sum()) == 0:  # seed from the first batch
            if emb.shape[0] < k:
                return
            init = emb[torch.randperm(emb.shape[0])[:k].to(emb.device)].contiguous()
            if is_distributed():  # every rank starts from rank 0's prototypes
                torch.distributed.broadcast(init, src=0)
            self.prototypes.copy_(F.normalize(init, dim=-1))
        assign = (emb @ self.prototypes.T).argmax(1)
        onehot = F.one_hot(assign, k).to(emb.dtype)
        sums = all_reduce_sum(onehot.T @ emb)
        counts = all_reduce_sum(onehot.sum(0))
        self.proto_counts.add_(counts)
        rate = (counts / self.proto_counts.clamp(min=1)).unsqueeze(1)
        moved = self.prototypes + rate * (sums / counts.clamp(min=1).unsqueeze(1) - self.prototypes)
        self.prototypes.copy_(F.normalize(moved, dim=-1))

    def _cluster_term(
        self, student_out: list[Tensor], teacher_out: list[Tensor], emb: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Confidence-weighted CE to the mean teacher target of same-cluster utterances."""
        with torch.no_grad():
            probs = (emb @ self.prototypes.T / self.cluster_temp).softmax(-1)
            conf, label = probs.max(1)
            weight = conf * (conf >= self.confidence_gate).to(conf.dtype)
            targets = torch.stack(
                [F.softmax((t.float() - self.center) / self.teacher_temp, -1) for t in teacher_out]
            ).mean(0)  # [B, K]
            same = (label[:, None] == label[None, :]).to(weight.dtype)
            same.fill_diagonal_(0)
            pair_w = same * weight[None, :]  # partner j of i, weighted by j's confidence
            norm = pair_w.sum(1, keepdim=True)
            has = (norm[:, 0] > 0).to(weight.dtype) * weight
            cluster_target = (pair_w @ targets) / norm.clamp(min=1e-8)
        terms = [
            -(cluster_target * F.log_softmax(s.float() / self.student_temp, -1)).sum(-1)
            for s in student_out
        ]
        per_item = torch.stack(terms).mean(0)
        loss = (per_item * has).sum() / has.sum().clamp(min=1e-8)
        stats = {
            "cluster_confidence": conf.mean(),
            "cluster_partners": (has > 0).float().mean(),
            "clusters_used": torch.unique(label).numel() * torch.ones(()),
        }
        return loss, stats

    # ------------------------------------------------------------------ forward

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """DINO loss plus the ramped cluster-aware term, over >= 2 views."""
        if not isinstance(views, list | tuple) or len(views) < 2:
            raise TypeError(
                f"{self.name}: needs a list of >= 2 views (two global, then local); got "
                f"{type(views).__name__}; use views audio:wave-views"
            )
        if self.teacher_encoder is None:
            self.attach(encoder)
        feats = [_pooled(encoder(v), self.name) for v in views]
        student_out = [self.head(h) for h in feats]
        with torch.no_grad():
            t_pooled = [_pooled(self.teacher_encoder(v), self.name) for v in views[:2]]
            teacher_out = [self.teacher_head(h) for h in t_pooled]
            emb = self._centred(torch.stack(t_pooled).float().mean(0))
        loss = dino_loss(
            student_out, teacher_out, self.center, self.teacher_temp, self.student_temp
        )
        metrics: dict[str, Any] = {
            "dino": loss.detach(),
            "teacher_entropy": teacher_entropy(teacher_out, self.center, self.teacher_temp),
        }
        if self.training:
            self._update_prototypes(emb)
        weight = self.current_cluster_weight()
        if weight > 0 and float(self.proto_counts.sum()) > 0:
            cluster_loss, stats = self._cluster_term(student_out, teacher_out, emb)
            loss = loss + weight * cluster_loss
            metrics.update(stats, cluster_loss=cluster_loss.detach())
        metrics["cluster_weight"] = weight
        if self.training:
            self.center.copy_(update_center(self.center, teacher_out, self.center_momentum))
        return ObjectiveOutput(loss=loss, metrics=metrics)
