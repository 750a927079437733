"""A Gumbel-softmax product quantizer (wav2vec 2.0, Sec. 2 and 3.2).

Each input frame is mapped to ``groups`` logits vectors of ``entries`` each; a hard
Gumbel-softmax sample (straight-through gradients) picks one entry per group, and the
quantized vector is the concatenation of the chosen codewords (a product codebook of
``entries ** groups`` combinations). At evaluation the choice is the argmax.

The Gumbel temperature is annealed exponentially from ``temp_start`` to ``temp_end``
(the paper: 2 -> 0.5, decayed by 0.999995 per update over 400k updates); here over
the first ``temp_anneal`` fraction of the run, set by :meth:`set_progress` from the
objective's ``on_step_end``, so that a short run anneals too.

The diversity loss (the paper's L_d) pushes the batch-averaged softmax over each
group's entries towards uniform: ``(G V - sum_g exp(H(p_g))) / (G V)``. Under
``torchrun`` the averages are summed over ranks (autograd-aware), so every rank sees
the global batch's code usage.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from selfsup.losses import all_reduce_sum
from torch import Tensor, nn

__all__ = ["GumbelProductQuantizer", "QuantizerOutput"]


class QuantizerOutput:
    """What :class:`GumbelProductQuantizer` returns.

    Attributes:
        quantized: ``[N, code_dim]`` quantized vectors.
        codes: ``[N, G]`` chosen entry per group.
        diversity_loss: The scalar L_d (0 = every entry equally used).
        prob_perplexity: Soft perplexity summed over groups (at most ``G * V``).
        code_perplexity: Perplexity of the hard choices summed over groups.
    """

    def __init__(
        self,
        quantized: Tensor,
        codes: Tensor,
        diversity_loss: Tensor,
        prob_perplexity: Tensor,
        code_perplexity: Tensor,
    ) -> None:
        self.quantized = quantized
        self.codes = codes
        self.diversity_loss = diversity_loss
        self.prob_perplexity = prob_perplexity
        self.code_perplexity = code_perplexity


def _perplexity(p: Tensor) -> Tensor:
    """``sum_g exp(entropy(p_g))`` of ``p [G, V]`` (rows sum to 1)."""
    return torch.exp(-(p * torch.log(p + 1e-7)).sum(-1)).sum()


class GumbelProductQuantizer(nn.Module):
    """Product quantizer with ``groups`` codebooks of ``entries`` learned codewords.

    Args:
        in_dim: Width of the frames to quantize.
        code_dim: Width of the quantized vector (split evenly over the groups).
        groups: ``G`` codebooks (paper: 2).
        entries: ``V`` entries per codebook (paper: 320).
        temp_start: Gumbel temperature at the start (paper: 2).
        temp_end: Temperature floor (paper: 0.5).
        temp_anneal: Fraction of the run over which the temperature decays.

    Raises:
        ValueError: ``code_dim`` not divisible by ``groups``, or bad temperatures.
    """

    def __init__(
        self,
        in_dim: int,
        code_dim: int = 256,
        groups: int = 2,
        entries: int = 320,
        temp_start: float = 2.0,
        temp_end: float = 0.5,
        temp_anneal: float = 0.5,
    ) -> None:
        super().__init__()
        if groups < 1 or entries < 2:
            raise ValueError(f"quantizer: groups={groups} must be >= 1, entries={entries} >= 2")
        if code_dim % groups:
            raise ValueError(f"quantizer: code_dim={code_dim} must be divisible by groups={groups}")
        if not 0 < temp_end <= temp_start:
            raise ValueError(
                f"quantizer: need 0 < temp_end <= temp_start, got {temp_end} and {temp_start}"
            )
        if not 0 <= temp_anneal <= 1:
            raise ValueError(f"quantizer: temp_anneal={temp_anneal} must be in [0, 1]")
        self.groups, self.entries = int(groups), int(entries)
        self.code_dim = int(code_dim)
        self.temp_start, self.temp_end = float(temp_start), float(temp_end)
        self.temp_anneal = float(temp_anneal)
        self.weight_proj = nn.Linear(in_dim, groups * entries)
        # As the reference: std 1, so logits (std ~ sqrt(in_dim) on normalised inputs) beat
        # the Gumbel noise and a frame's code is nearly deterministic (a learnable target).
        nn.init.normal_(self.weight_proj.weight, std=1.0)
        nn.init.zeros_(self.weight_proj.bias)
        # As the reference (fairseq ``uniform_()``): codewords in [0, 1), so every quantized
        # vector starts with a large shared component (cosine ~0.75 between any two). With
        # zero-mean codewords the targets start mutually orthogonal, the initial logits are
        # noise above log(K + 1), and the context network's fastest way down is to make
        # every masked context vector the same, orthogonal to all targets: the contrastive
        # loss then sits at exactly log(K + 1) (measured on FSDD: cosine 0.996 between
        # the context vectors of a whole batch after 60 steps).
        self.codebook = nn.Parameter(torch.rand(groups, entries, code_dim // groups))
        self.register_buffer("temperature", torch.tensor(float(temp_start)))

    def set_progress(self, step: int, total_steps: int) -> float:
        """Anneal the temperature for ``step`` of ``total_steps``; returns it."""
        span = self.temp_anneal * max(1, int(total_steps))
        frac = 1.0 if span <= 0 else min(1.0, max(0, step) / span)
        temp = self.temp_start * math.exp(frac * math.log(self.temp_end / self.temp_start))
        self.temperature.fill_(max(temp, self.temp_end))
        return float(self.temperature)

    def forward(self, x: Tensor) -> QuantizerOutput:
        """Quantize frames ``x [N, in_dim]`` (``N`` may be 0 only if nothing is trained)."""
        n = x.shape[0]
        logits = self.weight_proj(x).float().view(n, self.groups, self.entries)
        if self.training:
            onehot = F.gumbel_softmax(logits, tau=float(self.temperature), hard=True, dim=-1)
        else:
            onehot = F.one_hot(logits.argmax(-1), self.entries).to(logits.dtype)
        codes = onehot.argmax(-1)
        quantized = torch.einsum("ngv,gvd->ngd", onehot, self.codebook.float()).reshape(n, -1)
        probs = logits.softmax(-1)
        count = all_reduce_sum(torch.tensor(float(n), device=x.device)).clamp(min=1)
        avg_probs = all_reduce_sum(probs.sum(0)) / count
        with torch.no_grad():
            hard = all_reduce_sum(onehot.detach().sum(0)) / count
            code_ppl = _perplexity(hard)
        prob_ppl = _perplexity(avg_probs)
        total = self.groups * self.entries
        diversity = (total - prob_ppl) / total
        return QuantizerOutput(quantized.to(x.dtype), codes, diversity, prob_ppl, code_ppl)
