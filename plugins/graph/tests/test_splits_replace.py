"""A transform can change and flag a graph dataset without rebuilding it."""

from __future__ import annotations

import torch
from selfsup import build_component
from selfsup.runtime import Runtime

CPU = Runtime(device=torch.device("cpu"))


def test_graph_splits_replace_and_flags_keep_the_subclass_and_drop_cached_embeddings() -> None:
    data = build_component("dataset", "graph:karate")
    n = int(data.graph.num_nodes)
    encoder = build_component(
        "encoder", {"id": "graph:features", "params": {"in_dim": int(data.graph.x.shape[1])}}
    )
    before, _ = data.embed(encoder, "test", CPU)

    graph = data.graph.clone()
    graph.x = graph.x + 1.0  # a "poisoned" copy of the features
    mask = torch.zeros(n, dtype=torch.bool)
    mask[:3] = True
    changed = data.replace(train=graph).with_flags("train", poisoned=mask)

    assert type(changed) is type(data) and changed.num_classes == data.num_classes
    assert torch.equal(changed.nodes("test"), data.nodes("test"))
    assert torch.equal(changed.flag("train", "poisoned"), mask)
    assert data.flag("train", "poisoned") is None  # the original is untouched
    after, _ = changed.embed(encoder, "test", CPU)
    assert torch.allclose(after, before + 1.0)  # the new graph, not a cached embedding
