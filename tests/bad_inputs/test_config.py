"""Bad-input corpus: experiment files and ``--set`` values (issue 9, "Config parser").

One case per bad input, each asserting the error class (or the CLI exit code 2) and
the key phrases of the message: the file, the key path, the value and the fix.
Cases marked "finding" in their comment are the ones issue 9 reported.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from selfsup.cli.main import build_cli
from selfsup.config import ConfigError, expand_arms, load_config, load_config_text
from selfsup.resolve import resolve_experiment
from selfsup.testing import core_manager

BASE = """\
name: exp
data: core:arrays
encoder: {id: core:mlp, params: {in_dim: 4}}
views: core:noise-mask
objective: core:simclr
"""

#: An upper bound on any config message: no value is echoed in full.
MAX_MESSAGE = 4000


def _bomb(levels: int, width: int = 9) -> str:
    """A "billion laughs" document: ``width ** levels`` values from ~``levels`` lines."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    body = ",\n  ".join(lines)
    return BASE.replace("params: {in_dim: 4}", "params: {in_dim: 4, bomb: {\n  " + body + "}}")


def _error(text: str, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, source="exp.yaml", overrides=overrides)
    message = str(info.value)
    assert len(message) < MAX_MESSAGE, message[:500]
    return message


def _assert_all(message: str, fragments: tuple[str, ...]) -> None:
    missing = [f for f in fragments if f not in message]
    assert not missing, f"missing {missing} in:\n{message}"


# ---------------------------------------------------------------- YAML safety

ALIAS_BOMB = _bomb(9)  # ~1 KB, 9**9 = 387 million values once expanded


def test_alias_bomb_is_small_and_expands_hugely() -> None:
    assert len(ALIAS_BOMB) < 1500


YAML_SAFETY = [
    # finding: a ~1 KB alias bomb took 25 s and 1.25 GB and printed a 39 MB error
    pytest.param(
        ALIAS_BOMB,
        ("exp.yaml", "aliases expanding to more than", "nodes are refused"),
        id="alias-bomb-1kb",
    ),
    # finding: deeper ones hung
    pytest.param(_bomb(30), ("exp.yaml", "aliases expanding to more than"), id="alias-bomb-deep"),
    pytest.param(_bomb(6, width=40), ("exp.yaml", "nodes are refused"), id="alias-bomb-wide"),
    pytest.param(
        BASE + "x: &x lol\ndescription: [" + ", ".join(["*x"] * 1100) + "]\n",
        ("exp.yaml", "more than 1000 alias uses", "alias bomb"),
        id="alias-count",
    ),
    pytest.param(
        BASE + "train: &t {optimizer: *t}\n",
        ("exp.yaml", "recursive alias", "line 6", "'train.optimizer'"),
        id="alias-inside-its-own-anchor",
    ),
    pytest.param(
        BASE + "description: *nowhere\n",
        ("exp.yaml", "not valid YAML", "undefined alias 'nowhere'", "line 6"),
        id="alias-undefined",
    ),
    pytest.param(
        BASE.replace("params: {in_dim: 4}", "params: &p {in_dim: 4, again: [*p]}"),
        ("exp.yaml", "recursive alias", "encoder.params.again[0]"),
        id="recursive-alias",
    ),
    pytest.param(
        BASE + "description: " + "[" * 500 + "]" * 500 + "\n",
        ("exp.yaml", "nesting deeper than 64 levels", "line 6"),
        id="deep-nesting",
    ),
    pytest.param(
        BASE + "description: " + "{a: " * 300 + "1" + "}" * 300 + "\n",
        ("exp.yaml", "nesting deeper than"),
        id="deep-nesting-mappings",
    ),
    pytest.param(
        BASE + "description: '" + "x" * 300_000 + "'\n",
        ("exp.yaml", "characters is more than the", "point a dataset's params at a data file"),
        id="huge-text",
    ),
]


YAML_SAFETY += [
    pytest.param(
        BASE
        + "matrix: {"
        + ", ".join(f"k{i}: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]" for i in range(9))
        + "}\n",
        ("exp.yaml", "10 x 10 x 10", "1000000000 arms", "at most 1000", "split the experiment"),
        id="matrix-explosion",
    ),
    pytest.param(
        BASE + "arms: [" + ", ".join("{}" for _ in range(1001)) + "]\n",
        ("exp.yaml", "1001 arms", "at most 1000"),
        id="too-many-arms",
    ),
]


@pytest.mark.parametrize(("text", "fragments"), YAML_SAFETY)
def test_yaml_safety(text: str, fragments: tuple[str, ...]) -> None:
    start = time.perf_counter()
    message = _error(text)
    assert time.perf_counter() - start < 1.0, "refusing a hostile document must be fast"
    _assert_all(message, fragments)


# ---------------------------------------------------------------- duplicate keys

DUPLICATES = [
    # finding: `train:` written twice silently kept the last
    pytest.param(
        BASE + "train: {epochs: 1}\ntrain: {epochs: 5}\n",
        ("exp.yaml", "duplicate key 'train'", "top level", "lines 6 and 7", "remove one"),
        id="dup-top-level-train",
    ),
    pytest.param(
        BASE.replace("{in_dim: 4}", "{in_dim: 4, in_dim: 8}"),
        ("exp.yaml", "duplicate key 'in_dim'", "'encoder.params'", "lines 3 and 3"),
        id="dup-in-params",
    ),
    pytest.param(
        BASE + "train:\n  optimizer:\n    lr: 0.1\n    momentum: 0.5\n    lr: 0.2\n",
        ("exp.yaml", "duplicate key 'lr'", "'train.optimizer'", "lines 8 and 10"),
        id="dup-in-train-optimizer",
    ),
    pytest.param(
        BASE + "arms:\n  - name: a\n    name: b\n",
        ("exp.yaml", "duplicate key 'name'", "'arms[0]'", "lines 7 and 8"),
        id="dup-in-arm",
    ),
    pytest.param(
        BASE + "seeds: [0]\nname: other\n",
        ("exp.yaml", "duplicate key 'name'", "lines 1 and 7"),
        id="dup-name-far-apart",
    ),
    pytest.param(
        BASE + "matrix: {1: [a], 1.0: [b]}\n",
        ("exp.yaml", "duplicate key", "'matrix'"),
        id="dup-equal-numbers",
    ),
]


@pytest.mark.parametrize(("text", "fragments"), DUPLICATES)
def test_duplicate_keys(text: str, fragments: tuple[str, ...]) -> None:
    _assert_all(_error(text), fragments)


def test_merge_keys_may_override_without_being_duplicates() -> None:
    text = BASE + "x: &opt {lr: 0.1, momentum: 0.5}\ntrain: {optimizer: {<<: *opt, lr: 0.2}}\n"
    with pytest.raises(ConfigError, match="x: unknown key"):  # merged fine; x is unknown
        load_config_text(text, source="exp.yaml")


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("written", "value"),
    [
        # finding: `lr: 1e-3` was refused as "not a valid number"
        pytest.param("1e-3", 0.001, id="lr-1e-3"),
        pytest.param("1E-2", 0.01, id="lr-1E-2"),
        pytest.param(".5e-2", 0.005, id="lr-.5e-2"),
        pytest.param("+2e-4", 0.0002, id="lr-+2e-4"),
        pytest.param("2.5e-4", 0.00025, id="lr-2.5e-4"),
        pytest.param("1.0e+1", 10.0, id="lr-1.0e+1"),
    ],
)
def test_exponent_floats_are_numbers(written: str, value: float) -> None:
    cfg = load_config_text(BASE + f"train: {{optimizer: {{lr: {written}}}}}\n", "exp.yaml")
    assert expand_arms(cfg)[0].train.optimizer.lr == pytest.approx(value)
    by_set = load_config_text(BASE, "exp.yaml", overrides=(f"train.optimizer.lr={written}",))
    assert expand_arms(by_set)[0].train.optimizer.lr == pytest.approx(value)


@pytest.mark.parametrize("written", ["1.0.0", "1e", "e5", "'1e-3'", "0.1-alpha", "1e-3x"])
def test_strings_that_merely_look_numeric_stay_strings(written: str) -> None:
    cfg = load_config_text(BASE + f"description: {written}\n", "exp.yaml")
    assert cfg.description == written.strip("'")


NUMBERS = [
    pytest.param(
        BASE + "train: {optimizer: {lr: -1e-3}}\n",
        ("exp.yaml", "train.optimizer.lr", "greater than 0", "-0.001"),
        id="lr-negative-exponent",
    ),
    pytest.param(
        BASE + "train: {epochs: 1e3}\n",
        ("exp.yaml", "train.epochs", "valid integer", "1000.0"),
        id="epochs-exponent-float",
    ),
    pytest.param(
        BASE + "train: {optimizer: {lr: 1e-3.5}}\n",
        ("exp.yaml", "train.optimizer.lr", "valid number", "'1e-3.5'"),
        id="lr-not-a-number",
    ),
]


@pytest.mark.parametrize(("text", "fragments"), NUMBERS)
def test_numbers(text: str, fragments: tuple[str, ...]) -> None:
    _assert_all(_error(text), fragments)


# ---------------------------------------------------------------- import paths as ids

IMPORT_HINT = (
    "configs name components by id, never by import path",
    "register the class in a plugin",
    "docs/writing-a-plugin.md",
)

IMPORT_PATHS = [
    # finding: an import path used as an id got an "install the plugin" hint
    pytest.param("objective: mypkg.objectives:MyLoss", "objective", id="import-path-colon"),
    pytest.param("objective: mypkg.objectives.MyLoss", "objective", id="import-path-dotted"),
    pytest.param("encoder: torch.nn.Linear", "encoder", id="import-path-torch"),
    pytest.param(
        "encoder: {id: 'mypkg.encoders:Net', params: {}}", "encoder", id="import-path-map"
    ),
    pytest.param(
        "evaluators: [sklearn.linear_model:LogisticRegression]",
        "evaluators",
        id="import-path-evaluator",
    ),
    pytest.param("views: mypkg:MyViews", "views", id="import-path-class-name"),
]


@pytest.mark.parametrize(("line", "role"), IMPORT_PATHS)
def test_import_path_is_never_an_id(line: str, role: str) -> None:
    key = line.partition(":")[0]
    text = "\n".join(ln for ln in BASE.splitlines() if not ln.startswith(f"{key}:")) + "\n" + line
    try:
        resolve_experiment(load_config_text(text, "exp.yaml"), core_manager(), source="exp.yaml")
    except ConfigError as exc:
        message = str(exc)
    else:
        pytest.fail("an import path resolved")
    _assert_all(message, (*IMPORT_HINT, role))
    assert "pip install" not in message and "install the plugin" not in message


def test_an_unknown_plugin_prefix_still_gets_the_install_hint() -> None:
    text = BASE.replace("objective: core:simclr", "objective: vision:simclr")
    with pytest.raises(ConfigError) as info:
        resolve_experiment(load_config_text(text, "exp.yaml"), core_manager(), source="exp.yaml")
    assert "pip install selfsup-vision" in str(info.value)
    assert "import path" not in str(info.value)


# ---------------------------------------------------------------- --set

WITH_ARMS = BASE + "arms: [{name: a}]\n"
SET_CASES = [
    # finding: `--set ..=3` gave a misleading message
    pytest.param(
        BASE,
        "..=3",
        ("--set '..=3'", "empty segment", "train.optimizer.lr=0.01"),
        id="set-dots-only",
    ),
    pytest.param(BASE, ".x=3", ("--set '.x=3'", "empty segment"), id="set-leading-dot"),
    pytest.param(BASE, "a..b=1", ("--set 'a..b=1'", "empty segment"), id="set-double-dot"),
    pytest.param(BASE, "train.=1", ("--set 'train.=1'", "empty segment"), id="set-trailing-dot"),
    pytest.param(BASE, " . =1", ("empty segment",), id="set-blank-segment"),
    # finding: `--set arms.0.name=x` with no arms gave a misleading message
    pytest.param(
        BASE,
        "arms.0.name=x",
        ("--set 'arms.0.name=x'", "the config has no arms", "arms: [{name: a}", "--set 'arms=["),
        id="set-no-arms",
    ),
    pytest.param(BASE, "arms[0].name=x", ("the config has no arms",), id="set-no-arms-brackets"),
    pytest.param(
        BASE + "arms: []\n",
        "arms.0.name=x",
        ("arms is empty", "arms: [{name: a}"),
        id="set-empty-arms",
    ),
    pytest.param(
        BASE,
        "evaluators.0.params.k=5",
        ("the config has no evaluators", "--set 'evaluators=[...]'"),
        id="set-no-evaluators",
    ),
    pytest.param(
        WITH_ARMS,
        "arms[3].name=x",
        ("arms has 1 entries; index 3 is out of range",),
        id="set-bracket-out-of-range",
    ),
    pytest.param(
        WITH_ARMS,
        "arms[first].name=x",
        ("cannot read the key segment 'arms[first]'", "arms[1].name"),
        id="set-bracket-not-a-number",
    ),
    pytest.param(
        WITH_ARMS,
        "arms[0.name=x",
        ("cannot read the key segment 'arms[0'",),
        id="set-bracket-unclosed",
    ),
    pytest.param(
        WITH_ARMS,
        "arms.first.name=x",
        ("arms is a list; index it with a number",),
        id="set-list-by-name",
    ),
    pytest.param(
        BASE, "train.epochs", ("expected key.path=value", "train.epochs=5"), id="set-no-equals"
    ),
    pytest.param(BASE, "=5", ("expected key.path=value",), id="set-empty-key"),
    pytest.param(
        BASE,
        "encoder.params.dims=[1, 2",
        ("cannot parse the value", "encoder.params"),
        id="set-unparsable-value",
    ),
    pytest.param(BASE, "name.sub=1", ("name is not a mapping",), id="set-into-a-string"),
    pytest.param(
        BASE,
        "train.epochs=-2",
        ("train.epochs", "-2", "greater than or equal to 0"),
        id="set-invalid-value",
    ),
    pytest.param(
        BASE,
        "train={epochs: 1, epochs: 2}",
        ("--set", "duplicate key 'epochs'"),
        id="set-duplicate-key-in-value",
    ),
    pytest.param(
        BASE, "description=" + "[" * 200 + "]" * 200, ("nesting deeper than",), id="set-deep-value"
    ),
    pytest.param(
        BASE,
        "train.optimizer.lr=!!python/name:os.system",
        ("cannot parse the value", "python/name"),
        id="set-python-tag",
    ),
    pytest.param(BASE, "x" * 5000 + "=1", ("unknown key", "(5000 characters)"), id="set-huge-key"),
]


@pytest.mark.parametrize(("text", "item", "fragments"), SET_CASES)
def test_set_overrides(text: str, item: str, fragments: tuple[str, ...]) -> None:
    _assert_all(_error(text, (item,)), fragments)


def test_set_bracket_index_is_an_alias_of_the_dotted_one() -> None:
    cfg = load_config_text(
        BASE + "arms: [{name: a}, {name: b}]\nevaluators: [core:knn]\n",
        "exp.yaml",
        overrides=("arms[1].objective=core:byol", "evaluators[0].params.k=5"),
    )
    arms = {a.name: a for a in expand_arms(cfg)}
    assert arms["b"].objective.id == "core:byol" and arms["a"].objective.id == "core:simclr"
    assert arms["a"].evaluators[0].params == {"k": 5}


def test_matrix_keys_take_brackets_too() -> None:
    text = BASE + "evaluators: [core:knn]\nmatrix: {'evaluators[0].params.k': [1, 3]}\n"
    arms = expand_arms(load_config_text(text, "exp.yaml"))
    assert [a.evaluators[0].params["k"] for a in arms[:2]] == [1, 3]


# ---------------------------------------------------------------- every key, wrong type

WRONG_TYPES = [
    pytest.param("description: [a]\n", ("description", "valid string"), id="description-list"),
    pytest.param("seeds: 0\n", ("seeds", "valid list", "got 0"), id="seeds-int"),
    pytest.param("seeds: []\n", ("seeds", "at least 1"), id="seeds-empty"),
    pytest.param("seeds: [a]\n", ("seeds.0", "valid integer", "'a'"), id="seeds-str"),
    pytest.param("seeds: [1, 1]\n", ("seeds must be distinct",), id="seeds-repeated"),
    pytest.param("seeds: [0, false]\n", ("seeds.1", "valid integer", "False"), id="seeds-bool"),
    pytest.param("output_dir: 5\n", ("output_dir", "valid string", "got 5"), id="output-dir-int"),
    pytest.param("baseline: maybe\n", ("baseline", "valid boolean", "'maybe'"), id="baseline-str"),
    pytest.param("routine: 1.5\n", ("routine", "got 1.5"), id="routine-float"),
    pytest.param("evaluators: core:knn\n", ("evaluators", "valid list"), id="evaluators-str"),
    pytest.param("evaluators: [5]\n", ("evaluators.0", "got 5"), id="evaluators-item-int"),
    pytest.param("train: 5\n", ("train", "valid dictionary", "got 5"), id="train-int"),
    pytest.param(
        "train: {epochs: -1}\n",
        ("train.epochs", "greater than or equal to 0", "-1"),
        id="train-epochs-negative",
    ),
    pytest.param(
        "train: {epochs: 1.5}\n", ("train.epochs", "valid integer", "1.5"), id="train-epochs-float"
    ),
    pytest.param(
        "train: {batch_size: 0}\n", ("train.batch_size", "greater than 0"), id="train-batch-zero"
    ),
    pytest.param(
        "train: {optimizer: {name: rmsprop}}\n",
        ("train.optimizer.name", "'rmsprop'", "adamw", "lars"),
        id="optimizer-name",
    ),
    pytest.param(
        "train: {optimizer: {betas: [0.9]}}\n",
        ("train.optimizer.betas",),
        id="optimizer-betas-short",
    ),
    pytest.param(
        "train: {optimizer: {momentum: 1.0}}\n",
        ("train.optimizer.momentum", "less than 1"),
        id="optimizer-momentum",
    ),
    pytest.param(
        "train: {schedule: {min_lr_ratio: 2}}\n",
        ("train.schedule.min_lr_ratio", "less than or equal to 1"),
        id="schedule-ratio",
    ),
    pytest.param(
        "train: {device: gpu}\n", ("train.device", "'cuda:N'", "'gpu'"), id="train-device"
    ),
    pytest.param(
        "train: {precision: fp8}\n", ("train.precision", "'fp8'", "bf16"), id="train-precision"
    ),
    pytest.param("train: {threads: 0}\n", ("train.threads", "greater than 0"), id="train-threads"),
    pytest.param("arms: {name: a}\n", ("arms", "valid list"), id="arms-mapping"),
    pytest.param("arms: [5]\n", ("arms.0", "valid dictionary"), id="arms-item-int"),
    pytest.param("arms: [{name: 5}]\n", ("arms[0]", "name", "valid string"), id="arm-name-int"),
    pytest.param(
        "arms: [{name: a}, {name: a}]\n", ("arm names must be distinct", "'a'"), id="arms-same-name"
    ),
    pytest.param("matrix: [a]\n", ("matrix", "valid dictionary"), id="matrix-list"),
    pytest.param(
        "matrix: {train.epochs: 5}\n",
        ("matrix.train.epochs", "valid list"),
        id="matrix-value-scalar",
    ),
    pytest.param(
        "matrix: {train.epochs: []}\n",
        ("matrix key 'train.epochs'", "empty list"),
        id="matrix-empty",
    ),
    pytest.param(
        "matrix: {name.x: [1]}\n",
        ("matrix key 'name.x'", "name is not a mapping"),
        id="matrix-into-string",
    ),
    pytest.param(
        "matrix: {'train..epochs': [1]}\n",
        ("matrix key", "empty segment"),
        id="matrix-empty-segment",
    ),
    pytest.param(
        "matrix: {train.epochs: [1, x]}\n",
        ("train.epochs", "valid integer", "'x'"),
        id="matrix-bad-value",
    ),
]

REPLACED = [
    pytest.param("name: 5", ("name", "valid string", "got 5"), id="name-int"),
    pytest.param("name: 1e3", ("name", "valid string", "got 1000.0"), id="name-exponent"),
    pytest.param(
        "name: 'my exp!'", ("name", "should match pattern", "'my exp!'"), id="name-pattern"
    ),
    pytest.param("data: 5", ("data", "got 5"), id="data-int"),
    pytest.param(
        "data: {id: core:arrays, transforms: core:subsample}",
        ("data.transforms", "valid list"),
        id="data-transforms-str",
    ),
    pytest.param("encoder: [core:mlp]", ("encoder",), id="encoder-list"),
    pytest.param(
        "encoder: {params: {in_dim: 4}}", ("encoder.id", "Field required"), id="encoder-no-id"
    ),
    pytest.param(
        "encoder: {id: core:mlp, params: [4]}",
        ("encoder.params", "valid dictionary"),
        id="encoder-params-list",
    ),
    pytest.param(
        "encoder: {id: core:mlp, params: {when: 2024-01-01}}",
        ("encoder.params.when", "only plain values", "date"),
        id="param-date",
    ),
    pytest.param("views: 3", ("views", "got 3"), id="views-int"),
    pytest.param(
        "objective: {params: {}}", ("objective.id", "Field required"), id="objective-no-id"
    ),
    pytest.param(
        "objective: SimCLR",
        ("objective", "'SimCLR' is not a component id", "plugin:name", "core:simclr"),
        id="objective-bare-name",
    ),
    pytest.param("objective: ''", ("objective", "'' is not a component id"), id="objective-empty"),
]


@pytest.mark.parametrize(("extra", "fragments"), WRONG_TYPES)
def test_wrong_types(extra: str, fragments: tuple[str, ...]) -> None:
    _assert_all(_error(BASE + extra), ("exp.yaml", *fragments))


@pytest.mark.parametrize(("line", "fragments"), REPLACED)
def test_wrong_component_values(line: str, fragments: tuple[str, ...]) -> None:
    key = line.partition(":")[0]
    text = "\n".join(ln for ln in BASE.splitlines() if not ln.startswith(f"{key}:")) + "\n" + line
    _assert_all(_error(text + "\n"), ("exp.yaml", *fragments))


# ---------------------------------------------------------------- unknown keys, every level

UNKNOWN_KEYS = [
    pytest.param(
        "epochs: 3\n", ("epochs: unknown key", "allowed:", "train", "seeds"), id="unknown-top"
    ),
    pytest.param(
        "train: {epochz: 3}\n", ("train.epochz: unknown key", "epochs"), id="unknown-train"
    ),
    pytest.param(
        "train: {optimizer: {lrr: 1}}\n",
        ("train.optimizer.lrr: unknown key", "lr", "weight_decay"),
        id="unknown-optimizer",
    ),
    pytest.param(
        "train: {schedule: {warmup: 1}}\n",
        ("train.schedule.warmup: unknown key", "warmup_epochs"),
        id="unknown-schedule",
    ),
    pytest.param(
        "arms: [{name: a, objectiv: core:vicreg}]\n",
        ("arms[0]", "objectiv", "allowed:", "objective"),
        id="unknown-arm-key",
    ),
    pytest.param(
        "arms: [{name: a, train: {epochz: 1}}]\n",
        ("arms[0].train.epochz: unknown key", "epochs"),
        id="unknown-arm-train",
    ),
    pytest.param(
        "evaluators: [{id: core:knn, k: 5}]\n",
        ("evaluators.0.k: unknown key", "allowed: id, params"),
        id="unknown-evaluator",
    ),
]

UNKNOWN_IN_COMPONENTS = [
    pytest.param(
        "encoder: {id: core:mlp, parms: {in_dim: 4}}",
        ("encoder.parms: unknown key", "allowed: id, params"),
        id="unknown-encoder",
    ),
    pytest.param(
        "data: {id: core:arrays, transform: []}",
        ("data.transform: unknown key", "transforms"),
        id="unknown-data",
    ),
]


@pytest.mark.parametrize(("extra", "fragments"), UNKNOWN_KEYS)
def test_unknown_keys(extra: str, fragments: tuple[str, ...]) -> None:
    _assert_all(_error(BASE + extra), ("exp.yaml", *fragments))


@pytest.mark.parametrize(("line", "fragments"), UNKNOWN_IN_COMPONENTS)
def test_unknown_component_keys(line: str, fragments: tuple[str, ...]) -> None:
    key = line.partition(":")[0]
    text = "\n".join(ln for ln in BASE.splitlines() if not ln.startswith(f"{key}:")) + "\n" + line
    _assert_all(_error(text + "\n"), ("exp.yaml", *fragments))


# ---------------------------------------------------------------- echoed values are bounded

BOUNDED = [
    pytest.param(
        BASE.replace("name: exp", "name: '" + "x y" * 50_000 + "'"),
        ("name", "... (150002 characters)"),
        id="huge-bad-name",
    ),
    pytest.param(
        BASE + "seeds: [" + ", ".join(["a"] * 5000) + "]\n",
        ("5000 problem(s)", "seeds.0", "and 4980 more"),
        id="many-problems",
    ),
    pytest.param(
        BASE.replace("objective: core:simclr", "objective: '" + "x." * 20_000 + "'"),
        ("objective", "... (40002 characters)"),
        id="huge-bad-id",
    ),
    pytest.param(
        BASE + "seeds: [" + ", ".join(["7"] * 5000) + "]\n",
        ("seeds must be distinct", "characters)"),
        id="huge-repeated-seeds",
    ),
]


@pytest.mark.parametrize(("text", "fragments"), BOUNDED)
def test_echoed_values_are_bounded(text: str, fragments: tuple[str, ...]) -> None:
    _assert_all(_error(text), ("exp.yaml", *fragments))


# ---------------------------------------------------------------- the file itself


def _file_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


FILES = [
    pytest.param(b"", ("the file is empty", "examples/"), id="file-empty"),
    pytest.param(b"# just a comment\n", ("the file is empty",), id="file-comment-only"),
    pytest.param(b"- a\n- b\n", ("top level must be a mapping", "not a list"), id="file-list"),
    pytest.param(b"hello\n", ("top level must be a mapping", "not a str"), id="file-scalar"),
    pytest.param(
        BASE.encode() + b"description: caf\xe9\n",
        ("not UTF-8 text", "byte 0xe9", "line 6", "save it as UTF-8"),
        id="file-latin-1",
    ),
    pytest.param(
        b"\xff\xfe" + BASE.encode("utf-16-le"),
        ("not UTF-8 text", "save it as UTF-8"),
        id="file-utf-16",
    ),
    pytest.param(
        BASE.encode() + b"train:\n\tepochs: 3\n",
        ("not valid YAML", "tabs", "line 7", "spaces"),
        id="file-tab-indented",
    ),
    pytest.param(
        BASE.encode() + b"description: a\x00b\n",
        ("not valid YAML", "unacceptable character #x0000"),
        id="file-nul-byte",
    ),
    pytest.param(
        BASE.encode() + b"---\nname: other\n",
        ("not valid YAML", "expected a single document"),
        id="file-two-documents",
    ),
    pytest.param(b"name: [unclosed\n", ("not valid YAML", "line 2"), id="file-unclosed"),
    pytest.param(
        BASE.encode() + b"description: !!python/object/apply:os.system ['echo x']\n",
        ("not valid YAML", "python/object/apply"),
        id="file-python-tag",
    ),
    pytest.param(
        b"\xef\xbb\xbf" + BASE.encode() + b"train: {epochz: 1}\n",
        ("train.epochz: unknown key",),
        id="file-bom-is-fine",
    ),
    pytest.param(
        BASE.encode() + b"x: " + b"1, " * 200_000 + b"\n",
        ("bytes", "at most", "point a dataset's params at a data file"),
        id="file-huge",
    ),
]


@pytest.mark.parametrize(("content", "fragments"), FILES)
def test_bad_files(tmp_path: Path, content: bytes, fragments: tuple[str, ...]) -> None:
    path = tmp_path / "exp.yaml"
    path.write_bytes(content)
    message = _file_error(path)
    assert len(message) < MAX_MESSAGE
    _assert_all(message, (str(path), *fragments))


def test_missing_file(tmp_path: Path) -> None:
    _assert_all(_file_error(tmp_path / "nope.yaml"), ("nope.yaml", "no such config file"))


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    _assert_all(_file_error(tmp_path), (str(tmp_path), "is a directory, not a config file"))


# ---------------------------------------------------------------- output_dir (check and run)


def _cli(tmp_path: Path, output_dir: str, command: str = "check") -> tuple[int, str]:
    path = tmp_path / "exp.yaml"
    path.write_text(
        BASE.replace("core:arrays", "{id: core:arrays, params: {path: /nowhere/data.npz}}")
        + f"output_dir: '{output_dir}'\n"
    )
    result = CliRunner().invoke(build_cli(core_manager()), [command, str(path)])
    return result.exit_code, result.output


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "runs.txt"
    path.write_text("not a directory\n")
    return path


def _experiment_is_a_file(tmp_path: Path) -> str:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "exp").write_text("x")  # <output_dir>/<name> is a file
    return str(tmp_path / "runs")


def _broken_link(tmp_path: Path) -> str:
    (tmp_path / "runs").symlink_to(tmp_path / "gone")
    return str(tmp_path / "runs")


OUTPUT_DIRS = [
    # finding: output_dir pointing at a file passed check and failed in run
    pytest.param(
        lambda tmp: str(_file(tmp)),
        "runs.txt",
        "is a file, not a directory",
        id="output-dir-is-a-file",
    ),
    pytest.param(
        lambda tmp: str(_file(tmp) / "sub"),
        "runs.txt",
        "is a file, not a directory",
        id="output-dir-inside-a-file",
    ),
    pytest.param(
        _experiment_is_a_file,
        "runs/exp",
        "is a file, not a directory",
        id="output-dir-experiment-is-a-file",
    ),
    pytest.param(_broken_link, "runs", "a broken link", id="output-dir-broken-link"),
]


@pytest.mark.parametrize(("make", "named", "problem"), OUTPUT_DIRS)
@pytest.mark.parametrize("command", ["check", "run"])
def test_output_dir_problems(tmp_path: Path, make, named: str, problem: str, command: str) -> None:
    code, output = _cli(tmp_path, make(tmp_path), command)
    assert code == 2, output
    flat = " ".join(output.split())
    _assert_all(flat, ("output_dir", named, problem, "--set output_dir="))
    assert "NotADirectoryError" not in output and "Traceback" not in output


def test_output_dir_not_writable(tmp_path: Path, monkeypatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes anywhere: make os.access answer as for a user
        real = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode, **kw: Path(p) != locked and real(p, mode, **kw)
        )
    else:
        locked.chmod(0o500)
    try:
        code, output = _cli(tmp_path, str(locked / "runs"))
    finally:
        locked.chmod(0o700)
    assert code == 2, output
    _assert_all(
        " ".join(output.split()), ("output_dir", "locked", "not writable", "--set output_dir=")
    )


def test_output_dir_that_does_not_exist_yet_is_fine(tmp_path: Path) -> None:
    code, output = _cli(tmp_path, str(tmp_path / "new" / "runs"))
    assert code == 0, output


CLI_CASES = [
    pytest.param(ALIAS_BOMB, (), "aliases expanding to more than", id="cli-alias-bomb"),
    pytest.param(
        BASE + "train: {epochs: 1}\ntrain: {epochs: 2}\n", (), "duplicate key", id="cli-dup-key"
    ),
    pytest.param(BASE, ("--set", "..=3"), "empty segment", id="cli-set-empty-segment"),
    pytest.param(BASE, ("--set", "arms.0.name=x"), "has no arms", id="cli-set-no-arms"),
]


@pytest.mark.parametrize(("text", "extra", "fragment"), CLI_CASES)
@pytest.mark.parametrize("command", ["check", "run"])
def test_cli_answers_with_exit_code_2(
    tmp_path: Path, text: str, extra: tuple[str, ...], fragment: str, command: str
) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    start = time.perf_counter()
    result = CliRunner().invoke(build_cli(core_manager()), [command, str(path), *extra])
    assert time.perf_counter() - start < 5.0
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert fragment in flat and "configuration error" in flat
    assert len(result.output) < MAX_MESSAGE and "Traceback" not in result.output


def test_an_override_of_an_arm_built_from_an_anchor_changes_that_arm_only() -> None:
    # finding (review): YAML returns an anchored mapping itself at every alias, so
    # "--set arms.1.train.epochs=7" changed every arm that shared the anchor
    text = BASE + "arms:\n  - &a {name: a, train: {epochs: 2}}\n  - {<<: *a, name: b}\n"
    cfg = load_config_text(text, overrides=["arms.1.train.epochs=7"])
    epochs = {arm.name: arm.train.epochs for arm in expand_arms(cfg)}
    assert epochs == {"a": 2, "b": 7, "random-init": 2}
