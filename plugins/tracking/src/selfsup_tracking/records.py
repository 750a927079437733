"""The ``tracker`` kind: its spec record and the interface every tracker implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfsup import ComponentSpec

__all__ = ["Tracker", "TrackerSpec", "flatten"]


@dataclass(frozen=True)
class TrackerSpec(ComponentSpec):
    """A tracker: ``build(**params) -> Tracker``, fed by the run events of one run."""

    kind: str = field(default="tracker", kw_only=True)


class Tracker:
    """What a tracker does with the events of one run (one arm, one seed).

    One instance serves one run: :meth:`start` when it starts training, then
    :meth:`log_step` / :meth:`log_epoch` / :meth:`log_checkpoint`, :meth:`finish` with
    the results, and :meth:`attach_report` when the experiment's report is written.
    The defaults do nothing, so a tracker implements only what it records.
    """

    def start(self, run_dir: Path, config: dict[str, Any], info: dict[str, Any]) -> None:
        """The run starts (``info``: arm, seed, experiment, experiment_dir, resumed...)."""

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        """Scalars of one optimiser step (every ``train.log_every`` steps)."""

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Epoch means (loss, objective terms, epoch_time_s, items_per_s)."""

    def log_checkpoint(self, path: Path, epoch: int) -> None:
        """A checkpoint was written."""

    def finish(self, results: dict[str, Any]) -> None:
        """The run was evaluated: ``results`` is its ``results.json``."""

    def attach_report(self, path: Path) -> None:
        """The experiment's ``report.html`` was written (after every run of the command)."""

    @property
    def wants_report(self) -> bool:
        """Whether :meth:`attach_report` should be called (a report is built for it)."""
        return False


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``{"a.b.c": value}`` (lists kept as values).

    Example:
        >>> flatten({"train": {"epochs": 2, "optimizer": {"lr": 0.1}}})
        {'train.epochs': 2, 'train.optimizer.lr': 0.1}
    """
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) and value:
                out.update(flatten(value, name))
            else:
                out[name] = value
    else:
        out[prefix] = data
    return out
