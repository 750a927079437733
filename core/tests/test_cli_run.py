"""selfsup run end to end (tiny, CPU): run, refuse to overwrite, resume, report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from selfsup.cli.main import build_cli
from selfsup.testing import core_manager


@pytest.mark.heavy
def test_run_rerun_resume_and_report(tmp_path) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(120) % 3
    x = rng.normal(size=(120, 6)).astype("float32") + 2.0 * y[:, None]
    np.savez(tmp_path / "toy.npz", x=x, y=y)
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"""
name: tiny
seeds: [0]
output_dir: {tmp_path / "runs"}
data: {{id: core:arrays, params: {{path: {tmp_path / "toy.npz"}}}}}
encoder: {{id: core:mlp, params: {{in_dim: 6, widths: [16], embed_dim: 8}}}}
views: core:noise-mask
objective: {{id: core:vicreg, params: {{hidden_dim: 16, out_dim: 16}}}}
evaluators: [core:knn]
train: {{epochs: 1, batch_size: 40, device: cpu}}
"""
    )
    cli = build_cli(core_manager())
    runner = CliRunner()

    first = runner.invoke(cli, ["run", str(exp), "--no-progress"])
    assert first.exit_code == 0, first.output
    assert "done: 2 run(s)" in first.stdout and "knn_acc" in first.stdout
    out = tmp_path / "runs" / "tiny"
    results = json.loads((out / "vicreg" / "seed-0" / "results.json").read_text())
    assert results["status"] == "ok" and 0.0 <= results["metrics"]["knn_acc"] <= 1.0

    again = runner.invoke(cli, ["run", str(exp), "--no-progress"])
    assert again.exit_code == 1
    assert "exists and is not empty; pass --resume" in again.stderr
    assert "Traceback" not in again.output

    resumed = runner.invoke(cli, ["run", str(exp), "--resume", "--no-progress"])
    assert resumed.exit_code == 0, resumed.output
    assert "finished earlier, skipped" in resumed.stdout

    report = runner.invoke(cli, ["report", str(out)])
    assert report.exit_code == 0, report.output
    html = (out / "report.html").read_text()
    assert "vicreg" in html and "random-init" in html and "data:image/png;base64," in html
