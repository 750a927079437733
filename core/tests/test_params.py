"""Parameters checked up front: pydantic validation of factory signatures, Ref parameters."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
import torch
from click.testing import CliRunner
from pydantic import Field, PositiveFloat
from selfsup import ComponentSpec, KindSpec, TransformSpec, hookimpl
from selfsup.cli.main import build_cli
from selfsup.config import load_config_text
from selfsup.params import annotation_problem, factory_params
from selfsup.resolve import ResolutionError, check_params, describe_params, resolve_experiment
from selfsup.specs import Ref
from selfsup.testing import core_manager

BUILT: list[str] = []


def patch_trigger(
    magnitude: PositiveFloat = 1.0,
    shape: Literal["square", "cross"] = "square",
    size: tuple[float, float] = (0.1, 0.1),
):
    BUILT.append("trigger")
    raise AssertionError("check must not build anything")


def poison(
    trigger: Annotated[Any, Ref("trigger")],
    rate: Annotated[float, Field(ge=0, lt=1)] = 0.01,
    decoys: Annotated[list[Any] | None, Ref("trigger", many=True)] = None,
    target: Annotated[Any, Ref("objective")] = None,
):
    BUILT.append("poison")
    raise AssertionError("check must not build anything")


def needs_missing_kind(attack: Annotated[Any, Ref("attack")] = None):
    raise AssertionError("check must not build anything")


class LabPlugin:
    @hookimpl
    def register_kinds(self, register):
        register(KindSpec(name="trigger", description="Backdoor triggers (test)."))

    @hookimpl
    def register_components(self, register):
        register(ComponentSpec(kind="trigger", name="patch", build=patch_trigger))

    @hookimpl
    def register_transforms(self, register):
        register(TransformSpec(name="poison", build=poison))
        register(TransformSpec(name="evade", build=needs_missing_kind))


CONFIG = """
name: exp
output_dir: {out}
data:
  id: core:arrays
  params: {{path: /nowhere/data.npz}}
  transforms: [{transforms}]
encoder: {{id: core:mlp, params: {{in_dim: 4}}}}
views: core:noise-mask
objective: {{id: core:simclr, params: {{temperature: 0.2}}}}
evaluators: [core:knn]
"""


@pytest.fixture
def pm():
    manager = core_manager(("lab", LabPlugin()))
    assert manager.infos["lab"].status == "active", manager.infos["lab"].error
    assert "trigger" in manager.kinds()
    BUILT.clear()
    return manager


def config(tmp_path, transforms: str = "") -> str:
    return CONFIG.format(out=tmp_path / "runs", transforms=transforms)


def problems(pm, tmp_path, transforms: str = "", overrides: tuple[str, ...] = ()) -> list[str]:
    cfg = load_config_text(config(tmp_path, transforms), source="exp.yaml", overrides=overrides)
    with pytest.raises(ResolutionError) as info:
        resolve_experiment(cfg, pm, source="exp.yaml")
    assert BUILT == []
    return info.value.problems


def resolves(pm, tmp_path, transforms: str = "", overrides: tuple[str, ...] = ()):
    cfg = load_config_text(config(tmp_path, transforms), source="exp.yaml", overrides=overrides)
    resolved = resolve_experiment(cfg, pm, source="exp.yaml")
    assert BUILT == []
    return resolved


# ------------------------------------------------------------------ values of core components


def test_negative_temperature_names_path_value_and_range(pm, tmp_path) -> None:
    (line,) = problems(pm, tmp_path, overrides=("objective.params.temperature=-1",))
    assert line == (
        "arm 'simclr': objective.params.temperature = -1: "
        "Input should be greater than 0 (allowed: float > 0)"
    )


def test_rate_of_one_is_rejected(pm, tmp_path) -> None:
    (line,) = problems(pm, tmp_path, overrides=("encoder.params.dropout=1.0",))
    assert "encoder.params.dropout = 1.0: Input should be less than 1" in line
    assert "(allowed: float in [0, 1))" in line


def test_unknown_literal_choice_lists_the_choices(pm, tmp_path) -> None:
    (line,) = problems(pm, tmp_path, overrides=("encoder.params.norm=group",))
    assert "encoder.params.norm = 'group': Input should be 'batch', 'layer' or 'none'" in line


def test_bool_is_not_an_int_and_a_string_is_not_a_number(pm, tmp_path) -> None:
    bool_line, str_line = problems(
        pm, tmp_path, overrides=("encoder.params.in_dim=true", "views.params.n_views='3'")
    )
    assert "encoder.params.in_dim = True: Input should be a valid integer, got bool" in bool_line
    assert "views.params.n_views = '3': Input should be a valid integer, got str" in str_line


def test_int_for_float_and_list_for_sequence_are_fine(pm, tmp_path) -> None:
    resolved = resolves(
        pm,
        tmp_path,
        overrides=("objective.params.temperature=1", "encoder.params.widths=[32, 16]"),
    )
    assert resolved.arms[0].components["objective"][0].params == {"temperature": 1}


def test_every_problem_of_one_component_is_listed(pm, tmp_path) -> None:
    lines = problems(
        pm,
        tmp_path,
        overrides=("views.params.mask_prob=1.5", "views.params.noise_std=-0.1"),
    )
    assert len(lines) == 2
    assert any(
        "views.params.mask_prob = 1.5: Input should be less than or equal to 1" in x for x in lines
    )
    assert any(
        "views.params.noise_std = -0.1: Input should be greater than or equal to 0" in x
        for x in lines
    )


def test_check_command_rejects_negative_temperature(tmp_path) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        config(tmp_path).replace("params: {temperature: 0.2}", "params: {temperature: -1}")
    )
    result = CliRunner().invoke(build_cli(core_manager()), ["check", str(exp)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "objective.params.temperature = -1: Input should be greater than 0" in result.stderr
    assert "(allowed: float > 0)" in result.stderr
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------ Ref parameters


def test_transform_with_nested_ref_resolves(pm, tmp_path) -> None:
    resolved = resolves(
        pm,
        tmp_path,
        "{id: lab:poison, params: {trigger: {id: lab:patch, params: {size: [0.2, 0.3]}}, "
        "rate: 0.1, decoys: [lab:patch], target: core:vicreg}}",
    )
    ref, spec = resolved.arms[0].components["data.transforms[0]"]
    assert spec.id == "lab:poison" and spec.kind == "transform"
    assert ref.params["rate"] == 0.1


def test_nested_ref_unknown_id_gives_choices_and_close_match(pm, tmp_path) -> None:
    (line,) = problems(pm, tmp_path, "{id: lab:poison, params: {trigger: lab:pach}}")
    assert "data.transforms[0].params.trigger: unknown trigger 'lab:pach'." in line
    assert "Did you mean 'lab:patch'?" in line
    assert "Available trigger ids: lab:patch" in line


def test_nested_ref_bad_param_has_the_nested_key_path(pm, tmp_path) -> None:
    (line,) = problems(
        pm,
        tmp_path,
        "{id: lab:poison, params: {trigger: {id: lab:patch, params: {magnitude: -3}}}}",
    )
    assert (
        "data.transforms[0].params.trigger.params.magnitude = -3: "
        "Input should be greater than 0 (allowed: float > 0)"
    ) in line


def test_nested_ref_unknown_param_name_and_bad_tuple(pm, tmp_path) -> None:
    lines = problems(
        pm,
        tmp_path,
        "{id: lab:poison, params: {trigger: {id: lab:patch, params: {shap: cross, "
        "size: [1, 2, 3]}}}}",
    )
    text = "\n".join(lines)
    assert "data.transforms[0].params.trigger.params.shap = 'cross': unknown parameter of " in text
    assert "did you mean 'shape'?" in text
    assert "data.transforms[0].params.trigger.params.size = [1, 2, 3]: Tuple should have" in text


def test_ref_many_reports_the_index(pm, tmp_path) -> None:
    (line,) = problems(
        pm,
        tmp_path,
        "{id: lab:poison, params: {trigger: lab:patch, decoys: [lab:patch, "
        "{id: lab:patch, params: {shape: star}}]}}",
    )
    assert "data.transforms[0].params.decoys[1].params.shape = 'star': Input should be" in line


def test_ref_of_a_core_kind_is_checked_with_engine_params(pm, tmp_path) -> None:
    lines = problems(
        pm,
        tmp_path,
        "{id: lab:poison, params: {trigger: lab:patch, target: {id: core:simclr, "
        "params: {temperature: 0, embed_dim: 3}}}}",
    )
    text = "\n".join(lines)
    assert (
        "data.transforms[0].params.target.params.temperature = 0: Input should be greater" in text
    )
    assert "data.transforms[0].params.target.params.embed_dim = 3: 'embed_dim' is set by" in text


def test_ref_value_of_the_wrong_shape(pm, tmp_path) -> None:
    lines = problems(
        pm,
        tmp_path,
        "{id: lab:poison, params: {trigger: 3, decoys: lab:patch}}",
    )
    text = "\n".join(lines)
    assert "data.transforms[0].params.trigger = 3: expected a trigger id or {id, params}" in text
    assert "data.transforms[0].params.decoys = 'lab:patch': expected a list of ids" in text


def test_required_ref_missing_and_unknown_transform(pm, tmp_path) -> None:
    lines = problems(pm, tmp_path, "{id: lab:poison}, lab:poisn")
    text = "\n".join(lines)
    assert "data.transforms[0].params.trigger: required parameter of lab:poison is missing" in text
    assert "data.transforms[1]: unknown transform 'lab:poisn'." in text
    assert "Did you mean 'lab:poison'?" in text


def test_ref_to_a_kind_nobody_opens(pm, tmp_path) -> None:
    (line,) = problems(pm, tmp_path, "{id: lab:evade, params: {attack: lab:pgd}}")
    assert (
        "data.transforms[0].params.attack = 'lab:pgd': lab:evade takes a component of kind" in line
    )
    assert "'attack': kind 'attack' is not known" in line


def test_check_params_needs_no_config(pm) -> None:
    spec = pm.get("transform", "lab:poison")
    assert check_params(spec, {"trigger": "lab:patch"}, "t", pm) == []
    assert check_params(spec, {"trigger": "lab:patch", "rate": 1}, "t", pm) == [
        "t.params.rate = 1: Input should be less than 1 (allowed: float in [0, 1))"
    ]


# ------------------------------------------------------------------ introspection


def test_describe_params_shows_type_default_constraint_and_ref(pm) -> None:
    rows = {r["name"]: r for r in describe_params(pm.get("objective", "core:simclr"))}
    assert rows["temperature"]["type"] == "float"
    assert rows["temperature"]["constraint"] == "> 0"
    assert rows["temperature"]["default"] == "0.5"
    assert rows["embed_dim"]["engine"] is True and rows["embed_dim"]["required"] is True
    poison_rows = {r["name"]: r for r in describe_params(pm.get("transform", "lab:poison"))}
    assert poison_rows["trigger"]["ref"] == "trigger"
    assert poison_rows["trigger"]["required"] and poison_rows["trigger"]["default"] is None
    assert poison_rows["decoys"]["many"] is True
    assert poison_rows["rate"]["constraint"] == "in [0, 1)"
    mlp = {r["name"]: r for r in describe_params(pm.get("encoder", "core:mlp"))}
    assert mlp["norm"]["type"] == "'batch' | 'layer' | 'none'"


class _Unschemable:
    def __init__(
        self,
        net: torch.nn.Module | None = None,
        later: MissingName = 1,  # type: ignore[name-defined]  # noqa: F821
        width: int = 3,
    ) -> None:
        raise AssertionError("not built")


def test_annotations_pydantic_cannot_validate_are_accepted() -> None:
    info = factory_params(_Unschemable)
    assert info.params["net"].problem({"anything": 1}) is None
    assert info.params["later"].annotation == "MissingName"  # unevaluable: accepted
    assert info.params["later"].problem("whatever") is None
    assert info.params["width"].problem(True) is not None  # the others are still checked
    assert factory_params(_Unschemable) is info  # cached per factory


def test_annotation_problem_strictness() -> None:
    assert annotation_problem(float, 2) is None
    assert annotation_problem(tuple[float, float], [1, 2.5]) is None
    assert annotation_problem(int, "3") == "Input should be a valid integer, got str (allowed: int)"
    assert annotation_problem(Literal["a", "b"], "c") == "Input should be 'a' or 'b'"
    assert annotation_problem(Annotated[Any, Ref("trigger")], 3) is None  # checked by resolve


def test_union_errors_name_the_member_the_value_meant() -> None:
    from pydantic import PositiveInt

    assert annotation_problem(PositiveInt | None, -1) == (
        "Input should be greater than 0 (allowed: int (> 0) | None)"
    )
    assert annotation_problem(bool | Literal["auto"], "yes") == (
        "Input should be bool | 'auto', got str"
    )
    nested = dict[Literal["a", "b"], PositiveFloat | dict[str, Any]]
    assert annotation_problem(nested, {"a": -1}).startswith(
        ".a: Input should be greater than 0 (allowed: "
    )
    assert annotation_problem(nested, {"a": "x"}).startswith(
        ".a: Input fits none of the allowed types, got str"
    )
    assert annotation_problem(nested, {"c": 1}) == (".c (the key): Input should be 'a' or 'b'")


def test_check_command_resolves_and_shows_transforms(pm, tmp_path) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(config(tmp_path, "{id: lab:poison, params: {trigger: lab:patch}}"))
    result = CliRunner().invoke(build_cli(pm), ["check", str(exp)])
    assert result.exit_code == 0, result.output
    assert "transforms: lab:poison" in result.stdout
    bad = CliRunner().invoke(
        build_cli(pm), ["check", str(exp), "--set", "data.transforms=[{id: lab:poison}]"]
    )
    assert bad.exit_code == 2
    assert "data.transforms[0].params.trigger: required parameter of lab:poison" in bad.stderr
    assert BUILT == []
