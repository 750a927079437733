from __future__ import annotations

import os
import textwrap

import pytest
from selfsup.config import ConfigError, expand_arms, load_config, load_config_text

BASE = """
name: exp
data: core:arrays
encoder: {id: core:mlp, params: {in_dim: 4}}
views: core:noise-mask
objective: core:simclr
"""


def load(extra: str = "", overrides: tuple[str, ...] = ()) -> object:
    return load_config_text(BASE + textwrap.dedent(extra), source="exp.yaml", overrides=overrides)


def error_of(extra: str = "", overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load(extra, overrides)
    return str(info.value)


def test_valid_config_expands_with_baseline() -> None:
    cfg = load()
    arms = expand_arms(cfg)
    assert [a.name for a in arms] == ["simclr", "random-init"]
    assert arms[0].encoder.params == {"in_dim": 4}
    assert arms[1].objective is None and not arms[1].pretrains


def test_unknown_top_level_key_names_it_and_the_allowed_keys() -> None:
    msg = error_of("epochs: 3\n")
    assert "exp.yaml" in msg and "epochs: unknown key" in msg
    assert "allowed:" in msg and "train" in msg and "seeds" in msg


def test_unknown_train_key_names_the_path() -> None:
    msg = error_of("train: {epochz: 3}\n")
    assert "train.epochz" in msg and "unknown key" in msg and "epochs" in msg


def test_wrong_type_names_path_and_value() -> None:
    msg = error_of("train: {batch_size: lots}\n")
    assert "train.batch_size" in msg and "'lots'" in msg


def test_negative_lr_names_path_value_and_bound() -> None:
    msg = error_of("train: {optimizer: {lr: -0.1}}\n")
    assert "train.optimizer.lr" in msg and "-0.1" in msg and "greater than 0" in msg


def test_literal_choice_lists_allowed_values() -> None:
    msg = error_of("train: {precision: fp8}\n")
    assert "train.precision" in msg and "'fp8'" in msg
    assert "fp32" in msg and "bf16" in msg


def test_import_path_is_not_an_id() -> None:
    text = BASE.replace("encoder: {id: core:mlp, params: {in_dim: 4}}", "encoder: os.system")
    with pytest.raises(ConfigError) as info:
        load_config_text(text, source="exp.yaml")
    msg = str(info.value)
    assert "'os.system' is not a component id" in msg
    assert "never by import path" in msg and "docs/writing-a-plugin.md" in msg


def test_colon_import_path_is_looked_up_never_imported(monkeypatch, selfsup_pm) -> None:
    from selfsup.resolve import ResolutionError, resolve_experiment

    called = []
    monkeypatch.setattr(os, "system", lambda *a: called.append(a))
    text = BASE.replace("encoder: {id: core:mlp, params: {in_dim: 4}}", "encoder: os:system")
    cfg = load_config_text(text, source="exp.yaml")
    with pytest.raises(ResolutionError) as info:
        resolve_experiment(cfg, selfsup_pm, source="exp.yaml")
    msg = str(info.value)
    assert "unknown encoder 'os:system'" in msg and "No loaded plugin provides 'os:' ids" in msg
    assert called == []


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_empty_file(tmp_path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("# only a comment\n")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_config(path)


def test_non_mapping_yaml(tmp_path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"top level must be a mapping.*not a list"):
        load_config(path)


def test_invalid_yaml_syntax(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


@pytest.mark.parametrize(
    "tagged",
    [
        "!!python/object/apply:os.system ['echo pwned']",
        "!!python/object:collections.OrderedDict {}",
        "!!python/name:os.system",
    ],
)
def test_python_yaml_tags_are_rejected_and_never_run(monkeypatch, tagged) -> None:
    called = []
    monkeypatch.setattr(os, "system", lambda *a: called.append(a))
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config_text(BASE + f"description: {tagged}\n", source="exp.yaml")
    assert "python/" in str(info.value)
    assert called == []


def test_non_plain_param_values_are_rejected() -> None:
    text = BASE.replace("params: {in_dim: 4}", "params: {in_dim: 4, when: 2024-01-01}")
    with pytest.raises(ConfigError) as info:
        load_config_text(text, source="exp.yaml")
    msg = str(info.value)
    assert "params.when" in msg and "only plain values" in msg and "date" in msg


def test_set_overrides_apply_and_parse_yaml_values() -> None:
    cfg = load(overrides=("train.epochs=3", "encoder.params.dims=[8, 8]", "seeds=[1,2]"))
    arm = expand_arms(cfg)[0]
    assert arm.train.epochs == 3
    assert arm.encoder.params == {"in_dim": 4, "dims": [8, 8]}
    assert cfg.seeds == [1, 2]


def test_set_on_a_bare_id_adds_params() -> None:
    cfg = load(overrides=("objective.params.temperature=0.5",))
    arm = expand_arms(cfg)[0]
    assert arm.objective.id == "core:simclr"
    assert arm.objective.params == {"temperature": 0.5}


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("train.epochs", "expected key.path=value"),
        ("=5", "expected key.path=value"),
        ("encoder.params.dims=[1, 2", "cannot parse the value"),
        ("name.sub=1", "name is not a mapping"),
    ],
)
def test_bad_set_overrides(item, expected) -> None:
    msg = error_of(overrides=(item,))
    assert expected in msg and repr(item) in msg


def test_set_value_is_validated_like_the_file() -> None:
    msg = error_of(overrides=("train.epochs=-2",))
    assert "train.epochs" in msg and "-2" in msg


def test_arms_and_matrix_expand_to_the_product() -> None:
    cfg = load(
        """
        seeds: [0, 1]
        arms:
          - {name: simclr}
          - {name: barlow, objective: core:barlow-twins}
        matrix:
          train.optimizer.lr: [0.001, 0.01]
        """
    )
    arms = expand_arms(cfg)
    names = [a.name for a in arms]
    assert names == [
        "simclr[lr=0.001]",
        "simclr[lr=0.01]",
        "barlow[lr=0.001]",
        "barlow[lr=0.01]",
        "random-init",
    ]
    assert {a.train.optimizer.lr for a in arms[:4]} == {0.001, 0.01}
    assert arms[2].objective.id == "core:barlow-twins"
    # the base encoder params survive the deep merge in every arm
    assert all(a.encoder.params == {"in_dim": 4} for a in arms)


def test_arm_override_deep_merges_params() -> None:
    cfg = load(
        """
        arms:
          - {name: wide, encoder: {params: {dims: [64]}}}
        """
    )
    arm = expand_arms(cfg)[0]
    assert arm.encoder.id == "core:mlp"
    assert arm.encoder.params == {"in_dim": 4, "dims": [64]}


def test_arm_with_unknown_key_names_the_arm() -> None:
    msg = error_of("arms:\n  - {name: a, objectiv: core:vicreg}\n")
    assert "arms[0]" in msg and "objectiv" in msg and "allowed:" in msg


def test_repeated_arm_names() -> None:
    msg = error_of("arms:\n  - {name: a}\n  - {name: a, objective: core:vicreg}\n")
    assert "arm names must be distinct" in msg and "'a'" in msg


def test_objective_without_views() -> None:
    text = BASE.replace("views: core:noise-mask\n", "")
    with pytest.raises(ConfigError, match="an objective needs views"):
        load_config_text(text, source="exp.yaml")


def test_missing_encoder_names_what_is_needed() -> None:
    text = BASE.replace("encoder: {id: core:mlp, params: {in_dim: 4}}\n", "")
    with pytest.raises(ConfigError, match="missing 'encoder'"):
        load_config_text(text, source="exp.yaml")


def test_empty_matrix_and_repeated_seeds() -> None:
    assert "empty list" in error_of("matrix: {train.epochs: []}\n")
    assert "seeds must be distinct" in error_of("seeds: [1, 1]\n")


@pytest.mark.parametrize(
    ("extra", "path", "got"),
    [
        ("train: {epochs: true}\n", "train.epochs", "True"),
        ("train: {batch_size: 2.5}\n", "train.batch_size", "2.5"),
        ("seeds: [0, false]\n", "seeds.1", "False"),
    ],
)
def test_no_silent_coercion_of_bools_and_floats(extra, path, got) -> None:
    msg = error_of(extra)
    assert f"{path}: Input should be a valid integer (got {got})" in msg


def test_ints_for_floats_and_lists_for_pairs_are_fine() -> None:
    arm = expand_arms(load("train: {clip_grad: 1, optimizer: {lr: 1, betas: [0.9, 0.95]}}\n"))[0]
    assert arm.train.optimizer.lr == 1.0 and arm.train.optimizer.betas == (0.9, 0.95)


def test_set_indexes_lists() -> None:
    cfg = load(
        "arms: [{name: a}, {name: b}]\nevaluators: [core:knn]\n",
        overrides=("arms.1.objective=core:byol", "evaluators.0.params.k=5"),
    )
    arms = {a.name: a for a in expand_arms(cfg)}
    assert arms["b"].objective.id == "core:byol" and arms["a"].objective.id == "core:simclr"
    assert arms["a"].evaluators[0].params == {"k": 5}


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("arms.5.name=x", "arms has 1 entries; index 5 is out of range"),
        ("arms.first.name=x", "arms is a list; index it with a number"),
    ],
)
def test_bad_list_index_in_set(item, expected) -> None:
    assert expected in error_of("arms: [{name: a}]\n", overrides=(item,))


# ------------------------------------------------------------------ the bounded YAML loader


def test_anchors_and_merge_keys_within_the_limits_still_work() -> None:
    cfg = load(
        """
        train: {optimizer: &opt {name: sgd, lr: 0.1}}
        arms:
          - {name: a, train: {optimizer: *opt}}
          - {name: b, train: {optimizer: {<<: *opt, lr: 0.2}}}
        """
    )
    arms = {a.name: a for a in expand_arms(cfg)}
    assert arms["a"].train.optimizer.lr == 0.1 and arms["b"].train.optimizer.lr == 0.2
    assert arms["b"].train.optimizer.name == "sgd"


def test_a_large_document_without_aliases_is_refused_as_data(monkeypatch) -> None:
    import selfsup.config_yaml as config_yaml

    monkeypatch.setattr(config_yaml, "MAX_NODES", 50)
    msg = error_of("description: [" + ", ".join(["1"] * 60) + "]\n")
    assert "holds more than 50 values" in msg and "not data" in msg and "alias" not in msg
    msg = error_of("x: &x [1, 2, 3, 4, 5, 6, 7, 8]\ndescription: [*x, *x, *x, *x, *x, *x, *x]\n")
    assert "aliases expanding to more than 50 nodes are refused" in msg


def test_the_limits_are_documented_numbers() -> None:
    from selfsup import config_yaml

    assert config_yaml.MAX_ALIASES == 1_000 and config_yaml.MAX_NODES == 100_000
    assert config_yaml.MAX_DEPTH == 64 and config_yaml.MAX_CONFIG_CHARS == 262_144
    for name in ("MAX_ALIASES", "MAX_NODES", "MAX_DEPTH", "MAX_CONFIG_CHARS"):
        assert name in config_yaml.__doc__


def test_a_tag_that_fails_on_its_value_is_a_config_error() -> None:
    for extra in (
        "description: !!int ''\n",
        "seeds: [!!float abc]\n",
        "x: !!timestamp 2024-13-45\n",
    ):
        assert "not valid YAML" in error_of(extra), extra


def test_dump_yaml_quotes_what_the_loader_would_read_as_a_number() -> None:
    from selfsup.config_yaml import dump_yaml, load_yaml

    data = {"a": "1e-3", "b": 1e-3, "c": "1.0.0", "d": "yes", "e": ["1E5", 1e5]}
    assert load_yaml(dump_yaml(data)) == data
    assert load_yaml(dump_yaml(data, flow=True)) == data
    assert "\n" not in dump_yaml(data, flow=True)


def test_config_error_is_one_class_everywhere() -> None:
    import selfsup
    from selfsup import config_keys, config_yaml

    assert selfsup.ConfigError is ConfigError is config_yaml.ConfigError
    assert config_keys.ConfigError is ConfigError


# ------------------------------------------------------------------ key paths


@pytest.mark.parametrize(
    ("key", "parts"),
    [
        ("train.optimizer.lr", ["train", "optimizer", "lr"]),
        ("arms[1].name", ["arms", "1", "name"]),
        ("arms.1.name", ["arms", "1", "name"]),
        ("arms[-1].evaluators[0].params.k", ["arms", "-1", "evaluators", "0", "params", "k"]),
        ("x[0][2]", ["x", "0", "2"]),
    ],
)
def test_split_key(key, parts) -> None:
    from selfsup.config_keys import split_key

    assert split_key(key, "--set") == parts


@pytest.mark.parametrize("key", ["..", ".x", "x.", "a..b", "[0]", "a.[0]", " "])
def test_split_key_refuses_empty_segments(key) -> None:
    from selfsup.config_keys import split_key

    with pytest.raises(ConfigError, match="empty segment"):
        split_key(key, "--set")


@pytest.mark.parametrize("key", ["a[", "a]", "a[x]", "a[0]b", "a[1.5]"])
def test_split_key_refuses_brackets_without_an_index(key) -> None:
    from selfsup.config_keys import split_key

    with pytest.raises(ConfigError, match="brackets hold a list index"):
        split_key(key, "--set")


@pytest.mark.parametrize("item", ["arms.²=1", "arms.--1.name=x", "arms.1e0.name=x"])
def test_odd_indexes_are_config_errors(item) -> None:
    assert "index it with a number" in error_of("arms: [{name: a}]\n", overrides=(item,))


# ------------------------------------------------------------------ import paths at resolve time


def test_an_unknown_id_of_a_loaded_plugin_keeps_the_registry_advice() -> None:
    from selfsup.resolve import resolve_experiment
    from selfsup.testing import core_manager

    text = BASE.replace("objective: core:simclr", "objective: core:SimCLR")
    with pytest.raises(ConfigError) as info:
        resolve_experiment(load_config_text(text, "exp.yaml"), core_manager(), source="exp.yaml")
    msg = str(info.value)
    assert "unknown objective 'core:SimCLR'" in msg and "Did you mean 'core:simclr'" in msg
    assert "import path" not in msg


@pytest.mark.parametrize(
    ("value", "looks"),
    [
        ("core:simclr", False),
        ("vision:vit-b.16", False),
        ("os:system", False),
        ("SimCLR", False),
        ("os.system", True),
        ("mypkg.objectives:MyLoss", True),
        ("mypkg:MyLoss", True),
        ("sklearn.linear_model.LogisticRegression", True),
    ],
)
def test_import_path_hint(value, looks) -> None:
    from selfsup.config import import_path_hint

    assert (import_path_hint(value) is not None) is looks


# ------------------------------------------------------------------ output_dir


def test_output_dir_problem(tmp_path) -> None:
    from selfsup.cli.check import output_dir_problem

    assert output_dir_problem(str(tmp_path / "new" / "deeper"), "exp") is None
    assert output_dir_problem(str(tmp_path), "exp") is None
    (tmp_path / "file").write_text("x")
    msg = output_dir_problem(str(tmp_path / "file"), "exp")
    assert msg and str(tmp_path / "file") in msg and "is a file, not a directory" in msg
    msg = output_dir_problem("bad\0path", "exp")
    assert msg and "is not a usable path" in msg
