"""TensorBoard tracker: event files with step and epoch scalars, the config and the results.

Tags: ``train/<name>`` per logged step (``loss``, ``lr``, the objective's terms),
``epoch/<name>`` per epoch (x axis: the epoch), ``results/<metric>`` once at the
end (x axis: the last step), the config and results as text. View them with
``tensorboard --logdir runs/<experiment>``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import PositiveInt

from selfsup_tracking.records import Tracker

__all__ = ["TensorBoardTracker"]


class TensorBoardTracker(Tracker):
    """Write TensorBoard event files for each run.

    Args:
        log_dir: Where the event files go: ``<log_dir>/<experiment>/<arm>/seed-<n>``;
            ``None`` (the default) writes them in the run directory, ``<run>/tensorboard``.
        flush_secs: How often the writer flushes to disk.
    """

    def __init__(self, log_dir: str | None = None, flush_secs: PositiveInt = 30) -> None:
        if isinstance(flush_secs, bool) or not isinstance(flush_secs, int) or flush_secs < 1:
            raise ValueError(f"flush_secs={flush_secs!r} must be a positive integer (seconds)")
        self.log_dir = log_dir
        self.flush_secs = flush_secs
        self.writer: Any = None
        self.path: Path | None = None
        self.last_step = 0

    def start(self, run_dir: Path, config: dict[str, Any], info: dict[str, Any]) -> None:
        """Open the writer (a resumed run appends to the same folder)."""
        from torch.utils.tensorboard import SummaryWriter

        if self.log_dir is None:
            self.path = run_dir / "tensorboard"
        else:
            self.path = Path(self.log_dir).expanduser() / run_dir.parent.parent.name
            self.path = self.path / run_dir.parent.name / run_dir.name
        self.writer = SummaryWriter(log_dir=str(self.path), flush_secs=self.flush_secs)
        text = yaml.safe_dump({"info": info, "config": config}, sort_keys=False)
        self.writer.add_text("config", f"```\n{text}\n```", 0)

    def _scalars(self, prefix: str, metrics: dict[str, float], step: int) -> None:
        if self.writer is None:  # start failed (reported once by selfsup): nothing to write to
            return
        for name, value in metrics.items():
            if isinstance(value, int | float) and math.isfinite(float(value)):
                self.writer.add_scalar(f"{prefix}/{name}", float(value), step)

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        """``train/<name>`` at ``step``."""
        self.last_step = max(self.last_step, step)
        self._scalars("train", metrics, step)

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """``epoch/<name>`` at ``epoch``."""
        self._scalars("epoch", metrics, epoch)

    def finish(self, results: dict[str, Any]) -> None:
        """``results/<metric>`` at the last step, the results as text; close the writer."""
        if self.writer is None:
            return
        step = int(results.get("steps") or self.last_step)
        self._scalars("results", dict(results.get("metrics") or {}), step)
        shown = json.dumps(results, indent=2, default=str)
        self.writer.add_text("results", f"```\n{shown}\n```", step)
        self.writer.flush()
        self.writer.close()
        self.writer = None
