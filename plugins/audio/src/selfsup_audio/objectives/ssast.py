"""Masked spectrogram patch modelling, as SSAST pretrains (``audio:ssast``).

Gong et al., "SSAST: Self-Supervised Audio Spectrogram Transformer" (AAAI 2022). Some
of an utterance's log-mel patches are replaced by a mask embedding and the
``audio:ssast`` encoder is trained on two tasks over the masked positions:

* **discriminative** (masked patch classification): a head maps each masked output
  token to a patch-sized vector; InfoNCE over the utterance's masked patches must
  pick the right patch (``scores = targets @ preds^T``, log-softmax over the preds);
* **generative** (masked patch reconstruction): another head regresses the patch
  values (MSE).

The loss is ``nce_weight * InfoNCE + mse_weight * MSE`` (SSAST: 1 and 10). As in SSAST
the two tasks get separate forward passes with independent masks (``shared_mask=False``);
``shared_mask=True`` computes both from one pass, about half the cost. Masks are drawn
per utterance over its real patches only: at random, or in clusters of neighbouring
patches (SSAST's cluster factor: squares of side 3-5 patches in the time x frequency
grid, time runs for frame patches). Variable-length batches work: each utterance masks
``round(mask_ratio * its patches)`` (or ``mask_patches``) and the losses average over
the masked patches of every utterance.

Views: the batch itself (``core:identity``: waveforms) or ``audio:specaugment``'s first
view (log-mel features; keep its own masking off, the objective masks).
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
from pydantic import Field
from selfsup.interfaces import BatchMeta, Objective, ObjectiveOutput
from torch import Tensor, nn

__all__ = ["SSAST", "cluster_patch_mask", "random_patch_mask"]


def _select(keys: Tensor, counts: Tensor) -> Tensor:
    """``[B, N]`` booleans: the ``counts[b]`` positions of row ``b`` with the lowest keys."""
    rank = keys.argsort(1).argsort(1)
    return rank < counts[:, None]


def random_patch_mask(real: Tensor, counts: Tensor) -> Tensor:
    """Mask ``counts[b]`` of the real patches of each row, uniformly at random.

    Args:
        real: ``[B, N]`` booleans, True on real (non-padding) patches.
        counts: ``[B]`` how many to mask (at most the real patches).
    """
    keys = torch.rand(real.shape, device=real.device).masked_fill(~real, float("inf"))
    return _select(keys, counts)


def cluster_patch_mask(
    real: Tensor, counts: Tensor, n_freq: int, min_size: int = 3, max_size: int = 5
) -> Tensor:
    """SSAST cluster masking: squares of neighbouring patches until ``counts[b]`` are hidden.

    Each utterance draws a cluster side ``c`` in ``[min_size, max_size]``; clusters are
    ``c x c`` blocks of the (time, frequency) patch grid whose corner is a random real
    patch, added one after the other until enough patches are covered; the last
    cluster is cut to reach exactly ``counts[b]`` (SSAST keeps the first ``mask_size``
    of the union). Patches are time-major (``index = t * n_freq + f``).

    Args:
        real: ``[B, N]`` booleans, True on real patches (real patches come first in time).
        counts: ``[B]`` how many to mask.
        n_freq: Frequency patches per time step.
        min_size: Smallest cluster side.
        max_size: Largest cluster side.
    """
    b, n = real.shape
    dev = real.device
    steps = int(counts.max().clamp_min(1))  # patches still uncovered after these: random
    idx = torch.arange(n, device=dev)
    t_of, f_of = idx // n_freq, idx % n_freq
    n_time = (real.sum(1) // n_freq).clamp_min(1)  # real time patches per row
    side = torch.randint(min_size, max_size + 1, (b, 1, 1), device=dev)
    t0 = (torch.rand(b, steps, 1, device=dev) * n_time[:, None, None]).long()
    f0 = (torch.rand(b, steps, 1, device=dev) * n_freq).long()
    dt, df = t_of[None, None] - t0, f_of[None, None] - f0
    covered = (dt >= 0) & (dt < side) & (df >= 0) & (df < side)  # [B, steps, N]
    order = torch.arange(steps, device=dev, dtype=torch.float32)[None, :, None]
    first = torch.where(covered, order, float(steps)).amin(1)  # [B, N]
    keys = first + 0.5 * torch.rand(b, n, device=dev)
    keys = keys.masked_fill(~real, float("inf"))
    return _select(keys, counts)


def _head(dim: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, out))


class SSAST(Objective):
    """SSAST masked patch modelling: InfoNCE over masked patches + MSE reconstruction.

    Args:
        embed_dim: The encoder's width (set by the engine).
        mask_ratio: Share of each utterance's real patches to mask (SSAST: 400 of 512).
        mask_patches: A fixed number of patches to mask per utterance instead (capped at
            the utterance's patches minus one); ``None`` uses ``mask_ratio``.
        cluster: Cluster masking (SSAST's default) instead of uniform random masking.
        cluster_min: Smallest cluster side in patches.
        cluster_max: Largest cluster side in patches.
        nce_weight: Weight of the discriminative InfoNCE term (0 turns it off).
        mse_weight: Weight of the generative MSE term (SSAST: 10; 0 turns it off).
        shared_mask: One masked pass for both terms instead of one pass per term.
        head_dim: Hidden width of the two prediction heads (default ``embed_dim``).

    Raises:
        ValueError: Both weights zero, or ``cluster_min > cluster_max``.
    """

    def __init__(
        self,
        embed_dim: int,
        mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.75,
        mask_patches: Annotated[int, Field(ge=1)] | None = None,
        cluster: bool = True,
        cluster_min: Annotated[int, Field(ge=1)] = 3,
        cluster_max: Annotated[int, Field(ge=1)] = 5,
        nce_weight: Annotated[float, Field(ge=0)] = 1.0,
        mse_weight: Annotated[float, Field(ge=0)] = 10.0,
        shared_mask: bool = False,
        head_dim: Annotated[int, Field(ge=1)] | None = None,
    ) -> None:
        super().__init__()
        if nce_weight == 0 and mse_weight == 0:
            raise ValueError("audio:ssast: nce_weight and mse_weight are both 0; set one > 0")
        if cluster_min > cluster_max:
            raise ValueError(f"audio:ssast: cluster_min={cluster_min} > cluster_max={cluster_max}")
        self.embed_dim = embed_dim
        self.mask_ratio, self.mask_patches = mask_ratio, mask_patches
        self.cluster, self.cluster_min, self.cluster_max = cluster, cluster_min, cluster_max
        self.nce_weight, self.mse_weight = nce_weight, mse_weight
        self.shared_mask = shared_mask
        self.head_dim = head_dim or embed_dim
        self.patch_dim: int | None = None
        self.cls_head: nn.Module | None = None
        self.gen_head: nn.Module | None = None

    # ------------------------------------------------------------------ wiring

    def _check(self, encoder: nn.Module) -> nn.Module:
        enc = getattr(encoder, "module", encoder)  # DDP-wrapped
        if not all(hasattr(enc, a) for a in ("prepare_patches", "encode_patches", "patch_dim")):
            raise TypeError(
                f"audio:ssast needs the audio:ssast patch-transformer encoder (with "
                f"prepare_patches/encode_patches), got {type(enc).__name__}; set "
                "encoder: {id: audio:ssast}, or choose an objective for this encoder "
                "(audio:masked-prediction, core:dino, ...)"
            )
        if getattr(enc, "embed_dim", None) != self.embed_dim:
            raise ValueError(
                f"audio:ssast was built for embed_dim={self.embed_dim}, the encoder has "
                f"{getattr(enc, 'embed_dim', None)}"
            )
        return enc

    def attach(self, encoder: nn.Module) -> None:
        """Build the two heads for the encoder's patch size (before a checkpoint restore)."""
        enc = self._check(encoder)
        if self.patch_dim != enc.patch_dim:
            self.patch_dim = int(enc.patch_dim)
            device = next(enc.parameters()).device
            # only the heads the loss uses: DDP runs without find_unused_parameters
            if self.nce_weight > 0:
                self.cls_head = _head(self.embed_dim, self.head_dim, self.patch_dim).to(device)
            if self.mse_weight > 0:
                self.gen_head = _head(self.embed_dim, self.head_dim, self.patch_dim).to(device)
        super().attach(encoder)

    # ------------------------------------------------------------------ masking

    def _counts(self, real: Tensor) -> Tensor:
        n = real.sum(1)
        if self.mask_patches is not None:
            want = torch.full_like(n, self.mask_patches)
        else:
            want = (n.float() * self.mask_ratio).round().long()
        return torch.minimum(want.clamp_min(1), (n - 1).clamp_min(1))

    def make_mask(self, real: Tensor, n_freq: int) -> Tensor:
        """A ``[B, N]`` patch mask over the real patches (cluster or random)."""
        counts = self._counts(real)
        if self.cluster:
            return cluster_patch_mask(real, counts, n_freq, self.cluster_min, self.cluster_max)
        return random_patch_mask(real, counts)

    # ------------------------------------------------------------------ losses

    @staticmethod
    def _gather(masked: Tensor, *tensors: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Masked positions of each row, padded: ``(valid [B, M], [x[B, M, ...] ...])``."""
        counts = masked.sum(1)
        m = int(counts.max())
        sel = masked.float().sort(dim=1, descending=True, stable=True).indices[:, :m]
        valid = torch.arange(m, device=masked.device)[None] < counts[:, None]
        out = [t.gather(1, sel[..., None].expand(-1, -1, t.shape[-1])) for t in tensors]
        return valid, out

    def _nce(self, tokens: Tensor, patches: Tensor, masked: Tensor) -> tuple[Tensor, Tensor]:
        valid, (tok, target) = self._gather(masked, tokens, patches)
        pred = self.cls_head(tok).float()
        scores = target.float() @ pred.transpose(1, 2)  # [B, M (targets), M (preds)]
        scores = scores.masked_fill(~valid[:, None, :], float("-inf"))
        logp = scores.log_softmax(-1).diagonal(dim1=1, dim2=2)  # [B, M]
        w = valid.float()
        nce = -(logp.masked_fill(~valid, 0.0) * w).sum() / w.sum()
        hit = scores.argmax(-1) == torch.arange(scores.shape[1], device=scores.device)[None]
        acc = (hit.float() * w).sum() / w.sum()
        return nce, acc.detach()

    def _mse(self, tokens: Tensor, patches: Tensor, masked: Tensor) -> Tensor:
        valid, (tok, target) = self._gather(masked, tokens, patches)
        err = (self.gen_head(tok).float() - target.float()).pow(2).mean(-1)
        w = valid.float()
        return (err * w).sum() / w.sum()

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """SSAST loss for a batch of waveforms or log-mel features.

        Args:
            encoder: An ``audio:ssast`` encoder.
            views: ``[batch]`` (``core:identity``), a list of views (the first is used)
                or ``{"input": batch}``; the batch is waveforms or log-mel features.
            meta: Not used (SSL: no labels).
        """
        enc = self._check(encoder)
        if self.patch_dim is None:
            self.attach(encoder)
        x = views["input"] if isinstance(views, dict) else views
        if isinstance(x, (list, tuple)):
            x = x[0]
        batch = enc.prepare_patches(x)
        loss = torch.zeros((), device=batch.patches.device)
        metrics: dict[str, Any] = {}
        first = self.make_mask(batch.mask, batch.n_freq)
        out = enc.encode_patches(batch, first)
        if self.nce_weight > 0:
            nce, acc = self._nce(out.tokens, batch.patches, first)
            loss = loss + self.nce_weight * nce
            metrics.update(nce=nce.detach(), nce_acc=acc)
        if self.mse_weight > 0:
            masked = first
            if self.nce_weight > 0 and not self.shared_mask:
                masked = self.make_mask(batch.mask, batch.n_freq)
                out = enc.encode_patches(batch, masked)
            mse = self._mse(out.tokens, batch.patches, masked)
            loss = loss + self.mse_weight * mse
            metrics["mse"] = mse.detach()
        metrics["mask_ratio"] = (first.sum() / batch.mask.sum()).detach()
        return ObjectiveOutput(loss=loss, metrics=metrics)
