"""Shared fixtures of the graph plugin's tests: the shared data folder and small graphs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

REPO = Path(__file__).resolve().parents[3]


def shared_data() -> Path | None:
    """The shared data folder (``$SELFSUP_SHARED_DATA`` or ``../shared/data``), if present."""
    env = os.environ.get("SELFSUP_SHARED_DATA")
    path = Path(env) if env else REPO / ".." / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def planetoid_root() -> Path:
    """``<shared>/planetoid``; skipped when absent, but a failure under ``CI=true``."""
    base = shared_data()
    root = base / "planetoid" if base else None
    if root is None or not (root / "Cora" / "raw" / "ind.cora.x").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail("the shared Cora files (../shared/data/planetoid/Cora/raw) are missing")
        pytest.skip("shared Cora data not found (set SELFSUP_SHARED_DATA)")
    return root


@pytest.fixture
def cora(planetoid_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """Cora (public split) loaded through graph:planetoid into a temporary cache."""
    from selfsup_graph.datasets import planetoid

    cache = tmp_path_factory.mktemp("graph-cache")
    return planetoid("Cora", root=str(planetoid_root), cache_dir=str(cache))


def make_random_graph(n: int = 30, f: int = 8, classes: int = 3, seed: int = 0) -> Data:
    """A small random undirected graph with features and labels (shape tests only)."""
    gen = torch.Generator().manual_seed(seed)
    edges = torch.randint(0, n, (2, 3 * n), generator=gen)
    edges = edges[:, edges[0] != edges[1]]
    edges = torch.cat([edges, edges.flip(0)], 1).unique(dim=1)
    y = torch.randint(0, classes, (n,), generator=gen)
    return Data(x=torch.rand(n, f, generator=gen), edge_index=edges, y=y, num_nodes=n)


@pytest.fixture
def random_graph():
    """The :func:`make_random_graph` factory."""
    return make_random_graph
