"""The trackers of the runs in progress, fed by the run-event hooks.

``run_started`` builds the trackers its ``info["tracking"]`` names (``{"id",
"params"}`` each, resolved by the engine) and keeps them by run directory; the other
events go to the trackers of their run. Finished runs' trackers stay with their
experiment directory until ``experiment_finished``, which builds ``report.html`` once
if one of them wants it (MLflow logs it as an artefact) and then forgets them.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from selfsup_tracking.records import Tracker

__all__ = ["HUB", "OWN", "Hub"]

#: This plugin's trackers: id -> "module:class" (built without the plugin manager).
OWN = {
    "tracking:tensorboard": "selfsup_tracking.tensorboard:TensorBoardTracker",
    "tracking:mlflow": "selfsup_tracking.mlflow:MlflowTracker",
}


def _build(entry: dict[str, Any]) -> Tracker:
    ident, params = entry["id"], dict(entry.get("params") or {})
    path = OWN.get(ident)
    if path is not None:
        module, _, name = path.partition(":")
        return getattr(importlib.import_module(module), name)(**params)
    from selfsup import build_component

    tracker = build_component("tracker", {"id": ident, "params": params})
    if not isinstance(tracker, Tracker):
        raise TypeError(
            f"tracker {ident!r} built a {type(tracker).__name__}, not a selfsup_tracking.Tracker"
        )
    return tracker


class Hub:
    """Trackers by run directory, and finished ones by experiment directory."""

    def __init__(self) -> None:
        self.running: dict[str, list[Tracker]] = {}
        self.finished: dict[str, list[Tracker]] = {}
        self.experiment_of: dict[str, str] = {}

    def start(self, run_dir: str, config: dict[str, Any], info: dict[str, Any]) -> None:
        """Build and start the trackers the run asks for (none: nothing happens).

        A tracker that fails to build or start is dropped for this run and its error
        raised after the others started (selfsup warns once and the run goes on).
        """
        entries = info.get("tracking") or []
        if not entries:
            return
        started: list[Tracker] = []
        errors: list[Exception] = []
        for entry in entries:  # one tracker failing (a server down) leaves the others on
            try:
                tracker = _build(entry)
                tracker.start(Path(run_dir), config, info)
            except Exception as exc:
                errors.append(exc)
            else:
                started.append(tracker)
        self.running[run_dir] = started
        self.experiment_of[run_dir] = str(info.get("experiment_dir") or Path(run_dir).parent.parent)
        if errors:
            raise errors[0]  # selfsup reports it once, naming this plugin and the hook

    def step(self, run_dir: str, step: int, metrics: dict[str, float]) -> None:
        """A step's scalars to the run's trackers."""
        for tracker in self.running.get(run_dir, ()):
            tracker.log_step(step, metrics)

    def epoch(self, run_dir: str, epoch: int, metrics: dict[str, float]) -> None:
        """An epoch's means to the run's trackers."""
        for tracker in self.running.get(run_dir, ()):
            tracker.log_epoch(epoch, metrics)

    def checkpoint(self, run_dir: str, path: str, epoch: int) -> None:
        """A checkpoint to the run's trackers."""
        for tracker in self.running.get(run_dir, ()):
            tracker.log_checkpoint(Path(path), epoch)

    def finish(self, run_dir: str, results: dict[str, Any]) -> None:
        """Results to the run's trackers; they wait for the experiment's end."""
        trackers = self.running.pop(run_dir, [])
        for tracker in trackers:
            tracker.finish(results)
        exp = self.experiment_of.pop(run_dir, None)
        if exp is not None and trackers:
            self.finished.setdefault(exp, []).extend(trackers)

    def experiment(self, output_dir: str) -> None:
        """Build the report once if a finished tracker wants it, and hand it over."""
        trackers = self.finished.pop(str(output_dir), [])
        wanting = [t for t in trackers if t.wants_report]
        if not wanting:
            return
        from selfsup import build_report

        report = build_report(output_dir, warnings=[])
        for tracker in wanting:
            tracker.attach_report(Path(report))


#: The process-wide hub the hooks use.
HUB = Hub()
