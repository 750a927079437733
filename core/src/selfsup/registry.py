"""Component ids, lookup and helpful "unknown id" errors.

Ids are ``"<plugin>:<name>"`` (``vision:resnet18``, ``core:barlow-twins``). A config
names components by id, so a config also says which plugins it needs.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from selfsup.specs import KINDS, ComponentSpec

__all__ = ["FIRST_PARTY", "DuplicateIdError", "Registry", "UnknownIdError", "split_id"]

#: First-party plugins and the distribution that provides each.
FIRST_PARTY: dict[str, str] = {
    "core": "selfsup",
    "audio": "selfsup-audio",
    "vision": "selfsup-vision",
    "graph": "selfsup-graph",
    "medical": "selfsup-medical",
    "security": "selfsup-security",
}


class UnknownIdError(LookupError):
    """An id that no loaded plugin registered. The message lists the way out."""


class DuplicateIdError(ValueError):
    """Two registrations of one id within a plugin."""


def split_id(component_id: str) -> tuple[str, str]:
    """Split ``"plugin:name"`` into its parts.

    Raises:
        ValueError: ``component_id`` has no ``plugin:`` prefix.
    """
    plugin, sep, name = component_id.partition(":")
    if not sep or not plugin or not name:
        raise ValueError(
            f"{component_id!r} is not a component id: ids look like 'plugin:name', "
            "for example 'core:simclr' or 'vision:resnet18'"
        )
    return plugin, name


def install_hint(plugin: str) -> str:
    """The ``pip install`` line (or advice) for the plugin that owns a prefix."""
    dist = FIRST_PARTY.get(plugin)
    if dist == "selfsup":
        return "it should be built in: run 'selfsup doctor' to see why the core plugin failed"
    if dist:
        return f"pip install {dist}   (or, from a clone: pip install ./plugins/{plugin})"
    return f"install the plugin that provides '{plugin}:' ids, then check 'selfsup plugins'"


class Registry:
    """All registered components, by kind and id."""

    def __init__(self) -> None:
        self._specs: dict[str, dict[str, ComponentSpec]] = {kind: {} for kind in KINDS}
        self.plugins: set[str] = set()

    def add(self, spec: ComponentSpec) -> None:
        """Add a spec whose ``plugin`` field is set.

        Raises:
            DuplicateIdError: The id is already registered for this kind.
        """
        table = self._specs[spec.kind]
        if spec.id in table:
            raise DuplicateIdError(f"{spec.kind} {spec.id!r} is registered twice")
        table[spec.id] = spec
        self.plugins.add(spec.plugin)

    def remove_plugin(self, plugin: str) -> None:
        """Drop every spec a plugin registered (used when one of its hooks fails)."""
        for table in self._specs.values():
            for key in [k for k, s in table.items() if s.plugin == plugin]:
                del table[key]
        self.plugins.discard(plugin)

    def list(self, kind: str, modality: str | None = None) -> list[ComponentSpec]:
        """Specs of one kind, sorted by id, optionally filtered by modality.

        Components of modality ``"any"`` match every modality filter.
        """
        specs = self._table(kind).values()
        if modality:
            specs = [s for s in specs if s.modality in (modality, "any")]
        return sorted(specs, key=lambda s: s.id)

    def all(self) -> Iterable[ComponentSpec]:
        """Every spec of every kind."""
        for table in self._specs.values():
            yield from table.values()

    def find(self, component_id: str) -> list[ComponentSpec]:
        """Every spec with this id, whatever its kind (for ``selfsup describe``)."""
        return [t[component_id] for t in self._specs.values() if component_id in t]

    def get(self, kind: str, component_id: str) -> ComponentSpec:
        """Look up a spec.

        Raises:
            UnknownIdError: With the choices, a close match and the install line.
        """
        table = self._table(kind)
        if component_id in table:
            return table[component_id]
        raise UnknownIdError(self._unknown_message(kind, component_id))

    def _table(self, kind: str) -> dict[str, ComponentSpec]:
        if kind not in self._specs:
            raise KeyError(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}")
        return self._specs[kind]

    def _unknown_message(self, kind: str, component_id: str) -> str:
        choices = sorted(self._specs[kind])
        lines = [f"unknown {kind} {component_id!r}."]
        close = difflib.get_close_matches(component_id, choices, n=1, cutoff=0.6)
        if not close and ":" not in component_id:
            close = [c for c in choices if c.partition(":")[2] == component_id]
        if close:
            lines.append(f"Did you mean {close[0]!r}?")
        plugin = component_id.partition(":")[0] if ":" in component_id else ""
        other = [s.id for s in self.find(component_id)]
        if other:
            lines.append(f"{component_id!r} exists, but as a different kind of component.")
        elif plugin and plugin not in self.plugins:
            lines.append(f"No loaded plugin provides '{plugin}:' ids: {install_hint(plugin)}")
        shown = ", ".join(choices) if choices else "(none: is any plugin installed?)"
        lines.append(f"Available {kind} ids: {shown}")
        return " ".join(lines)
