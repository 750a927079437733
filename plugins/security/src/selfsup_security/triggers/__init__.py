"""Backdoor triggers: the base class, image triggers (CTRL, patch) and graph triggers."""

from __future__ import annotations

from selfsup_security.triggers.base import ItemTrigger, Trigger

__all__ = ["ItemTrigger", "Trigger"]
