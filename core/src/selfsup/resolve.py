"""Resolve a validated experiment against the registry, without building anything.

:func:`resolve_experiment` expands the arms (base + arms + matrix + baseline), looks up
every component id in the plugin registry (data transforms included) and checks every
parameter against the factory's signature: its name, and its value with pydantic
against the declared type and constraints (``Annotated[float, Field(gt=0)]``,
``Literal[...]``; see :mod:`selfsup.params`). Parameters that take components
(``Annotated[T, Ref("trigger")]``) are resolved against their kind and checked
recursively. All problems are collected and raised together as one
:class:`ResolutionError`, each naming the arm, the key path, the value and what is
allowed. ``selfsup check`` prints the result; ``selfsup run`` and the runner call it
first so that a typo or a bad value fails before any data is loaded or any model is
built.

Example:
    >>> from selfsup.config import load_config  # doctest: +SKIP
    >>> resolved = resolve_experiment(load_config("exp.yaml"))  # doctest: +SKIP
    >>> [(r.arm.name, r.spec("objective").id) for r in resolved.arms]  # doctest: +SKIP
    [('simclr', 'core:simclr'), ('random-init', None)]
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from selfsup.config import (
    IMPORT_PATH_HINT,
    ArmConfig,
    ComponentRef,
    ConfigError,
    ExperimentConfig,
    expand_arms,
    import_path_hint,
)
from selfsup.params import annotation_problem, factory_params
from selfsup.params import describe_params as _describe_params
from selfsup.registry import UnknownIdError
from selfsup.specs import ComponentSpec, Ref

if TYPE_CHECKING:
    from selfsup.plugins import PluginManager

__all__ = [
    "ROLE_KINDS",
    "ResolutionError",
    "ResolvedArm",
    "ResolvedExperiment",
    "annotation_problem",
    "check_params",
    "describe_params",
    "explain_unknown",
    "resolve_experiment",
    "resolve_trackers",
]

#: Config section -> registry kind.
ROLE_KINDS: dict[str, str] = {
    "data": "dataset",
    "encoder": "encoder",
    "views": "views",
    "objective": "objective",
    "routine": "routine",
    "evaluators": "evaluator",
    "data.transforms": "transform",
}

#: Parameters the engine passes itself, per kind (a config must not set them).
ENGINE_PARAMS: dict[str, tuple[str, ...]] = {"objective": ("embed_dim",)}


class ResolutionError(ConfigError):
    """Ids or parameters of an experiment that do not resolve (every problem listed)."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class ResolvedArm:
    """One arm with the spec of each of its components.

    Attributes:
        arm: The validated arm configuration.
        components: Role path (``"encoder"``, ``"evaluators[1]"``) -> (reference, spec).
    """

    arm: ArmConfig
    components: dict[str, tuple[ComponentRef, ComponentSpec]]

    @property
    def name(self) -> str:
        """The arm's name."""
        return self.arm.name

    def spec(self, role: str) -> ComponentSpec | None:
        """The spec of a role (``"objective"``), or ``None`` if the arm has none."""
        entry = self.components.get(role)
        return entry[1] if entry else None

    @property
    def evaluators(self) -> list[tuple[ComponentRef, ComponentSpec]]:
        """The evaluators, in config order."""
        return [v for k, v in self.components.items() if k.startswith("evaluators[")]


@dataclass
class ResolvedExperiment:
    """An experiment whose every id and parameter resolved.

    Attributes:
        config: The validated experiment.
        source: Where it came from (a path), for messages.
        arms: The resolved arms, in run order.
        warnings: Non-fatal findings (for example a modality mismatch).
    """

    config: ExperimentConfig
    source: str
    arms: list[ResolvedArm]
    warnings: list[str] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        """The seeds every arm runs for."""
        return list(self.config.seeds)

    def runs(self) -> Iterator[tuple[ResolvedArm, int]]:
        """Every (arm, seed) pair, arm-major."""
        for arm in self.arms:
            for seed in self.config.seeds:
                yield arm, seed


def _ref_items(value: Any, many: bool) -> list[tuple[str, Any]] | str:
    """``(index suffix, item)`` pairs of a Ref value, or what is wrong with its shape."""
    if not many:
        return [("", value)]
    if not isinstance(value, list | tuple):
        return f"expected a list of ids or {{id, params}}, got {type(value).__name__}"
    return [(f"[{i}]", item) for i, item in enumerate(value)]


def _split_ref(value: Any, kind: str) -> tuple[str, dict[str, Any]] | str:
    """A config's component reference -> ``(id, params)``, or what is wrong with it."""
    if isinstance(value, str):
        return value, {}
    if isinstance(value, Mapping):
        extra = sorted(set(value) - {"id", "params"})
        if extra:
            return f"unknown key(s) {', '.join(map(repr, extra))}; allowed: id, params"
        params = value.get("params") or {}
        if isinstance(value.get("id"), str) and isinstance(params, Mapping):
            return value["id"], dict(params)
    return f"expected a {kind} id or {{id, params}}, got {type(value).__name__}"


def _check_ref(pm: PluginManager, marker: Ref, value: Any, path: str, owner: str) -> list[str]:
    """Problems of a component parameter: its ids resolve, its params check (recursively)."""
    where = f"{path} = {value!r}"
    items = _ref_items(value, marker.many)
    if isinstance(items, str):
        return [f"{where}: {items}"]
    problems: list[str] = []
    for suffix, item in items:
        split = _split_ref(item, marker.kind)
        if isinstance(split, str):
            problems.append(f"{path}{suffix} = {item!r}: {split}")
            continue
        component_id, params = split
        try:
            spec = pm.get(marker.kind, component_id)
        except UnknownIdError as exc:
            problems.append(f"{path}{suffix}: {explain_unknown(pm, component_id, str(exc))}")
            continue
        except KeyError as exc:  # UnknownKindError: says which kinds exist
            problems.append(
                f"{path}{suffix} = {component_id!r}: {owner} takes a component of kind "
                f"{marker.kind!r}: {exc}"
            )
            continue
        try:
            problems.extend(check_params(spec, params, f"{path}{suffix}", pm))
        except ImportError as exc:
            problems.append(f"{path}{suffix}: {exc}")
    return problems


def check_params(
    spec: ComponentSpec,
    params: Mapping[str, Any],
    path: str,
    pm: PluginManager | None = None,
) -> list[str]:
    """Check config parameters against a factory's signature, with pydantic.

    Values are validated against the factory's annotations, constraints included
    (``Annotated[float, Field(gt=0)]``, ``Literal[...]``, ``PositiveInt``), strictly as
    YAML values (see :mod:`selfsup.params`). Parameters annotated with
    :class:`~selfsup.specs.Ref` take a component id or ``{id, params}`` (a list of them
    with ``many=True``): the id is looked up among the components of that kind and its
    params are checked recursively, with the nested key path.

    Args:
        spec: The component.
        params: The ``params`` mapping of the config.
        path: The key path of the component in the config (``"objective"``,
            ``"data.transforms[0]"``).
        pm: The plugin manager, to resolve component parameters (the process-wide one
            by default).

    Returns:
        One message per problem (empty if all is well): unknown names with a close
        match and the allowed names, missing required parameters, invalid values (key
        path, value, pydantic's message and what is allowed), parameters the engine
        sets itself, unknown ids of component parameters.

    Raises:
        ImportError: A factory cannot be imported.
    """
    info = factory_params(spec)
    signature = info.params
    engine_set = ENGINE_PARAMS.get(spec.kind, ())
    allowed = [n for n in signature if n not in engine_set]
    shown = ", ".join(allowed) if allowed else "(none)"
    problems: list[str] = []
    for key, value in params.items():
        where = f"{path}.params.{key} = {value!r}"
        if key in engine_set:
            problems.append(f"{where}: {key!r} is set by the engine (from the encoder), remove it")
            continue
        if key not in signature:
            if info.var_kw:
                continue
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(
                f"{where}: unknown parameter of {spec.id}; {hint}allowed: {shown} "
                f"(see 'selfsup describe {spec.id}')"
            )
            continue
        param = signature[key]
        if param.ref is not None:
            if value is None and param.default is None:
                continue
            if pm is None:
                from selfsup.plugins import get_plugin_manager

                pm = get_plugin_manager()
            problems.extend(_check_ref(pm, param.ref, value, f"{path}.params.{key}", spec.id))
            continue
        problem = param.problem(value)
        if problem:
            problems.append(f"{where}: {problem}")
    for name, param in signature.items():
        if param.required and name not in params and name not in engine_set:
            problems.append(
                f"{path}.params.{name}: required parameter of {spec.id} is missing "
                f"(see 'selfsup describe {spec.id}')"
            )
    return problems


def describe_params(spec: ComponentSpec) -> list[dict[str, Any]]:
    """The factory's parameters for ``selfsup describe``: type, default, constraint.

    One dict per parameter with ``name``, ``type``, ``default`` (``repr``, ``None`` if
    required), ``required``, ``constraint`` (``"> 0"``, ``"in [0, 1)"``), ``ref`` (the
    kind of a component parameter, else ``None``), ``many`` and ``engine`` (set by the
    engine, such as an objective's ``embed_dim``: not for the config).

    Raises:
        ImportError: The factory cannot be imported.
    """
    return _describe_params(spec, ENGINE_PARAMS.get(spec.kind, ()))


def explain_unknown(pm: PluginManager, component_id: str, message: str) -> str:
    """The registry's unknown-id message, with what is known of the plugin named by the id.

    An id that looks like a Python import path (``mypkg.objectives:MyLoss``) from no
    loaded plugin gets :data:`~selfsup.config.IMPORT_PATH_HINT` instead of the
    registry's "install the plugin" advice: configs never import code.
    """
    plugin = component_id.partition(":")[0]
    info = pm.infos.get(plugin)
    if info is None and plugin not in pm.registry.plugins and import_path_hint(component_id):
        start = message.find(f"No loaded plugin provides '{plugin}:' ids")
        end = message.find(" Available ", start)
        if start >= 0:
            hint = f"It looks like a Python import path, and {IMPORT_PATH_HINT}."
            message = message[:start] + hint + (message[end:] if end > 0 else "")
        return message
    if info is not None and info.status in ("failed", "disabled"):
        # the plugin is installed: drop the registry's "pip install ..." advice
        start = message.find(f"No loaded plugin provides '{plugin}:' ids")
        end = message.find(" Available ", start)
        if start >= 0:
            message = message[:start].rstrip() + message[end:] if end > 0 else message[:start]
    if info is not None and info.status == "failed":
        return f"{message} Plugin {plugin!r} is installed but failed to load: {info.error}"
    if info is not None and info.status == "disabled":
        return (
            f"{message} Plugin {plugin!r} is installed but disabled "
            "(SELFSUP_PLUGINS / SELFSUP_DISABLE_PLUGINS)."
        )
    return message


def _refs(arm: ArmConfig) -> Iterator[tuple[str, ComponentRef]]:
    for role in ("data", "encoder", "views", "objective", "routine"):
        ref = getattr(arm, role)
        if ref is not None:
            yield role, ref
    for index, ref in enumerate(getattr(arm.data, "transforms", None) or []):
        yield f"data.transforms[{index}]", ref
    for index, ref in enumerate(arm.evaluators):
        yield f"evaluators[{index}]", ref


def _modality_warnings(arm: ArmConfig, comps: dict[str, tuple[ComponentRef, Any]]) -> list[str]:
    mods = {
        role: spec.modality
        for role, (_, spec) in comps.items()
        if role in ("data", "encoder", "views") and spec.modality != "any"
    }
    if len(set(mods.values())) <= 1:
        return []
    shown = ", ".join(f"{role} {comps[role][1].id} is {m!r}" for role, m in mods.items())
    return [f"arm {arm.name!r}: modalities differ ({shown}); is this intended?"]


#: The advice when no plugin opened the ``tracker`` kind.
TRACKING_INSTALL = (
    "tracking needs the selfsup-tracking plugin: pip install selfsup-tracking "
    "(or, from a clone: pip install ./plugins/tracking)"
)


def resolve_trackers(
    refs: Iterable[ComponentRef], pm: PluginManager
) -> tuple[list[dict[str, Any]], list[str]]:
    """The ``tracking`` entries as ``{"id", "params"}`` with full ids, and the problems.

    A short name (``mlflow``) is the tracker whose name it is; an id is looked up as is.
    """
    refs = list(refs)
    if not refs:
        return [], []
    if "tracker" not in pm.registry.kinds():
        return [], [TRACKING_INSTALL]
    specs = pm.registry.list("tracker")
    out: list[dict[str, Any]] = []
    problems: list[str] = []
    for index, ref in enumerate(refs):
        where = f"tracking[{index}]"
        if ":" in ref.id:
            try:
                spec = pm.get("tracker", ref.id)
            except UnknownIdError as exc:
                problems.append(f"{where}: {exc}")
                continue
        else:
            found = [sp for sp in specs if sp.name == ref.id]
            if len(found) != 1:
                names = ", ".join(sorted({sp.name for sp in specs})) or "none"
                why = "is ambiguous" if found else "is not a tracker"
                problems.append(f"{where}: {ref.id!r} {why}; trackers: {names}")
                continue
            spec = found[0]
        problems.extend(check_params(spec, ref.params, where, pm))
        out.append({"id": spec.id, "params": dict(ref.params)})
    return out, problems


def resolve_experiment(
    cfg: ExperimentConfig,
    pm: PluginManager | None = None,
    source: str = "<config>",
    *,
    check_parameters: bool = True,
) -> ResolvedExperiment:
    """Expand the arms and resolve every id and parameter name; build nothing.

    Args:
        cfg: A validated experiment (:func:`selfsup.config.load_config`).
        pm: The plugin manager; the process-wide one by default.
        source: The config's path, used in messages.
        check_parameters: Also check parameter names and types against the
            factories (imports each factory's module, builds nothing).

    Returns:
        The resolved experiment.

    Raises:
        ConfigError: The arms do not expand (see :func:`selfsup.config.expand_arms`).
        ResolutionError: Unknown ids or bad parameters; the message lists them all.
    """
    if pm is None:
        from selfsup.plugins import get_plugin_manager

        pm = get_plugin_manager()
    arms = expand_arms(cfg, source=source)
    problems: dict[tuple[str, str], list[str]] = {}
    resolved: list[ResolvedArm] = []
    warnings: list[str] = []

    def problem(arm_name: str, text: str) -> None:
        problems.setdefault(("", text), []).append(arm_name)

    for arm in arms:
        comps: dict[str, tuple[ComponentRef, ComponentSpec]] = {}
        for role, ref in _refs(arm):
            kind = ROLE_KINDS[role.partition("[")[0]]
            try:
                spec = pm.get(kind, ref.id)
            except UnknownIdError as exc:
                problem(arm.name, f"{role}: {explain_unknown(pm, ref.id, str(exc))}")
                continue
            comps[role] = (ref, spec)
            if not check_parameters:
                continue
            try:
                for text in check_params(spec, ref.params, role, pm):
                    problem(arm.name, text)
            except ImportError as exc:
                problem(arm.name, f"{role}: {exc}")
        init = getattr(arm.encoder, "init", None)
        if init is not None:
            from selfsup.reuse import ReuseError, find_source

            try:
                find_source(init.from_)
            except ReuseError as exc:
                problem(arm.name, f"encoder.init.from: {exc}")
        warnings.extend(_modality_warnings(arm, comps))
        resolved.append(ResolvedArm(arm=arm, components=comps))

    _, tracker_problems = resolve_trackers(cfg.tracking, pm)
    for text in tracker_problems:
        problems.setdefault(("", text), []).append("*")
    if problems:
        lines = []
        for (_, text), arm_names in problems.items():
            names = sorted(set(arm_names), key=arm_names.index)
            if names == ["*"]:  # experiment-level (tracking)
                lines.append(text)
                continue
            label = "arm" if len(names) == 1 else "arms"
            lines.append(f"{label} {', '.join(repr(n) for n in names)}: {text}")
        message = f"{source}: {len(lines)} problem(s) resolving the experiment:\n" + "\n".join(
            f"  - {line}" for line in lines
        )
        raise ResolutionError(message, lines)
    return ResolvedExperiment(config=cfg, source=source, arms=resolved, warnings=warnings)
