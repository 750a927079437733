"""Component ids, lookup and helpful "unknown id" errors.

Ids are ``"<plugin>:<name>"`` (``vision:resnet18``, ``core:barlow-twins``). A config
names components by id, so a config also says which plugins it needs.

The kinds are open: the registry starts with the core kinds (:data:`CORE_KINDS`) and
a plugin adds more with ``register_kinds`` (:meth:`Registry.add_kind`), each with its
own spec record; :meth:`Registry.kinds` lists them all.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable

from selfsup.specs import KINDS, ComponentSpec, KindSpec

__all__ = [
    "CORE_KINDS",
    "FIRST_PARTY",
    "DuplicateIdError",
    "DuplicateKindError",
    "Registry",
    "UnknownIdError",
    "UnknownKindError",
    "check_kind_spec",
    "split_id",
]

#: First-party plugins and the distribution that provides each.
FIRST_PARTY: dict[str, str] = {
    "core": "selfsup",
    "audio": "selfsup-audio",
    "vision": "selfsup-vision",
    "graph": "selfsup-graph",
    "medical": "selfsup-medical",
    "security": "selfsup-security",
    "tracking": "selfsup-tracking",
}


class UnknownIdError(LookupError):
    """An id that no loaded plugin registered. The message lists the way out."""


class DuplicateIdError(ValueError):
    """Two registrations of one id within a plugin."""


class DuplicateKindError(ValueError):
    """A kind opened twice (by two plugins, or a plugin re-opening a core kind)."""


class UnknownKindError(KeyError):
    """A kind that neither the core nor any loaded plugin opened.

    A :class:`KeyError` (what a lookup of an unknown kind always raised) whose
    message is shown as written, not quoted.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown kind"


_CORE_DESCRIPTIONS: dict[str, str] = {
    "encoder": "Encoders: a modality batch -> embeddings (pooled, tokens with a padding mask).",
    "objective": "Self-supervised objectives: encoder + views -> loss (own heads and teachers).",
    "evaluator": "Evaluators: encoder + data + context -> metrics and artefacts.",
    "dataset": "Datasets: local files -> train/val/test splits with their task and labels.",
    "views": "View makers: a batch (and its metadata) -> the views an objective consumes.",
    "routine": "Training routines: how optimisation proceeds on a device.",
    "transform": "Data transforms: (DataSplits, seed) -> DataSplits, after loading, before views.",
}

#: The core's kinds, opened by selfsup itself (``plugin="core"``).
CORE_KINDS: dict[str, KindSpec] = {
    name: KindSpec(name=name, description=_CORE_DESCRIPTIONS[name], record=record, plugin="core")
    for name, record in KINDS.items()
}


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


_KIND_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_BASE_FIELDS = {f.name for f in dataclasses.fields(ComponentSpec)}
#: Words that are not kinds: ``selfsup list kinds|all``, a plain record's default.
_RESERVED = frozenset({"all", "kinds", "component", "components"})


def check_kind_spec(kind: object) -> KindSpec:
    """Check a record offered to ``register_kinds``; returns it.

    Raises:
        TypeError: Not a :class:`KindSpec`, or its record type cannot hold the kind.
        ValueError: The kind's name is not valid, or its record defaults to another kind.
    """
    if not isinstance(kind, KindSpec):
        raise TypeError(f"register_kinds expects KindSpec records, got {type(kind).__name__}")
    name, record = kind.name, kind.record
    if not isinstance(name, str) or not _KIND_NAME.match(name) or name in _RESERVED:
        raise ValueError(
            f"kind name {name!r} is not valid: use lower-case letters, digits, '-' and '_', "
            f"starting with a letter (for example 'trigger'), and none of "
            f"{', '.join(sorted(_RESERVED))}"
        )
    if not (isinstance(record, type) and issubclass(record, ComponentSpec)):
        raise TypeError(
            f"KindSpec {name!r}: record must be ComponentSpec or a subclass, got {record!r}"
        )
    fields = dataclasses.fields(record)
    required = [
        f.name
        for f in fields
        if f.init
        and f.name not in _BASE_FIELDS
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if required:
        raise TypeError(
            f"KindSpec {name!r}: record {record.__name__} has fields without a default "
            f"({', '.join(required)}); give them defaults, so that a plain "
            f"ComponentSpec(kind={name!r}, ...) from another plugin can be converted"
        )
    default = next(f.default for f in fields if f.name == "kind")
    if record is not ComponentSpec and default not in (name, "component"):
        raise ValueError(
            f"KindSpec {name!r}: record {record.__name__} defaults to kind {default!r}; "
            f"declare `kind: str = field(default={name!r}, kw_only=True)` in it"
        )
    return kind


class Registry:
    """All registered components, by kind and id."""

    def __init__(self) -> None:
        self._kinds: dict[str, KindSpec] = dict(CORE_KINDS)
        self._specs: dict[str, dict[str, ComponentSpec]] = {kind: {} for kind in self._kinds}
        self.plugins: set[str] = set()

    def kinds(self) -> dict[str, KindSpec]:
        """Every known kind, by name: the core kinds first, then those plugins opened."""
        return dict(self._kinds)

    def add_kind(self, kind: KindSpec) -> None:
        """Open a new kind (its ``plugin`` field set to the opening plugin).

        Raises:
            DuplicateKindError: The kind is a core kind or another plugin opened it.
        """
        old = self._kinds.get(kind.name)
        if old is not None:
            if old.name in CORE_KINDS:
                raise DuplicateKindError(
                    f"kind {kind.name!r} is a core kind and cannot be opened again: "
                    f"contribute {kind.name} components through register_components "
                    "(or choose another kind name)"
                )
            by = "this plugin" if old.plugin == kind.plugin else f"plugin {old.plugin!r}"
            raise DuplicateKindError(
                f"kind {kind.name!r} is already opened by {by}; a kind has one owner: "
                "choose another kind name, or uninstall one of the two plugins"
            )
        self._kinds[kind.name] = kind
        self._specs[kind.name] = {}

    def record(self, kind: str) -> type[ComponentSpec]:
        """The spec record type of ``kind``.

        Raises:
            UnknownKindError: Nobody opened ``kind``.
        """
        self._table(kind)
        return self._kinds[kind].record

    def coerce(self, spec: object, hook: str, kind: str | None = None) -> ComponentSpec:
        """Check a record given to a registration hook; convert it to its kind's record.

        Args:
            spec: What the plugin passed to ``register``.
            hook: The hook's name (for messages).
            kind: The kind of a typed hook (``register_encoders``: ``"encoder"``), or
                ``None`` for ``register_components`` (the record's ``kind`` decides).

        Returns:
            The record: ``spec`` itself, or a plain :class:`ComponentSpec` converted to
            the record type of its kind.

        Raises:
            TypeError: A record of the wrong type for the hook or kind.
            ValueError: A plain ``ComponentSpec`` without a kind.
            UnknownKindError: Nobody opened the record's kind.
        """
        if kind is not None:
            expected = self.record(kind)
            if not isinstance(spec, expected):
                what = type(spec).__name__
                if isinstance(spec, ComponentSpec):
                    what += f" (a {spec.kind!r} record: register it in its own hook)"
                raise TypeError(f"{hook} expects {expected.__name__} records, got {what}")
            if spec.kind != kind:
                raise TypeError(
                    f"{hook} registers {kind} components, but {type(spec).__name__} "
                    f"{spec.name!r} has kind={spec.kind!r}: register it in register_components"
                )
            return spec
        if not isinstance(spec, ComponentSpec):
            hint = " (kinds are opened in register_kinds)" if isinstance(spec, KindSpec) else ""
            raise TypeError(
                f"{hook} expects ComponentSpec records, got {type(spec).__name__}{hint}"
            )
        if spec.kind == "component" and "component" not in self._kinds:
            raise ValueError(
                f"{type(spec).__name__} {spec.name!r} has no kind: pass kind=... "
                f"(known kinds: {', '.join(self._kinds)})"
            )
        record = self.record(spec.kind)
        if isinstance(spec, record):
            return spec
        if type(spec) is ComponentSpec:
            values = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.init}
            return record(**values)
        raise TypeError(
            f"kind {spec.kind!r} takes {record.__name__} records (or a plain "
            f"ComponentSpec(kind={spec.kind!r}, ...)), got {type(spec).__name__}"
        )

    def add(self, spec: ComponentSpec) -> None:
        """Add a spec whose ``plugin`` field is set.

        Raises:
            DuplicateIdError: The id is already registered for this kind.
            UnknownKindError: Nobody opened the spec's kind.
        """
        table = self._table(spec.kind)
        if spec.id in table:
            raise DuplicateIdError(f"{spec.kind} {spec.id!r} is registered twice")
        table[spec.id] = spec
        self.plugins.add(spec.plugin)

    def remove_plugin(self, plugin: str) -> list[str]:
        """Drop every spec and kind a plugin registered (used when one of its hooks fails).

        The components of a dropped kind go with it, whoever registered them.

        Returns:
            The names of the kinds it had opened.
        """
        dropped = [n for n, k in self._kinds.items() if k.plugin == plugin and n not in CORE_KINDS]
        for name in dropped:
            del self._kinds[name]
            del self._specs[name]
        for table in self._specs.values():
            for key in [k for k, s in table.items() if s.plugin == plugin]:
                del table[key]
        self.plugins = {s.plugin for s in self.all()}
        return dropped

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
            raise UnknownKindError(self.unknown_kind_message(kind))
        return self._specs[kind]

    def unknown_kind_message(self, kind: str) -> str:
        """Why ``kind`` is unknown: a close match and every known kind."""
        known = list(self._kinds)
        close = difflib.get_close_matches(kind, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return (
            f"kind {kind!r} is not known; a new kind is opened by the plugin that defines "
            f"it (install that plugin, then check 'selfsup plugins').{hint} "
            f"Known kinds: {', '.join(known)}"
        )

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
