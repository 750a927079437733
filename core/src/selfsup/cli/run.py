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
    "--resume",
    is_flag=True,
    help="Continue each run from its last checkpoint; skip finished runs. The config must "
    "match each run's config.yaml; a larger train.epochs continues finished runs.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Delete the run directories of the arms and seeds about to run, then run them "
    "afresh; other arms' runs are kept.",
)
@click.option(
    "--tracking",
    multiple=True,
    metavar="NAME",
    help="Send the runs to a tracker too (repeatable): tensorboard, mlflow (needs "
    "selfsup-tracking); adds to the config's 'tracking:'.",
)
@click.option(
    "--only",
    multiple=True,
    metavar="ARM",
    help="Run only this arm (repeatable; shell patterns such as 'simclr*' work).",
)
@click.option(
    "--no-progress",
    is_flag=True,
    help="No progress bars: one plain line per epoch (for logs, SLURM, CI).",
)
@click.pass_obj
def run_command(
    state: State,
    experiment: str,
    overrides: tuple[str, ...],
    resume: bool,
    overwrite: bool,
    tracking: tuple[str, ...],
    only: tuple[str, ...],
    no_progress: bool,
) -> None:
    """Pretrain and evaluate every arm of EXP.yaml for every seed.

    Writes <output_dir>/<name>/<arm>/seed-<n>/ per run (config, metrics, checkpoint,
    embeddings, results) and a comparison table (mean ± std over seeds) of every arm
    with a finished run in <output_dir>/<name>/.

    A run directory that is not empty is refused unless --resume (continue it: its
    config.yaml is the truth, and a config that changes its meaning is refused before
    anything trains) or --overwrite (delete it, and say so, then run it again).
    """
    if resume and overwrite:
        raise click.UsageError(
            "--resume and --overwrite exclude each other: --resume continues the runs in "
            "their run directories, --overwrite deletes them first; choose one"
        )
    resolved = load_and_resolve(state, experiment, overrides, tracking=tracking)
    from selfsup.engine.runner import run_experiment

    result = run_experiment(
        resolved.config,
        source=experiment,
        resume=resume,
        overwrite=overwrite,
        pm=state.pm,
        console=state.out,
        progress=not no_progress,
        only=only,
    )
    output = Path(getattr(result, "output_dir", Path(resolved.config.output_dir)))
    line = Text("done: ", style="bold green")
    line.append(
        f"{len(getattr(result, 'runs', []))} run(s) in {output}; "
        f"plots and tables: selfsup report {output}"
    )
    state.out.print(line, soft_wrap=True)
