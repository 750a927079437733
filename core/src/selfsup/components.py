"""Look up and build components by id (public).

A plugin or a script that needs another component (an evaluator that wraps an
attack, a benchmark that builds an encoder by id) asks here instead of reaching into
the plugin manager::

    from selfsup import build_component, get_component, list_components

    spec = get_component("objective", "core:simclr")
    objective = build_component("objective", {"id": "core:simclr",
                                              "params": {"temperature": 0.2}}, embed_dim=64)

Parameters annotated with :class:`selfsup.specs.Ref` are built first, recursively,
from their ``id``/``params``, as the engine does for a config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from selfsup.specs import ComponentSpec

if TYPE_CHECKING:
    from selfsup.plugins import PluginManager

__all__ = ["build_component", "get_component", "list_components", "split_ref"]


def _manager(pm: PluginManager | None) -> PluginManager:
    if pm is not None:
        return pm
    from selfsup.plugins import get_plugin_manager

    return get_plugin_manager()


def get_component(kind: str, component_id: str, pm: PluginManager | None = None) -> ComponentSpec:
    """The spec of ``component_id`` among the components of ``kind``.

    Raises:
        UnknownIdError: With the choices, a close match and the install line.
        KeyError: ``kind`` is not a known kind.
    """
    return _manager(pm).get(kind, component_id)


def list_components(
    kind: str, modality: str | None = None, pm: PluginManager | None = None
) -> list[ComponentSpec]:
    """Every spec of ``kind`` (sorted by id), optionally of one modality (or ``any``)."""
    return _manager(pm).registry.list(kind, modality)


def split_ref(ref: Any) -> tuple[str, dict[str, Any]]:
    """``"core:simclr"`` or ``{"id": ..., "params": {...}}`` -> ``(id, params)``.

    Raises:
        TypeError: ``ref`` is neither.
    """
    if isinstance(ref, str):
        return ref, {}
    if isinstance(ref, Mapping) and isinstance(ref.get("id"), str):
        return ref["id"], dict(ref.get("params") or {})
    ident = getattr(ref, "id", None)
    if isinstance(ident, str):  # a validated config reference
        return ident, dict(getattr(ref, "params", None) or {})
    raise TypeError(f"a component reference is an id or {{id, params}}, got {ref!r}")


def build_component(kind: str, ref: Any, pm: PluginManager | None = None, **extra: Any) -> Any:
    """Build a component from its reference, building :class:`~selfsup.specs.Ref` params.

    Args:
        kind: The kind (``"objective"``, ``"transform"``, ``"trigger"``, ...).
        ref: An id, ``{id, params}`` or a config reference.
        pm: The plugin manager (the process-wide one by default).
        **extra: Keyword arguments the engine passes itself (``embed_dim``).

    Returns:
        What the factory returns.
    """
    pm = _manager(pm)
    component_id, params = split_ref(ref)
    spec = pm.get(kind, component_id)
    for name, marker in spec.refs().items():
        if name not in params or params[name] is None:
            continue
        value = params[name]
        # What the engine passes (embed_dim) goes on to components of the same kind: an
        # objective that wraps another objective sizes both from the encoder.
        nested = extra if marker.kind == kind else {}
        if marker.many:
            params[name] = [build_component(marker.kind, v, pm, **nested) for v in value]
        else:
            params[name] = build_component(marker.kind, value, pm, **nested)
    return spec.create(**extra, **params)
