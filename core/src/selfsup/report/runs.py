"""Run directories: discovery, ``metrics.jsonl`` / ``results.json`` reading, summaries.

A run directory (``runs/<experiment>/<arm>/seed-<n>/``) holds ``metrics.jsonl``,
``results.json`` and ``embeddings.npz``; an experiment directory holds run directories.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfsup.engine.metrics import read_metrics

__all__ = [
    "SETTING_SUFFIXES",
    "RunRecord",
    "arm_order",
    "discover_runs",
    "is_setting",
    "summarise",
    "to_float",
    "write_atomic",
]

#: Results whose name ends so are settings an evaluator chose on validation data
#: (``knn_k``, ``linear_weight_decay``), shown as settings, never as mean ± std.
SETTING_SUFFIXES = ("_k", "weight_decay", "_lr", "_C", "_alpha", "_epochs", "_temperature")


def is_setting(name: str) -> bool:
    """Whether a result named ``name`` is a chosen setting, not a quality metric.

    Example:
        >>> is_setting("knn_k"), is_setting("linear_weight_decay"), is_setting("knn_acc")
        (True, True, False)
    """
    return name.endswith(SETTING_SUFFIXES)


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


_RESULTS_FIX = "re-run that run to rewrite it (selfsup run EXP.yaml --resume)"


def _load_json(path: Path, warnings: list[str]) -> Any:
    """The JSON value of ``path`` (``None`` with a warning if it cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        warnings.append(f"{path}: cannot be read ({exc.strerror or exc}), skipped")
        return None
    except UnicodeDecodeError:
        warnings.append(f"{path}: not valid JSON (not UTF-8 text), skipped")
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        warnings.append(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}), skipped"
        )
        return None


def _read_results(path: Path, warnings: list[str]) -> dict[str, Any]:
    """A run's ``results.json`` as a dict (``{}`` with a warning when damaged).

    A run whose file cannot be read still appears in the report (curves, embeddings,
    a row without metrics); the warning says its metrics are left out.
    """
    if not path.is_file():
        return {}
    problems: list[str] = []
    data = _load_json(path, problems)
    if problems:
        warnings.append(
            problems[0].removesuffix(", skipped")
            + f"; its metrics are left out of the results table; {_RESULTS_FIX}"
        )
        return {}
    if not isinstance(data, dict):
        warnings.append(
            f"{path}: not a JSON object (a {type(data).__name__}); its metrics are left out of "
            f"the results table; {_RESULTS_FIX}"
        )
        return {}
    if "metrics" in data and not isinstance(data["metrics"], dict):
        warnings.append(
            f"{path}: 'metrics' is not a mapping of name to value (a "
            f"{type(data['metrics']).__name__}); its metrics are left out of the results "
            f"table; {_RESULTS_FIX}"
        )
        data = {k: v for k, v in data.items() if k != "metrics"}
    return data


def _seed_of(path: Path, results: dict[str, Any]) -> int | None:
    if isinstance(results.get("seed"), int):
        return results["seed"]
    digits = path.name.rpartition("-")[2].removeprefix("seed")
    return int(digits) if digits.isdigit() else None


_SEED_DIR = re.compile(r"seed-?\d+")


def _is_run_dir(path: Path, warnings: list[str]) -> bool:
    """Whether ``path`` is a run directory (a damaged ``results.json`` is warned about).

    A directory with a ``results.json`` and nothing else is a run if the file names a
    seed, or (when the file cannot be read) if the directory is named ``seed-<n>``;
    otherwise it is an experiment directory, whose own results the report rebuilds
    from the runs.
    """
    if (path / "metrics.jsonl").is_file() or (path / "embeddings.npz").is_file():
        return True
    results = path / "results.json"
    if not results.is_file():
        return False
    if _SEED_DIR.fullmatch(path.name):
        return True
    problems: list[str] = []
    data = _load_json(results, problems)
    if problems:
        warnings.append(
            problems[0].removesuffix(", skipped")
            + ", skipped (the report is built from the run directories' own files)"
        )
        return False
    return isinstance(data, dict) and "seed" in data


def discover_runs(root: str | Path, warnings: list[str] | None = None) -> list[RunRecord]:
    """Every run directory at or below ``root`` (up to three levels), sorted.

    Args:
        root: An experiment directory or one run directory.
        warnings: If given, one message is appended per line or file that could not be
            read and was skipped (a ``metrics.jsonl`` line, a ``results.json``), naming
            it; what could be read is still returned.

    Raises:
        FileNotFoundError: ``root`` does not exist or holds no run.
    """
    notes: list[str] = [] if warnings is None else warnings
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory (expected runs/<experiment>)")
    candidates = [root, *(p for p in root.glob("*") if p.is_dir())]
    candidates += [p for p in root.glob("*/*") if p.is_dir()]
    candidates += [p for p in root.glob("*/*/*") if p.is_dir()]
    runs = []
    for path in sorted(set(candidates)):
        if not _is_run_dir(path, notes):
            continue
        results = _read_results(path / "results.json", notes)
        seed = _seed_of(path, results)
        arm = results.get("arm") or (path.parent.name if seed is not None else path.name)
        metrics = read_metrics(path / "metrics.jsonl", notes)
        runs.append(RunRecord(path, str(arm), seed, results, metrics))
    if not runs:
        raise FileNotFoundError(
            f"{root}: no run found (a run directory holds {', '.join(_RUN_FILES)}); "
            "pass runs/<experiment> or one of its <arm>/seed-<n> directories"
        )
    order = arm_order(root, runs)
    rank = {arm: i for i, arm in enumerate(order)}
    return sorted(runs, key=lambda r: (rank.get(r.arm, len(rank)), r.seed is None, r.seed or 0))


def arm_order(root: Path, runs: list[RunRecord]) -> list[str]:
    """The arms in the config's order: the experiment's ``results.json`` lists them so.

    Arms it does not list (or every arm, without that file) follow in the order of
    their run directories' modification time, oldest first (the order they ran).
    """
    listed: list[str] = []
    summary = root / "results.json"
    if summary.is_file():
        try:
            data = json.loads(summary.read_text(encoding="utf-8"))
            arms = data.get("arms") if isinstance(data, dict) else None
            listed = [str(a["arm"]) for a in arms or [] if isinstance(a, dict) and "arm" in a]
        except (OSError, ValueError):
            listed = []
    rest: dict[str, float] = {}
    for run in runs:
        if run.arm not in listed:
            when = (
                (run.path / "config.yaml").stat().st_mtime
                if (run.path / "config.yaml").is_file()
                else 0.0
            )
            rest[run.arm] = min(rest.get(run.arm, when), when)
    return [*dict.fromkeys(listed), *sorted(rest, key=lambda a: (rest[a], a))]


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
