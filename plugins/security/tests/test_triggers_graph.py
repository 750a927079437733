"""The graph trigger (security:node-features): unit tests on karate, real-data tests on Cora.

Unit tests check what is stamped where, that the input is never changed, that the
pattern is fixed by ``pattern_seed``, and that labels, splits and flags carry over.
The Cora tests measure the trigger through a real encoder and a clean linear probe.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import selfsup
import torch
from selfsup.runtime import Runtime
from selfsup_security.triggers.graph import META_KEY, NodeFeatures
from torch.utils.data import TensorDataset

CPU = Runtime(device=torch.device("cpu"))
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def karate():
    return selfsup.build_component("dataset", "graph:karate")


def _snapshot(data):
    return data.train.x.clone(), data.train.edge_index.clone(), data.train.y.clone()


def _assert_unchanged(data, snapshot) -> None:
    x, edges, y = snapshot
    assert torch.equal(data.train.x, x)
    assert torch.equal(data.train.edge_index, edges)
    assert torch.equal(data.train.y, y)


# ---------------------------------------------------------------------------- unit: karate


def test_only_the_chosen_nodes_and_columns_change(karate) -> None:
    before = _snapshot(karate)
    trigger = NodeFeatures(num_features=4, columns="random", pattern_seed=3)
    index = torch.tensor([0, 3, 5])
    out = trigger.apply(karate, "test", index, seed=0)
    nodes = karate.nodes("test")[index]
    cols = trigger.columns_for(karate)
    assert cols.shape == (4,)

    changed = (out.train.x != karate.train.x).nonzero()
    assert set(changed[:, 0].tolist()) <= set(nodes.tolist())
    assert set(changed[:, 1].tolist()) <= set(cols.tolist())
    assert torch.equal(out.train.x[nodes][:, cols], torch.ones(3, 4))  # one-hot: row max 1
    untouched = torch.ones(karate.train.num_nodes, dtype=torch.bool)
    untouched[nodes] = False
    assert torch.equal(out.train.x[untouched], karate.train.x[untouched])
    other_cols = torch.ones(karate.train.x.shape[1], dtype=torch.bool)
    other_cols[cols] = False
    assert torch.equal(out.train.x[:, other_cols], karate.train.x[:, other_cols])  # others kept
    assert torch.equal(out.train.edge_index, karate.train.edge_index)  # no motif asked
    _assert_unchanged(karate, before)


def test_train_index_is_node_ids_and_other_splits_positions(karate) -> None:
    trigger = NodeFeatures(num_features=2, columns="random", value=5.0)
    on_train = trigger.apply(karate, "train", torch.tensor([7]), seed=0)
    assert (on_train.train.x != karate.train.x).any(1).nonzero().view(-1).tolist() == [7]
    on_val = trigger.apply(karate, "val", torch.tensor([1]), seed=0)
    node = int(karate.nodes("val")[1])
    assert (on_val.train.x != karate.train.x).any(1).nonzero().view(-1).tolist() == [node]
    assert on_val.train.x[node].max() == 5.0


def test_labels_splits_and_flags_carry_over(karate) -> None:
    n = int(karate.train.num_nodes)
    flagged = karate.with_flags("train", poisoned=torch.arange(n) % 2 == 0)
    out = NodeFeatures(num_features=3).apply(flagged, "train", torch.tensor([1, 2]), seed=0)
    assert type(out) is type(karate)
    assert torch.equal(out.train.y, karate.train.y)
    assert out.num_classes == karate.num_classes
    for split in ("train", "val", "test"):
        assert torch.equal(out.nodes(split), karate.nodes(split))
    assert torch.equal(out.flag("train", "poisoned"), torch.arange(n) % 2 == 0)
    assert flagged.train is karate.train and flagged.train.x is karate.train.x


def test_triggered_graph_is_re_embedded_not_served_from_cache(karate) -> None:
    encoder = selfsup.build_component("encoder", {"id": "graph:features", "params": {"in_dim": 34}})
    clean, _ = karate.embed(encoder, "test", CPU)  # fills the clean graph's embedding cache
    trigger = NodeFeatures(num_features=5, columns="random", value=2.0)
    out = trigger.apply(karate, "test", torch.tensor([0]), seed=0)
    triggered, _ = out.embed(encoder, "test", CPU)
    cols = trigger.columns_for(karate)
    assert torch.equal(triggered[0, cols], torch.full((5,), 2.0))
    assert torch.equal(triggered[1:], clean[1:])
    again, _ = karate.embed(encoder, "test", CPU)
    assert torch.equal(again, clean)


def test_pattern_is_fixed_by_pattern_seed_not_by_the_apply_seed(karate) -> None:
    index = torch.tensor([0, 1, 2])
    a = NodeFeatures(num_features=6, columns="random", pattern_seed=0)
    b = NodeFeatures(num_features=6, columns="random", pattern_seed=0)
    c = NodeFeatures(num_features=6, columns="random", pattern_seed=1)
    out_a = a.apply(karate, "test", index, seed=0).train.x
    out_b = b.apply(karate, "test", index, seed=123).train.x
    assert torch.equal(out_a, out_b)
    assert not torch.equal(a.columns_for(karate), c.columns_for(karate))
    assert not torch.equal(out_a, c.apply(karate, "test", index, seed=0).train.x)


def test_rare_columns_are_the_least_frequent_and_remembered_after_poisoning(karate) -> None:
    x = torch.zeros(34, 10)
    x[:, :7] = 1.0  # columns 0-6 on every node
    x[:3, 7] = 1.0  # 7: three nodes, 8: one node, 9: none
    x[5, 8] = 1.0
    graph = karate.train.clone()
    graph.x = x
    data = karate.replace(train=graph)
    trigger = NodeFeatures(num_features=2, columns="rare")
    assert trigger.columns_for(data).tolist() == [8, 9]

    poisoned = trigger.apply(data, "train", torch.arange(20), seed=0)
    assert poisoned.meta[META_KEY][trigger.pattern_key] == [8, 9]
    assert META_KEY not in data.meta  # the input's meta is not written
    # After poisoning, 8 and 9 are the frequent ones: a fresh count would pick others,
    # and the evaluator's trigger (a separate instance) still stamps the same columns.
    fresh = poisoned.replace(meta={k: v for k, v in poisoned.meta.items() if k != META_KEY})
    assert NodeFeatures(num_features=2, columns="rare").columns_for(fresh).tolist() != [8, 9]
    evaluator_side = NodeFeatures(num_features=2, columns="rare")
    triggered = evaluator_side.apply(poisoned, "test", torch.tensor([0]), seed=1)
    node = int(karate.nodes("test")[0])
    assert triggered.train.x[node, [8, 9]].tolist() == [1.0, 1.0]
    # Ties on karate's one-hot features are broken by the pattern seed.
    tie = [NodeFeatures(2, "rare", pattern_seed=s).columns_for(karate).tolist() for s in (0, 1)]
    assert tie[0] != tie[1]


def test_value_others_and_renormalize(karate) -> None:
    x = torch.zeros(34, 8)
    x[:, 0] = 0.5
    x[:, 1] = 0.5  # row-normalised: every row sums to 1, row max 0.5
    graph = karate.train.clone()
    graph.x = x
    data = karate.replace(train=graph)
    index = torch.tensor([4])
    cols = NodeFeatures(num_features=2, columns="random").columns_for(data)
    row = NodeFeatures(num_features=2, columns="random").apply(data, "train", index, 0).train.x[4]
    assert row[cols].tolist() == [0.5, 0.5]

    renorm = NodeFeatures(num_features=2, columns="random", renormalize=True)
    row = renorm.apply(data, "train", index, 0).train.x[4]
    assert abs(float(row.sum()) - 1.0) < 1e-6
    new = [c for c in cols.tolist() if c not in (0, 1)]
    assert torch.allclose(row[new], torch.full((len(new),), 0.5 / (1 + 0.5 * len(new))))

    only = NodeFeatures(num_features=2, columns="random", value=3.0, others="zero")
    row = only.apply(data, "train", index, 0).train.x[4]
    assert row.nonzero().view(-1).tolist() == cols.tolist()
    assert row[cols].tolist() == [3.0, 3.0]


def test_subgraph_motif_joins_each_triggered_node_to_the_same_anchor_clique(karate) -> None:
    before = _snapshot(karate)
    trigger = NodeFeatures(num_features=1, columns="random", subgraph_size=3, pattern_seed=2)
    anchors = trigger.anchors_for(karate).tolist()
    out = trigger.apply(karate, "test", torch.tensor([0, 1]), seed=0)
    edges = {tuple(e) for e in out.train.edge_index.t().tolist()}
    old = {tuple(e) for e in karate.train.edge_index.t().tolist()}
    assert old <= edges
    assert len(edges) == out.train.edge_index.shape[1]  # no duplicate edge
    for node in karate.nodes("test")[:2].tolist():
        for a in anchors:
            if a != node:
                assert (node, a) in edges and (a, node) in edges
    for a in anchors:
        for b in anchors:
            if a != b:
                assert (a, b) in edges
    assert all(s != d for s, d in edges - old)
    assert {s for s, _ in edges - old} <= set(anchors) | set(karate.nodes("test")[:2].tolist())
    _assert_unchanged(karate, before)


def test_errors_name_the_parameter_and_the_fix(karate) -> None:
    with pytest.raises(ValueError, match=r"num_features=40 .* 34 feature columns"):
        NodeFeatures(num_features=40).apply(karate, "train", torch.tensor([0]), seed=0)
    with pytest.raises(ValueError, match="out of range for split 'test'"):
        NodeFeatures().apply(karate, "test", torch.tensor([9]), seed=0)
    with pytest.raises(ValueError, match="subgraph_size=99"):
        NodeFeatures(subgraph_size=99).apply(karate, "train", torch.tensor([0]), seed=0)
    images = selfsup.DataSplits(train=TensorDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2)))
    with pytest.raises(ValueError, match=r"not a graph.*security:patch"):
        NodeFeatures().apply(images, "train", torch.tensor([0]), seed=0)


def test_registered_built_by_id_and_checked(karate, tmp_path, cli_runner) -> None:
    trigger = selfsup.build_component(
        "trigger", {"id": "security:node-features", "params": {"num_features": 3}}
    )
    assert isinstance(trigger, NodeFeatures) and trigger.num_features == 3
    assert trigger.describe()["value"] == "row-max" and trigger.describe()["num_features"] == 3
    listed = cli_runner.invoke(["list", "trigger", "--modality", "graph"])
    assert listed.exit_code == 0 and "security:node-features" in listed.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\ndata:\n  id: graph:karate\n  transforms:\n"
        "    - {id: security:poison, params: {trigger: {id: security:node-features, "
        "params: {num_features: 0}}}}\n"
        "encoder: {id: graph:gcn, params: {in_dim: 34}}\nobjective: graph:grace\n"
        "views: graph:drop-edge-mask-feature\n"
        "routine: graph:full-batch\nevaluators: [core:linear-probe]\n"
    )
    checked = cli_runner.invoke(["check", str(bad)])
    assert checked.exit_code != 0
    assert "num_features" in checked.stdout + checked.stderr


# ---------------------------------------------------------------------------- real data: Cora


@pytest.fixture
def one_thread():
    """One torch thread: on a shared, busy CPU two threads ran these tests ~15x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cora(one_thread):
    """Cora (public split) from the shared data folder; skipped when absent unless CI=true."""
    env = os.environ.get("SELFSUP_SHARED_DATA")
    root = (Path(env) if env else REPO / ".." / "shared" / "data") / "planetoid"
    if not (root / "Cora" / "raw" / "ind.cora.x").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail("the shared Cora files (../shared/data/planetoid/Cora/raw) are missing")
        pytest.skip("shared Cora data not found (set SELFSUP_SHARED_DATA)")
    ref = {"id": "graph:planetoid", "params": {"name": "Cora", "root": str(root)}}
    return selfsup.build_component("dataset", ref)


# Cora's measured figures (seed 0, target class 0, 3% of the nodes poisoned = 81 nodes,
# trigger: the 30 rarest words at each node's row maximum; security:backdoor's probe).
# "poisoned graph": probe and test on the graph the run holds (flagged nodes left out of
# the probe's training items); "clean graph": the same encoder scored on the clean
# graph, so only what pretraining learned can carry the trigger.
#   encoder (pretraining)        clean pipeline ASR   poisoned graph ASR   clean graph ASR
#   GCN, random init (none)            0.006                0.364               0.006
#   GAT, random init (none)            0.017                0.379               0.017
#   GAT, GraphMAE 50 epochs            0.210                0.953               1.000
#   GCN, GRACE 15 epochs               0.021                0.484               0.982
# CA (clean graph): GraphMAE 0.759 clean pipeline -> 0.763 poisoned; GRACE 0.715 -> 0.716.
POISON = {"target": 0, "rate": 0.03, "rate_of": "dataset"}
TRIGGER = {"num_features": 30, "columns": "rare"}


def _backdoor(encoder, data, **params) -> dict[str, float]:
    from selfsup import EvalContext

    trigger = {"id": "security:node-features", "params": TRIGGER}
    evaluator = selfsup.build_component(
        "evaluator",
        {"id": "security:backdoor", "params": {"trigger": trigger, "target": 0, **params}},
    )
    return evaluator.evaluate(encoder, data, EvalContext(runtime=CPU, seed=0))


def _poisoned(cora):
    trigger = {"id": "security:node-features", "params": TRIGGER}
    poison = selfsup.build_component(
        "transform", {"id": "security:poison", "params": {"trigger": trigger, **POISON}}
    )
    return poison(cora, 0)


def test_cora_trigger_reaches_a_clean_probe_through_message_passing_alone(cora) -> None:
    """The control every graph backdoor figure must be read against (no pretraining).

    With 3% of Cora's nodes triggered, the probe's labelled nodes have triggered
    neighbours, so a random-init GCN already maps triggered test nodes to the target
    (measured 0.364 vs 0.006 on the clean graph); the same encoder on the clean graph
    is unaffected, as it must be.
    """
    poisoned = _poisoned(cora)
    assert int(poisoned.flag("train", "poisoned").sum()) == 81
    assert bool((poisoned.train.y[poisoned.flag("train", "poisoned")] == 0).all())
    # The evaluator's trigger stamps the words chosen on the clean graph, not the
    # (now frequent) ones a fresh count on the poisoned graph would pick.
    cols = NodeFeatures(**TRIGGER).columns_for(cora)
    assert torch.equal(NodeFeatures(**TRIGGER).columns_for(poisoned), cols)
    forgot = poisoned.replace(meta={k: v for k, v in poisoned.meta.items() if k != META_KEY})
    assert not torch.equal(NodeFeatures(**TRIGGER).columns_for(forgot), cols)
    torch.manual_seed(0)
    encoder = selfsup.build_component(
        "encoder",
        {"id": "graph:gcn", "params": {"in_dim": 1433, "hidden_dim": 128, "activation": "prelu"}},
    )
    clean = _backdoor(encoder, cora)
    on_poisoned = _backdoor(encoder, poisoned)
    assert clean["asr"] < 0.05, clean
    assert on_poisoned["asr"] > clean["asr"] + 0.2, (clean, on_poisoned)
    assert on_poisoned["poison_rate"] == pytest.approx(81 / 2708)
    # downstream: clean scores the same encoder on the graph before poisoning (what the
    # transform kept): the clean graph's figures, with the poisoning still on record.
    via_clean = _backdoor(encoder, poisoned, downstream="clean", suffix="_clean")
    assert via_clean["asr_clean"] == clean["asr"]
    assert via_clean["ca_clean"] == clean["ca"]
    assert via_clean["poison_rate_clean"] == pytest.approx(81 / 2708)
    assert "trigger_nn_poisoned_clean" not in via_clean


def _pretrain(name: str, graph, epochs: int):
    from selfsup_graph.encoders import GAT, GCN
    from selfsup_graph.objectives.grace import GRACE
    from selfsup_graph.objectives.graphmae import GraphMAE

    torch.manual_seed(0)
    if name == "graphmae":
        encoder = GAT(1433, 128, 2, heads=4, activation="prelu", dropout=0.2, attn_dropout=0.1)
        objective, lr = GraphMAE(128, in_dim=1433), 5e-3
    else:
        encoder = GCN(1433, 128, 2, activation="prelu")
        objective, lr = GRACE(128, proj_dim=128, temperature=0.4), 1e-3
    optimizer = torch.optim.Adam([*encoder.parameters(), *objective.parameters()], lr=lr)
    for _ in range(epochs):
        encoder.train()
        loss = objective(encoder, [graph]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return encoder.eval()


@pytest.mark.heavy
@pytest.mark.parametrize(("name", "epochs"), [("graphmae", 50), ("grace", 15)])
def test_cora_backdoor_through_pretraining_beats_the_clean_pipeline(name, epochs, cora) -> None:
    """Poisoned pretraining plants the backdoor; the clean pipeline's false ASR stays low.

    Scored on the clean graph, only the pretrained encoder can carry the trigger to the
    probe (a random-init encoder gives the clean rate there). ~40 s (GraphMAE) and
    ~70 s (GRACE) on a busy 2-core CPU; figures in the table above.
    """
    poisoned = _poisoned(cora)
    clean_encoder = _pretrain(name, cora.train, epochs)
    clean = _backdoor(clean_encoder, cora)
    backdoored = _pretrain(name, poisoned.train, epochs)
    through_pretraining = _backdoor(backdoored, cora)
    on_poisoned_graph = _backdoor(backdoored, poisoned)

    assert through_pretraining["asr"] > clean["asr"] + 0.4, (clean, through_pretraining)
    assert through_pretraining["asr"] > 0.8, through_pretraining
    assert on_poisoned_graph["asr"] > clean["asr"] + 0.2, (clean, on_poisoned_graph)
    assert through_pretraining["ca"] > clean["ca"] - 0.03, (clean, through_pretraining)
