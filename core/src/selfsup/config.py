"""Experiment configuration: a validated YAML schema, ``--set`` overrides, arms and matrix.

A config is data only: component ids and plain values, never import paths or
expressions. YAML is read with :func:`selfsup.config_yaml.load_yaml` (a bounded
``yaml.SafeLoader``: no alias bombs, no duplicate keys, ``1e-3`` is a number);
``--set`` values are parsed the same way, and ``--set`` keys are dotted paths whose
list indexes may also be written in brackets (``arms[1].name`` is ``arms.1.name``).

An experiment has a base (``data``, ``encoder``, ``views``, ``objective``,
``routine``, ``evaluators``, ``train``), optional ``arms`` (each a partial override of
the base, deep-merged; an arm that names a different component id replaces that
component, parameters included) and an optional ``matrix`` (dotted key paths -> lists of
values; the cartesian product is applied to every arm). Every resulting arm runs for
every seed in ``seeds``; with ``baseline: true`` a ``random-init`` arm evaluates the
untrained encoder of each distinct encoder/data pair.

Example:
    >>> cfg = load_config_text('''
    ... name: demo
    ... data: vision:digits
    ... encoder: {id: vision:small-cnn, params: {width: 32}}
    ... views: vision:simclr
    ... objective: core:simclr
    ... evaluators: [core:linear-probe]
    ... train: {epochs: 2, batch_size: 128}
    ... ''')
    >>> [arm.name for arm in expand_arms(cfg)]
    ['simclr', 'random-init']
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from selfsup.config_files import interpolate, parse_config_text, read_config_tree, ref_id
from selfsup.config_keys import apply_overrides, split_key
from selfsup.config_keys import set_path as _set_path
from selfsup.config_yaml import ConfigError, shorten

__all__ = [
    "ArmConfig",
    "ComponentRef",
    "ConfigError",
    "DataRef",
    "EncoderRef",
    "ExperimentConfig",
    "InitConfig",
    "TrackerRef",
    "TrainConfig",
    "apply_overrides",
    "baseline_of",
    "expand_arms",
    "load_config",
    "load_config_text",
]

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*:[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class _Strict(BaseModel):
    # strict: YAML's true/false or 3.5 are not silently an int (epochs: true -> 1).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ComponentRef(_Strict):
    """A component by id, with the keyword parameters of its factory.

    Written either as ``{id: core:simclr, params: {temperature: 0.2}}`` or, with no
    parameters, as the bare id ``core:simclr``.
    """

    id: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"id": value} if isinstance(value, str) else value

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _ID.match(value):
            hint = import_path_hint(value) or (
                "ids look like 'plugin:name' (for example 'core:simclr'; see 'selfsup list')"
            )
            raise ValueError(f"{shorten(repr(value))} is not a component id: {hint}")
        return value

    @field_validator("params")
    @classmethod
    def _plain_data(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_plain(value, "params")
        return value


class DataRef(ComponentRef):
    """The dataset by id, with the transforms applied after loading, in order.

    Written ``{id: vision:digits, params: {...}, transforms: [core:subsample, ...]}``;
    each transform is a component reference of kind ``transform`` (poisoning, label
    noise, subsampling), applied with the run's seed before views.
    """

    transforms: list[ComponentRef] = Field(default_factory=list)
    help: str = Field(
        "",
        description="Where to get the data (shown when loading it fails), for example "
        "'Cora ships in ../shared/data/planetoid; see DATA.md'.",
        exclude_if=lambda value: not value,
    )


class InitConfig(_Strict):
    """Where an encoder's initial weights come from: ``init: {from: PATH}``.

    ``PATH`` is a run directory (``<output_dir>/<experiment>/<arm>/seed-<n>``) or a
    ``selfsup export`` folder; a relative path is relative to the config file's folder.
    The weights must fit the encoder (same id and shape-changing parameters).
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, populate_by_name=True, serialize_by_alias=True
    )

    from_: str = Field(alias="from", min_length=1)


class EncoderRef(ComponentRef):
    """The encoder by id, with its parameters and optionally its initial weights.

    Written ``{id: vision:small-cnn, params: {...}, init: {from: runs/demo/simclr/seed-0}}``
    (see :class:`InitConfig`); without ``init`` the encoder starts from its factory's
    initialisation.
    """

    init: InitConfig | None = Field(None, exclude_if=lambda value: value is None)

    @model_validator(mode="before")
    @classmethod
    def _from_component_ref(cls, value: Any) -> Any:
        # A plain ComponentRef (the public type before ``init`` existed) is still accepted.
        if isinstance(value, ComponentRef) and not isinstance(value, EncoderRef):
            return value.model_dump()
        return value


class TrackerRef(ComponentRef):
    """An experiment tracker: an id (``tracking:mlflow``) or a short name (``mlflow``).

    A short name is looked up among the components of kind ``tracker`` (opened by the
    ``selfsup-tracking`` plugin) when the experiment is resolved.
    """

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if _ID.match(value) or _NAME.match(value):
            return value
        raise ValueError(
            f"{shorten(repr(value))} is not a tracker: write a name such as 'tensorboard' "
            "or 'mlflow', or an id 'plugin:name' (see 'selfsup list tracker')"
        )


class OptimizerConfig(_Strict):
    """Optimiser: AdamW, Adam (L2-coupled weight decay), SGD (momentum, Nesterov) or LARS."""

    name: Literal["adamw", "adam", "sgd", "lars"] = "adamw"
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.0
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    betas: tuple[float, float] = Field((0.9, 0.999), strict=False)  # YAML gives a list
    nesterov: bool = False
    trust_coefficient: PositiveFloat = 0.001
    scale_lr_by_batch: bool = Field(
        False, description="Multiply lr by global_batch/256 (the linear scaling rule)."
    )


class ScheduleConfig(_Strict):
    """Learning-rate schedule: linear warmup then cosine decay (or constant)."""

    name: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: NonNegativeFloat = 0.0
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)


class TrainConfig(_Strict):
    """How pretraining runs (used by the routine)."""

    epochs: NonNegativeInt = 10
    max_steps: PositiveInt | None = None
    max_time_s: PositiveFloat | None = None
    batch_size: PositiveInt = 256
    num_workers: NonNegativeInt = 0
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    grad_accum: PositiveInt = 1
    clip_grad: PositiveFloat | None = None
    compile: bool = False
    channels_last: bool = False
    sync_batchnorm: bool = True
    device: str = "auto"
    threads: PositiveInt | None = Field(
        None,
        description="CPU threads for torch (torch.set_num_threads); None picks one for the "
        "machine: OMP_NUM_THREADS if set, else the usable physical cores (CPU affinity, "
        "container quota) divided among torchrun's local processes. On a busy machine "
        "fewer threads than cores can be several times faster (benchmarks/threads.py).",
    )
    checkpoint_every: PositiveInt = 1
    log_every: PositiveInt = 10
    progress: bool = True

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError("device must be 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'")
        return value


class ArmConfig(_Strict):
    """One fully resolved arm: what a single training run (per seed) uses."""

    name: str
    data: DataRef
    encoder: EncoderRef
    views: ComponentRef | None = None
    objective: ComponentRef | None = None
    routine: ComponentRef = Field(default_factory=lambda: ComponentRef(id="core:minibatch"))
    evaluators: list[ComponentRef] = Field(default_factory=list)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _views_with_objective(self) -> ArmConfig:
        if self.objective is not None and self.views is None:
            raise ValueError(
                "an objective needs views: add 'views: <id>' (see 'selfsup list views')"
            )
        return self

    @property
    def pretrains(self) -> bool:
        """Whether this arm trains (an arm with no objective only evaluates)."""
        return self.objective is not None and self.train.epochs > 0


class ExperimentConfig(_Strict):
    """The whole experiment file."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    output_dir: str = "runs"
    baseline: bool = True
    data: DataRef | None = None
    encoder: EncoderRef | None = None
    views: ComponentRef | None = None
    objective: ComponentRef | None = None
    routine: ComponentRef = Field(default_factory=lambda: ComponentRef(id="core:minibatch"))
    evaluators: list[ComponentRef] = Field(default_factory=list)
    train: dict[str, Any] = Field(default_factory=dict)
    arms: list[dict[str, Any]] = Field(default_factory=list)
    matrix: dict[str, list[Any]] = Field(default_factory=dict)
    tracking: list[TrackerRef] = Field(
        default_factory=list,
        description="Experiment trackers fed by the run events, e.g. [tensorboard, mlflow] "
        "(needs selfsup-tracking); 'selfsup run --tracking NAME' adds one.",
    )

    @field_validator("matrix")
    @classmethod
    def _matrix_lists(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in value.items():
            if not values:
                raise ValueError(f"matrix key {key!r} has an empty list of values")
        return value

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"seeds must be distinct, got {shorten(str(value))}")
        return value


#: Where a config that names a component by its import path is sent.
IMPORT_PATH_HINT = (
    "configs name components by id, never by import path: register the class in a "
    "plugin (see docs/writing-a-plugin.md) and write its id, 'plugin:name'"
)
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+([:.][A-Za-z_][\w.]*)?$")


def import_path_hint(value: str) -> str | None:
    """:data:`IMPORT_PATH_HINT` if ``value`` looks like a Python import path, else ``None``.

    ``mypkg.objectives.MyLoss``, ``mypkg.objectives:MyLoss`` and ``mypkg:MyLoss`` (a
    class name after the colon) look like import paths; ``core:simclr`` does not.

    Example:
        >>> import_path_hint("core:simclr") is None
        True
        >>> "never by import path" in import_path_hint("torch.nn.Linear")
        True
    """
    if len(value) > 300:  # no identifier path is this long; keep the regex cheap
        return None
    plugin, sep, name = value.partition(":")
    dotted = bool(_IMPORT_PATH.match(value)) and ("." in plugin or "." in name)
    class_name = bool(sep) and name[:1].isupper() and plugin.isidentifier()
    return IMPORT_PATH_HINT if dotted or class_name else None


#: Problems listed by :func:`format_validation_error` before "... and N more".
MAX_PROBLEMS = 20
#: Arms (each arm times each matrix combination) one experiment may expand to.
MAX_ARMS = 1_000

_COMPONENT_KEYS = ("data", "encoder", "views", "objective", "routine")
_BASE_KEYS = ("data", "encoder", "views", "objective", "routine", "evaluators", "train")


def _check_plain(value: Any, where: str) -> None:
    """Configs hold plain data only (no YAML tags or objects)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_plain(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise ValueError(
            f"{where}: only plain values (strings, numbers, booleans, lists, mappings) are "
            f"allowed, got {type(value).__name__}; quote it to pass it as a string"
        )


def format_validation_error(exc: ValidationError, source: str, prefix: str = "") -> str:
    """One line per problem: ``file: key.path: message (got value)``.

    Values, keys and messages are cut to a few hundred characters and at most
    :data:`MAX_PROBLEMS` problems are listed, so a huge config never prints a huge error.
    """
    errors = exc.errors()
    lines = [f"{source}: invalid configuration ({len(errors)} problem(s)):"]
    for err in errors[:MAX_PROBLEMS]:
        loc = shorten(".".join(str(p) for p in (prefix, *err["loc"]) if p != ""))
        got = err.get("input")
        shown = ""
        if not isinstance(got, dict | list) and got is not None:
            shown = f" (got {shorten(repr(got))})"
        msg = shorten(err["msg"].removeprefix("Value error, "), 600)
        last = str(err["loc"][-1]) if err["loc"] else ""
        if last and msg.startswith((f"{last}.", f"{last}[")):  # a path inside a value
            sub, _, msg = msg.partition(": ")
            loc += sub[len(last) :]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key; {_allowed_keys(err['loc'], prefix)}"
            shown = ""
        lines.append(f"  - {loc or '<top>'}: {msg}{shown}")
    if len(errors) > MAX_PROBLEMS:
        lines.append(f"  ... and {len(errors) - MAX_PROBLEMS} more")
    return "\n".join(lines)


def _allowed_keys(loc: Sequence[Any], prefix: str) -> str:
    models: dict[str, type[BaseModel]] = {
        "": ExperimentConfig if not prefix else ArmConfig,
        "train": TrainConfig,
        "optimizer": OptimizerConfig,
        "schedule": ScheduleConfig,
    }
    parent = str(loc[-2]) if len(loc) > 1 else ""
    model = models.get(parent) or (
        DataRef
        if parent == "data"
        else EncoderRef
        if parent == "encoder"
        else InitConfig
        if parent == "init"
        else ComponentRef
        if parent in _BASE_KEYS
        else None
    )
    if model is None and len(loc) > 1 and isinstance(loc[-2], int):
        model = ComponentRef
    if model is None:
        return "check the spelling"
    return "allowed: " + ", ".join(model.model_fields)


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge an arm into the base; mappings merge recursively.

    A component given with a different ``id`` replaces the base's instead: the base's
    parameters belong to another factory.
    """
    out = copy.deepcopy(base)
    for key, value in override.items():
        if (
            key in _COMPONENT_KEYS
            and isinstance(value, Mapping)
            and "id" in value
            and ref_id(out.get(key)) not in (None, value["id"])
        ):
            out[key] = copy.deepcopy(dict(value))
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        elif isinstance(value, Mapping) and isinstance(out.get(key), str) and key != "train":
            out[key] = _deep_merge({"id": out[key]}, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config_text(
    text: str, source: str = "<config>", overrides: Iterable[str] = ()
) -> ExperimentConfig:
    """Parse and validate an experiment from YAML text.

    Raises:
        ConfigError: Invalid YAML, schema errors (each with its key path), bad arms.
    """
    data = interpolate(parse_config_text(text, source), source)
    return _validate(data, source, overrides)


def _validate(data: dict[str, Any], source: str, overrides: Iterable[str]) -> ExperimentConfig:
    if "extends" in data:
        raise ConfigError(
            f"{source}: 'extends' works in config files only (it names files relative to "
            "the file); load the config with load_config(path)"
        )
    data = interpolate(apply_overrides(data, overrides), source)
    try:
        cfg = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    expand_arms(cfg, source=source)  # validates every arm now
    return cfg


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Read and validate an experiment file.

    ``extends:`` bases are merged in, ``${env:VAR}`` replaced and relative paths
    resolved against the file's folder (:mod:`selfsup.config_files`) before ``--set``
    overrides and validation.

    Raises:
        ConfigError: The file is missing or unreadable, or invalid.
    """
    return _validate(read_config_tree(path), str(Path(path)), overrides)


def _arm_name(base_name: str, combo: Mapping[str, Any]) -> str:
    if not combo:
        return base_name
    parts = [f"{k.split('.')[-1]}={_short_value(v)}" for k, v in combo.items()]
    return f"{base_name}[{','.join(parts)}]"


def _short_value(value: Any) -> str:
    text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True)
    return str(text).strip().removesuffix("...").strip()


def _default_arm_name(raw: Mapping[str, Any]) -> str:
    obj = raw.get("objective")
    if obj is None:
        return "no-pretraining"
    ident = ref_id(obj) or "arm"
    return str(ident).partition(":")[2] or str(ident)


def expand_arms(cfg: ExperimentConfig, source: str = "<config>") -> list[ArmConfig]:
    """Resolve base + arms + matrix (+ the random-init baseline) into validated arms.

    Raises:
        ConfigError: An arm is incomplete or invalid (the message names the arm).
    """
    base = cfg.model_dump(include=set(_BASE_KEYS), exclude_none=True)
    base = {k: v for k, v in base.items() if k in _BASE_KEYS}
    n_arms = max(len(cfg.arms), 1) * math.prod(len(values) for values in cfg.matrix.values())
    if n_arms > MAX_ARMS:
        sizes = " x ".join(str(len(v)) for v in cfg.matrix.values()) or "no"
        raise ConfigError(
            f"{source}: {max(len(cfg.arms), 1)} arm(s) times the matrix's {sizes} values make "
            f"{n_arms} arms; at most {MAX_ARMS} are allowed: split the experiment into files"
        )
    raws: list[dict[str, Any]] = []
    for index, override in enumerate(cfg.arms or [{}]):
        unknown = set(override) - {*_BASE_KEYS, "name"}
        if unknown:
            raise ConfigError(
                f"{source}: arms[{index}]: unknown key(s) {shorten(str(sorted(map(str, unknown))))}"
                f"; allowed: name, {', '.join(_BASE_KEYS)}"
            )
        merged = _deep_merge(base, override)
        merged.setdefault("name", override.get("name") or _default_arm_name(merged))
        raws.append(merged)

    combos = [
        dict(zip(cfg.matrix, values, strict=True))
        for values in itertools.product(*cfg.matrix.values())
    ]
    arms: list[ArmConfig] = []
    for index, raw in enumerate(raws):
        for combo in combos:
            data = copy.deepcopy(raw)
            for key, value in combo.items():
                where = f"{source}: matrix key {shorten(repr(key))}"
                _set_path(data, split_key(key, where), value, where)
            data["name"] = _arm_name(raw["name"], combo)
            arms.append(_validate_arm(data, source, f"arms[{index}]" if cfg.arms else ""))
    names = [a.name for a in arms]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(
            f"{source}: arm names must be distinct; repeated: {shorten(str(dupes))} "
            "(set 'name:' per arm)"
        )
    if cfg.baseline:
        seen: set[str] = set()
        for arm in list(arms):
            key = _baseline_key(arm)
            if key in seen or not arm.pretrains:
                continue
            seen.add(key)
            name = "random-init" if not seen - {key} else f"random-init[{arm.name}]"
            encoder = arm.encoder.model_copy(update={"init": None})  # random-init means it
            arms.append(
                arm.model_copy(update={"name": name, "objective": None, "encoder": encoder})
            )
    return arms


def _baseline_key(arm: ArmConfig) -> str:
    """Arms with the same data (and transforms) and encoder share a random-init baseline."""
    return yaml.safe_dump([arm.data.model_dump(), arm.encoder.model_dump(exclude={"init"})])


def baseline_of(arms: Sequence[ArmConfig]) -> dict[str, str]:
    """Each pretraining arm's name -> the name of its own random-init baseline arm.

    The baselines are the arms :func:`expand_arms` adds with ``baseline: true``: no
    objective, the same data and encoder. Arms without one are left out.
    """
    baselines = {_baseline_key(a): a.name for a in arms if a.objective is None}
    return {
        a.name: baselines[_baseline_key(a)]
        for a in arms
        if a.pretrains and _baseline_key(a) in baselines
    }


def _validate_arm(data: dict[str, Any], source: str, where: str) -> ArmConfig:
    missing = [k for k in ("data", "encoder") if not data.get(k)]
    if missing:
        raise ConfigError(
            f"{source}: {where or 'top level'}: missing {' and '.join(repr(m) for m in missing)}; "
            "every arm needs a dataset and an encoder id (see 'selfsup list dataset')"
        )
    try:
        return ArmConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, prefix=where)) from None
