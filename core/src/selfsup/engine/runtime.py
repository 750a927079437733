"""Internal alias of :mod:`selfsup.runtime` (kept for the engine's own imports)."""

from __future__ import annotations

from selfsup.runtime import Runtime, select_device, to_device

__all__ = ["Runtime", "select_device", "to_device"]
