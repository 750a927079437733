"""selfsup.testing: the fixtures behave, and each contract check catches what it promises."""

from __future__ import annotations

import subprocess
import sys

import pytest
import selfsup.plugins
import torch
from selfsup import (
    DatasetSpec,
    DataSplits,
    Encoder,
    EncoderOutput,
    EncoderSpec,
    EvaluatorSpec,
    ObjectiveOutput,
    ObjectiveSpec,
    ViewSpec,
    hookimpl,
)
from selfsup.interfaces import BatchMeta, Objective
from selfsup.testing import (
    check_dataset,
    check_encoder,
    check_evaluator,
    check_objective,
    check_views,
    contract_cases,
    make_batch,
)
from torch import nn


class Flat(Encoder):
    def __init__(self, in_dim: int = 12, dim: int = 8, wrong_dim: bool = False, plain=False):
        super().__init__()
        self.embed_dim = dim
        self.net = nn.Linear(in_dim, dim + int(wrong_dim))
        self.plain = plain

    def forward(self, x):
        pooled = self.net(x.flatten(1))
        return pooled if self.plain else EncoderOutput(pooled=pooled, tokens=pooled[:, None, :])


def spec(kind_cls, build, name="x"):
    return kind_cls(name=name, build=build, plugin="t")


def test_check_encoder_passes_a_good_encoder() -> None:
    encoder, out = check_encoder(spec(EncoderSpec, Flat), torch.randn(4, 3, 4))
    assert out.pooled.shape == (4, 8) and isinstance(encoder, Flat)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"wrong_dim": True}, r"pooled must be \[B, embed_dim=8\]"),
        ({"plain": True}, "must return an EncoderOutput"),
    ],
)
def test_check_encoder_catches(params, match) -> None:
    with pytest.raises(AssertionError, match=match):
        check_encoder(spec(EncoderSpec, Flat), torch.randn(4, 12), **params)


def test_check_encoder_catches_a_detached_output() -> None:
    class Detached(Flat):
        def forward(self, x):
            return EncoderOutput(pooled=self.net(x.flatten(1)).detach().requires_grad_())

    with pytest.raises(AssertionError, match="no parameter received a gradient"):
        check_encoder(spec(EncoderSpec, Detached), torch.randn(4, 12))


class Align(Objective):
    def __init__(self, embed_dim: int, detach: bool = False):
        super().__init__()
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.detach = detach
        self.metas: list[BatchMeta | None] = []

    def forward(self, encoder, views, meta=None):
        self.metas.append(meta)
        a, b = (encoder(v).pooled for v in views)
        if self.detach:
            a, b = a.detach(), b.detach()
        loss = (self.proj(a) - self.proj(b)).pow(2).mean()
        return ObjectiveOutput(loss=loss, metrics={"gap": loss.detach()})

    def on_step_end(self, step, total):
        pass


def test_check_objective() -> None:
    views = [torch.randn(4, 12), torch.randn(4, 12)]
    objective, out = check_objective(spec(ObjectiveSpec, Align), Flat(), views)
    assert set(out.scalars()) == {"loss", "gap"}
    # The objective is called with a BatchMeta of the batch's items (arange(B), no flags).
    (meta,) = objective.metas
    assert isinstance(meta, BatchMeta) and meta.index.tolist() == [0, 1, 2, 3]
    assert meta.flags == {} and meta.labels is None
    with pytest.raises(AssertionError, match="does not reach the encoder"):
        check_objective(spec(ObjectiveSpec, Align), Flat(), views, detach=True)

    class Plain(nn.Module):  # the old contract: a plain module without attach
        def __init__(self, embed_dim: int):
            super().__init__()

    with pytest.raises(AssertionError, match=r"must return a selfsup\.interfaces\.Objective"):
        check_objective(spec(ObjectiveSpec, Plain), Flat(), views)

    class NoMeta(Align):
        def forward(self, encoder, views):
            return super().forward(encoder, views)

    with pytest.raises(AssertionError, match=r"declare forward\(self, encoder, views, meta"):
        check_objective(spec(ObjectiveSpec, NoMeta), Flat(), views)


def test_check_views() -> None:
    seen: list[BatchMeta | None] = []

    def good(**_):
        return lambda x, meta=None: seen.append(meta) or [x + 1, x - 1]

    def in_place(**_):
        return lambda x, meta=None: [x.mul_(2)]

    def shrinking(**_):
        return lambda x, meta=None: [x[:2]]

    def meta_only(**_):
        return lambda x, meta: [x + 1]

    assert len(check_views(spec(ViewSpec, good), torch.randn(4, 5))) == 2
    # Called once as evaluators do (no meta), once as training does (a BatchMeta).
    assert seen[0] is None and isinstance(seen[1], BatchMeta)
    assert seen[1].index.tolist() == [0, 1, 2, 3]
    with pytest.raises(AssertionError, match=r"declare __call__\(self, batch, meta=None\)"):
        check_views(spec(ViewSpec, meta_only), torch.randn(4, 5))

    def old_signature(**_):
        return lambda x: [x + 1]

    with pytest.raises(AssertionError, match="cannot be called with 2 argument"):
        check_views(spec(ViewSpec, old_signature), torch.randn(4, 5))
    with pytest.raises(AssertionError, match="modified its input"):
        check_views(spec(ViewSpec, in_place), torch.randn(4, 5))
    with pytest.raises(AssertionError, match="changes the batch size"):
        check_views(spec(ViewSpec, shrinking), torch.randn(4, 5))

    def dict_in_place(**_):
        def make(batch, meta=None):
            batch["x"][0] = 0.0
            return [batch["x"]]

        return make

    with pytest.raises(AssertionError, match="modified its input"):
        check_views(spec(ViewSpec, dict_in_place), {"x": torch.ones(4, 5)})


def test_check_dataset() -> None:
    pairs = [(torch.randn(3), torch.tensor(i % 2)) for i in range(6)]

    def good():
        return DataSplits(train=pairs, test=pairs[:2], num_classes=2)

    def empty():
        return DataSplits(train=[], num_classes=2)

    def unpaired():
        return DataSplits(train=[torch.randn(3)], num_classes=0)

    def bad_label():
        return DataSplits(train=[(torch.randn(3), torch.tensor(5))], num_classes=2)

    assert check_dataset(spec(DatasetSpec, good)).num_classes == 2
    with pytest.raises(AssertionError, match="train split is empty"):
        check_dataset(spec(DatasetSpec, empty))
    with pytest.raises(AssertionError, match=r"items must be \(x, y\) pairs"):
        check_dataset(spec(DatasetSpec, unpaired))
    with pytest.raises(AssertionError, match="label 5 out of range"):
        check_dataset(spec(DatasetSpec, bad_label))


def test_check_evaluator() -> None:
    class Const:
        def __init__(self, value: float = 1.0):
            self.value = value

        def evaluate(self, encoder, data, ctx):
            return {"score": self.value}

    data = DataSplits(train=[(torch.randn(12), 0)])
    assert check_evaluator(spec(EvaluatorSpec, Const), Flat(), data) == {"score": 1.0}
    with pytest.raises(AssertionError, match="not finite"):
        check_evaluator(spec(EvaluatorSpec, Const), Flat(), data, value=float("inf"))


def test_check_evaluator_passes_views_in_the_context() -> None:
    class Pairs:
        def evaluate(self, encoder, data, ctx):
            assert ctx.views is not None, "views were not passed"
            a, b = ctx.views(torch.ones(2, 12))
            return {"gap": float((a - b).abs().sum())}

    def jitter(x):
        return [x, x + 1.0]

    data = DataSplits(train=[(torch.randn(12), 0)])
    assert check_evaluator(spec(EvaluatorSpec, Pairs), Flat(), data, views=jitter) == {"gap": 24.0}


def test_contract_cases_lists_one_plugins_specs(selfsup_pm, register_plugin) -> None:
    class Two:
        @hookimpl
        def register_encoders(self, register):
            register(EncoderSpec(name="a", build=Flat))
            register(EncoderSpec(name="b", build=Flat))

    register_plugin(Two(), name="two")
    cases = contract_cases(selfsup_pm, "two", "encoders")
    assert [c.id for c in cases] == ["two:a", "two:b"]
    assert [c.values[0].id for c in cases] == ["two:a", "two:b"]
    assert contract_cases(selfsup_pm, "two", "objective") == []
    with pytest.raises(ValueError, match="unknown kind"):
        contract_cases(selfsup_pm, "two", "gizmo")


def test_selfsup_pm_is_process_wide_and_fresh(selfsup_pm, register_plugin) -> None:
    class One:
        @hookimpl
        def register_encoders(self, register):
            register(EncoderSpec(name="a", build=Flat))

    assert selfsup.plugins.get_plugin_manager() is selfsup_pm
    assert selfsup_pm.infos["core"].status == "active"  # entry points loaded
    info = register_plugin(One(), name="one")
    assert info.status == "active" and info.hooks == ["register_encoders"]
    assert selfsup.plugins.get_plugin_manager().get("encoder", "one:a").plugin == "one"


def test_register_plugin_strict_raises(selfsup_pm, register_plugin) -> None:
    class Typo:
        @hookimpl
        def register_encoder(self, register):
            pass

    with pytest.raises(selfsup.plugins.PluginLoadError, match="did you mean 'register_encoders'"):
        register_plugin(Typo(), name="typo", strict=True)


def test_make_batch_shapes() -> None:
    assert make_batch("image", batch_size=2).shape == (2, 3, 32, 32)
    assert make_batch("volume", batch_size=1).shape == (1, 1, 16, 16, 16)
    assert make_batch("ecg", shape=(2, 10)).shape == (4, 2, 10)
    assert torch.equal(make_batch("audio", seed=3), make_batch("audio", seed=3))
    with pytest.raises(ValueError, match="no default shape for modality 'smell'"):
        make_batch("smell")
    pytest.importorskip("torch_geometric")
    graphs = make_batch("graph", batch_size=3, num_nodes=5)
    assert graphs.num_graphs == 3 and graphs.x.shape == (15, 8)


def test_importing_selfsup_testing_is_light() -> None:
    code = (
        "import sys, selfsup.testing\n"
        "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
