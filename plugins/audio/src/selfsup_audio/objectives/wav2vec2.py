"""The wav2vec 2.0 objective: masked contrastive prediction of quantized conv features.

Reference:
    Baevski et al., "wav2vec 2.0: A Framework for Self-Supervised Learning of Speech
    Representations", NeurIPS 2020 (Sec. 3: masking p = 0.065, M = 10; contrastive
    loss with K = 100 distractors, cosine similarity over kappa = 0.1; diversity loss
    weight alpha = 0.1; G = 2 codebooks of V = 320 entries; an L2 penalty on the
    feature encoder's activations).

One step: the encoder's conv feature extractor gives local features ``z`` (computed
once); spans of frames are masked; the transformer reads the features with masked
frames replaced by the encoder's learned mask embedding and gives context vectors
``c``. The *unmasked* ``z``, layer-normalised, go through the
:class:`~selfsup_audio.objectives.quantizer.GumbelProductQuantizer` to give targets
``q``. At every masked real frame, ``c_t`` (projected) must pick ``q_t`` (projected)
among ``q_t`` and ``K`` distractors drawn uniformly, with replacement, from the
*other masked* frames of the same utterance (a distractor whose quantized vector
equals the target's counts as a distractor unless ``ignore_identical``: the reference
implementation ignores it, which lets a collapsed codebook reach zero loss). Loss:
``L_m + diversity_weight * L_d + feature_penalty * mean(z ** 2)``. Optionally
``cross_negatives`` more distractors come from the masked frames of the other items
of the batch (fairseq's ``cross_sample_negatives``): on short clips (FSDD: ~25
frames) they add utterance-level contrast (speaker, word) to the within-utterance one.

Metrics: ``context_cos`` (mean cosine between the context vectors of different masked
frames) near 1 is the collapse in which the contrastive loss sits at ``log(K + 1)``:
every masked context vector the same and orthogonal to all targets.

Needs an encoder with ``conv_features(wave) -> (z, lengths)`` and either
``forward_features(z, lengths, time_mask)`` or ``forward_masked(wave, time_mask)``
(``audio:wav2vec2``).
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from selfsup.interfaces import BatchMeta, EncoderOutput, Objective, ObjectiveOutput
from torch import Tensor, nn

from selfsup_audio.objectives.masked_prediction import as_wave, span_mask
from selfsup_audio.objectives.quantizer import GumbelProductQuantizer

__all__ = ["Wav2Vec2Contrastive", "sample_distractors"]


def sample_distractors(
    mask: Tensor,
    num_negatives: int,
    generator: torch.Generator | None = None,
    cross_negatives: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Distractor indices for every masked frame, from other masked frames of its item.

    Args:
        mask: ``[B, T]`` masked real frames.
        num_negatives: ``K`` distractors per masked frame (drawn with replacement).
        generator: CPU generator (default: torch's global one).
        cross_negatives: ``K_c`` more distractors per masked frame drawn from the masked
            frames of the *other* items of the batch (fairseq's
            ``cross_sample_negatives``); they follow the ``K`` own-item ones.

    Returns:
        ``(targets [N], negatives [N, K + K_c], valid [N, K + K_c])``: flat indices into ``B * T``
        of the ``N`` masked frames (row-major), of their distractors, and whether each
        distractor exists (an item with a single masked frame has none).
    """
    b_idx, t_idx = mask.nonzero(as_tuple=True)
    width = mask.shape[1]
    targets = b_idx * width + t_idx
    n = targets.shape[0]
    negatives = torch.zeros(n, num_negatives, dtype=torch.long)
    valid = torch.zeros(n, num_negatives, dtype=torch.bool)
    counts = mask.sum(1).cpu().tolist()
    start = 0
    for count in counts:
        count = int(count)
        if count >= 2:
            own = torch.arange(count)[:, None]
            draw = torch.randint(0, count - 1, (count, num_negatives), generator=generator)
            draw = draw + (draw >= own).long()  # skip the frame itself
            negatives[start : start + count] = start + draw
            valid[start : start + count] = True
        start += count
    if cross_negatives > 0:
        cross = torch.zeros(n, cross_negatives, dtype=torch.long)
        cross_valid = torch.zeros(n, cross_negatives, dtype=torch.bool)
        start = 0
        for count in counts:
            count = int(count)
            others = n - count
            if count and others > 0:
                draw = torch.randint(0, others, (count, cross_negatives), generator=generator)
                cross[start : start + count] = draw + count * (draw >= start).long()
                cross_valid[start : start + count] = True
            start += count
        negatives = torch.cat([negatives, cross], dim=1)
        valid = torch.cat([valid, cross_valid], dim=1)
    width_k = negatives.shape[1]
    negatives = targets.cpu()[negatives.flatten()].view(n, width_k)
    return targets, negatives.to(mask.device), valid.to(mask.device)


class Wav2Vec2Contrastive(Objective):
    """wav2vec 2.0 pretraining: contrastive loss over quantized targets + diversity loss.

    Args:
        embed_dim: The encoder's ``embed_dim`` (set by the engine).
        final_dim: Width both context and targets are projected to (paper: 256).
        code_dim: Quantized vector width (paper: 256).
        groups: Codebooks ``G`` (paper: 2).
        entries: Entries per codebook ``V`` (paper: 320).
        num_negatives: Distractors ``K`` (paper: 100).
        cross_negatives: Further distractors from the masked frames of the other items
            of the batch (fairseq's ``cross_sample_negatives``; paper: 0).
        logit_temp: Temperature ``kappa`` of the cosine logits (paper: 0.1).
        diversity_weight: ``alpha`` (paper: 0.1).
        feature_penalty: Weight of ``mean(z ** 2)`` of the conv features (reference: 10).
        mask_prob: Probability that a frame starts a masked span (paper: 0.065).
        mask_length: Span length ``M`` in frames (paper: 10).
        temp_start: Gumbel temperature at the start (paper: 2).
        temp_end: Gumbel temperature floor (paper: 0.5).
        temp_anneal: Fraction of the run over which the temperature decays.
        ignore_identical: Drop distractors whose quantized vector equals the target's
            (the reference implementation does). Off by default: then a collapsed
            codebook scores the worst loss, ``log(K + 1)``, instead of a perfect 0, which
            on small data (FSDD) is what keeps the codebook from collapsing.
    """

    name = "audio:wav2vec2"

    def __init__(
        self,
        embed_dim: int,
        final_dim: PositiveInt = 256,
        code_dim: PositiveInt = 256,
        groups: PositiveInt = 2,
        entries: Annotated[int, Field(ge=2)] = 320,
        num_negatives: PositiveInt = 100,
        cross_negatives: Annotated[int, Field(ge=0)] = 0,
        logit_temp: Annotated[float, Field(gt=0)] = 0.1,
        diversity_weight: Annotated[float, Field(ge=0)] = 0.1,
        feature_penalty: Annotated[float, Field(ge=0)] = 10.0,
        mask_prob: Annotated[float, Field(gt=0, le=1)] = 0.065,
        mask_length: PositiveInt = 10,
        temp_start: Annotated[float, Field(gt=0)] = 2.0,
        temp_end: Annotated[float, Field(gt=0)] = 0.5,
        temp_anneal: Annotated[float, Field(ge=0, le=1)] = 0.5,
        ignore_identical: bool = False,
    ) -> None:
        super().__init__()
        if int(embed_dim) < 1:
            raise ValueError(f"{self.name}: embed_dim={embed_dim!r} must be >= 1")
        if logit_temp <= 0 or not 0 < mask_prob <= 1:
            raise ValueError(
                f"{self.name}: logit_temp={logit_temp!r} must be > 0 and "
                f"mask_prob={mask_prob!r} in (0, 1]"
            )
        if int(cross_negatives) < 0:
            raise ValueError(
                f"{self.name}: cross_negatives={cross_negatives!r} must be >= 0 (0: only "
                "distractors from the same utterance, as the paper)"
            )
        self.num_negatives = int(num_negatives)
        self.cross_negatives = int(cross_negatives)
        self.ignore_identical = bool(ignore_identical)
        self.logit_temp = float(logit_temp)
        self.diversity_weight = float(diversity_weight)
        self.feature_penalty = float(feature_penalty)
        self.mask_prob, self.mask_length = float(mask_prob), int(mask_length)
        self.final_proj = nn.Linear(embed_dim, final_dim, bias=False)
        self.project_q = nn.Linear(code_dim, final_dim, bias=False)
        self._quantizer_args = (code_dim, groups, entries, temp_start, temp_end, temp_anneal)
        # The conv width is known only from the encoder: built lazily in attach().
        self.register_module("feature_norm", None)
        self.register_module("quantizer", None)

    def _build_quantizer(self, conv_dim: int) -> None:
        self.feature_norm = nn.LayerNorm(conv_dim)
        self.quantizer = GumbelProductQuantizer(conv_dim, *self._quantizer_args)

    def attach(self, encoder: nn.Module) -> None:
        """Check the encoder's interface and build the quantizer for its conv width."""
        if not callable(getattr(encoder, "conv_features", None)) or not (
            callable(getattr(encoder, "forward_features", None))
            or callable(getattr(encoder, "forward_masked", None))
        ):
            raise TypeError(
                f"{self.name}: the encoder {type(encoder).__name__} has no conv_features() "
                f"and forward_features()/forward_masked(); use encoder audio:wav2vec2"
            )
        conv_dim = getattr(encoder, "conv_dim", None)
        if conv_dim is None:
            raise TypeError(f"{self.name}: the encoder has no conv_dim attribute")
        if self.quantizer is None:
            self._build_quantizer(int(conv_dim))
            ref = next(self.final_proj.parameters())
            self.feature_norm.to(ref.device)
            self.quantizer.to(ref.device)
        super().attach(encoder)

    def on_step_end(self, step: int, total_steps: int) -> None:
        """Anneal the Gumbel temperature."""
        if self.quantizer is not None:
            self.quantizer.set_progress(step, total_steps)
        super().on_step_end(step, total_steps)

    def _context(
        self, encoder: nn.Module, wave: Any, feats: Tensor, lengths: Tensor, mask: Tensor
    ) -> EncoderOutput:
        if callable(getattr(encoder, "forward_features", None)):
            return encoder.forward_features(feats, lengths, mask)
        return encoder.forward_masked(wave, mask)

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """Contrastive + diversity + feature-penalty loss for one waveform batch."""
        if self.quantizer is None:
            self.attach(encoder)
        wave = as_wave(views, self.name)
        feats, lengths = encoder.conv_features(wave)
        lengths = lengths.to(feats.device)
        mask = span_mask(lengths, feats.shape[1], self.mask_prob, self.mask_length)
        out = self._context(encoder, wave, feats, lengths, mask)
        if out.tokens is None or out.tokens.shape[1] != feats.shape[1]:
            raise TypeError(
                f"{self.name}: the encoder's masked tokens do not match its conv frames"
            )
        targets, negatives, valid = sample_distractors(
            mask, self.num_negatives, cross_negatives=self.cross_negatives
        )
        width = feats.shape[-1]
        masked_z = self.feature_norm(feats.reshape(-1, width)[targets])
        q = self.quantizer(masked_z)
        y = F.normalize(self.project_q(q.quantized).float(), dim=-1)  # [N, final]
        c = self.final_proj(out.tokens.reshape(-1, out.tokens.shape[-1])[targets])
        c = F.normalize(c.float(), dim=-1)
        # distractors index the masked frames: map flat frame ids to rows of y
        row_of = torch.full((feats.shape[0] * feats.shape[1],), -1, device=feats.device)
        row_of[targets] = torch.arange(targets.shape[0], device=feats.device)
        neg_rows = row_of[negatives]
        y_neg = y[neg_rows.clamp(min=0)]  # [N, K, final]
        pos_logit = (c * y).sum(-1, keepdim=True)
        neg_logit = torch.einsum("nd,nkd->nk", c, y_neg)
        invalid = ~valid
        if self.ignore_identical:
            same = (q.quantized[neg_rows.clamp(min=0)] == q.quantized[:, None]).all(-1)
            invalid = invalid | same
        neg_logit = neg_logit.masked_fill(invalid, float("-inf"))
        logits = torch.cat([pos_logit, neg_logit], dim=1) / self.logit_temp
        zero = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        contrastive = F.cross_entropy(logits, zero) if logits.shape[0] else logits.sum()
        penalty = feats.float().pow(2).mean()
        loss = (
            contrastive + self.diversity_weight * q.diversity_loss + self.feature_penalty * penalty
        )
        with torch.no_grad():
            best_neg = logits[:, 1:].max(1).values if logits.shape[1] > 1 else logits[:, 0] - 1
            acc = (logits[:, 0] > best_neg).float().mean() if logits.shape[0] else zero.sum()
            # mean cosine between the context vectors of different masked frames: near 1
            # means the collapse that keeps the loss at log(K + 1) (see the quantizer)
            n_c = c.shape[0]
            total = c.sum(0)
            ctx_cos = (total @ total - n_c) / max(n_c * (n_c - 1), 1)
        return ObjectiveOutput(
            loss=loss,
            metrics={
                "contrastive": contrastive.detach(),
                "diversity": q.diversity_loss.detach(),
                "feature_penalty": penalty.detach(),
                "acc": acc,
                "context_cos": ctx_cos,
                "code_perplexity": q.code_perplexity,
                "prob_perplexity": q.prob_perplexity.detach(),
                "gumbel_temp": self.quantizer.temperature.detach().clone(),
                "mask_ratio": mask.sum() / lengths.sum().clamp(min=1),
            },
        )
