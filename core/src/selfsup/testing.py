"""Opt-in pytest plugin for selfsup plugin authors (fixtures and contract checks).

Loaded through the ``pytest11`` entry point; it defines fixtures only, so it is inert
unless a test requests them. The full version is being written.
"""

from __future__ import annotations
