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

__all__ = ["MetricsLog", "read_metrics", "truncate_metrics"]


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


def truncate_metrics(path: str | Path, epoch: int, step: int) -> int:
    """Keep only the records up to a checkpoint (before a resumed run appends again).

    A run killed after logging epoch ``e + 1`` (or steps past its checkpoint) but
    before its next checkpoint logs them again when resumed; this drops them first,
    so that the log holds each epoch and each step once. An epoch record is kept when
    its ``epoch <= epoch``; a step record when its ``step <= step``; anything else (no
    such key, a line that is not JSON) is kept verbatim, except a last line torn by
    the kill. The file is rewritten atomically, and only when something is dropped.

    Args:
        path: The ``metrics.jsonl`` of the run.
        epoch: Completed epochs in the checkpoint (0 when training starts afresh).
        step: Optimiser steps in the checkpoint.

    Returns:
        How many lines were dropped.
    """
    from selfsup.engine.checkpoint import write_bytes_atomic

    p = Path(path)
    if not p.is_file():
        return 0
    raw = p.read_bytes()
    lines = raw.splitlines(keepends=True)
    kept: list[bytes] = []
    for index, line in enumerate(lines):
        if index == len(lines) - 1 and not line.endswith(b"\n"):
            continue  # torn by the kill
        try:
            record = json.loads(line)
        except ValueError:
            kept.append(line)
            continue
        if isinstance(record, dict) and _after(record, epoch, step):
            continue
        kept.append(line)
    dropped = len(lines) - len(kept)
    if dropped:
        write_bytes_atomic(b"".join(kept), p)
    return dropped


def _after(record: dict[str, Any], epoch: int, step: int) -> bool:
    """Whether a metrics record was written after a checkpoint at (``epoch``, ``step``)."""
    for key, limit in (("epoch", epoch), ("step", step)):
        value = record.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value > limit
    return False


def read_metrics(path: str | Path, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """Every record of a metrics log (``[]`` if the file does not exist).

    Lines that are not a JSON object (half a line torn by a killed run, garbage, bytes
    that are not UTF-8) are skipped; blank lines are ignored.

    Args:
        path: The ``metrics.jsonl`` file.
        warnings: If given, one message per skipped line is appended to it, naming the
            file and the line number (``runs/x/metrics.jsonl:17: not JSON (...), skipped``);
            an unreadable file is one message. ``None`` skips silently.

    Returns:
        The records of the lines that could be read, in file order.
    """
    p = Path(path)
    note = warnings.append if warnings is not None else (lambda _message: None)
    if not p.is_file():
        return []
    try:
        raw = p.read_bytes()
    except OSError as exc:
        note(f"{p}: cannot be read ({exc.strerror or exc}), skipped")
        return []
    records = []
    lines = raw.splitlines()
    for number, data in enumerate(lines, start=1):
        if not data.strip():
            continue
        where = f"{p}:{number}"
        torn = " (the last line: torn by a killed run?)" if number == len(lines) else ""
        try:
            line = data.decode("utf-8")
        except UnicodeDecodeError:
            note(f"{where}: not UTF-8 text{torn}, skipped")
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            note(f"{where}: not JSON ({exc.msg} at column {exc.colno}){torn}, skipped")
            continue
        if not isinstance(record, dict):
            note(f"{where}: not a JSON object (a {type(record).__name__}), skipped")
            continue
        records.append(record)
    return records
