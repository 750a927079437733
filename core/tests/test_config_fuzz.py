"""Property-based fuzzing of the config loader and the ``--set`` parser (hypothesis).

Whatever the text or the override, loading answers with a validated config or a
:class:`ConfigError`, never another exception and never a hang (hypothesis deadlines);
a valid config written out and read back is the same config; an override of an
existing key with a valid value lands exactly.
"""

from __future__ import annotations

import math
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from selfsup.config import ConfigError, ExperimentConfig, expand_arms, load_config_text
from selfsup.config_yaml import dump_yaml

BASE = {
    "name": "exp",
    "data": "core:arrays",
    "encoder": {"id": "core:mlp", "params": {"in_dim": 4}},
    "views": "core:noise-mask",
    "objective": "core:simclr",
    "evaluators": ["core:knn"],
    "arms": [{"name": "a"}, {"name": "b", "objective": "core:vicreg"}],
}
BASE_TEXT = dump_yaml(BASE)

FUZZ = settings(
    max_examples=120,
    deadline=3000,  # ms per example: a hang or a quadratic blow-up fails, a busy CPU does not
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def load_or_config_error(text: str, overrides: tuple[str, ...] = ()) -> ExperimentConfig | None:
    """Load; a ConfigError is a fine answer, any other exception fails the property."""
    try:
        cfg = load_config_text(text, source="fuzz.yaml", overrides=overrides)
    except ConfigError as exc:
        assert str(exc).startswith(("fuzz.yaml", "--set")), str(exc)[:300]
        assert len(str(exc)) < 20_000
        return None
    expand_arms(cfg)  # already validated once; must still succeed
    return cfg


# ------------------------------------------------------------------ YAML-ish text

TOKENS = [
    "name: exp\n",
    "data: core:arrays\n",
    "encoder: core:mlp\n",
    "views: core:noise-mask\n",
    "objective: core:simclr\n",
    "train:\n",
    "arms:\n",
    "matrix:\n",
    "seeds: ",
    "params: ",
    "  ",
    "    ",
    "- ",
    ": ",
    ":",
    "\n",
    "\t",
    ",",
    "[",
    "]",
    "{",
    "}",
    "&a ",
    "&b ",
    "*a",
    "*b",
    "<<: ",
    "? ",
    "!!str ",
    "!!int ",
    "!!float ",
    "!!binary ",
    "!!set ",
    "!!omap ",
    "!!python/name:os.system ",
    "!foo ",
    "|\n",
    ">\n",
    "#",
    "---\n",
    "...\n",
    "'",
    '"',
    "\\",
    "%YAML 1.1\n",
    "1e-3",
    "1E5",
    ".5",
    "-1e+3",
    "0x1F",
    "0o7",
    "1_000",
    "1:30",
    "2024-01-01",
    "yes",
    "no",
    "null",
    "~",
    ".inf",
    ".nan",
    "true",
    "epochs",
    "lr",
    "optimizer",
    "id",
    "core:knn",
    "arms[0].name",
    "x",
    "é",
    "\ufeff",
    "\x00",
    "\x85",
    "\u2028",
    "=",
    "@",
    "`",
]
yamlish = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)


@FUZZ
@given(text=yamlish)
def test_yamlish_text_gives_a_config_or_a_config_error(text: str) -> None:
    load_or_config_error(text)


@FUZZ
@given(text=st.text(max_size=300))
def test_any_text_gives_a_config_or_a_config_error(text: str) -> None:
    load_or_config_error(text)


@FUZZ
@given(prefix=st.sampled_from([BASE_TEXT, ""]), text=yamlish)
def test_text_after_a_valid_config_gives_a_config_or_a_config_error(prefix: str, text: str) -> None:
    load_or_config_error(prefix + text)


# ------------------------------------------------------------------ random mappings

KEYS = [
    "name",
    "description",
    "seeds",
    "output_dir",
    "baseline",
    "data",
    "encoder",
    "views",
    "objective",
    "routine",
    "evaluators",
    "train",
    "arms",
    "matrix",
    "id",
    "params",
    "transforms",
    "epochs",
    "batch_size",
    "optimizer",
    "schedule",
    "lr",
    "betas",
    "precision",
    "device",
    "train.epochs",
    "encoder.params.in_dim",
    "arms.0.name",
    "<<",
    "",
]
text_values = st.text(max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | text_values
    | st.sampled_from(["core:simclr", "core:mlp", "core:arrays", "1e-3", "fp16", "cuda:0"])
)
keys = st.sampled_from(KEYS) | text_values | st.integers(-3, 3)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=25,
)


@FUZZ
@given(extra=st.dictionaries(st.sampled_from(KEYS) | text_values, values, max_size=6))
def test_random_mappings_give_a_config_or_a_config_error(extra: dict) -> None:
    load_or_config_error(dump_yaml({**BASE, **extra}))


@FUZZ
@given(data=st.dictionaries(keys, values, max_size=8))
def test_random_documents_give_a_config_or_a_config_error(data: dict) -> None:
    load_or_config_error(dump_yaml(data))


# ------------------------------------------------------------------ --set strings

key_parts = st.sampled_from(
    [
        "train",
        "optimizer",
        "lr",
        "epochs",
        "arms",
        "0",
        "1",
        "-1",
        "7",
        "[0]",
        "[1]",
        "[x]",
        "encoder",
        "params",
        "id",
        "name",
        "matrix",
        "seeds",
        "evaluators",
        "",
        " ",
        "[",
        "]",
        "²",
        "--1",
        "é",
        "data",
        "transforms",
    ]
)
set_keys = st.lists(key_parts, min_size=0, max_size=6).map(".".join) | st.text(max_size=20)
set_values = st.one_of(
    st.text(max_size=30),
    st.lists(st.sampled_from(TOKENS), max_size=10).map("".join),
    values.map(lambda v: dump_yaml(v, flow=True)),
)


@FUZZ
@given(key=set_keys, sep=st.sampled_from(["=", "", "=="]), value=set_values)
def test_any_set_override_gives_a_config_or_a_config_error(key: str, sep: str, value: str) -> None:
    load_or_config_error(BASE_TEXT, (f"{key}{sep}{value}",))


@FUZZ
@given(item=st.text(max_size=60))
def test_any_set_text_gives_a_config_or_a_config_error(item: str) -> None:
    load_or_config_error(BASE_TEXT, (item,))


# ------------------------------------------------------------------ valid configs round-trip

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,12}", fullmatch=True)
ids = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,6}:[A-Za-z0-9][A-Za-z0-9_.+-]{0,8}", fullmatch=True)
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)
params = st.dictionaries(
    st.text(string.ascii_lowercase + "_", min_size=1, max_size=8), plain, max_size=3
)
refs = st.one_of(ids, st.builds(lambda i, p: {"id": i, "params": p}, ids, params))
positive = st.floats(min_value=1e-8, max_value=10.0, allow_nan=False)
train = st.fixed_dictionaries(
    {},
    optional={
        "epochs": st.integers(0, 50),
        "batch_size": st.integers(1, 512),
        "precision": st.sampled_from(["fp32", "bf16", "fp16"]),
        "optimizer": st.fixed_dictionaries(
            {}, optional={"lr": positive, "name": st.sampled_from(["adamw", "sgd", "lars"])}
        ),
        "schedule": st.fixed_dictionaries({}, optional={"min_lr_ratio": st.floats(0.0, 1.0)}),
    },
)
valid_configs = st.fixed_dictionaries(
    {"name": names, "data": refs, "encoder": refs},
    optional={
        "description": st.text(max_size=20),
        "seeds": st.lists(st.integers(0, 10**6), min_size=1, max_size=3, unique=True),
        "baseline": st.booleans(),
        "views": refs,
        "evaluators": st.lists(refs, max_size=2),
        "train": train,
        "arms": st.lists(
            st.fixed_dictionaries({"name": names}, optional={"train": train}),
            max_size=3,
            unique_by=lambda arm: arm["name"],
        ),
    },
).filter(lambda c: "views" in c or "objective" not in c)


@FUZZ
@given(data=valid_configs)
def test_a_valid_config_written_out_and_read_back_is_the_same(data: dict) -> None:
    first = load_config_text(dump_yaml(data), source="fuzz.yaml")
    again = load_config_text(dump_yaml(first.model_dump()), source="fuzz.yaml")
    assert again == first
    assert expand_arms(again) == expand_arms(first)
    flow = load_config_text(dump_yaml(data, flow=True), source="fuzz.yaml")
    assert flow == first


# ------------------------------------------------------------------ overrides land exactly


def _float_text(value: float, style: str) -> str:
    return {"repr": repr(value), "e": f"{value:e}", "E": f"{value:E}", "g": f"{value:g}"}[style]


@FUZZ
@given(
    lr=positive,
    style=st.sampled_from(["repr", "e", "E", "g"]),
    epochs=st.integers(0, 10**6),
    precision=st.sampled_from(["fp32", "bf16", "fp16"]),
    param=plain,
    description=st.text(max_size=30),
    arm=st.integers(0, 1),
    brackets=st.booleans(),
)
def test_overrides_of_existing_keys_are_applied_exactly(
    lr: float,
    style: str,
    epochs: int,
    precision: str,
    param,
    description: str,
    arm: int,
    brackets: bool,
) -> None:
    lr_text = _float_text(lr, style)
    arm_key = f"arms[{arm}]" if brackets else f"arms.{arm}"
    cfg = load_config_text(
        BASE_TEXT,
        source="fuzz.yaml",
        overrides=(
            f"train.optimizer.lr={lr_text}",
            f"{arm_key}.train.epochs={epochs}",
            f"train.precision={precision}",
            f"encoder.params.extra={dump_yaml(param, flow=True)}",
            f"description={dump_yaml(description, flow=True)}",
        ),
    )
    arms = {a.name: a for a in expand_arms(cfg)}
    target = arms[["a", "b"][arm]]
    other = arms[["b", "a"][arm]]
    assert target.train.optimizer.lr == float(lr_text)
    assert math.isclose(target.train.optimizer.lr, lr, rel_tol=1e-5)
    assert target.train.epochs == epochs and other.train.epochs == 10  # the default
    assert target.train.precision == precision == other.train.precision
    assert target.encoder.params == {"in_dim": 4, "extra": param}
    assert cfg.description == description


@pytest.mark.parametrize("written", ["1e-3", "1E-3", "1e+1", ".5e-2", "1.5e1", "1_000e-3"])
def test_exponent_floats_parse_the_same_in_files_matrix_and_set(written: str) -> None:
    expected = float(written.replace("_", ""))
    in_file = load_config_text(BASE_TEXT + f"train: {{optimizer: {{lr: {written}}}}}\n")
    in_matrix = load_config_text(BASE_TEXT + f"matrix: {{train.optimizer.lr: [{written}]}}\n")
    by_set = load_config_text(BASE_TEXT, overrides=(f"train.optimizer.lr={written}",))
    for cfg in (in_file, in_matrix, by_set):
        assert {a.train.optimizer.lr for a in expand_arms(cfg)} == {expected}
