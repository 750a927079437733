"""Modality-free view makers."""

from __future__ import annotations

from typing import Any


class Identity:
    """The batch itself as the only view (for objectives that mask internally)."""

    def __call__(self, batch: Any) -> list[Any]:
        """Return ``[batch]``."""
        return [batch]
