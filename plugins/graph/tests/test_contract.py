"""Contract tests over everything the graph plugin registers (selfsup.testing checks)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from selfsup import get_component
from selfsup.testing import (
    check_dataset,
    check_encoder,
    check_evaluator,
    check_objective,
    check_views,
    contract_cases,
    make_batch,
)

F = 8
ENCODER_PARAMS: dict[str, dict[str, Any]] = {
    "graph:gcn": {"in_dim": F, "hidden_dim": 16},
    "graph:gat": {"in_dim": F, "hidden_dim": 16, "heads": 4},
    "graph:gin": {"in_dim": F, "hidden_dim": 16, "norm": "batch"},
    "graph:features": {"in_dim": F},
}
OBJECTIVE_PARAMS: dict[str, dict[str, Any]] = {
    "graph:graphmae": {"in_dim": F},
    "graph:grace": {"proj_dim": 8},
    "graph:barlow-twins": {},
    "graph:vicreg": {"projector_dim": 8},
    "graph:link-recon": {},
    "graph:multitask": {
        "tasks": {"graphmae": {"params": {"in_dim": F}}, "grace": 1.0, "link": 0.5},
        "combiner": "mgda",
    },
}


def _batch() -> Any:
    return make_batch("graph", batch_size=3, num_features=F, num_nodes=12)


def _encoder() -> Any:
    return get_component("encoder", "graph:gat").create(**ENCODER_PARAMS["graph:gat"])


@pytest.mark.parametrize("spec", contract_cases(None, "graph", "encoder"))
def test_encoder_contract(spec) -> None:
    encoder, out = check_encoder(spec, _batch(), **ENCODER_PARAMS[spec.id])
    assert out.tokens.shape == (36, encoder.embed_dim)  # 3 graphs x 12 nodes


@pytest.mark.parametrize("spec", contract_cases(None, "graph", "objective"))
def test_objective_contract(spec) -> None:
    torch.manual_seed(0)
    check_objective(spec, _encoder(), [_batch()], **OBJECTIVE_PARAMS[spec.id])


def test_grace_with_view_maker_contract() -> None:
    views = check_views(get_component("views", "graph:drop-edge-mask-feature"), _batch())
    check_objective(get_component("objective", "graph:grace"), _encoder(), views)


@pytest.mark.parametrize("spec", contract_cases(None, "graph", "views"))
def test_views_contract(spec) -> None:
    batch = _batch()
    x, edges = batch.x.clone(), batch.edge_index.clone()
    views = check_views(spec, batch)
    assert len(views) == 2
    assert torch.equal(batch.x, x) and torch.equal(batch.edge_index, edges)  # input untouched


@pytest.mark.parametrize("spec", contract_cases(None, "graph", "dataset"))
def test_dataset_contract(spec, request) -> None:
    if spec.id == "graph:karate":
        params: dict[str, Any] = {}
    else:
        root = request.getfixturevalue("planetoid_root")
        cache = request.getfixturevalue("tmp_path")
        params = {"root": str(root), "cache_dir": str(cache)}
        if spec.id == "graph:pyg":
            params.update(dataset="Planetoid", name="Cora")
    data = check_dataset(spec, **params)
    assert data.modality == "graph" and data.num_classes > 1
    assert len(data.val) > 0 and len(data.test) > 0
    from selfsup_graph.encoders import NodeFeatures

    x, y = data.embed(NodeFeatures(in_dim=data.train.x.size(1)), "test", _cpu())
    assert x.shape == (len(data.test), data.train.x.size(1)) and y.shape == (len(data.test),)
    assert torch.equal(x, data.train.x[data.test.nodes])


@pytest.mark.parametrize("spec", contract_cases(None, "graph", "evaluator"))
def test_evaluator_contract(spec) -> None:
    data = get_component("dataset", "graph:karate").create(holdout_edges=0.2, split_seed=1)
    encoder = get_component("encoder", "graph:gcn").create(in_dim=34, hidden_dim=16)
    metrics = check_evaluator(spec, encoder, data)
    assert 0.0 <= metrics["link_auc"] <= 1.0 and 0.0 <= metrics["link_ap"] <= 1.0


def _cpu() -> Any:
    from selfsup.runtime import Runtime

    return Runtime(device=torch.device("cpu"))
