"""The plugin manager facade: loading, isolation of failures, environment switches.

Plugins are the entry points of the ``selfsup`` group. Each is imported and
registered on its own; a plugin that fails to import, implements a misspelled hook
(pluggy's ``check_pending``) or whose registration hook raises is recorded as
*failed* with a one-line reason and skipped, and the others keep working.

Environment variables:
    SELFSUP_PLUGINS: comma-separated allow-list of plugin names (``core`` is always
        loaded unless disabled explicitly).
    SELFSUP_DISABLE_PLUGINS: comma-separated plugin names not to load.
    SELFSUP_STRICT_PLUGINS: ``1`` to raise :class:`PluginLoadError` on the first
        failure instead of skipping (for CI and plugin authors).
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from selfsup import hookspecs
from selfsup.registry import Registry
from selfsup.specs import KINDS, ComponentSpec

__all__ = [
    "PluginInfo",
    "PluginLoadError",
    "PluginManager",
    "get_plugin_manager",
    "reset_plugin_manager",
]

ENTRY_POINT_GROUP = "selfsup"
REGISTRATION_HOOKS: dict[str, str] = {
    "register_encoders": "encoder",
    "register_objectives": "objective",
    "register_evaluators": "evaluator",
    "register_datasets": "dataset",
    "register_views": "views",
    "register_routines": "routine",
}


class PluginLoadError(RuntimeError):
    """A plugin could not be loaded (raised only in strict mode)."""


@dataclass
class PluginInfo:
    """What ``selfsup plugins`` shows about one plugin."""

    name: str
    distribution: str = ""
    version: str = ""
    module: str = ""
    status: str = "active"  # active | failed | disabled
    error: str = ""
    hooks: list[str] = field(default_factory=list)

    def one_line_error(self) -> str:
        """The failure in one line, with how to silence it."""
        where = f"{self.distribution} {self.version}".strip() or self.module
        return (
            f"plugin {self.name!r} ({where}) failed to load: {self.error} "
            f"[silence with SELFSUP_DISABLE_PLUGINS={self.name}]"
        )


def _env_list(name: str) -> set[str] | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class PluginManager:
    """A typed facade over :class:`pluggy.PluginManager` with a component registry.

    Args:
        load_entrypoints: Load the installed ``selfsup`` entry points.
        strict: Raise on the first failure; defaults to ``SELFSUP_STRICT_PLUGINS``.
    """

    def __init__(self, *, load_entrypoints: bool = True, strict: bool | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.strict = (
            os.environ.get("SELFSUP_STRICT_PLUGINS", "") in ("1", "true", "yes")
            if strict is None
            else strict
        )
        self.allow = _env_list("SELFSUP_PLUGINS")
        self.disable = _env_list("SELFSUP_DISABLE_PLUGINS") or set()
        self.infos: dict[str, PluginInfo] = {}
        self._registry: Registry | None = None
        self._warned_events: set[tuple[str, str]] = set()
        if load_entrypoints:
            self.load_entrypoints()

    # ------------------------------------------------------------------ loading
    @property
    def hook(self) -> Any:
        """Pluggy's hook relay (``pm.hook.run_started(...)``)."""
        return self.pm.hook

    def _enabled(self, name: str) -> bool:
        if name in self.disable:
            return False
        return self.allow is None or name in self.allow or name == "core"

    def _fail(self, info: PluginInfo, exc: BaseException | str, record: bool = True) -> None:
        info.status = "failed"
        info.error = exc if isinstance(exc, str) else _short(exc)
        if record:  # not for a rejected duplicate: the active plugin of that name stays
            self.infos[info.name] = info
        if self.strict:
            raise PluginLoadError(info.one_line_error()) from (
                exc if isinstance(exc, BaseException) else None
            )
        warnings.warn(info.one_line_error(), RuntimeWarning, stacklevel=3)

    def load_entrypoints(self) -> None:
        """Import and register every enabled entry point of the ``selfsup`` group."""
        eps = list(metadata.entry_points(group=ENTRY_POINT_GROUP))
        by_name: dict[str, list[metadata.EntryPoint]] = {}
        for ep in eps:
            by_name.setdefault(ep.name, []).append(ep)
        for name, group in sorted(by_name.items()):
            dists = [_dist_of(ep) for ep in group]
            info = PluginInfo(
                name=name, distribution=dists[0][0], version=dists[0][1], module=group[0].value
            )
            if len({d for d, _ in dists}) > 1:
                names = " and ".join(f"{d} {v}" for d, v in dists)
                self._fail(
                    info,
                    f"plugin name {name!r} is claimed by two distributions: {names}; "
                    f"uninstall one of them (pip uninstall ...)",
                )
                continue
            if not self._enabled(name):
                info.status = "disabled"
                self.infos[name] = info
                continue
            try:
                module = group[0].load()
            except Exception as exc:
                self._fail(info, exc)
                continue
            # Verified once all are registered: a plugin may implement a hook that a
            # plugin loaded after it adds (``selfsup_hookspecs``).
            self.register(module, name=name, info=info, check=False)
        for name in [n for n, i in sorted(self.infos.items()) if i.status == "active"]:
            self._verify(name)

    def register(
        self,
        plugin: ModuleType | object,
        name: str,
        info: PluginInfo | None = None,
        *,
        check: bool = True,
    ) -> bool:
        """Register a plugin object (module or instance) under ``name``.

        A module attribute ``selfsup_hookspecs`` (a module or class of
        :data:`selfsup.hookspec` functions) adds the plugin's own hooks first.

        Args:
            plugin: The module or object holding the hook implementations.
            name: The plugin name (the prefix of its ids).
            info: What is known about its distribution (entry-point loading).
            check: Verify now that every hook it implements exists; pass ``False``
                when more plugins (that may define hooks) are registered next and
                call :meth:`_verify` after them.

        Returns:
            ``True`` if it is active, ``False`` if it failed and was skipped.
        """
        info = info or PluginInfo(name=name, module=_describe(plugin))
        if name in self.infos and self.infos[name].status == "active":
            self._fail(info, f"a plugin named {name!r} is already registered", record=False)
            return False
        extra_specs = getattr(plugin, "selfsup_hookspecs", None)
        try:
            if extra_specs is not None:
                self.pm.add_hookspecs(extra_specs)
            self.pm.register(plugin, name=name)
        except Exception as exc:
            self._fail(info, exc)
            return False
        info.status = "active"
        self.infos[name] = info
        self._registry = None
        return self._verify(name) if check else True

    def _verify(self, name: str) -> bool:
        """Fail (and unregister) a plugin that implements a hook no spec defines."""
        plugin = self.pm.get_plugin(name)
        info = self.infos[name]
        callers = self.pm.get_hookcallers(plugin) or []
        unknown = sorted(
            caller.name
            for caller in callers
            if not caller.has_spec()
            and any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls())
        )
        if unknown:
            self.pm.unregister(plugin)
            known = sorted(n for n in _hook_names(self.pm) if getattr(self.pm.hook, n).has_spec())
            hints = []
            for hook in unknown:
                close = difflib.get_close_matches(hook, known, n=1)
                hints.append(f"{hook!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            self._fail(
                info,
                PluginLoadError(
                    f"unknown hook {', '.join(hints)}; known hooks: {', '.join(known)}"
                ),
            )
            return False
        info.hooks = sorted(c.name for c in callers if c.has_spec())
        return True

    def fail_plugin(self, name: str, error: BaseException | str) -> None:
        """Record a plugin as failed and drop it entirely: its specs and its hooks.

        Used when one of its hooks raises (a registration hook here, ``register_commands``
        in the CLI), so that a failed plugin contributes nothing. Raises
        :class:`PluginLoadError` in strict mode, like every load failure.
        """
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        if self._registry is not None:
            self._registry.remove_plugin(name)
        self._fail(self.infos.setdefault(name, PluginInfo(name=name)), error)

    def unregister(self, name: str) -> None:
        """Remove a plugin by name (tests use this)."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self.infos.pop(name, None)
        self._registry = None

    # ------------------------------------------------------------------ registry
    @property
    def registry(self) -> Registry:
        """The component registry, built on first use from the registration hooks."""
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def _build_registry(self) -> Registry:
        registry = Registry()
        for hook_name, kind in REGISTRATION_HOOKS.items():
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                name = self.pm.get_name(impl.plugin) or "?"
                if self.infos.get(name, PluginInfo(name)).status == "failed":
                    continue
                try:
                    impl.function(register=_collector(registry, name, kind))
                except Exception as exc:
                    registry.remove_plugin(name)
                    self.fail_plugin(name, f"{hook_name} raised {_short(exc)}")
        return registry

    def get(self, kind: str, component_id: str) -> ComponentSpec:
        """Look up a component spec (see :meth:`Registry.get`)."""
        return self.registry.get(kind, component_id)

    def failed(self) -> list[PluginInfo]:
        """Plugins that failed to load, after building the registry."""
        _ = self.registry
        return [i for i in self.infos.values() if i.status == "failed"]

    # ------------------------------------------------------------------ events
    def emit(self, event: str, **kwargs: Any) -> None:
        """Call a run-event hook; a failing sink warns once (raises when strict)."""
        caller = getattr(self.pm.hook, event)
        for impl in caller.get_hookimpls():
            try:
                impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as exc:
                name = self.pm.get_name(impl.plugin) or "?"
                if self.strict:
                    raise
                if (name, event) not in self._warned_events:
                    self._warned_events.add((name, event))
                    warnings.warn(
                        f"plugin {name!r}: hook {event} raised {_short(exc)}; "
                        "the run goes on without it",
                        RuntimeWarning,
                        stacklevel=2,
                    )


def _collector(registry: Registry, plugin: str, kind: str) -> Callable[[ComponentSpec], None]:
    expected = KINDS[kind]

    def register(spec: ComponentSpec) -> None:
        if not isinstance(spec, expected):
            raise TypeError(
                f"register_{kind}s expects {expected.__name__} records, got {type(spec).__name__}"
            )
        registry.add(replace(spec, plugin=plugin))

    return register


def _dist_of(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ("", "")
    return (dist.metadata["Name"] or "", dist.version or "")


def _describe(plugin: object) -> str:
    """A module's name, or an instance's class path (no memory address)."""
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    cls = plugin if isinstance(plugin, type) else type(plugin)
    return f"{cls.__module__}.{cls.__qualname__}"


def _hook_names(pm: pluggy.PluginManager) -> Iterable[str]:
    return [n for n in dir(pm.hook) if not n.startswith("_")]


_MANAGER: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, loaded on first use."""
    global _MANAGER
    if _MANAGER is None:
        _MANAGER = PluginManager()
    return _MANAGER


def reset_plugin_manager(manager: PluginManager | None = None) -> PluginManager | None:
    """Replace the process-wide manager (``None`` reloads on next use); returns the old."""
    global _MANAGER
    old, _MANAGER = _MANAGER, manager
    return old
