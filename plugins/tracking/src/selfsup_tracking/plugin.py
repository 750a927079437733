"""Hook implementations of selfsup-tracking: the ``tracker`` kind, two trackers, the run events.

Nothing heavy is imported here: TensorBoard and MLflow load when a run asks for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selfsup import KindSpec, hookimpl

from selfsup_tracking.hub import HUB
from selfsup_tracking.records import TrackerSpec

_P = "selfsup_tracking"


@hookimpl
def register_kinds(register: Callable[[KindSpec], None]) -> None:
    """Open the ``tracker`` kind."""
    register(
        KindSpec(
            name="tracker",
            record=TrackerSpec,
            description="Experiment trackers fed by the run events (config 'tracking:').",
        )
    )


@hookimpl
def register_components(register: Callable[[Any], None]) -> None:
    """Register the TensorBoard and MLflow trackers."""
    register(
        TrackerSpec(
            name="tensorboard",
            build=f"{_P}.tensorboard:TensorBoardTracker",
            description="TensorBoard event files: step and epoch scalars, config, results.",
        )
    )
    register(
        TrackerSpec(
            name="mlflow",
            build=f"{_P}.mlflow:MlflowTracker",
            description="MLflow runs: params, step and epoch metrics, results, artefacts, report.",
        )
    )


@hookimpl
def run_started(run_dir: str, config: dict[str, Any], info: dict[str, Any]) -> None:
    """Start the trackers the run asks for."""
    HUB.start(run_dir, config, info)


@hookimpl
def step_finished(run_dir: str, step: int, metrics: dict[str, float]) -> None:
    """Log one step's scalars."""
    HUB.step(run_dir, step, metrics)


@hookimpl
def epoch_finished(run_dir: str, epoch: int, metrics: dict[str, float]) -> None:
    """Log one epoch's means."""
    HUB.epoch(run_dir, epoch, metrics)


@hookimpl
def checkpoint_saved(run_dir: str, path: str, epoch: int) -> None:
    """Note a checkpoint."""
    HUB.checkpoint(run_dir, path, epoch)


@hookimpl
def run_finished(run_dir: str, results: dict[str, Any]) -> None:
    """Log the results and close the run's trackers."""
    HUB.finish(run_dir, results)


@hookimpl
def experiment_finished(output_dir: str, results: dict[str, Any]) -> None:
    """Attach the experiment's report to the trackers that want it."""
    HUB.experiment(output_dir)
