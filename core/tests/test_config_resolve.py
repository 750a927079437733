"""selfsup.resolve: ids and factory parameters checked without building anything."""

from __future__ import annotations

from typing import Literal

import pytest
from selfsup import DatasetSpec, EncoderSpec, ObjectiveSpec, ViewSpec, hookimpl
from selfsup.config import load_config_text
from selfsup.resolve import ResolutionError, annotation_problem, resolve_experiment

BUILT: list[str] = []


def fake_encoder(width: int = 8, depth: int = 2, act: Literal["relu", "gelu"] = "relu"):
    BUILT.append("encoder")
    raise AssertionError("check must not build anything")


def fake_dataset(path: str, size: int | None = None):
    BUILT.append("dataset")
    raise AssertionError("check must not build anything")


def fake_objective(embed_dim: int, temperature: float = 0.1, dims: tuple[int, ...] = (8,)):
    BUILT.append("objective")
    raise AssertionError("check must not build anything")


def fake_views(**kwargs):
    raise AssertionError("check must not build anything")


class FakePlugin:
    @hookimpl
    def register_encoders(self, register):
        register(EncoderSpec(name="enc", build=fake_encoder, modality="image"))

    @hookimpl
    def register_datasets(self, register):
        register(DatasetSpec(name="data", build=fake_dataset, modality="graph"))

    @hookimpl
    def register_objectives(self, register):
        register(ObjectiveSpec(name="obj", build=fake_objective))

    @hookimpl
    def register_views(self, register):
        register(ViewSpec(name="views", build=fake_views, modality="image"))


CONFIG = """
name: exp
data: {id: fake:data, params: {path: /nowhere}}
encoder: {id: fake:enc, params: {width: 16}}
views: {id: fake:views, params: {anything: 1}}
objective: {id: fake:obj, params: {temperature: 0.2}}
arms:
  - {name: a}
  - {name: b, objective: {params: {temperature: 0.5}}}
"""


@pytest.fixture
def pm(selfsup_pm, register_plugin):
    info = register_plugin(FakePlugin(), name="fake")
    assert info.status == "active", info.error
    BUILT.clear()
    return selfsup_pm


def resolve(pm, overrides=()):
    cfg = load_config_text(CONFIG, source="exp.yaml", overrides=overrides)
    return resolve_experiment(cfg, pm, source="exp.yaml")


def problems(pm, overrides) -> str:
    with pytest.raises(ResolutionError) as info:
        resolve(pm, overrides)
    assert BUILT == []
    return str(info.value)


def test_resolves_every_arm_and_seed_without_building(pm) -> None:
    resolved = resolve(pm)
    assert [a.name for a in resolved.arms] == ["a", "b", "random-init"]
    assert resolved.arms[1].spec("objective").id == "fake:obj"
    assert resolved.arms[2].spec("objective") is None
    assert len(list(resolved.runs())) == 3
    assert BUILT == []
    # data is "graph", encoder and views "image": a warning, not an error
    assert any("modalities differ" in w and "'a'" in w for w in resolved.warnings)


def test_unknown_param_names_arm_path_value_suggestion_and_allowed(pm) -> None:
    msg = problems(pm, ("encoder.params.widht=32",))
    assert "arms 'a', 'b', 'random-init': encoder.params.widht = 32" in msg
    assert "unknown parameter of fake:enc" in msg
    assert "did you mean 'width'?" in msg
    assert "allowed: width, depth, act" in msg


def test_per_arm_problem(pm) -> None:
    text = CONFIG.replace("temperature: 0.5", "temperatur: 0.5")
    cfg = load_config_text(text, source="exp.yaml")
    with pytest.raises(ResolutionError) as info:
        resolve_experiment(cfg, pm, source="exp.yaml")
    msg = str(info.value)
    assert "arm 'b': objective.params.temperatur = 0.5" in msg
    assert "did you mean 'temperature'?" in msg
    assert len(info.value.problems) == 1


def test_wrong_types_and_literals(pm) -> None:
    msg = problems(pm, ("encoder.params.width=wide", "encoder.params.act=tanh"))
    assert (
        "encoder.params.width = 'wide': Input should be a valid integer, got str (allowed: int)"
        in msg
    )
    assert "encoder.params.act = 'tanh': Input should be 'relu' or 'gelu'" in msg


def test_required_param_missing(pm) -> None:
    msg = problems(pm, ("data.params={}",))
    assert "data.params.path: required parameter of fake:data is missing" in msg


def test_engine_param_may_not_be_set(pm) -> None:
    msg = problems(pm, ("objective.params.embed_dim=4",))
    assert "'embed_dim' is set by the engine" in msg


def test_var_kwargs_factory_accepts_any_param(pm) -> None:
    resolved = resolve(pm, ("views.params.whatever=3",))
    assert resolved.arms[0].components["views"][0].params == {"anything": 1, "whatever": 3}


def test_unknown_id_lists_choices_and_close_match(pm) -> None:
    msg = problems(pm, ("encoder.id=fake:emc",))
    assert "encoder: unknown encoder 'fake:emc'" in msg and "Did you mean 'fake:enc'?" in msg


def test_all_problems_reported_at_once(pm) -> None:
    with pytest.raises(ResolutionError) as info:
        resolve(pm, ("encoder.params.widht=1", "objective.id=core:nope", "data.params={}"))
    assert len(info.value.problems) == 3


def test_failed_plugin_is_named_in_unknown_id(selfsup_pm, register_plugin) -> None:
    class Broken:
        @hookimpl
        def register_encoders(self, register):
            raise RuntimeError("boom")

    with pytest.warns(RuntimeWarning, match="register_encoders raised RuntimeError: boom"):
        info = register_plugin(Broken(), name="broken")
    assert info.status == "failed"
    cfg = load_config_text(CONFIG.replace("fake:enc", "broken:enc"), source="exp.yaml")
    with pytest.raises(ResolutionError) as exc:
        resolve_experiment(cfg, selfsup_pm, source="exp.yaml", check_parameters=False)
    msg = next(p for p in exc.value.problems if "broken:enc" in p)
    assert "Plugin 'broken' is installed but failed to load: register_encoders raised" in msg
    assert "No loaded plugin provides" not in msg  # no "install it" advice: it is installed


def test_annotation_problem_best_effort() -> None:
    assert annotation_problem(int, 3) is None
    assert annotation_problem(float, 3) is None
    assert annotation_problem(int, True) == (
        "Input should be a valid integer, got bool (allowed: int)"
    )
    assert annotation_problem(list[int], [1, 2]) is None
    assert annotation_problem(tuple[int, ...], [1, "x"]) == (
        "[1]: Input should be a valid integer, got str (allowed: tuple[int, ...])"
    )
    assert annotation_problem(int | None, None) is None
    assert annotation_problem("SomeClass", 3) is None  # unevaluated: accepted
    assert annotation_problem(dict[str, int], {"a": 1}) is None
    assert annotation_problem(dict, [1]) is not None
