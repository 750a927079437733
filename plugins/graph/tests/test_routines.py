"""Graph routines through the run context: epochs, checkpoints, exact resume, NaN stop, CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console
from selfsup import load_config_text, run_experiment
from selfsup.runtime import Runtime
from selfsup.testing import torchrun_selfsup
from selfsup.training import (
    ArmConfig,
    ComponentRef,
    NonFiniteLossError,
    RunContext,
    TrainConfig,
    load_checkpoint,
)
from selfsup_graph.datasets import karate
from selfsup_graph.encoders import GAT
from selfsup_graph.objectives.graphmae import GraphMAE
from selfsup_graph.routines import FullBatch, NeighborBatch
from selfsup_graph.views import DropEdgeMaskFeature


def _ctx(tmp_path: Path, data: Any, routine: str, seed: int = 0, **train: Any) -> RunContext:
    arm = ArmConfig(
        name="t",
        data={"id": "graph:karate"},
        encoder=ComponentRef(id="graph:gat"),
        views=ComponentRef(id="core:identity"),
        objective=ComponentRef(id="graph:graphmae"),
        routine=ComponentRef(id=routine),
        train=TrainConfig(device="cpu", progress=False, schedule={"name": "constant"}, **train),
    )
    torch.manual_seed(seed)
    encoder = GAT(in_dim=34, hidden_dim=16, heads=2, dropout=0.2, attn_dropout=0.1)
    objective = GraphMAE(embed_dim=16, in_dim=34)
    return RunContext(
        arm=arm,
        seed=seed,
        run_dir=tmp_path,
        runtime=Runtime(device=torch.device("cpu")),
        encoder=encoder,
        objective=objective,
        views=lambda g, meta=None: [g],
        data=data,
    )


def _weights(ctx: RunContext) -> list[torch.Tensor]:
    return [p.detach().clone() for p in ctx.parameters()]


def test_full_batch_trains_checkpoints_and_resumes_exactly(tmp_path: Path) -> None:
    data = karate()
    ctx = _ctx(tmp_path / "a", data, "graph:full-batch", epochs=6, checkpoint_every=2)
    FullBatch().fit(ctx)
    full = _weights(ctx)
    lines = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines if "epoch" in r] == [1, 2, 3, 4, 5, 6]
    assert load_checkpoint(ctx.checkpoint_path)["epoch"] == 6 and ctx.global_step == 6

    # an interrupted run: the step budget stops it after 3 epochs, with a checkpoint
    part = _ctx(tmp_path / "b", data, "graph:full-batch", epochs=6, max_steps=3)
    FullBatch().fit(part)
    state = load_checkpoint(part.checkpoint_path)
    assert state["epoch"] == 3
    resumed = _ctx(tmp_path / "b", data, "graph:full-batch", seed=0, epochs=6)
    resumed.resume_state = state
    torch.manual_seed(123)  # resumption must not depend on the current RNG
    FullBatch().fit(resumed)
    assert resumed.global_step == 6
    for a, b in zip(full, _weights(resumed), strict=True):
        assert torch.equal(a, b)


def test_non_finite_loss_stops_the_run(tmp_path: Path) -> None:
    data = karate()
    data.train.x = data.train.x.clone()
    data.train.x[0, 0] = float("nan")
    ctx = _ctx(tmp_path, data, "graph:full-batch", epochs=3)
    with pytest.raises(NonFiniteLossError, match="loss became nan"):
        FullBatch().fit(ctx)
    assert not ctx.checkpoint_path.exists()


def test_neighbor_routine_steps_over_seed_batches(tmp_path: Path) -> None:
    data = karate()
    ctx = _ctx(tmp_path, data, "graph:neighbor", epochs=2, batch_size=8)
    NeighborBatch(num_neighbors=[3, 3]).fit(ctx)
    assert ctx.global_step == 2 * 5  # 34 nodes in batches of 8
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in lines if "epoch" in r]
    assert len(epochs) == 2 and all(0 < r["masked_nodes"] <= 8 for r in epochs)
    with pytest.raises(ValueError, match="seed_nodes"):
        NeighborBatch(seed_nodes="some")


def _flagged_karate() -> tuple[Any, torch.Tensor]:
    data = karate()
    poisoned = torch.arange(int(data.train.num_nodes)) % 5 == 0
    # Set directly: DataSplits.with_flags goes through dataclasses.replace, which
    # GraphSplits' own __init__ does not take.
    data.flags = {"train": {"poisoned": poisoned}}
    return data, poisoned


def _recording(ctx: RunContext) -> list[Any]:
    seen: list[Any] = []
    inner = ctx.objective.forward

    def views(graph: Any, meta: Any = None) -> list[Any]:
        seen.append(("views", meta))
        return [graph]

    def forward(encoder: Any, views: Any, meta: Any = None) -> Any:
        seen.append(("objective", meta))
        return inner(encoder, views, meta)

    ctx.views = views
    ctx.objective.forward = forward  # type: ignore[method-assign]
    return seen


def _expected_labels(data: Any) -> torch.Tensor:
    """The node labels of the train node split, -1 on every other node."""
    y = data.train.y
    labels = torch.full_like(y, -1)
    train = data.nodes("train")
    labels[train] = y[train]
    return labels


def test_full_batch_meta_covers_every_node_with_flags_and_train_labels(tmp_path: Path) -> None:
    data, poisoned = _flagged_karate()
    ctx = _ctx(tmp_path, data, "graph:full-batch", epochs=2, grad_accum=2)
    seen = _recording(ctx)
    FullBatch().fit(ctx)
    assert [who for who, _ in seen] == ["views", "objective"] * 4  # 2 epochs x 2 micro-steps
    labels = _expected_labels(data)
    assert 0 < int((labels >= 0).sum()) < int(data.train.num_nodes)  # held-out labels hidden
    for _, meta in seen:
        assert meta is seen[0][1]  # the same meta for views and objective
        assert torch.equal(meta.index, torch.arange(34))
        assert torch.equal(meta.flags["poisoned"], poisoned)
        assert torch.equal(meta.labels, labels)


def test_neighbor_meta_holds_the_seed_nodes(tmp_path: Path) -> None:
    data, poisoned = _flagged_karate()
    ctx = _ctx(tmp_path, data, "graph:neighbor", epochs=2, batch_size=8)
    seen = _recording(ctx)
    NeighborBatch(num_neighbors=[3, 3]).fit(ctx)
    metas = [meta for who, meta in seen if who == "objective"]
    assert [meta for who, meta in seen if who == "views"] == metas
    assert len(metas) == 2 * 5  # 34 nodes in batches of 8
    labels = _expected_labels(data)
    for epoch in range(2):
        batch = metas[epoch * 5 : (epoch + 1) * 5]
        index = torch.cat([m.index for m in batch])
        assert sorted(index.tolist()) == list(range(34))  # every seed node once an epoch
        assert [len(m.index) for m in batch] == [8, 8, 8, 8, 2]
        assert torch.equal(torch.cat([m.flags["poisoned"] for m in batch]), poisoned[index])
        assert torch.equal(torch.cat([m.labels for m in batch]), labels[index])


def test_experiment_end_to_end_with_grace_and_link_prediction(tmp_path: Path) -> None:
    cfg = load_config_text(
        f"""
name: karate-grace
output_dir: {tmp_path}
seeds: [0, 1]
data: {{id: graph:karate, params: {{holdout_edges: 0.2}}}}
encoder: {{id: graph:gcn, params: {{in_dim: 34, hidden_dim: 16}}}}
views: graph:drop-edge-mask-feature
objective: {{id: graph:grace, params: {{proj_dim: 16}}}}
routine: graph:full-batch
evaluators: [core:linear-probe, core:kmeans, graph:link-prediction]
train: {{epochs: 5, device: cpu, optimizer: {{name: adam, lr: 0.01}}}}
"""
    )
    result = run_experiment(cfg, console=Console(file=io.StringIO()), progress=False)
    assert not result.failed and len(result.runs) == 4  # grace + random-init, 2 seeds
    metrics = result.runs[0]["metrics"]
    for key in ("linear_acc", "kmeans_nmi", "link_auc", "link_ap"):
        assert key in metrics, metrics
    assert (tmp_path / "karate-grace" / "grace" / "seed-0" / "checkpoints" / "last.pt").exists()


def test_views_never_modify_the_graph() -> None:
    g = karate().train
    x, e = g.x.clone(), g.edge_index.clone()
    v1, v2 = DropEdgeMaskFeature(edge_drop=0.5, feature_mask=0.5)(g)
    assert torch.equal(g.x, x) and torch.equal(g.edge_index, e)
    assert v1.edge_index.size(1) < e.size(1) and (v2.x == 0).all(0).any()


@pytest.mark.heavy
@pytest.mark.distributed
def test_both_routines_under_torchrun_on_gloo(tmp_path: Path) -> None:
    """Two processes on gloo: seed batches are sharded, full-batch gradients all-reduced."""
    cfg = tmp_path / "ddp.yaml"
    cfg.write_text(
        f"""
name: karate-ddp
output_dir: {tmp_path / "runs"}
seeds: [0]
data: {{id: graph:karate}}
encoder: {{id: graph:gat, params: {{in_dim: 34, hidden_dim: 16, heads: 2}}}}
views: core:identity
objective: {{id: graph:graphmae, params: {{in_dim: 34}}}}
evaluators: [core:linear-probe]
train: {{epochs: 2, batch_size: 8, device: cpu, optimizer: {{name: adam, lr: 0.01}}}}
arms:
  - name: neighbor
    routine: {{id: graph:neighbor, params: {{num_neighbors: [3, 3]}}}}
  - name: full-batch
    routine: graph:full-batch
    encoder: {{id: graph:gcn, params: {{in_dim: 34, hidden_dim: 16}}}}
    views: graph:drop-edge-mask-feature
    objective: {{id: graph:grace, params: {{proj_dim: 16}}}}
""",
        encoding="utf-8",
    )
    proc = torchrun_selfsup(cfg)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = tmp_path / "runs" / "karate-ddp"
    neighbor = json.loads((runs / "neighbor" / "seed-0" / "results.json").read_text())
    full = json.loads((runs / "full-batch" / "seed-0" / "results.json").read_text())
    hardware = json.loads((runs / "neighbor" / "seed-0" / "env.json").read_text())["hardware"]
    assert hardware["world_size"] == 2
    # 34 seed nodes in batches of 8: 5 batches, 4 usable on 2 ranks -> 2 steps per epoch
    assert neighbor["status"] == "ok" and neighbor["steps"] == 4, neighbor
    assert full["status"] == "ok" and full["steps"] == 2, full
    assert 0 <= neighbor["metrics"]["linear_acc"] <= 1
