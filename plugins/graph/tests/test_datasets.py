"""Graph datasets: local files only, public splits, caches, held-out edges, clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from selfsup.runtime import Runtime
from selfsup_graph.datasets import karate, planetoid, pyg_dataset
from selfsup_graph.encoders import GAT, GCN, NodeFeatures

CPU = Runtime(device=torch.device("cpu"))


def test_cora_public_split_and_normalised_features(cora) -> None:
    g = cora.train
    assert (g.num_nodes, g.edge_index.size(1), cora.num_classes) == (2708, 10556, 7)
    sizes = {k: len(v) for k, v in cora.meta["nodes"].items()}
    assert sizes == {"train": 140, "val": 500, "test": 1000}
    assert torch.equal(cora.meta["nodes"]["train"], torch.arange(140))  # public split
    assert torch.allclose(g.x.sum(1), torch.ones(2708))  # row-normalised
    assert len(cora.val) == 500 and len(cora.test) == 1000


def test_shared_root_is_not_written(planetoid_root: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in planetoid_root.rglob("*"))
    planetoid("cora", root=str(planetoid_root), cache_dir=str(tmp_path))
    assert sorted(p.name for p in planetoid_root.rglob("*")) == before
    assert any(tmp_path.rglob("ind.cora.x")) and any(tmp_path.rglob("processed"))


def test_root_may_point_at_the_raw_folder(planetoid_root: Path, tmp_path: Path) -> None:
    data = planetoid("Cora", root=str(planetoid_root / "Cora" / "raw"), cache_dir=str(tmp_path))
    assert data.train.num_nodes == 2708


def test_missing_root_lists_the_eight_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        planetoid("Cora", root=str(tmp_path / "nowhere"), cache_dir=str(tmp_path))
    msg = str(info.value)
    for suffix in ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index"):
        assert f"ind.cora.{suffix}" in msg
    assert "never downloads" in msg


def test_incomplete_root_names_the_missing_file(planetoid_root: Path, tmp_path: Path) -> None:
    raw = tmp_path / "copy" / "Cora" / "raw"
    shutil.copytree(planetoid_root / "Cora" / "raw", raw)
    (raw / "ind.cora.graph").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing under .*: ind\.cora\.graph\. Expected"):
        planetoid("Cora", root=str(tmp_path / "copy"), cache_dir=str(tmp_path / "c"))


def test_pyg_allow_list_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"dataset='torch\.nn\.Linear' is not allowed"):
        pyg_dataset("torch.nn.Linear", root=str(tmp_path))
    with pytest.raises(ValueError, match="needs name= one of Computers, Photo"):
        pyg_dataset("Amazon", root=str(tmp_path), name="Books")
    (tmp_path / "amazon").mkdir()
    with pytest.raises(FileNotFoundError, match=r"amazon_electronics_photo\.npz.*never downloads"):
        pyg_dataset(
            "Amazon", root=str(tmp_path / "amazon"), name="Photo", cache_dir=str(tmp_path / "c")
        )


def test_karate_random_split_is_disjoint_and_seeded() -> None:
    a, b = karate(split_seed=0), karate(split_seed=0)
    nodes = a.meta["nodes"]
    allnodes = torch.cat([nodes["train"], nodes["val"], nodes["test"]])
    assert sorted(allnodes.tolist()) == list(range(34))
    assert torch.equal(nodes["test"], b.meta["nodes"]["test"])
    assert not torch.equal(nodes["test"], karate(split_seed=1).meta["nodes"]["test"])


def test_holdout_edges_are_removed_from_the_training_graph(cora) -> None:
    from selfsup_graph.datasets import build_splits

    data = build_splits(cora.train, cora.meta["nodes"], 7, "cora", False, 0.1, 0.05, 0)
    pos, neg = data.meta["link_split"]["test"]
    train = set(map(tuple, data.train.edge_index.t().tolist()))
    held = set(map(tuple, pos.t().tolist()))
    assert len(held) == 527 and not held & train
    assert not {(b, a) for a, b in held} & train  # undirected: neither direction kept
    assert neg.size(1) == pos.size(1) and "val" in data.meta["link_split"]


def test_embed_returns_split_rows_and_caches_until_parameters_change(cora) -> None:
    enc = GCN(in_dim=1433, hidden_dim=16)
    x, y = cora.embed(enc, "val", CPU)
    assert x.shape == (500, 16) and torch.equal(y, cora.train.y[140:640])  # public val
    first = cora.node_embeddings(enc, CPU)
    assert cora.node_embeddings(enc, CPU) is first  # cached
    with torch.no_grad():
        next(enc.parameters()).add_(1.0)
    assert not torch.equal(cora.node_embeddings(enc, CPU), first)


def test_sampled_embedding_equals_full_graph_embedding(cora) -> None:
    from selfsup_graph.splits import GraphSplits

    # exact for attention/sum aggregators with every neighbour (GCN's degree
    # normalisation would see the sampled border's degrees)
    enc = GAT(in_dim=1433, hidden_dim=8, heads=2, num_layers=2).eval()
    sampled = GraphSplits(cora.train, cora.meta["nodes"], 7, embed_batch_size=700)
    full = cora.node_embeddings(enc, CPU)
    assert torch.allclose(sampled.node_embeddings(enc, CPU), full, atol=1e-5)


def test_minibatch_collate_is_refused(cora) -> None:
    with pytest.raises(TypeError, match="graph:full-batch or graph:neighbor"):
        cora.collate([])
    x, _ = cora.embed(NodeFeatures(in_dim=1433), "train", CPU)
    assert torch.equal(x, cora.train.x[:140])
