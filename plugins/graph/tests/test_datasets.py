"""Graph datasets: local files only, public splits, caches, held-out edges, clear errors."""

from __future__ import annotations

import collections
import pickle
import shutil
import warnings
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
    assert not any(tmp_path.iterdir())  # read in place: no cache to go stale


def test_reader_gives_exactly_what_pyg_planetoid_gives(
    planetoid_root: Path, tmp_path: Path
) -> None:
    from selfsup_graph.planetoid_io import read_planetoid
    from torch_geometric.datasets import Planetoid

    shutil.copytree(planetoid_root / "Cora" / "raw", tmp_path / "Cora" / "raw")
    reference = Planetoid(str(tmp_path), "Cora")  # PyG unpickling the trusted shared files
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy.sparse.csr is resolved without its warning
        ours, num_classes = read_planetoid(planetoid_root / "Cora" / "raw", "cora")
    assert num_classes == reference.num_classes == 7
    for key in ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask"):
        theirs = getattr(reference[0], key)
        assert getattr(ours, key).dtype == theirs.dtype, key
        assert torch.equal(getattr(ours, key), theirs), key


def _write_planetoid(raw: Path, prefix: str, test_nodes: list[int], seed: int = 0) -> None:
    """Small Planetoid-format files: 520 labelled nodes (10 train), the given test nodes."""
    import numpy as np
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    n_all, n_train, feats, classes = 520, 10, 16, 3
    n_nodes = max(test_nodes) + 1

    def onehot(n: int) -> np.ndarray:
        return np.eye(classes, dtype=np.int32)[rng.integers(0, classes, n)]

    allx = sp.csr_matrix((rng.random((n_all, feats)) > 0.8).astype(np.float32))
    tx = sp.csr_matrix((rng.random((len(test_nodes), feats)) > 0.8).astype(np.float32))
    ally = onehot(n_all)
    graph: dict[int, list[int]] = collections.defaultdict(list)
    for a, b in rng.integers(0, n_nodes, (3 * n_nodes, 2)).tolist():
        graph[a].append(b)
    graph[5].append(5)  # a self loop, removed as PyG does
    objects = {"x": allx[:n_train], "y": ally[:n_train], "allx": allx, "ally": ally,
               "tx": tx, "ty": onehot(len(test_nodes)), "graph": graph}  # fmt: skip
    raw.mkdir(parents=True)
    for suffix, obj in objects.items():
        (raw / f"ind.{prefix}.{suffix}").write_bytes(pickle.dumps(obj, protocol=2))
    (raw / f"ind.{prefix}.test.index").write_text("".join(f"{i}\n" for i in test_nodes))


@pytest.mark.parametrize(
    ("prefix", "test_nodes"),
    [
        ("cora", [523, 520, 521, 525, 522, 524]),  # shuffled, contiguous
        ("citeseer", [527, 520, 523, 521, 530, 525]),  # isolated nodes skipped
    ],
)
def test_reader_matches_pyg_on_planetoid_format_files(
    tmp_path: Path, prefix: str, test_nodes: list[int]
) -> None:
    from selfsup_graph.planetoid_io import read_planetoid
    from torch_geometric.io import read_planetoid_data

    raw = tmp_path / "raw"
    _write_planetoid(raw, prefix, test_nodes)
    ours, _ = read_planetoid(raw, prefix, check_sizes=False)
    reference = read_planetoid_data(str(raw), prefix)
    assert ours.num_nodes == max(test_nodes) + 1
    for key in ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(getattr(ours, key), getattr(reference, key)), key


def test_files_of_another_planetoid_dataset_are_named(tmp_path: Path) -> None:
    from selfsup.safe_pickle import CorruptFileError

    root = tmp_path / "planetoid" / "Cora" / "raw"
    _write_planetoid(root, "cora", list(range(520, 526)))
    with pytest.raises(CorruptFileError) as info:
        planetoid("Cora", root=str(tmp_path / "planetoid"))
    msg = str(info.value)
    assert "describe 526 nodes, 16 features and 3 classes, but cora has 2708, 1433 and 7" in msg
    assert "re-copy the 8 ind.cora.* files" in msg


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


def _amazon_npz(root: Path) -> Path:
    """A 30-node graph in PyG's Amazon npz format under ``root/Photo/raw``."""
    import numpy as np
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    x = sp.csr_matrix((rng.random((30, 8)) > 0.7).astype(np.float32))
    adj = sp.csr_matrix(np.triu(rng.random((30, 30)) > 0.8, 1).astype(np.float32))
    path = root / "Photo" / "raw" / "amazon_electronics_photo.npz"
    path.parent.mkdir(parents=True)
    np.savez(
        path,
        attr_data=x.data, attr_indices=x.indices, attr_indptr=x.indptr, attr_shape=x.shape,
        adj_data=adj.data, adj_indices=adj.indices, adj_indptr=adj.indptr, adj_shape=adj.shape,
        labels=rng.integers(0, 3, 30),
    )  # fmt: skip
    return path


def test_pyg_cache_is_reused_while_the_raw_files_are_unchanged(tmp_path: Path) -> None:
    import json

    root, cache = tmp_path / "amazon", tmp_path / "cache"
    _amazon_npz(root)
    first = pyg_dataset("Amazon", root=str(root), name="Photo", cache_dir=str(cache))
    (data_pt,) = cache.rglob("processed/data.pt")
    entry = data_pt.parents[2]
    manifest = json.loads((entry / "selfsup-cache.json").read_text())
    assert set(manifest["files"]) == {"Photo/raw/amazon_electronics_photo.npz"}
    assert not list(cache.rglob("pre_transform.pt"))  # PyG unpickles it: never kept
    leftover = entry.parent / f"{entry.name}.tmp-999"  # as a killed build leaves it
    leftover.mkdir()
    inode = data_pt.stat().st_ino
    again = pyg_dataset("Amazon", root=str(root), name="Photo", cache_dir=str(cache))
    assert data_pt.stat().st_ino == inode  # loaded from the cache, not rebuilt
    assert torch.equal(first.train.x, again.train.x) and not leftover.exists()
    assert not (root / "Photo" / "processed").exists()  # the root is never written
