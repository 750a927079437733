"""Run directories: discovery, ``metrics.jsonl`` / ``results.json`` reading, summaries.

A run directory (``runs/<experiment>/<arm>/seed-<n>/``) holds ``metrics.jsonl``,
``results.json`` and ``embeddings.npz``; an experiment directory holds run directories.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RunRecord", "discover_runs", "summarise", "to_float", "write_atomic"]

_RUN_FILES = ("metrics.jsonl", "embeddings.npz", "results.json")


@dataclass
class RunRecord:
    """What one run directory holds."""

    path: Path
    arm: str
    seed: int | None
    results: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``arm`` or ``arm/seed-N``."""
        return self.arm if self.seed is None else f"{self.arm}/seed-{self.seed}"

    @property
    def embeddings(self) -> Path | None:
        """The ``embeddings.npz`` file, if the run wrote one."""
        path = self.path / "embeddings.npz"
        return path if path.is_file() else None


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and :func:`os.replace`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_float(value: Any) -> float | None:
    """``value`` as a float (``"nan"`` strings included), or ``None`` if not a number."""
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a killed run may leave half a line
        if isinstance(record, dict):
            records.append(record)
    return records


def _seed_of(path: Path, results: dict[str, Any]) -> int | None:
    if isinstance(results.get("seed"), int):
        return results["seed"]
    digits = path.name.rpartition("-")[2].removeprefix("seed")
    return int(digits) if digits.isdigit() else None


def _is_run_dir(path: Path) -> bool:
    if (path / "metrics.jsonl").is_file() or (path / "embeddings.npz").is_file():
        return True
    results = path / "results.json"
    if not results.is_file():
        return False
    try:
        data = json.loads(results.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "seed" in data


def discover_runs(root: str | Path) -> list[RunRecord]:
    """Every run directory at or below ``root`` (up to three levels), sorted.

    Raises:
        FileNotFoundError: ``root`` does not exist or holds no run.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory (expected runs/<experiment>)")
    candidates = [root, *(p for p in root.glob("*") if p.is_dir())]
    candidates += [p for p in root.glob("*/*") if p.is_dir()]
    candidates += [p for p in root.glob("*/*/*") if p.is_dir()]
    runs = []
    for path in sorted(set(candidates)):
        if not _is_run_dir(path):
            continue
        try:
            results = json.loads((path / "results.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            results = {}
        results = results if isinstance(results, dict) else {}
        seed = _seed_of(path, results)
        arm = results.get("arm") or (path.parent.name if seed is not None else path.name)
        runs.append(RunRecord(path, str(arm), seed, results, _read_jsonl(path / "metrics.jsonl")))
    if not runs:
        raise FileNotFoundError(
            f"{root}: no run found (a run directory holds {', '.join(_RUN_FILES)}); "
            "pass runs/<experiment> or one of its <arm>/seed-<n> directories"
        )
    return runs


def summarise(runs: list[RunRecord]) -> tuple[list[str], list[dict[str, Any]]]:
    """Mean ± std over seeds per arm and metric.

    Non-finite values (a failed evaluation) are left out of the mean; ``n`` counts
    the values used, ``(nan, nan, 0)`` when there are none.

    Returns:
        The metric names, and one row per arm: ``{"arm", "seeds", name: (mean, std, n)}``.
    """
    by_arm: dict[str, dict[str, list[float]]] = {}
    seeds: dict[str, list[int | None]] = {}
    names: list[str] = []
    for run in runs:
        metrics = run.results.get("metrics", {})
        seeds.setdefault(run.arm, []).append(run.seed)
        table = by_arm.setdefault(run.arm, {})
        for name, value in metrics.items() if isinstance(metrics, dict) else []:
            number = to_float(value)
            if number is None:
                continue
            if name not in names:
                names.append(name)
            table.setdefault(name, []).append(number)
    rows = []
    for arm, table in by_arm.items():
        row: dict[str, Any] = {"arm": arm, "seeds": len(seeds[arm])}
        for name, values in table.items():
            finite = [v for v in values if math.isfinite(v)]  # NaN: a failed evaluation
            if not finite:
                row[name] = (math.nan, math.nan, 0)
                continue
            std = statistics.stdev(finite) if len(finite) > 1 else 0.0
            row[name] = (statistics.fmean(finite), std, len(finite))
        rows.append(row)
    return names, rows
