"""Suite-wide pytest hooks: the order in which test files run.

``scripts/test.sh`` runs files in parallel (pytest-xdist, ``--dist loadscope``: a file,
or a test class, per worker at a time) in the order collected
(``--no-loadscope-reorder``). The files with the most ``heavy`` tests (training on real
data, minutes each) go first, so the longest file starts at once instead of being
handed out last and leaving the other workers idle while it runs. Tests inside a file
keep their order, so module fixtures are built once per worker.
"""

from __future__ import annotations

from collections import Counter

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with more heavy tests first; otherwise the collection order."""
    heavy = Counter(item.path for item in items if item.get_closest_marker("heavy"))
    first_seen = {path: i for i, path in enumerate(dict.fromkeys(item.path for item in items))}
    items.sort(key=lambda item: (-heavy[item.path], first_seen[item.path]))
