"""Fixtures of the tracking plugin's tests: one torch thread, a tiny real-valued dataset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models: one thread is faster and steadier on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _file_store(monkeypatch) -> None:
    """MLflow 3 refuses file stores unless asked (the tracker asks too, for its own)."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def tiny_experiment(tmp_path: Path):
    """Write a 2-epoch core-only experiment; returns ``write(tracking_yaml) -> path``."""
    rng = np.random.default_rng(0)
    y = np.arange(96) % 3
    x = rng.normal(size=(96, 6)).astype("float32") + 2.0 * y[:, None]
    np.savez(tmp_path / "toy.npz", x=x, y=y)

    def write(tracking: str = "", name: str = "tracked") -> Path:
        exp = tmp_path / f"{name}.yaml"
        exp.write_text(
            f"""
name: {name}
seeds: [0]
baseline: false
output_dir: {tmp_path / "runs"}
data: {{id: core:arrays, params: {{path: toy.npz}}}}
encoder: {{id: core:mlp, params: {{in_dim: 6, widths: [16], embed_dim: 8}}}}
views: core:noise-mask
objective: {{id: core:vicreg, params: {{hidden_dim: 16, out_dim: 16}}}}
evaluators: [core:knn]
train: {{epochs: 2, batch_size: 32, device: cpu, log_every: 1}}
{tracking}
"""
        )
        return exp

    return write
