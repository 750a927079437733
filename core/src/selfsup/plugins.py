"""The plugin manager facade: loading, isolation of failures, environment switches.

Plugins are the entry points of the ``selfsup`` group. Each is imported and
registered on its own; a plugin that fails to import, implements a misspelled hook
(pluggy's ``check_pending``) or whose registration hook raises is recorded as
*failed* with a one-line reason and skipped, and the others keep working. The name
``core`` belongs to the ``selfsup`` distribution: another distribution's ``core``
entry point is reported as failed and never loaded.

Every hook is called through pluggy's hook caller (``pm.hook.<name>(...)``), so
``tryfirst``/``trylast`` and hook wrappers (new-style ``wrapper=True`` and old-style
``hookwrapper=True``) behave as pluggy documents. Failures stay isolated because
each hook implementation is wrapped in a guard (:mod:`selfsup.hookguard`) when its
plugin is registered: a registration hook that raises fails its plugin (its specs
and kinds are dropped), a run event that raises warns once per plugin and hook.

Registration runs in two phases: ``register_kinds`` of every plugin first (a kind
opened by two plugins fails the later-registered one), then the typed registration
hooks and ``register_components``, whose records may be of any known kind.

Environment variables:
    SELFSUP_PLUGINS: comma-separated allow-list of plugin names (``core`` is always
        loaded unless disabled explicitly).
    SELFSUP_DISABLE_PLUGINS: comma-separated plugin names not to load (``core`` too:
        then only the plugins' own components exist).
    SELFSUP_STRICT_PLUGINS: ``1`` to raise :class:`PluginLoadError` on the first
        failure instead of skipping (for CI and plugin authors); the error names the
        plugin and the hook.
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from selfsup import hookspecs
from selfsup.hookguard import (
    PluginLoadError,
    current_plugin,
    error_policy,
    guard_call,
    guard_wrapper,
)
from selfsup.registry import DuplicateKindError, Registry, UnknownKindError, check_kind_spec
from selfsup.specs import ComponentSpec, KindSpec

__all__ = [
    "PluginInfo",
    "PluginLoadError",
    "PluginManager",
    "current_plugin",
    "get_plugin_manager",
    "reset_plugin_manager",
]

ENTRY_POINT_GROUP = "selfsup"
#: The typed registration hooks and the kind each registers.
REGISTRATION_HOOKS: dict[str, str] = {
    "register_encoders": "encoder",
    "register_objectives": "objective",
    "register_evaluators": "evaluator",
    "register_datasets": "dataset",
    "register_views": "views",
    "register_routines": "routine",
    "register_transforms": "transform",
}
#: Opens kinds (called first, for every plugin).
KINDS_HOOK = "register_kinds"
#: Registers components of any known kind (called last).
COMPONENTS_HOOK = "register_components"
#: The distribution that owns the plugin name ``core``.
CORE_DISTRIBUTION = "selfsup"


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
    silence: str = ""  # how to silence it, when not SELFSUP_DISABLE_PLUGINS=<name>

    @property
    def where(self) -> str:
        """``"distribution version"``, or the module when not from a distribution."""
        return f"{self.distribution} {self.version}".strip() or self.module

    def one_line_error(self) -> str:
        """The failure in one line, with how to silence it."""
        silence = self.silence or f"SELFSUP_DISABLE_PLUGINS={self.name}"
        return (
            f"plugin {self.name!r} ({self.where}) failed to load: {self.error} "
            f"[silence with {silence}]"
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
        self._lost_kinds: dict[str, str] = {}  # kind -> the failed plugin that opened it
        #: Contributions to kinds no loaded plugin opens: (plugin, kind, name, why).
        self._dormant: list[tuple[str, str, str, str]] = []
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
            if name == "core":
                group = self._only_own_core(group)
                if not group:
                    continue
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

    def _only_own_core(self, group: list[metadata.EntryPoint]) -> list[metadata.EntryPoint]:
        """The ``core`` entry points of the ``selfsup`` distribution; others fail.

        A third-party distribution that names its entry point ``core`` would replace
        (or, beside it, knock out) selfsup's own built-in components; it is reported
        as failed and never imported.
        """
        own = []
        for ep in group:
            dist, version = _dist_of(ep)
            if _canonical(dist) == CORE_DISTRIBUTION or (
                not dist and ep.value.startswith("selfsup.builtin")
            ):
                own.append(ep)
                continue
            label = dist or ep.value
            info = PluginInfo(
                name=f"core@{label}",
                distribution=dist,
                version=version,
                module=ep.value,
                silence=f"pip uninstall {dist}" if dist else "removing its entry point",
            )
            self._fail(
                info,
                f"its entry point is named 'core', which is reserved for selfsup's own core "
                f"plugin (distribution {CORE_DISTRIBUTION!r}); it was not loaded: ask its "
                "authors to rename the entry point (the name is the prefix of its ids)",
            )
        return own

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
        self._guard_hooks(plugin, name)
        self._lost_kinds = {k: p for k, p in self._lost_kinds.items() if p != name}
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

    def _is_failed(self, name: str) -> bool:
        info = self.infos.get(name)
        return info is not None and info.status == "failed"

    def _guard_hooks(self, plugin: object, name: str) -> None:
        """Wrap each hook implementation of ``plugin`` in a guard (see the module doc).

        pluggy computed each implementation's argument names from the original
        function at registration and calls ``function(*args)``, so replacing the
        function by a ``functools.wraps`` guard keeps the call the same.
        """
        for caller in self.pm.get_hookcallers(plugin) or []:
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin:
                    make = guard_wrapper if (impl.wrapper or impl.hookwrapper) else guard_call
                    guarded = make(impl.function, name, caller.name, self._is_failed)
                    impl.function = guarded  # type: ignore[misc]  # Final for typing only

    # ------------------------------------------------------------------ registry
    @property
    def registry(self) -> Registry:
        """The component registry, built on first use from the registration hooks."""
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def _build_registry(self) -> Registry:
        """Kinds first, then components; again if a plugin that opened kinds failed.

        Components of a kind whose opener fails later (in another hook) were accepted
        meanwhile; collecting again (without the failed plugin, which is unregistered)
        sets them aside as dormant contributions (see :meth:`dormant`).
        """
        while True:
            registry = Registry()
            self._dormant = []
            if not self._collect(registry):
                return registry

    def _collect(self, registry: Registry) -> bool:
        """Run the registration hooks into ``registry``; whether kinds were lost late."""
        phase = "kinds"
        lost_late = False

        def on_error(plugin: str, hook: str, exc: Exception) -> None:
            nonlocal lost_late
            lost = self._drop(registry, plugin, f"{hook} raised {_short(exc)}")
            lost_late = lost_late or (bool(lost) and phase == "components")

        with error_policy(on_error):
            offered: list[tuple[str, KindSpec]] = []
            self.pm.hook.register_kinds(register=_kind_collector(offered))
            self._open_kinds(registry, offered)
            phase = "components"
            for hook, kind in REGISTRATION_HOOKS.items():
                getattr(self.pm.hook, hook)(register=self._spec_collector(registry, hook, kind))
            self.pm.hook.register_components(
                register=self._spec_collector(registry, COMPONENTS_HOOK, None)
            )
        return lost_late

    def _drop(self, registry: Registry, plugin: str, reason: str) -> list[str]:
        """Fail ``plugin`` (raises when strict) and drop what it registered."""
        lost = registry.remove_plugin(plugin)
        for kind in lost:
            self._lost_kinds[kind] = plugin
        self.fail_plugin(plugin, reason)
        return lost

    def _open_kinds(self, registry: Registry, offered: list[tuple[str, KindSpec]]) -> None:
        """Open the offered kinds in plugin registration order: the first owner wins."""
        order = {name: i for i, (name, _) in enumerate(self.pm.list_name_plugin())}
        for plugin, kind in sorted(offered, key=lambda o: order.get(o[0], len(order))):
            if self._is_failed(plugin):
                continue
            try:
                registry.add_kind(replace(kind, plugin=plugin))
            except DuplicateKindError as exc:
                self._drop(registry, plugin, f"{KINDS_HOOK}: {exc}")

    def _spec_collector(
        self, registry: Registry, hook: str, kind: str | None
    ) -> Callable[[ComponentSpec], None]:
        """The ``register`` callback of a registration hook (``kind=None``: any kind)."""

        def register(spec: ComponentSpec) -> None:
            plugin = _registering(hook)
            try:
                record = registry.coerce(spec, hook, kind)
            except UnknownKindError:
                if kind is not None:  # a core kind's own hook: always open
                    raise
                # ``register_components`` to a kind nobody opens (its owner is not
                # installed, disabled or failed): set aside, not an error, so that
                # optional integrations (audio's triggers without selfsup-security)
                # cost nothing; listed by 'selfsup plugins' and 'selfsup doctor'.
                wanted = str(getattr(spec, "kind", ""))
                owner = self._lost_kinds.get(wanted)
                close = difflib.get_close_matches(wanted, list(registry.kinds()), n=1)
                why = (
                    f"plugin {owner!r} opens it but failed to load"
                    if owner
                    else f"no loaded plugin opens it; did you mean {close[0]!r}?"
                    if close
                    else "no loaded plugin opens it"
                )
                self._dormant.append((plugin, wanted, getattr(spec, "name", "?"), why))
                return
            registry.add(replace(record, plugin=plugin))

        return register

    def get(self, kind: str, component_id: str) -> ComponentSpec:
        """Look up a component spec (see :meth:`Registry.get`)."""
        return self.registry.get(kind, component_id)

    def kinds(self) -> dict[str, KindSpec]:
        """Every known kind: the core's and those opened by plugins (see :class:`KindSpec`)."""
        return self.registry.kinds()

    def dormant(self) -> list[tuple[str, str, str, str]]:
        """Contributions set aside because their kind is not open, after building the registry.

        Each is ``(plugin, kind, name, why)``: a plugin's ``register_components`` offered a
        component of a kind that no loaded plugin opens (for example ``audio:tone`` of
        kind ``trigger`` without selfsup-security). They are not errors; they become
        components as soon as the plugin that opens the kind is installed.
        """
        self.failed()  # builds the registry
        return list(self._dormant)

    def failed(self) -> list[PluginInfo]:
        """Plugins that failed to load, after building the registry."""
        _ = self.registry
        return [i for i in self.infos.values() if i.status == "failed"]

    # ------------------------------------------------------------------ events
    def emit(self, event: str, **kwargs: Any) -> None:
        """Call a run-event hook through pluggy; a failing sink warns once.

        Raises:
            PluginLoadError: In strict mode, naming the plugin and the hook.
        """
        with error_policy(self._event_failed):
            getattr(self.pm.hook, event)(**kwargs)

    def _event_failed(self, plugin: str, hook: str, exc: Exception) -> None:
        info = self.infos.get(plugin) or PluginInfo(name=plugin)
        where = f" ({info.where})" if info.where else ""
        line = f"plugin {plugin!r}{where}: hook {hook} raised {_short(exc)}"
        silence = f"silence with SELFSUP_DISABLE_PLUGINS={plugin}"
        if self.strict:
            raise PluginLoadError(
                f"{line} [SELFSUP_STRICT_PLUGINS=1 stops on it; {silence}]"
            ) from exc
        if (plugin, hook) not in self._warned_events:
            self._warned_events.add((plugin, hook))
            warnings.warn(
                f"{line}; the run goes on (shown once per plugin and hook) [{silence}]",
                RuntimeWarning,
                stacklevel=2,
            )


def _registering(hook: str) -> str:
    """The plugin calling a ``register`` callback; it must be inside its hook."""
    plugin = current_plugin()
    if plugin is None:
        raise RuntimeError(
            f"the register callback of {hook} was called outside of the hook: call it "
            "while the hook implementation runs, not later"
        )
    return plugin


def _kind_collector(offered: list[tuple[str, KindSpec]]) -> Callable[[KindSpec], None]:
    def register(kind: KindSpec) -> None:
        offered.append((_registering(KINDS_HOOK), check_kind_spec(kind)))

    return register


def _canonical(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


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
