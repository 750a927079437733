"""security:backdoor: the ASR conventions on a synthetic encoder whose answers are known,
and a backdoor planted through SSL pretraining on real digits (heavy)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from selfsup import (
    DataSplits,
    EncoderOutput,
    EvalContext,
    load_config,
    load_config_text,
    run_experiment,
)
from selfsup.runtime import Runtime
from selfsup_security.evaluators.backdoor import Backdoor
from selfsup_security.triggers.base import ItemTrigger
from torch import nn
from torch.utils.data import TensorDataset

CENTRES = torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])


class Identity(nn.Module):
    """An "encoder" whose embedding is its input: the probe sees the raw points."""

    embed_dim = 2

    def forward(self, x):
        return EncoderOutput(pooled=x.float())


class Nothing(ItemTrigger):
    """A trigger that changes nothing: every non-target item keeps its own class."""

    modality = "any"

    def stamp(self, x, generator):
        return x.clone()


class ToCentre(ItemTrigger):
    """Moves a triggered point onto the centre of class ``target``."""

    modality = "any"

    def __init__(self, target: int) -> None:
        self.target = target

    def stamp(self, x, generator):
        return CENTRES[self.target].expand_as(x).clone()


def _points(per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(3).repeat_interleave(per_class)
    return CENTRES[y] + 0.3 * torch.randn(len(y), 2, generator=gen), y


def _data(with_val: bool = True, with_test: bool = True) -> DataSplits:
    splits = {"train": TensorDataset(*_points(40, 0))}
    if with_val:
        splits["val"] = TensorDataset(*_points(10, 1))
    if with_test:
        splits["test"] = TensorDataset(*_points(20, 2))
    return DataSplits(**splits, num_classes=3)


def _ctx(seed: int = 0) -> EvalContext:
    return EvalContext(runtime=Runtime(torch.device("cpu")), seed=seed, name="backdoor")


def test_asr_counts_only_non_target_items():
    ctx = _ctx()
    m = Backdoor(Nothing(), target=0).evaluate(Identity(), _data(), ctx)
    assert m["ca"] == 1.0
    assert m["asr"] == 0.0  # no non-target item moves to the target
    assert m["asr_all_ctrl"] == pytest.approx(1 / 3)  # CTRL's convention counts the target's own
    assert m["target_rate_clean"] == 0.0
    assert m["poison_rate"] == 0.0
    tm = ctx.facts["threat_model"]
    assert tm["protocol"]["nontarget_items"] == 40 and tm["protocol"]["scored_items"] == 60
    assert tm["poisoned"]["count"] == 0 and tm["knowledge"].startswith("data-only")
    assert tm["protocol"]["probe_selection"] == "val" and tm["seed"] == 0


def test_a_perfect_trigger_gives_asr_one_and_a_clean_false_rate_of_zero():
    ctx = _ctx()
    m = Backdoor(ToCentre(2), target=2, max_test_items=30).evaluate(Identity(), _data(), ctx)
    assert m["asr"] == 1.0 and m["asr_all_ctrl"] == 1.0 and m["target_rate_clean"] == 0.0
    assert ctx.facts["threat_model"]["protocol"]["scored_items"] == 30
    assert ctx.facts["threat_model"]["trigger"]["trigger"] == "ToCentre"


def test_a_trigger_aimed_elsewhere_is_not_a_success():
    m = Backdoor(ToCentre(1), target=0).evaluate(Identity(), _data(), _ctx())
    assert m["asr"] == 0.0 and m["asr_all_ctrl"] == 0.0


def _with_poison(data: DataSplits) -> tuple[DataSplits, torch.Tensor]:
    """200 mislabelled items (class-1 points labelled 0), flagged poisoned."""
    x, y = data.train.tensors
    bad_x = CENTRES[1] + 0.3 * torch.randn(200, 2, generator=torch.Generator().manual_seed(3))
    x, y = torch.cat([x, bad_x]), torch.cat([y, torch.zeros(200, dtype=torch.long)])
    flags = torch.cat([torch.zeros(120, dtype=torch.bool), torch.ones(200, dtype=torch.bool)])
    return data.replace(train=TensorDataset(x, y)), flags


def test_the_probe_never_sees_flagged_items():
    data, flags = _with_poison(_data())
    unflagged = Backdoor(Nothing(), target=0).evaluate(Identity(), data, _ctx())
    assert unflagged["ca"] < 0.8  # the mislabelled items spoil a probe that uses them
    ctx = _ctx()
    flagged = Backdoor(Nothing(), target=0).evaluate(
        Identity(), data.with_flags("train", poisoned=flags), ctx
    )
    assert flagged["ca"] == 1.0
    assert flagged["poison_rate"] == pytest.approx(200 / 320)
    poisoned = ctx.facts["threat_model"]["poisoned"]
    assert poisoned["count"] == 200 and poisoned["rate_of_target_class"] == pytest.approx(200 / 240)


class ToPoint(ItemTrigger):
    """Moves a triggered point to a fixed far-away point."""

    modality = "any"

    def stamp(self, x, generator):
        return torch.tensor([20.0, 20.0]).expand_as(x).clone()


def test_trigger_nn_poisoned_finds_the_poisoned_cluster():
    data = _data()
    x, y = data.train.tensors
    x = torch.cat([x, torch.tensor([[20.0, 20.0], [20.1, 19.9]])])  # two poisoned items
    y = torch.cat([y, torch.zeros(2, dtype=torch.long)])
    flags = torch.cat([torch.zeros(120, dtype=torch.bool), torch.ones(2, dtype=torch.bool)])
    poisoned = data.replace(train=TensorDataset(x, y)).with_flags("train", poisoned=flags)
    near = Backdoor(ToPoint(), target=0).evaluate(Identity(), poisoned, _ctx())
    far = Backdoor(Nothing(), target=0).evaluate(Identity(), poisoned, _ctx())
    unflagged = Backdoor(ToPoint(), target=0).evaluate(Identity(), data, _ctx())
    assert near["trigger_nn_poisoned"] == 1.0
    assert far["trigger_nn_poisoned"] == 0.0
    assert unflagged["trigger_nn_poisoned"] == 0.0


def test_without_test_split_the_val_split_is_held_out_and_named_so():
    ctx = _ctx()
    m = Backdoor(ToCentre(0), target=0).evaluate(Identity(), _data(with_test=False), ctx)
    assert set(m) == {
        "ca_on_val", "asr_on_val", "asr_all_ctrl_on_val", "target_rate_clean_on_val",
        "poison_rate", "trigger_nn_poisoned_on_val",
    }  # fmt: skip
    assert m["asr_on_val"] == 1.0 and m["ca_on_val"] == 1.0
    assert ctx.facts["threat_model"]["protocol"]["probe_selection"].startswith("carved")


def test_suffix_names_every_metric_and_downstream_clean_undoes_the_poisoning():
    from selfsup_security.transforms import CLEAN_KEY, Poison, clean_data

    data = _data()
    poisoned = Poison(ToCentre(1), target=0, rate=0.25)(data, seed=0)  # 30 class-0 points
    assert clean_data(poisoned) is data and clean_data(data) is data
    assert CLEAN_KEY not in data.meta  # the transform copied meta, left its input alone
    again = Poison(ToCentre(2), target=0, rate=0.1)(poisoned, seed=1)
    assert clean_data(again) is data  # chained poisonings keep the first input
    as_trained = Backdoor(ToCentre(0), target=0, suffix="_x").evaluate(Identity(), poisoned, _ctx())
    assert set(as_trained) == {
        "ca_x", "asr_x", "asr_all_ctrl_x", "target_rate_clean_x", "poison_rate_x",
        "trigger_nn_poisoned_x",
    }  # fmt: skip
    ctx = _ctx()
    clean = Backdoor(ToCentre(0), target=0, downstream="clean").evaluate(Identity(), poisoned, ctx)
    assert clean["poison_rate"] == as_trained["poison_rate_x"] == 30 / 120  # still on record
    assert "trigger_nn_poisoned" not in clean
    assert clean == {
        k: v
        for k, v in Backdoor(ToCentre(0), target=0).evaluate(Identity(), data, _ctx()).items()
        if k != "trigger_nn_poisoned" and k != "poison_rate"
    } | {"poison_rate": 0.25}
    assert ctx.facts["threat_model"]["protocol"]["downstream"] == "clean"


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"downstream": "poisoned"}, "downstream"),
        ({"suffix": "a b"}, "suffix"),
        ({"suffix": "x" * 40}, "suffix"),
    ],
)
def test_bad_parameters_name_the_key(params, fragment):
    from selfsup import ConfigError, resolve_experiment

    evaluator = {"id": "security:backdoor", "params": {"trigger": "security:patch", **params}}
    text = yaml.safe_dump(
        {
            "name": "bad",
            "data": "vision:digits",
            "encoder": "vision:small-cnn",
            "objective": "core:simclr",
            "views": "vision:simclr",
            "evaluators": [evaluator],
        }
    )
    with pytest.raises(ConfigError, match=rf"evaluators\[0\]\.params\.{fragment}"):
        resolve_experiment(load_config_text(text))


def test_refuses_a_target_outside_the_classes():
    with pytest.raises(ValueError, match="target=5 is not a class"):
        Backdoor(Nothing(), target=5).evaluate(Identity(), _data(), _ctx())


# --------------------------------------------------------------------------- real data

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "security" / "ctrl_digits.yaml"


@pytest.mark.heavy
def test_ctrl_backdoor_survives_simclr_pretraining_on_digits(tmp_path: Path) -> None:
    """examples/security/ctrl_digits.yaml's SimCLR arms, seed 0, as a user runs them.

    Measured when written (450 test digits, target 0, 5% of the pretraining set
    poisoned with CTRL at magnitude 600): poisoned ASR 0.87 vs the clean pipeline's
    0.0 with the same trigger; the poisoned pipeline's target rate on clean inputs 0.0;
    CA 0.98 both; every triggered test digit's nearest train item is a poisoned one.
    The seed matters at this scale: seeds 1 and 2 gave ASR 0.0 and 0.998. With seed 1
    the triggered digits still land on the poisoned items (trigger_nn_poisoned 1.0), but
    that cluster lies away from the clean 0s, and the clean probe sends it to another
    class; so the probe-free check is asserted too.
    """
    # the example as a user runs it, one seed (the conftest holds torch to one thread)
    overrides = ["seeds=[0]", "train.device=cpu", "train.progress=false"]
    overrides += ["train.checkpoint_every=100", f"output_dir={tmp_path}"]
    cfg = load_config(EXAMPLE, overrides=overrides)
    result = run_experiment(cfg, progress=False, only=["simclr-clean", "simclr-ctrl"])
    runs = {run["arm"]: run for run in result.runs}
    assert all(run["status"] == "ok" for run in runs.values()), runs
    clean, poisoned = runs["simclr-clean"]["metrics"], runs["simclr-ctrl"]["metrics"]
    assert poisoned["poison_rate"] == pytest.approx(0.05, abs=0.001)
    assert clean["poison_rate"] == 0.0
    assert poisoned["asr"] >= clean["asr"] + 0.5, (clean, poisoned)
    assert poisoned["asr"] >= poisoned["target_rate_clean"] + 0.5, poisoned
    assert poisoned["asr_all_ctrl"] >= poisoned["asr"] - 0.05  # the 0s add successes
    assert poisoned["ca"] >= clean["ca"] - 0.03, (clean, poisoned)
    assert poisoned["trigger_nn_poisoned"] >= 0.9, poisoned  # chance: about 0.05
    facts = runs["simclr-ctrl"]["facts"]["backdoor"]["threat_model"]
    assert facts["poisoned"]["count"] == 54 and facts["poisoned"]["of_target_class"] == 54
    assert facts["trigger"]["magnitude"] == 600.0
    summary = runs["simclr-ctrl"]["transforms"][0]["summary"]
    assert summary["rate_of_target_class"] == pytest.approx(54 / 107)


class NodeIdentity(nn.Module):
    """A graph "encoder" whose node embeddings are the node features."""

    embed_dim = 34

    def forward(self, graph):
        return EncoderOutput(pooled=graph.x.float().mean(0, keepdim=True), tokens=graph.x.float())


def test_graph_path_flags_nodes_and_triggers_test_nodes():
    pytest.importorskip("selfsup_graph")
    import selfsup
    from selfsup_security.transforms import Poison
    from selfsup_security.triggers.graph import NodeFeatures

    data = selfsup.build_component("dataset", "graph:karate")
    # others=zero: every triggered node holds the same vector, so all get one prediction
    trigger = NodeFeatures(num_features=4, columns="random", value=1.0, others="zero")
    poisoned = Poison(trigger, target=1, rate=2 / 34)(data, seed=0)
    ctx = _ctx()
    m = Backdoor(trigger, target=1).evaluate(NodeIdentity(), poisoned, ctx)
    assert m["asr"] in (0.0, 1.0) and m["asr_all_ctrl"] == m["asr"]
    assert m["poison_rate"] == pytest.approx(2 / 34)
    test_y = data.train.y[data.nodes("test")]
    tm = ctx.facts["threat_model"]
    assert tm["protocol"]["nontarget_items"] == int((test_y != 1).sum())
    assert tm["poisoned"]["count"] == 2 and tm["modality"] == "graph"
