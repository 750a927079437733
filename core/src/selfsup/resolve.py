"""Resolve a validated experiment against the registry, without building anything.

:func:`resolve_experiment` expands the arms (base + arms + matrix + baseline), looks up
every component id in the plugin registry and checks every parameter name (and, where
the factory's annotations allow, its type) against the factory's signature. All
problems are collected and raised together as one :class:`ResolutionError`, each
naming the arm, the key path, the value and what is allowed. ``selfsup check`` prints
the result; ``selfsup run`` and the runner call it first so that a typo fails before
any data is loaded or any model is built.

Example:
    >>> from selfsup.config import load_config  # doctest: +SKIP
    >>> resolved = resolve_experiment(load_config("exp.yaml"))  # doctest: +SKIP
    >>> [(r.arm.name, r.spec("objective").id) for r in resolved.arms]  # doctest: +SKIP
    [('simclr', 'core:simclr'), ('random-init', None)]
"""

from __future__ import annotations

import difflib
import inspect
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from selfsup.config import ArmConfig, ComponentRef, ConfigError, ExperimentConfig, expand_arms
from selfsup.registry import UnknownIdError
from selfsup.specs import ComponentSpec

if TYPE_CHECKING:
    from selfsup.plugins import PluginManager

__all__ = [
    "ROLE_KINDS",
    "ResolutionError",
    "ResolvedArm",
    "ResolvedExperiment",
    "check_params",
    "resolve_experiment",
]

#: Config section -> registry kind.
ROLE_KINDS: dict[str, str] = {
    "data": "dataset",
    "encoder": "encoder",
    "views": "views",
    "objective": "objective",
    "routine": "routine",
    "evaluators": "evaluator",
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


_SIMPLE: dict[Any, tuple[type, ...]] = {
    int: (int,),
    float: (int, float),
    str: (str,),
    bool: (bool,),
    type(None): (type(None),),
}


def _matches(annotation: Any, value: Any) -> bool | None:
    """Whether ``value`` fits ``annotation``.

    ``None`` when the annotation is not one this check understands (classes such as
    ``nn.Module``, type variables, ...): such values are accepted.
    """
    if annotation is Any or annotation is inspect.Parameter.empty:
        return None
    if annotation is None:
        annotation = type(None)
    if annotation in _SIMPLE:
        if isinstance(value, bool) and annotation in (int, float):
            return False
        return isinstance(value, _SIMPLE[annotation])
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        results = [_matches(a, value) for a in args]
        if any(r is True for r in results):
            return True
        return None if any(r is None for r in results) else False
    if origin is typing.Literal:
        return value in args
    if origin in (list, tuple, Sequence) or annotation in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        inner = args[0] if args and (origin is not tuple or len(args) == 2) else None
        if inner is None or inner is Ellipsis:
            return True
        results = [_matches(inner, v) for v in value]
        return None if any(r is None for r in results) else all(results)
    if origin in (dict, Mapping) or annotation is dict:
        return isinstance(value, dict)
    return None


def annotation_problem(annotation: Any, value: Any) -> str | None:
    """A message if ``value`` contradicts ``annotation`` (best effort), else ``None``."""
    if _matches(annotation, value) is not False:
        return None
    if typing.get_origin(annotation) is typing.Literal:
        return f"expected one of {', '.join(repr(a) for a in typing.get_args(annotation))}"
    if typing.get_origin(annotation) is None and hasattr(annotation, "__name__"):
        shown = annotation.__name__
    else:
        shown = str(annotation).replace("typing.", "").replace("NoneType", "None")
    return f"expected {shown}, got {type(value).__name__}"


def _factory_signature(spec: ComponentSpec) -> tuple[dict[str, inspect.Parameter], bool]:
    """The factory's keyword parameters and whether it accepts ``**kwargs``.

    Annotations are evaluated where possible (postponed string annotations).
    """
    factory = spec.load()
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        sig = inspect.signature(target, eval_str=True)
    except Exception:
        sig = inspect.signature(target)
    var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    params = {
        n: p
        for n, p in sig.parameters.items()
        if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    return params, var_kw


def check_params(spec: ComponentSpec, params: dict[str, Any], path: str) -> list[str]:
    """Check config parameters against a factory's signature.

    Args:
        spec: The component.
        params: The ``params`` mapping of the config.
        path: The key path of the component in the config (``"objective"``).

    Returns:
        One message per problem (empty if all is well): unknown names with a close
        match and the allowed names, missing required parameters, values whose type
        contradicts the annotation, parameters the engine sets itself.

    Raises:
        ImportError: The factory cannot be imported.
    """
    signature, var_kw = _factory_signature(spec)
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
            if var_kw:
                continue
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(
                f"{where}: unknown parameter of {spec.id}; {hint}allowed: {shown} "
                f"(see 'selfsup describe {spec.id}')"
            )
            continue
        problem = annotation_problem(signature[key].annotation, value)
        if problem:
            problems.append(f"{where}: {problem}")
    for name, param in signature.items():
        required = param.default is inspect.Parameter.empty
        if required and name not in params and name not in engine_set:
            problems.append(
                f"{path}.params.{name}: required parameter of {spec.id} is missing "
                f"(see 'selfsup describe {spec.id}')"
            )
    return problems


def explain_unknown(pm: PluginManager, component_id: str, message: str) -> str:
    plugin = component_id.partition(":")[0]
    info = pm.infos.get(plugin)
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
                for text in check_params(spec, ref.params, role):
                    problem(arm.name, text)
            except ImportError as exc:
                problem(arm.name, f"{role}: {exc}")
        warnings.extend(_modality_warnings(arm, comps))
        resolved.append(ResolvedArm(arm=arm, components=comps))

    if problems:
        lines = []
        for (_, text), arm_names in problems.items():
            names = sorted(set(arm_names), key=arm_names.index)
            label = "arm" if len(names) == 1 else "arms"
            lines.append(f"{label} {', '.join(repr(n) for n in names)}: {text}")
        message = f"{source}: {len(lines)} problem(s) resolving the experiment:\n" + "\n".join(
            f"  - {line}" for line in lines
        )
        raise ResolutionError(message, lines)
    return ResolvedExperiment(config=cfg, source=source, arms=resolved, warnings=warnings)
