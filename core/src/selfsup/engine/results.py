"""Experiment results: per-run records, mean ± std over seeds, JSON, markdown and rich tables.

Example:
    >>> result = ExperimentResult("demo", Path("runs/demo"), runs=[
    ...     {"arm": "simclr", "seed": 0, "status": "ok", "metrics": {"acc": 0.9},
    ...      "train_time_s": 10.0},
    ...     {"arm": "simclr", "seed": 1, "status": "ok", "metrics": {"acc": 0.8},
    ...      "train_time_s": 12.0}])
    >>> row = result.summary()[0]
    >>> row["arm"], tuple(round(v, 4) for v in row["acc"])
    ('simclr', (0.85, 0.0707, 2))
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfsup.engine.checkpoint import write_bytes_atomic

__all__ = ["ExperimentFailedError", "ExperimentResult", "format_stat", "write_json_atomic"]

Stat = tuple[float, float, int]


class ExperimentFailedError(RuntimeError):
    """Some runs of an experiment failed; the others and the summary were still written."""


def write_json_atomic(data: Any, path: str | Path) -> None:
    """Write JSON (indented, NaN as ``null``-safe strings) atomically."""
    text = json.dumps(_json_safe(data), indent=2, sort_keys=False) + "\n"
    write_bytes_atomic(text.encode("utf-8"), path)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _stat(values: list[float]) -> Stat:
    """Mean, sample standard deviation (0 for one value) and count."""
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return (mean, std, len(values))


def format_stat(stat: Stat | None) -> str:
    """``"0.9120 ± 0.0100"`` (precision adapted to the magnitude), ``"-"`` for none."""
    if stat is None:
        return "-"
    mean, std, n = stat
    scale = max(abs(mean), abs(std))
    digits = 4 if scale < 10 else 2 if scale < 1000 else 0
    text = f"{mean:.{digits}f}"
    return f"{text} ± {std:.{digits}f}" if n > 1 else text


def _delta(row: dict[str, Any], metric: str | None) -> str:
    """``"+0.0213 (vs random-init[x])"`` for an arm with a baseline, else ``"-"``."""
    value = row.get("vs_baseline", {}).get(metric) if metric else None
    if value is None:
        return "-"
    digits = 4 if abs(value) < 10 else 2
    return f"{value:+.{digits}f} (vs {row['baseline']})"


@dataclass
class ExperimentResult:
    """Every run of an experiment and their summary per arm.

    Attributes:
        name: The experiment name.
        output_dir: The experiment directory (``<output_dir>/<name>``).
        runs: One record per (arm, seed), as written to each ``results.json``: those of
            the command that ran, then the other finished runs of the experiment
            directory (see :func:`selfsup.engine.resume.earlier_runs`).
        left_out: Finished runs of the experiment directory not in ``runs`` because
            they ran an arm of this command with another config: ``{"run_dir", "arm",
            "seed", "changes"}``.
    """

    name: str
    output_dir: Path
    runs: list[dict[str, Any]] = field(default_factory=list)
    left_out: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The records of runs that failed."""
        return [r for r in self.runs if r.get("status") != "ok"]

    def metric_names(self) -> list[str]:
        """Metric names over every successful run, in order of first appearance."""
        names: dict[str, None] = {}
        for run in self.runs:
            if run.get("status") == "ok":
                names.update(dict.fromkeys(run.get("metrics", {})))
        return list(names)

    def summary(self) -> list[dict[str, Any]]:
        """One row per arm: ``{"arm", <metric>: (mean, std, n), "train_time_s": ...}``.

        Statistics are over the arm's successful seeds (sample std, 0 for one seed);
        ``runs`` and ``failed`` count its runs.
        """
        arms: dict[str, list[dict[str, Any]]] = {}
        for run in self.runs:
            arms.setdefault(run["arm"], []).append(run)
        rows = []
        for arm, runs in arms.items():
            ok = [r for r in runs if r.get("status") == "ok"]
            row: dict[str, Any] = {"arm": arm, "runs": len(runs), "failed": len(runs) - len(ok)}
            for name in self.metric_names():
                values = [
                    float(r["metrics"][name])
                    for r in ok
                    if isinstance(r["metrics"].get(name), int | float)
                ]
                row[name] = _stat(values) if values else None
            times = [float(r.get("train_time_s", 0.0)) for r in ok]
            row["train_time_s"] = _stat(times) if times else None
            row["data"] = runs[0].get("data")
            row["baseline"] = runs[0].get("baseline")
            rows.append(row)
        by_arm = {row["arm"]: row for row in rows}
        for row in rows:
            base = by_arm.get(row["baseline"]) if row["baseline"] else None
            row["vs_baseline"] = {
                name: row[name][0] - base[name][0]
                for name in self.metric_names()
                if base is not None and row.get(name) and base.get(name)
            }
        return rows

    def primary_metric(self) -> str | None:
        """The metric the comparison leads with: the first one every arm reports."""
        names = self.metric_names()
        return names[0] if names else None

    def markdown(self) -> str:
        """The comparison table in markdown (metrics as mean ± std over seeds)."""
        names = self.metric_names()
        rows = self.summary()
        primary = self.primary_metric()
        compare = primary is not None and any(r["baseline"] for r in rows)
        header = ["arm", "data", *names]
        header += [f"{primary} vs own random-init"] if compare else []
        header += ["train time (s)", "seeds"]
        lines = [
            f"# {self.name}",
            "",
            "Mean ± sample standard deviation over seeds (successful runs only)."
            + (
                " Each pretrained arm is compared with the random-init arm of its own data "
                "and encoder (difference of the means)."
                if compare
                else ""
            ),
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---" for _ in header) + "|",
        ]
        for row in rows:
            seeds = f"{row['runs'] - row['failed']}/{row['runs']}"
            cells = [row["arm"], str(row["data"] or "-"), *(format_stat(row[n]) for n in names)]
            if compare:
                cells.append(_delta(row, primary))
            cells += [format_stat(row["train_time_s"]), seeds]
            lines.append("| " + " | ".join(cells) + " |")
        for run in self.failed:
            lines.append("")
            lines.append(f"- FAILED: {run['arm']} seed {run['seed']}: {run.get('error', '')}")
        for item in self.left_out:
            keys = ", ".join(c["key"] for c in item.get("changes", []))
            lines.append("")
            lines.append(
                f"- LEFT OUT: {item['run_dir']} (arm {item['arm']}, seed {item['seed']}) ran "
                f"with another config ({keys})"
            )
        return "\n".join(lines) + "\n"

    def table(self, width: int | None = None) -> Any:
        """The comparison for a terminal: one column per arm, one row per metric.

        (Transposed from :meth:`markdown`: a terminal fits few arms and many metrics.)
        Arms keep the config's order; with ``width`` (the console's) the arms are split
        over several tables rather than squeezed (see :func:`selfsup.engine.tables.fitted`).
        """
        from selfsup.engine.tables import fitted

        rows = self.summary()
        labels: list[str] = ["data", *self.metric_names(), "train_time_s"]
        primary = self.primary_metric()
        delta = primary is not None and any(r["baseline"] for r in rows)
        if delta:
            labels.append(f"{primary} vs own random-init")
        labels.append("seeds ok")
        columns = []
        for row in rows:
            cells = [str(row["data"] or "-")]
            cells += [format_stat(row[name]) for name in [*self.metric_names(), "train_time_s"]]
            if delta:
                cells.append(_delta(row, primary))
            ok = f"{row['runs'] - row['failed']}/{row['runs']}"
            cells.append(f"[red]{ok}[/red]" if row["failed"] else ok)
            columns.append((row["arm"], cells))
        return fitted(f"{self.name}: mean ± std over seeds", "metric", labels, columns, width)

    def write(self) -> None:
        """Write ``results.json`` and ``results.md`` into :attr:`output_dir` (atomically)."""
        rows = [
            {
                k: ({"mean": v[0], "std": v[1], "n": v[2]} if isinstance(v, tuple) else v)
                for k, v in row.items()
            }
            for row in self.summary()
        ]
        data: dict[str, Any] = {"name": self.name, "arms": rows, "runs": self.runs}
        if self.left_out:
            data["left_out"] = self.left_out
        write_json_atomic(data, self.output_dir / "results.json")
        write_bytes_atomic(self.markdown().encode("utf-8"), self.output_dir / "results.md")
