"""Console output fits 80 columns: comparison tables split, epoch lines break between metrics."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from rich.console import Console
from selfsup.cli.main import build_cli
from selfsup.engine.loop import epoch_lines
from selfsup.engine.tables import fitted
from selfsup.testing import core_manager

ARMS = [f"an-arm-with-a-long-name-{i}" for i in range(6)]


def _widths(text: str) -> list[int]:
    return [len(line) for line in text.splitlines()]


def test_epoch_lines_fit_and_never_cut_a_metric() -> None:
    metrics = {"loss": 1.5, "items_per_s": 1234.0, "epoch_time_s": 2.0}
    metrics.update({f"objective_term_{i}": 0.123456 for i in range(8)})
    lines = epoch_lines(7, 100, metrics, width=80)
    assert len(lines) > 1 and all(len(line) <= 80 for line in lines)
    joined = " ".join(lines)
    for i in range(8):
        assert f"objective_term_{i} 0.1235" in joined


def test_fitted_splits_columns_instead_of_squeezing() -> None:
    columns = [(name, ["0.912 ± 0.004", "12.5 ± 0.3"]) for name in ARMS]
    console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(fitted("demo: mean ± std", "metric", ["knn_acc", "train_time_s"], columns, 80))
    text = console.export_text()
    assert max(_widths(text)) <= 80
    for name in ARMS:
        assert name in text  # every header whole, none cut with an ellipsis
    assert "…" not in text and "(1/" in text


def test_run_output_fits_80_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    np.savez(tmp_path / "toy.npz", x=rng.normal(size=(60, 6)).astype("float32") + y[:, None], y=y)
    arms = ", ".join(f"{{name: {name}}}" for name in ARMS)
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        f"""
name: wide
output_dir: {tmp_path / "runs"}
data: {{id: core:arrays, params: {{path: toy.npz}}}}
encoder: {{id: core:mlp, params: {{in_dim: 6, widths: [8], embed_dim: 4}}}}
evaluators: [core:knn, core:rankme]
train: {{epochs: 0, device: cpu}}
arms: [{arms}]
"""
    )
    result = CliRunner(env={"COLUMNS": "80"}).invoke(
        build_cli(core_manager()), ["run", str(exp), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    table = result.stdout[result.stdout.index("wide: mean ± std") :]
    table = table[: table.index("done:")]
    assert max(_widths(table)) <= 80, table
    for name in ARMS:
        assert re.search(rf"\b{re.escape(name)}\b", table)
