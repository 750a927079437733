"""Shared fixtures of the audio plugin's tests: one torch thread, FSDD, small wav folders."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Small models on a shared machine: one thread is faster and steadier."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def shared_data() -> Path | None:
    """The shared data folder (``$SELFSUP_SHARED_DATA`` or ``../shared/data``), if present."""
    env = os.environ.get("SELFSUP_SHARED_DATA")
    path = Path(env) if env else REPO / ".." / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def fsdd_root() -> Path:
    """``<shared>/fsdd/recordings``; skipped when absent, but a failure under ``CI=true``."""
    base = shared_data()
    root = base / "fsdd" / "recordings" if base else None
    if root is None or not (root / "0_george_0.wav").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail("the shared FSDD recordings (../shared/data/fsdd/recordings) are missing")
        pytest.skip("shared FSDD data not found (set SELFSUP_SHARED_DATA)")
    return root


def tone(freq: float, seconds: float, sample_rate: int, amp: float = 0.3) -> np.ndarray:
    """A sine tone (synthetic: shape and error tests only)."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amp * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def write_tone(path: Path, freq: float, seconds: float, sample_rate: int = 8000) -> Path:
    """Write a 16-bit PCM sine tone to ``path``."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(freq, seconds, sample_rate), sample_rate, subtype="PCM_16")
    return path


@pytest.fixture
def tone_folder(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a folder of ``{digit}_{speaker}_{index}.wav`` tones (FSDD's naming).

    ``tone_folder(speakers=("a", "b", "c"), digits=2, per=4, sample_rate=8000)``.
    """

    def make(
        speakers: tuple[str, ...] = ("alice", "bob", "carol", "dave"),
        digits: int = 2,
        per: int = 4,
        sample_rate: int = 8000,
    ) -> Path:
        root = tmp_path / "wavs"
        for s, speaker in enumerate(speakers):
            for d in range(digits):
                for i in range(per):
                    freq = 200 + 150 * d + 20 * s
                    write_tone(root / f"{d}_{speaker}_{i}.wav", freq, 0.2 + 0.05 * i, sample_rate)
        return root

    return make


@pytest.fixture
def wave_batch():
    """A ``Padded`` batch of 3 random 8 kHz waveforms of different lengths."""
    from selfsup.interfaces import Padded

    gen = torch.Generator().manual_seed(0)
    items = [0.1 * torch.randn(n, generator=gen) for n in (4000, 2600, 1800)]
    return Padded.from_list(items)


@pytest.fixture
def tone_writer() -> Callable[..., Path]:
    """The :func:`write_tone` helper (``tone_writer(path, freq, seconds, sample_rate)``)."""
    return write_tone


@pytest.fixture
def corpus_folder(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a ``<speaker>/<chapter>/<utt>.wav`` corpus of tones (LibriSpeech layout)."""

    def make(
        speakers: int = 4, per: int = 3, seconds: float = 0.3, sample_rate: int = 8000
    ) -> Path:
        root = tmp_path / "corpus"
        for s in range(speakers):
            for i in range(per):
                name = f"{100 + 7 * s}"
                write_tone(
                    root / name / "ch1" / f"{name}-{i}.wav", 200 + 40 * s, seconds, sample_rate
                )
        return root

    return make


# ------------------------------------------------- FSDD learning tests (pretrain, then probe)


def _fsdd_probe(encoder, data, train_idx: list[int]) -> dict[str, float]:
    """Logistic-regression accuracy (digit, speaker) of frozen pooled embeddings, train -> test."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    def embed(split, idx):
        encoder.eval()
        with torch.no_grad():
            out = [encoder(data.collate([split[i] for i in idx[j : j + 100]])[0]).pooled
                   for j in range(0, len(idx), 100)]  # fmt: skip
        encoder.train()
        return torch.cat(out).numpy()

    test_idx = list(range(len(data.test)))
    scaler = StandardScaler().fit(fit := embed(data.train, train_idx))
    a, b = scaler.transform(fit), scaler.transform(embed(data.test, test_idx))
    labels = {
        "digit": (np.array([data.train[i][1] for i in train_idx]),
                  np.array([data.test[i][1] for i in test_idx])),
        "speaker": (data.flags["train"]["speaker"][train_idx].numpy(),
                    data.flags["test"]["speaker"].numpy()),
    }  # fmt: skip
    return {
        k: float((LogisticRegression(max_iter=2000).fit(a, ya).predict(b) == yb).mean())
        for k, (ya, yb) in labels.items()
    }


def _pretrain(encoder, objective, data, train_idx, steps: int, views=None, batch_size: int = 32):
    """A plain optimisation loop over FSDD train clips (what selfsup's routine does)."""
    objective.attach(encoder)
    params = list(encoder.parameters()) + list(objective.student_parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    gen = torch.Generator().manual_seed(0)
    step = 0
    while step < steps:
        order = torch.randperm(len(train_idx), generator=gen).tolist()
        for i in range(0, len(order) - batch_size + 1, batch_size):
            x, _ = data.collate([data.train[train_idx[j]] for j in order[i : i + batch_size]])
            out = objective(encoder, views(x) if views else [x])
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            step += 1
            objective.on_step_end(step, steps)
            if step >= steps:
                break
    return out


@pytest.fixture
def fsdd_digits(fsdd_root: Path):
    """FSDD by index (0.8 s crops, digit labels) and a seeded 480-clip subset of its train split.

    Returns:
        ``(data, train_idx)``: a fresh ``DataSplits`` and a list of train positions.
    """
    from selfsup_audio.datasets import fsdd

    data = fsdd(root=str(fsdd_root), label="digit", split="by-index", max_seconds=0.8)
    train_idx = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
    return data, train_idx[:480].tolist()


@pytest.fixture
def fsdd_probe() -> Callable[..., dict[str, float]]:
    """``fsdd_probe(encoder, data, train_idx)``: frozen-embedding digit and speaker accuracy."""
    return _fsdd_probe


@pytest.fixture
def pretrain() -> Callable[..., object]:
    """``pretrain(encoder, objective, data, train_idx, steps, views=None, batch_size=32)``.

    A plain AdamW loop over FSDD train clips; returns the last step's objective output.
    """
    return _pretrain
