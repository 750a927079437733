"""MLflow tracker: one MLflow run per selfsup run, through ``MlflowClient``.

Each (arm, seed) becomes an MLflow run named ``<arm> seed <n>`` in the MLflow
experiment named like the selfsup experiment, with

* params: the arm's config flattened to dotted keys (``train.optimizer.lr``) and the seed;
* metrics: ``train/<name>`` per logged step, ``epoch/<name>`` per epoch (step = the
  epoch), and the final results under their own names (``knn_acc``), plus
  ``train_time_s``;
* artefacts: ``config.yaml``, ``results.json``, ``metrics.jsonl``, the evaluators'
  ``artefacts/`` and, once every run of the command is done, the experiment's
  ``report.html`` (under ``report/``);
* tags: arm, seed, objective, encoder, dataset, the run directory, and the status
  (``FINISHED``, or ``FAILED`` with the error).

A resumed run continues its MLflow run (its id is kept in ``<run>/tracking/mlflow.json``).
The store is ``tracking_uri`` if given, else ``MLFLOW_TRACKING_URI``, else a file store
in ``<output_dir>/<experiment>/mlruns`` (open it with ``MLFLOW_ALLOW_FILE_STORE=true mlflow
ui --backend-store-uri file:runs/<experiment>/mlruns``). MLflow 3 keeps file stores in
maintenance mode and refuses them unless ``MLFLOW_ALLOW_FILE_STORE=true``; for a file
store this tracker sets that variable in its own process (a database or server store
needs nothing).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from selfsup_tracking.records import Tracker, flatten

__all__ = ["MlflowTracker"]

#: Longest param value MLflow stores (shorter in old versions); longer ones are cut.
MAX_PARAM = 500
#: Step metrics buffered before one ``log_batch``.
BATCH = 200
_RESULT_FILES = ("config.yaml", "results.json", "metrics.jsonl", "transforms.json", "error.log")


class MlflowTracker(Tracker):
    """Log each run to MLflow.

    Args:
        tracking_uri: The MLflow store (``file:/path``, ``sqlite:///mlflow.db``,
            ``http://server:5000``); by default ``MLFLOW_TRACKING_URI`` or a file store
            in the experiment directory.
        experiment: The MLflow experiment name (default: the selfsup experiment's).
        log_artifacts: Log the run's files (config, results, metrics, artefacts/).
        log_report: Build the experiment's report.html at the end and log it.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        log_artifacts: bool = True,
        log_report: bool = True,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.log_artifacts = bool(log_artifacts)
        self.log_report = bool(log_report)
        self.client: Any = None
        self.run_id: str | None = None
        self.run_dir: Path | None = None
        self.pending: list[Any] = []

    @property
    def wants_report(self) -> bool:
        """Whether the experiment's report should be logged to this run."""
        return self.log_report and self.run_id is not None

    def _uri(self, info: dict[str, Any], run_dir: Path) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"]
        exp_dir = Path(info.get("experiment_dir") or run_dir.parent.parent)
        return (exp_dir / "mlruns").resolve().as_uri()

    def start(self, run_dir: Path, config: dict[str, Any], info: dict[str, Any]) -> None:
        """Create (or, on resume, reopen) the MLflow run and log the params."""
        from mlflow.tracking import MlflowClient

        self.run_dir = run_dir
        uri = self._uri(info, run_dir)
        if uri.startswith("file:") or "://" not in uri:
            # MLflow 3 refuses file stores unless asked; a local folder needs no server or
            # database (mlflow-skinny has no SQLAlchemy), so this tracker asks for it.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        state = run_dir / "tracking" / "mlflow.json"
        if state.is_file():
            try:
                self.run_id = json.loads(state.read_text(encoding="utf-8"))["run_id"]
                self.client.update_run(self.run_id, status="RUNNING")
                return
            except Exception:  # a store that moved: start a new MLflow run
                self.run_id = None
        name = self.experiment or str(info.get("experiment") or run_dir.parent.parent.name)
        found = self.client.get_experiment_by_name(name)
        exp_id = found.experiment_id if found else self.client.create_experiment(name)
        tags = {
            "selfsup.arm": str(info.get("arm")),
            "selfsup.seed": str(info.get("seed")),
            "selfsup.run_dir": str(run_dir),
            "selfsup.encoder": str((config.get("encoder") or {}).get("id")),
            "selfsup.objective": str((config.get("objective") or {}).get("id")),
            "selfsup.data": str((config.get("data") or {}).get("id")),
        }
        run = self.client.create_run(
            exp_id, run_name=f"{info.get('arm')} seed {info.get('seed')}", tags=tags
        )
        self.run_id = run.info.run_id
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"run_id": self.run_id, "uri": self._uri(info, run_dir)}))
        self._log_params({**flatten(config), "seed": info.get("seed")})

    def _log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [
            Param(key, (json.dumps(v) if not isinstance(v, str) else v)[:MAX_PARAM])
            for key, v in params.items()
        ]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def _queue(self, prefix: str, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for name, value in metrics.items():
            if isinstance(value, int | float) and math.isfinite(float(value)):
                key = f"{prefix}/{name}" if prefix else name
                self.pending.append(Metric(key, float(value), now, step))
        if len(self.pending) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        while self.pending:
            chunk, self.pending = self.pending[:1000], self.pending[1000:]
            self.client.log_batch(self.run_id, metrics=chunk)

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        """``train/<name>`` at ``step`` (buffered)."""
        if self.run_id is not None:
            self._queue("train", metrics, step)

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """``epoch/<name>`` at ``epoch``."""
        if self.run_id is not None:
            self._queue("epoch", metrics, epoch)
            self._flush()

    def finish(self, results: dict[str, Any]) -> None:
        """Log the results and files; end the MLflow run with the run's status."""
        if self.run_id is None or self.run_dir is None:
            return
        step = int(results.get("steps") or 0)
        final = dict(results.get("metrics") or {})
        for key in ("train_time_s", "eval_time_s", "items_per_s"):
            if isinstance(results.get(key), int | float):
                final[key] = results[key]
        self._queue("", final, step)
        self._flush()
        failed = results.get("status") != "ok"
        if failed:
            self.client.set_tag(self.run_id, "selfsup.error", str(results.get("error", ""))[:5000])
        if self.log_artifacts:
            for name in _RESULT_FILES:
                if (self.run_dir / name).is_file():
                    self.client.log_artifact(self.run_id, str(self.run_dir / name))
            if (self.run_dir / "artefacts").is_dir():
                self.client.log_artifacts(self.run_id, str(self.run_dir / "artefacts"), "artefacts")
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")

    def attach_report(self, path: Path) -> None:
        """Log the experiment's ``report.html`` under ``report/``."""
        if self.run_id is not None and path.is_file():
            self.client.log_artifact(self.run_id, str(path), "report")
