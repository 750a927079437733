"""What an experiment directory already holds when ``selfsup run`` starts again.

**Faithful resume.** A run directory's ``config.yaml`` records what its finished
epochs ran with, and it is the truth: ``--resume`` compares it with the config being
run, key by key (dotted paths such as ``train.optimizer.lr``), before anything
trains, and

- refuses any difference that changes what the run means (objective, encoder, data
  and transforms, views, routine, evaluators, optimiser, schedule, batch size,
  precision, budgets in steps...), listing each key with its stored and new values
  and the ways out;
- allows a larger ``train.epochs`` (the run continues from its last checkpoint, a
  finished one too, and is evaluated again; the learning-rate schedule is re-planned
  over the new total, see :meth:`selfsup.engine.context.RunContext.restore`) and the
  operational keys of :data:`OPERATIONAL_KEYS`.

``config.yaml`` is never rewritten: what a resume changed is recorded as a notice, and
the next resume compares with ``config.yaml`` plus those recorded changes (a run
continued to 12 epochs is a 12-epoch run from then on: resuming it with 8 is refused).

**Notices** (:func:`append_notice`) are JSON lines appended to ``notices.jsonl``, in
the run directory for what concerns one run (``kind``: ``"resume"``,
``"temp-files-removed"``) and in the experiment directory for the rest
(``"overwrite"``, ``"temp-files-removed"``, ``"left-out"``, ``"stale-report"``). Each
line holds ``time`` (UTC, ISO 8601), ``kind``, ``message`` and the details (for a
resume: ``changes`` as ``[{"key", "stored", "new"}]``, ``from_epoch``, ``from_step``,
``metrics_dropped``). Every notice is also printed.

**Experiment results.** The experiment-level ``results.json``/``results.md`` hold every
arm with a finished run in the experiment directory, not only the arms of the last
command (:func:`earlier_runs`); a run of another seed of an arm being run is merged
only when it ran with the same config (else it is left out, with a notice).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from selfsup.config import ConfigError
from selfsup.engine.checkpoint import remove_temp_files
from selfsup.engine.metrics import truncate_metrics

if TYPE_CHECKING:
    from rich.console import Console

    from selfsup.config import ArmConfig
    from selfsup.engine.results import ExperimentResult

__all__ = [
    "OPERATIONAL_KEYS",
    "Change",
    "ResumeCheck",
    "ResumeConfigError",
    "append_notice",
    "check_resume",
    "delete_runs",
    "diff_records",
    "earlier_runs",
    "merge_earlier",
    "notice",
    "read_finished",
    "record_resume",
    "refuse_changed",
    "remove_stale_reports",
    "tidy_experiment_dir",
]

#: Keys that may differ on ``--resume``: how a run is executed, shown or saved, not
#: what it computes. Each is recorded in the resume notice.
OPERATIONAL_KEYS: dict[str, str] = {
    "source": "where the config file is (a copy elsewhere is the same experiment)",
    "data.help": "where to get the data: a message, not the data",
    "train.progress": "progress bars are display only",
    "train.log_every": "how often step metrics are logged, not how the model trains",
    "train.threads": "CPU threads compute the same operations",
    "train.num_workers": "loader processes: the sampler's order is seeded, not theirs",
    "train.device": "where the run continues (another GPU, or CPU after a crash)",
    "train.compile": "torch.compile changes kernels, not the model or the optimiser",
    "train.checkpoint_every": "how often the state is saved, not the state",
    "train.max_time_s": "a wall-clock budget per start: a run it stopped continues",
}

_ABSENT = object()


class ResumeConfigError(ConfigError):
    """``--resume`` with a config that differs from a run's ``config.yaml``; nothing ran."""


@dataclass(frozen=True)
class Change:
    """One key whose value differs between a run's ``config.yaml`` and the new config."""

    key: str
    stored: Any
    new: Any

    def describe(self) -> str:
        """``"train.optimizer.lr: stored 0.003, new 0.5"``."""
        return f"{self.key}: stored {_show(self.stored)}, new {_show(self.new)}"

    def as_json(self) -> dict[str, Any]:
        """``{"key", "stored", "new"}`` (an absent value is ``None``)."""
        return {
            "key": self.key,
            "stored": None if self.stored is _ABSENT else self.stored,
            "new": None if self.new is _ABSENT else self.new,
        }


def _show(value: Any, limit: int = 80) -> str:
    if value is _ABSENT:
        return "<not set>"
    text = repr(value) if isinstance(value, str) else json.dumps(value, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def diff_records(stored: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Every dotted key whose value differs (lists are compared whole), in config order."""
    old, cur = _flatten(stored), _flatten(new)
    keys = list(cur) + [k for k in old if k not in cur]
    return [
        Change(key, old.get(key, _ABSENT), cur.get(key, _ABSENT))
        for key in keys
        if old.get(key, _ABSENT) != cur.get(key, _ABSENT)
    ]


@dataclass
class ResumeCheck:
    """The answer for one run directory on ``--resume``.

    Attributes:
        run_dir: The run directory.
        stored: Its ``config.yaml`` (``None``: none there; it is written at the start).
        allowed: Changes that may go on (operational keys, a larger ``train.epochs``).
        refused: Changes that would rewrite history.
        grown: ``train.epochs`` is larger and the arm pretrains: a finished run continues.
        amended: ``stored`` includes the changes of earlier resumes (``notices.jsonl``).
    """

    run_dir: Path
    stored: dict[str, Any] | None = None
    allowed: list[Change] = field(default_factory=list)
    refused: list[Change] = field(default_factory=list)
    grown: bool = False
    amended: bool = False


def _read_config(path: Path) -> dict[str, Any]:
    fix = "restore it, or start afresh with --set output_dir=... (or --overwrite)"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise ResumeConfigError(
            f"{path}: cannot be read ({type(exc).__name__}: {reason}); it records what the "
            f"run started with, so the run cannot be resumed: {fix}"
        ) from None
    if not isinstance(data, dict):
        raise ResumeConfigError(
            f"{path}: not a run's config (a {type(data).__name__}, not a mapping); "
            f"the run cannot be resumed: {fix}"
        )
    return data


def _judge(stored: Mapping[str, Any], new: Mapping[str, Any]) -> ResumeCheck:
    """Sort the differences into allowed and refused (``run_dir`` left empty)."""
    check = ResumeCheck(run_dir=Path())
    trains = new.get("objective") is not None or stored.get("objective") is not None
    for change in diff_records(stored, new):
        if change.key in OPERATIONAL_KEYS:
            check.allowed.append(change)
        elif change.key == "train.epochs" and not trains:
            check.allowed.append(change)  # an arm that does not pretrain: no effect
        elif change.key == "train.epochs" and _larger(change.new, change.stored):
            check.allowed.append(change)
            check.grown = True
        elif change.key == "train.epochs":
            kind = _FewerEpochs if _larger(change.stored, change.new) else Change
            check.refused.append(kind(change.key, change.stored, change.new))
        else:
            check.refused.append(change)
    return check


class _FewerEpochs(Change):
    """A smaller ``train.epochs``: the run would stop short of what it was planned for."""

    def describe(self) -> str:
        """The change, and why it is refused."""
        return super().describe() + " (fewer epochs than the run was planned for)"


def _larger(a: Any, b: Any) -> bool:
    return isinstance(a, int) and isinstance(b, int) and a > b


def check_resume(run_dir: Path, new: Mapping[str, Any]) -> ResumeCheck:
    """Compare a run directory's ``config.yaml`` with the config record about to run.

    Args:
        run_dir: The run directory (it may not exist yet: nothing to compare).
        new: :func:`selfsup.engine.runinfo.config_record` of the arm and seed.

    Raises:
        ResumeConfigError: ``config.yaml`` exists but cannot be read.
    """
    path = run_dir / "config.yaml"
    if not path.is_file():
        return ResumeCheck(run_dir=run_dir)
    stored = _read_config(path)
    amended = _apply_resumes(stored, run_dir / "notices.jsonl")
    check = _judge(stored, new)
    check.run_dir, check.stored, check.amended = run_dir, stored, amended
    return check


def _apply_resumes(stored: dict[str, Any], notices: Path) -> bool:
    """Apply the allowed changes of earlier resumes (in ``notices.jsonl``) to ``stored``.

    ``config.yaml`` holds what a run started with; a run continued to more epochs
    (or with another operational key) ran with the new value since, and that is what
    the next resume is compared with. Lines that are not such notices are ignored.
    Returns whether any change was applied.
    """
    applied = False
    if not notices.is_file():
        return applied
    for line in notices.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or entry.get("kind") != "resume":
            continue
        for change in entry.get("changes") or []:
            key = change.get("key") if isinstance(change, dict) else None
            if isinstance(key, str) and (key in OPERATIONAL_KEYS or key == "train.epochs"):
                _set_dotted(stored, key, change.get("new"))
                applied = True
    return applied


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[last] = value


def refuse_changed(checks: Iterable[ResumeCheck]) -> None:
    """Raise one :class:`ResumeConfigError` naming the runs whose config differs.

    The message is one line: the first such run directory, each refused key with its
    stored and new values, how many other run directories differ, and the ways out.
    """
    bad = [c for c in checks if c.refused]
    if not bad:
        return
    first = bad[0]
    since = ", with the changes of earlier resumes in notices.jsonl" if first.amended else ""
    changes = "; ".join(ch.describe() for ch in first.refused)
    others = ""
    if len(bad) > 1:
        names = ", ".join(str(c.run_dir) for c in bad[1:4]) + (", ..." if len(bad) > 4 else "")
        others = f" ({len(bad) - 1} more run directories differ: {names})"
    raise ResumeConfigError(
        f"cannot resume {first.run_dir}: the config differs from the one the run ran with "
        f"({first.run_dir / 'config.yaml'}{since}): {changes}{others}. Resume without these "
        "changes (the run's config.yaml is the truth; only a larger train.epochs and "
        f"operational keys may change: {', '.join(OPERATIONAL_KEYS)}), or start afresh "
        "with --set output_dir=... (or --overwrite to delete these runs and run them again)"
    )


def append_notice(directory: Path, kind: str, message: str, **details: Any) -> None:
    """Append one notice to ``directory/notices.jsonl`` (see the module docstring)."""
    directory.mkdir(parents=True, exist_ok=True)
    entry = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "kind": kind,
        "message": message,
        **details,
    }
    with (directory / "notices.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, default=str) + "\n")


def read_finished(run_dir: Path) -> dict[str, Any] | None:
    """The ``results.json`` of a run that finished successfully, else ``None``."""
    path = run_dir / "results.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("status") == "ok" else None


def delete_runs(run_dirs: Iterable[Path]) -> list[Path]:
    """Delete the run directories that exist (``--overwrite``); the deleted ones."""
    deleted = []
    for run_dir in run_dirs:
        if run_dir.is_dir():
            shutil.rmtree(run_dir)
            deleted.append(run_dir)
    return deleted


def _seed_of(run_dir: Path) -> int | None:
    prefix, _, number = run_dir.name.partition("-")
    try:
        return int(number) if prefix == "seed" else None
    except ValueError:
        return None


def earlier_runs(
    exp_dir: Path,
    ran: set[Path],
    expected: Mapping[str, Callable[[int], dict[str, Any]]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The finished runs of ``exp_dir`` that this command did not run: merged, left out.

    Args:
        exp_dir: The experiment directory (``<output_dir>/<name>``).
        ran: The run directories of this command (their records are already known).
        expected: For each arm directory of this command, the config record it would
            run a seed with; another seed's run there is merged only if its
            ``config.yaml`` matches (seed and operational keys aside).

    Returns:
        The ``results.json`` records to merge, and ``{"run_dir", "arm", "seed",
        "changes"}`` for each run left out because it ran with another config.
    """
    merged: list[dict[str, Any]] = []
    left_out: list[dict[str, Any]] = []
    if not exp_dir.is_dir():
        return merged, left_out
    found = [
        (arm_dir.name, seed, run_dir)
        for arm_dir in exp_dir.iterdir()
        if arm_dir.is_dir()
        for run_dir in arm_dir.iterdir()
        if (seed := _seed_of(run_dir)) is not None and run_dir not in ran
    ]
    for dirname, seed, run_dir in sorted(found):
        record = read_finished(run_dir)
        if record is None:
            continue
        if dirname in expected:
            changes = _other_seed_changes(run_dir, expected[dirname](seed))
            if changes:
                left_out.append(
                    {
                        "run_dir": str(run_dir),
                        "arm": record.get("arm", dirname),
                        "seed": seed,
                        "changes": [c.as_json() for c in changes],
                    }
                )
                continue
        merged.append(record)
    return merged, left_out


def _other_seed_changes(run_dir: Path, new: Mapping[str, Any]) -> list[Change]:
    path = run_dir / "config.yaml"
    try:
        stored = _read_config(path)
    except ResumeConfigError:
        return [Change("config.yaml", "<unreadable>", "<this config>")]
    return [c for c in diff_records(stored, new) if c.key not in OPERATIONAL_KEYS]


def remove_stale_reports(directories: Iterable[Path]) -> list[Path]:
    """Delete ``report.html`` in ``directories`` (their results changed); the removed ones."""
    removed = []
    for directory in directories:
        report = directory / "report.html"
        if report.is_file():
            report.unlink()
            removed.append(report)
    return removed


# --------------------------------------------------------------------------- the runner's steps


def notice(console: Console, directory: Path, kind: str, message: str, **details: Any) -> None:
    """Print a notice and append it to ``directory/notices.jsonl`` (rank 0 only)."""
    from rich.text import Text

    console.print(Text(f"notice: {message}", style="yellow"), soft_wrap=True)
    append_notice(directory, kind, message, **details)


def tidy_experiment_dir(exp_dir: Path, overwrite: list[Path], console: Console) -> None:
    """Before the runs: delete the runs ``--overwrite`` re-runs, remove leftover temp files.

    Temporary files inside a run directory are recorded in that run's notices, the
    others in the experiment directory's.
    """
    for run_dir in delete_runs(overwrite):
        notice(
            console, exp_dir, "overwrite",
            f"--overwrite: deleted {run_dir} (its arm and seed run again now)",
            run_dir=str(run_dir),
        )  # fmt: skip
    removed: dict[Path, list[str]] = {}
    for path in remove_temp_files(exp_dir):
        parts = path.relative_to(exp_dir).parts
        in_run = len(parts) > 2 and _seed_of(Path(parts[1])) is not None
        owner = exp_dir / parts[0] / parts[1] if in_run else exp_dir
        removed.setdefault(owner, []).append(str(path.relative_to(owner)))
    for owner, names in removed.items():
        notice(
            console, owner, "temp-files-removed",
            f"removed {len(names)} temporary file(s) that an interrupted write left in "
            f"{owner}: {', '.join(names)}",
            files=names,
        )  # fmt: skip


def merge_earlier(
    result: ExperimentResult,
    expected: Mapping[str, Callable[[int], dict[str, Any]]],
    ran: set[Path],
    console: Console,
) -> None:
    """Add the experiment directory's other finished runs to ``result`` (see :func:`earlier_runs`).

    Each run left out (another seed of an arm being run, with another config) is set
    in ``result.left_out`` and told as a notice.
    """
    merged, left_out = earlier_runs(result.output_dir, ran, expected)
    result.runs.extend(merged)
    result.left_out = left_out
    for item in left_out:
        changes = "; ".join(Change(**c).describe() for c in item["changes"])
        notice(
            console, result.output_dir, "left-out",
            f"{item['run_dir']} is left out of the experiment results: it ran arm "
            f"{item['arm']!r} with another config ({changes}); to include it, run its seed "
            f"({item['seed']}) again with --overwrite",
            **item,
        )  # fmt: skip


def record_resume(
    run_dir: Path,
    arm: ArmConfig,
    seed: int,
    check: ResumeCheck | None,
    state: Mapping[str, Any] | None,
    had_config: bool,
    console: Console,
) -> None:
    """Before a resumed run trains: drop the metrics after its checkpoint, write the notice.

    Args:
        run_dir: The run directory.
        arm: The arm as it runs now.
        seed: The run's seed.
        check: What :func:`check_resume` found (``None``: nothing compared).
        state: The checkpoint it continues from (``None``: it starts from scratch).
        had_config: Whether ``config.yaml`` was there (it is written when missing).
        console: Where the notice is printed.
    """
    epoch = int(state["epoch"]) if state else 0
    step = int(state["global_step"]) if state else 0
    dropped = truncate_metrics(run_dir / "metrics.jsonl", epoch, step)
    changes = check.allowed if check is not None else []
    if state is None and not dropped and not changes and not had_config:
        return  # a run that had not started: nothing to say
    if state:
        start = f"resumed from its checkpoint at epoch {epoch} (step {step})"
    elif arm.pretrains:
        start = "started again from scratch (no checkpoint yet)"
    else:
        start = "evaluated again (this arm does not pretrain)"
    parts = [f"{arm.name} seed {seed}: {start}"]
    if check is not None and check.grown:
        parts.append(
            f"continues to {arm.train.epochs} epochs, the learning-rate schedule re-planned "
            f"over {arm.train.epochs} epochs"
        )
    if changes:
        parts.append(
            "changed: " + "; ".join(c.describe() for c in changes)
            + " (config.yaml keeps what the run started with)"
        )  # fmt: skip
    if not had_config:
        parts.append("config.yaml was missing and is written from this config")
    if dropped:
        parts.append(f"dropped {dropped} metrics.jsonl line(s) written after the checkpoint")
    notice(
        console, run_dir, "resume", ", ".join(parts),
        changes=[c.as_json() for c in changes], from_epoch=epoch, from_step=step,
        metrics_dropped=dropped,
    )  # fmt: skip
