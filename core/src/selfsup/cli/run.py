"""``selfsup run``: train and evaluate every arm of an experiment, for every seed.

The experiment is resolved first (:mod:`selfsup.resolve`), so that a misspelled id or
parameter fails before any data is read or any model is built. Works unchanged under
``torchrun``: every rank trains, only rank 0 prints and writes.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.text import Text

from selfsup.cli._common import State
from selfsup.cli.check import load_and_resolve, set_option

__all__ = ["run_command"]


@click.command(name="run")
@click.argument("experiment", metavar="EXP.yaml", type=click.Path(dir_okay=False))
@set_option
@click.option(
    "--resume", is_flag=True, help="Continue from each run's last checkpoint; skip finished runs."
)
@click.option("--no-progress", is_flag=True, help="No progress bars (logs only).")
@click.pass_obj
def run_command(
    state: State, experiment: str, overrides: tuple[str, ...], resume: bool, no_progress: bool
) -> None:
    """Pretrain and evaluate every arm of EXP.yaml for every seed.

    Writes <output_dir>/<name>/<arm>/seed-<n>/ per run (config, metrics, checkpoint,
    embeddings, results) and a comparison table (mean ± std over seeds).
    """
    resolved = load_and_resolve(state, experiment, overrides)
    from selfsup.engine.runner import run_experiment

    result = run_experiment(
        resolved.config,
        source=experiment,
        resume=resume,
        pm=state.pm,
        console=state.out,
        progress=not no_progress,
    )
    output = Path(getattr(result, "output_dir", Path(resolved.config.output_dir)))
    line = Text("done: ", style="bold green")
    line.append(
        f"{len(getattr(result, 'runs', []))} run(s) in {output}; "
        f"plots and tables: selfsup report {output}"
    )
    state.out.print(line, soft_wrap=True)
