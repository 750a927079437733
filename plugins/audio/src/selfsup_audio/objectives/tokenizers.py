"""Frame tokenizers: the discrete targets of masked prediction (HuBERT and BEATs, iteration 1).

A tokenizer turns a waveform batch into one integer code per feature frame (10 ms hop
by default; frame ``t`` covers samples ``[t * hop, t * hop + win)``, see
:mod:`selfsup_audio.features`):

* :class:`MFCCKMeansTokenizer` (HuBERT, first iteration): k-means over MFCC frames
  (13 coefficients with deltas and delta-deltas: 39 dimensions, as in the paper) of the
  pretraining data. The objective never sees the dataset, so the codebook is fitted on
  the first ``fit_batches`` training batches with scikit-learn's ``MiniBatchKMeans``
  (the first call initialises with k-means++, the next ones refine with
  ``partial_fit``, so cluster ids stay stable while the model starts to learn), with a
  ``random_state`` drawn from the run's seed. The centroids are buffers: a checkpoint
  restores them exactly; under ``torchrun`` rank 0's centroids are broadcast.
* :class:`RandomProjectionTokenizer` (BEATs, first iteration): a frozen random linear
  projection of each log-mel frame and a frozen random codebook; the code is the
  nearest codeword after l2-normalising both. Nothing is fitted.

References:
    Hsu et al., "HuBERT: Self-Supervised Speech Representation Learning by Masked
    Prediction of Hidden Units", TASLP 2021 (Sec. III-B, first iteration targets).
    Chen et al., "BEATs: Audio Pre-Training with Acoustic Tokenizers", ICML 2023
    (Sec. 3.2, the random-projection tokenizer of iteration 1).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from selfsup.interfaces import Padded
from selfsup.losses import is_distributed
from torch import Tensor, nn

from selfsup_audio.features import MFCC, LogMel

__all__ = ["FrameTokenizer", "MFCCKMeansTokenizer", "RandomProjectionTokenizer", "build_tokenizer"]


class FrameTokenizer(nn.Module):
    """Base class: waveforms in, one code per frame out.

    Attributes:
        num_codes: Size of the code vocabulary.
        hop: Frame hop in samples.
        win: Frame window in samples.
    """

    num_codes: int
    hop: int
    win: int

    def frames(self, wave: Padded) -> Padded:  # pragma: no cover - abstract
        """Frame features ``[B, F, d]`` with frame lengths."""
        raise NotImplementedError

    def encode(self, feats: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Codes ``[...]`` of frame features ``[..., d]``."""
        raise NotImplementedError

    @property
    def ready(self) -> bool:
        """Whether codes can be computed (a k-means codebook is fitted)."""
        return True

    def observe(self, frames: Padded) -> None:
        """See the frames of a training batch (fitting tokenizers learn from them)."""

    @torch.no_grad()
    def forward(self, wave: Padded) -> tuple[Tensor, Tensor]:
        """Codes of a waveform batch.

        Returns:
            ``(codes [B, F] long, mask [B, F] bool)``; codes on padding frames are 0.
        """
        frames = self.frames(wave)
        mask = frames.mask
        codes = self.encode(frames.values.float())
        return codes.masked_fill(~mask, 0), mask


class MFCCKMeansTokenizer(FrameTokenizer):
    """HuBERT's first-iteration targets: k-means cluster ids of MFCC frames.

    Args:
        sample_rate: Input sample rate in Hz.
        num_clusters: k-means clusters (HuBERT: 100).
        n_mfcc: MFCC coefficients before deltas (HuBERT: 13).
        deltas: Append first and second temporal derivatives (HuBERT: yes, 39 dims).
        fit_batches: Training batches whose frames fit the codebook.
        max_fit_frames: Frames sampled per batch for fitting (bounds the cost).
        seed: ``random_state`` of k-means; ``None`` draws one from torch's generator
            (seeded by the run), so a run is reproducible from its seed.

    Raises:
        ValueError: Non-positive sizes.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        num_clusters: int = 100,
        n_mfcc: int = 13,
        deltas: bool = True,
        fit_batches: int = 8,
        max_fit_frames: int = 20000,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        for key, value in (
            ("num_clusters", num_clusters),
            ("n_mfcc", n_mfcc),
            ("fit_batches", fit_batches),
            ("max_fit_frames", max_fit_frames),
        ):
            if int(value) < 1:
                raise ValueError(f"mfcc-kmeans tokenizer: {key}={value!r} must be >= 1")
        self.num_codes = int(num_clusters)
        self.mfcc = MFCC(sample_rate=sample_rate, n_mfcc=n_mfcc, n_mels=max(40, n_mfcc))
        self.hop, self.win = self.mfcc.hop, self.mfcc.win
        self.deltas = bool(deltas)
        self.dim = n_mfcc * (3 if deltas else 1)
        self.fit_batches = int(fit_batches)
        self.max_fit_frames = int(max_fit_frames)
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        self.seed = int(seed)
        self.register_buffer("centroids", torch.zeros(self.num_codes, self.dim))
        self.register_buffer("fitted_batches", torch.zeros((), dtype=torch.long))
        self._kmeans: object | None = None

    @property
    def ready(self) -> bool:
        """Whether at least one batch has fitted the codebook."""
        return int(self.fitted_batches) > 0

    def frames(self, wave: Padded) -> Padded:
        """MFCC frames (CMVN per utterance), with deltas and delta-deltas."""
        out = self.mfcc(wave)
        values = out.values
        if self.deltas:
            spec = values.transpose(1, 2)  # [B, d, F]
            d1 = torchaudio.functional.compute_deltas(spec)
            d2 = torchaudio.functional.compute_deltas(d1)
            values = torch.cat([spec, d1, d2], dim=1).transpose(1, 2)
            values = values * out.mask.unsqueeze(-1).to(values.dtype)
        return Padded(values=values, lengths=out.lengths)

    def encode(self, feats: Tensor) -> Tensor:
        """Nearest centroid (squared Euclidean distance) of each frame."""
        if not self.ready:
            raise RuntimeError(
                "mfcc-kmeans tokenizer used before its codebook was fitted: call "
                "observe(frames) on training batches first (the objective does this)"
            )
        flat = feats.reshape(-1, feats.shape[-1])
        centroids = self.centroids.to(flat.dtype)
        dist = (
            flat.pow(2).sum(1, keepdim=True)
            - 2 * flat @ centroids.T
            + centroids.pow(2).sum(1)[None, :]
        )
        return dist.argmin(dim=1).reshape(feats.shape[:-1])

    @torch.no_grad()
    def observe(self, frames: Padded) -> None:
        """Refine the codebook with a batch's real frames while fitting batches remain."""
        if int(self.fitted_batches) >= self.fit_batches:
            return
        from sklearn.cluster import MiniBatchKMeans

        real = frames.values[frames.mask].float().cpu()
        if real.shape[0] > self.max_fit_frames:
            gen = torch.Generator().manual_seed(self.seed + int(self.fitted_batches))
            real = real[torch.randperm(real.shape[0], generator=gen)[: self.max_fit_frames]]
        data = real.numpy().astype(np.float64)
        if self._kmeans is None:
            if self.ready:  # resumed mid-fit: continue from the restored centroids
                init: object = self.centroids.double().cpu().numpy()
            elif data.shape[0] < self.num_codes:
                raise ValueError(
                    f"mfcc-kmeans tokenizer: the first training batch has {data.shape[0]} "
                    f"real MFCC frames, fewer than num_clusters={self.num_codes}; use a "
                    f"larger batch_size or fewer clusters"
                )
            else:
                init = "k-means++"
            self._kmeans = MiniBatchKMeans(
                n_clusters=self.num_codes,
                init=init,
                n_init=1,
                random_state=self.seed,
                batch_size=max(1024, self.num_codes),
            )
        self._kmeans.partial_fit(data)  # type: ignore[attr-defined]
        centers = torch.as_tensor(self._kmeans.cluster_centers_, dtype=torch.float32)  # type: ignore[attr-defined]
        if is_distributed():  # every rank must predict the same codes: rank 0's codebook
            centers = centers.to(self.centroids.device)
            torch.distributed.broadcast(centers, src=0)
        self.centroids.copy_(centers.to(self.centroids.device))
        self.fitted_batches.add_(1)
        if int(self.fitted_batches) >= self.fit_batches:
            self._kmeans = None  # frozen from now on; free the estimator


class RandomProjectionTokenizer(FrameTokenizer):
    """BEATs' first-iteration targets: a frozen random projection and random codebook.

    Args:
        sample_rate: Input sample rate in Hz.
        num_codes: Codebook size (BEATs: 1024).
        code_dim: Projected dimension of frames and codewords.
        n_mels: Log-mel bands of the frames.
        seed: Seed of the random projection and codebook; ``None`` draws one from
            torch's generator (seeded by the run).

    Raises:
        ValueError: Non-positive sizes.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        num_codes: int = 1024,
        code_dim: int = 16,
        n_mels: int = 64,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        for key, value in (("num_codes", num_codes), ("code_dim", code_dim), ("n_mels", n_mels)):
            if int(value) < 1:
                raise ValueError(f"random-projection tokenizer: {key}={value!r} must be >= 1")
        self.num_codes = int(num_codes)
        self.logmel = LogMel(sample_rate=sample_rate, n_mels=n_mels)
        self.hop, self.win = self.logmel.hop, self.logmel.win
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        gen = torch.Generator().manual_seed(int(seed))
        projection = torch.randn(n_mels, code_dim, generator=gen) / n_mels**0.5
        codebook = F.normalize(torch.randn(num_codes, code_dim, generator=gen), dim=1)
        self.register_buffer("projection", projection)
        self.register_buffer("codebook", codebook)

    def frames(self, wave: Padded) -> Padded:
        """Per-utterance normalised log-mel frames."""
        return self.logmel(wave)

    def encode(self, feats: Tensor) -> Tensor:
        """Nearest codeword (cosine) of each l2-normalised projected frame."""
        z = F.normalize(feats @ self.projection.to(feats.dtype), dim=-1)
        return (z @ self.codebook.to(z.dtype).T).argmax(dim=-1)


def build_tokenizer(
    name: str,
    sample_rate: int,
    num_codes: int,
    seed: int | None,
    fit_batches: int = 8,
    n_mfcc: int = 13,
    code_dim: int = 16,
    n_mels: int = 64,
) -> FrameTokenizer:
    """Build a tokenizer by name: ``"mfcc-kmeans"`` or ``"random-projection"``.

    Raises:
        ValueError: An unknown name, naming the choices.
    """
    if name == "mfcc-kmeans":
        return MFCCKMeansTokenizer(
            sample_rate, num_codes, n_mfcc=n_mfcc, fit_batches=fit_batches, seed=seed
        )
    if name == "random-projection":
        return RandomProjectionTokenizer(
            sample_rate, num_codes, code_dim=code_dim, n_mels=n_mels, seed=seed
        )
    raise ValueError(
        f"tokenizer={name!r} is not known; choose 'mfcc-kmeans' (HuBERT iteration 1) or "
        f"'random-projection' (BEATs iteration 1)"
    )
