"""``selfsup report``: plots and tables of finished runs, in one ``report.html``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.text import Text

from selfsup.cli._common import State, plain

__all__ = ["report_command"]


@click.command(name="report")
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(file_okay=False))
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), help="Write here (default: RUN_DIR)."
)
@click.option(
    "--projection",
    type=click.Choice(["pca", "tsne"]),
    default="pca",
    show_default=True,
    help="2-D projection of the embeddings (t-SNE needs scikit-learn).",
)
@click.pass_obj
def report_command(state: State, run_dir: str, out_dir: str | None, projection: str) -> None:
    """Write curves, an embedding plot and the results table of RUN_DIR to report.html.

    RUN_DIR is an experiment directory (runs/<name>) or one run directory
    (runs/<name>/<arm>/seed-<n>). Needs matplotlib: pip install 'selfsup[report]'.
    Every line or file that cannot be read (a garbage metrics.jsonl line, a damaged
    results.json or embeddings.npz) is named in a warning and skipped; the rest of
    the report is written.
    """
    from selfsup.engine.tables import fitted
    from selfsup.report import build_report, discover_runs, summarise
    from selfsup.report.html import format_cell, setting_cell
    from selfsup.report.runs import is_setting

    skipped: list[str] = []
    target = build_report(run_dir, out_dir, projection, warnings=skipped)
    for message in skipped:
        state.warn(message)
    runs = discover_runs(run_dir, warnings=[])  # warned about above
    names, rows = summarise(runs)
    by_arm: dict[str, list[Any]] = {}
    for run in runs:
        by_arm.setdefault(run.arm, []).append(run)

    def cell(row: dict[str, Any], name: str) -> str:
        if not is_setting(name):  # a quality metric: mean ± std over seeds
            return format_cell(row.get(name))
        # a setting chosen on validation data: the value(s) chosen, never ± std
        return setting_cell(
            [(r.results.get("metrics") or {}).get(name) for r in by_arm.get(row["arm"], [])]
        )

    if names:
        columns = [
            (row["arm"], plain(str(row["seeds"]), *(cell(row, n) for n in names))) for row in rows
        ]
        title = f"results: {Path(run_dir).name}"
        labels = plain("seeds", *names)
        state.out.print(fitted(title, "metric", labels, columns, state.out.width))
    line = Text("report: ", style="bold green")
    line.append(str(target))
    state.out.print(line, soft_wrap=True)
