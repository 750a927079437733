"""Metrics as JSON lines: one object per logged step or epoch, appended and flushed.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.jsonl"
    >>> log = MetricsLog(path)
    >>> log.write({"step": 1, "loss": 2.5})
    >>> read_metrics(path)
    [{'step': 1, 'loss': 2.5}]
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TextIO

__all__ = ["MetricsLog", "read_metrics"]


def _plain(value: Any) -> Any:
    """JSON-safe values: tensors and numpy scalars become floats, NaN/inf become strings."""
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _ends_torn(path: Path) -> bool:
    """Whether a non-empty file does not end with a newline."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with path.open("rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1) != b"\n"


class MetricsLog:
    """Append-only JSON-lines log (the ``metrics.jsonl`` of a run directory).

    Args:
        path: The file; created (with its directory) on the first write.
        enabled: ``False`` makes every write a no-op (ranks other than 0).
    """

    def __init__(self, path: str | Path, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self._handle: TextIO | None = None

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as a JSON line and flush it."""
        if not self.enabled:
            return
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torn = _ends_torn(self.path)
            self._handle = self.path.open("a", encoding="utf-8")
            if torn:
                self._handle.write("\n")  # a killed run left half a line: end it
        self._handle.write(json.dumps(_plain(record), allow_nan=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        """Close the file (writing again reopens it)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __del__(self) -> None:
        self.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a metrics log (``[]`` if the file does not exist).

    Lines torn by a killed run (half-written JSON) are skipped.
    """
    p = Path(path)
    if not p.is_file():
        return []
    lines = p.read_text(encoding="utf-8").splitlines()
    records = []
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
