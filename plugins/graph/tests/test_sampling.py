"""The plain-torch neighbour sampler: correct subgraphs, fan-out limits, epoch coverage."""

from __future__ import annotations

import pytest
import torch
from selfsup_graph.sampling import NeighborSampler, SeedLoader


def _edge_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, edge_index.t().tolist()))


def test_subgraph_edges_exist_and_seeds_come_first(random_graph) -> None:
    torch.manual_seed(0)
    g = random_graph(n=200, f=4)
    sampler = NeighborSampler(g, [3, 2])
    seeds = torch.tensor([5, 17, 42])
    sub = sampler.sample(seeds)
    assert sub.batch_size == 3 and torch.equal(sub.n_id[:3], seeds)
    assert len(set(sub.n_id.tolist())) == sub.num_nodes  # no duplicate nodes
    assert torch.equal(sub.x, g.x[sub.n_id]) and torch.equal(sub.y, g.y[sub.n_id])
    glob = sub.n_id[sub.edge_index]
    assert _edge_set(glob) <= _edge_set(g.edge_index)
    # first hop: each seed keeps at most 3 distinct in-neighbours
    into_seeds = glob[:, torch.isin(glob[1], seeds)]
    for s in seeds.tolist():
        srcs = into_seeds[0, into_seeds[1] == s]
        deg = int((g.edge_index[1] == s).sum())
        assert srcs.numel() == min(3, deg) == srcs.unique().numel()


def test_all_neighbours_with_minus_one(random_graph) -> None:
    g = random_graph(n=50)
    sub = NeighborSampler(g, [-1]).sample(torch.tensor([0]))
    want = {int(s) for s in g.edge_index[0, g.edge_index[1] == 0]}
    assert set(sub.n_id[sub.edge_index[0]].tolist()) == want


def test_loader_covers_every_seed_once_and_shards_ranks(random_graph) -> None:
    g = random_graph(n=103)
    sampler = NeighborSampler(g, [2])
    loader = SeedLoader(sampler, torch.arange(103), batch_size=10, seed=3)
    loader.set_epoch(1)
    seen = torch.cat([b.n_id[: b.batch_size] for b in loader])
    assert sorted(seen.tolist()) == list(range(103)) and len(loader) == 11
    loader.set_epoch(2)
    assert not torch.equal(seen, torch.cat([b.n_id[: b.batch_size] for b in loader]))
    parts = [
        torch.cat(
            [
                b.n_id[: b.batch_size]
                for b in SeedLoader(sampler, torch.arange(103), 10, rank=r, world_size=2)
            ]
        )
        for r in (0, 1)
    ]
    assert not set(parts[0].tolist()) & set(parts[1].tolist())
    assert len(parts[0]) == len(parts[1])


def test_bad_fanout_is_explained(random_graph) -> None:
    with pytest.raises(ValueError, match="num_neighbors"):
        NeighborSampler(random_graph(), [0])
    with pytest.raises(ValueError, match="num_neighbors"):
        NeighborSampler(random_graph(), [])
