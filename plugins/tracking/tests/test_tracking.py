"""TensorBoard and MLflow trackers, read back with the real libraries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_tensorboard_and_mlflow_from_the_config(
    tiny_experiment, tmp_path: Path, cli_runner
) -> None:
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    exp = tiny_experiment("tracking: [tensorboard, mlflow]")
    result = cli_runner.invoke(["run", str(exp), "--no-progress"])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "tracked" / "vicreg" / "seed-0"
    results = json.loads((run_dir / "results.json").read_text())
    steps = [r for r in _metrics(run_dir) if "step" in r and "loss" in r and "epoch" not in r]
    assert len(steps) >= 4 and [r["step"] for r in steps] == list(range(1, len(steps) + 1))

    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"train/loss", "epoch/loss", "results/knn_acc"} <= set(tags)
    loss = acc.Scalars("train/loss")
    assert [e.step for e in loss] == [r["step"] for r in steps]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in steps], rel=1e-6)
    assert [e.step for e in acc.Scalars("epoch/loss")] == [1, 2]
    assert acc.Scalars("results/knn_acc")[0].value == pytest.approx(results["metrics"]["knn_acc"])

    uri = (tmp_path / "runs" / "tracked" / "mlruns").resolve().as_uri()
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tracked")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "vicreg seed 0"
    assert run.data.params["train.batch_size"] == "32"
    assert run.data.params["objective.id"] == "core:vicreg" and run.data.params["seed"] == "0"
    assert run.data.metrics["knn_acc"] == pytest.approx(results["metrics"]["knn_acc"])
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted((m.step, round(m.value, 5)) for m in history) == [
        (r["step"], round(r["loss"], 5)) for r in steps
    ]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "epoch/loss")] == [1, 2]
    files = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "results.json", "metrics.jsonl", "report"} <= files
    report = {f.path for f in client.list_artifacts(run.info.run_id, "report")}
    assert report == {"report/report.html"}
    local = client.download_artifacts(run.info.run_id, "report/report.html", str(tmp_path))
    assert "vicreg" in Path(local).read_text()


def test_cli_flag_turns_tracking_on_and_resume_continues_the_mlflow_run(
    tiny_experiment, tmp_path: Path, cli_runner
) -> None:
    from mlflow.tracking import MlflowClient

    exp = tiny_experiment(name="flagged")
    first = cli_runner.invoke(["run", str(exp), "--no-progress", "--tracking", "mlflow"])
    assert first.exit_code == 0, first.output
    assert not (tmp_path / "runs" / "flagged" / "vicreg" / "seed-0" / "tensorboard").exists()
    exp.write_text(exp.read_text().replace("epochs: 2", "epochs: 3"))
    more = cli_runner.invoke(["run", str(exp), "--no-progress", "--resume", "--tracking", "mlflow"])
    assert more.exit_code == 0, more.output
    client = MlflowClient(tracking_uri=(tmp_path / "runs" / "flagged" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("flagged")
    (run,) = client.search_runs([experiment.experiment_id])  # one MLflow run, continued
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "epoch/loss")]
    assert sorted(steps) == [1, 2, 3]


def test_unknown_tracker_and_bad_params_fail_before_training(
    tiny_experiment, tmp_path, cli_runner
) -> None:
    bad = tiny_experiment("tracking: [wandb]", name="bad")
    result = cli_runner.invoke(["check", str(bad)])
    assert result.exit_code == 2
    assert "'wandb' is not a tracker; trackers: mlflow, tensorboard" in result.output
    params = tiny_experiment(
        "tracking: [{id: tracking:tensorboard, params: {flush_sec: 3}}]", name="params"
    )
    result = cli_runner.invoke(["run", str(params)])
    assert result.exit_code == 2 and "flush_sec" in result.output
    assert not (tmp_path / "runs" / "params").exists()
