"""``selfsup check``: validate an experiment and resolve it against the plugins.

Nothing is built and no data is read: the config is validated, the arms expanded,
every id looked up and every parameter checked against its factory's signature
(:mod:`selfsup.resolve`), and ``<output_dir>/<name>`` must be a directory that exists
or can be created (:func:`output_dir_problem`). Exit code 0 when the experiment can
run, 2 otherwise. ``selfsup run`` does the same before it trains.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from selfsup.cli._common import State, echo_json, plain
from selfsup.resolve import ResolvedExperiment

__all__ = ["arms_table", "check_command", "load_and_resolve", "output_dir_problem", "set_option"]

#: ``--set key.path=value`` (repeatable), shared by ``check`` and ``run``.
set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key (dotted path, YAML value), e.g. --set train.epochs=5 or "
    "--set arms[1].train.optimizer.lr=1e-3.",
)


def load_and_resolve(
    state: State, path: str, overrides: tuple[str, ...], tracking: tuple[str, ...] = ()
) -> ResolvedExperiment:
    """Load, validate and resolve ``path`` with ``--set`` overrides (and ``--tracking``).

    Raises:
        ConfigError: Any problem, with the file, key path, value and the fix.
    """
    from selfsup.config import ConfigError, TrackerRef, load_config
    from selfsup.resolve import resolve_experiment

    cfg = load_config(path, overrides=overrides)
    if tracking:
        known = {ref.id for ref in cfg.tracking}
        try:
            extra = [TrackerRef.model_validate(name) for name in tracking if name not in known]
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise ConfigError(f"--tracking: {exc}") from None
        cfg = cfg.model_copy(update={"tracking": [*cfg.tracking, *extra]})
    problem = output_dir_problem(cfg.output_dir, cfg.name)
    if problem:
        raise ConfigError(f"{path}: {problem}")
    resolved = resolve_experiment(cfg, state.pm, source=str(path))
    for warning in resolved.warnings:
        state.warn(warning)
    return resolved


def output_dir_problem(output_dir: str, name: str) -> str | None:
    """What stops runs from being written under ``<output_dir>/<name>``, or ``None``.

    The nearest existing path on the way to ``<output_dir>/<name>`` must be a directory
    the user can write into (and enter); nothing is created.

    Example:
        >>> output_dir_problem("/etc/hostname", "exp")  # doctest: +ELLIPSIS
        'output_dir: /etc/hostname is a file, not a directory, so /etc/hostname/exp ...'
        >>> output_dir_problem("runs", "exp") is None
        True
    """
    target = Path(output_dir) / name
    fix = "point output_dir at a directory (--set output_dir=runs) or move the file away"
    if "\0" in output_dir:
        return f"output_dir: {output_dir!r} is not a usable path (a NUL byte); choose another one"
    try:
        existing = next(p for p in (target, *target.parents) if p.exists() or p.is_symlink())
    except StopIteration:  # nothing exists, not even the current directory: let run say so
        return None
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long, a permission
        return f"output_dir: {output_dir!r} is not a usable path ({exc}); choose another one"
    if not existing.is_dir():
        kind = "a broken link" if not existing.exists() else "a file"
        if existing == target:
            return f"output_dir: runs go into {target}, but it is {kind}, not a directory; {fix}"
        return (
            f"output_dir: {existing} is {kind}, not a directory, so {target} cannot be "
            f"created; {fix}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        return (
            f"output_dir: {target} cannot be created or written: {existing} is not writable; "
            "choose a writable output_dir (--set output_dir=...) or fix its permissions"
        )
    return None


def _ref(value: Any) -> str:
    if value is None:
        return "-"
    text = value.id
    if value.params:
        text += " (" + ", ".join(f"{k}={v!r}" for k, v in value.params.items()) + ")"
    return text


def arms_table(resolved: ResolvedExperiment) -> Table:
    """A table of the arms (rows): their components, training budget and seeds."""
    cfg = resolved.config
    seeds = ", ".join(str(s) for s in cfg.seeds)
    table = Table(title=f"experiment {cfg.name}", title_justify="left", show_lines=True)
    for column in ("arm", "components", "train", "seeds"):
        table.add_column(column, overflow="fold")
    for item in resolved.arms:
        arm = item.arm
        train = arm.train
        lines = [
            f"{role}: {_ref(getattr(arm, role))}"
            for role in ("data", "encoder", "views", "objective")
            if getattr(arm, role) is not None
        ]
        transforms = getattr(arm.data, "transforms", None) or []
        if transforms:
            lines.insert(1, f"transforms: {', '.join(_ref(t) for t in transforms)}")
        if arm.evaluators:
            lines.append(f"evaluators: {', '.join(_ref(e) for e in arm.evaluators)}")
        if arm.pretrains:
            budget = (
                f"{train.epochs} epochs, batch {train.batch_size}, "
                f"{train.optimizer.name} lr {train.optimizer.lr:g}, {train.precision}"
            )
            if arm.routine.id != "core:minibatch":
                budget += f", {_ref(arm.routine)}"
        else:
            budget = "no pretraining"
        table.add_row(*plain(arm.name, "\n".join(lines), budget, seeds))
    return table


def _summary(resolved: ResolvedExperiment) -> dict[str, Any]:
    cfg = resolved.config
    return {
        "ok": True,
        "name": cfg.name,
        "source": resolved.source,
        "output_dir": str(Path(cfg.output_dir) / cfg.name),
        "seeds": list(cfg.seeds),
        "runs": len(resolved.arms) * len(cfg.seeds),
        "warnings": list(resolved.warnings),
        "arms": [
            {
                "name": item.arm.name,
                "pretrains": item.arm.pretrains,
                "components": {
                    role: {"id": ref.id, "params": ref.params, "plugin": spec.plugin}
                    for role, (ref, spec) in item.components.items()
                },
            }
            for item in resolved.arms
        ],
    }


@click.command(name="check")
@click.argument("experiment", metavar="EXP.yaml", type=click.Path(dir_okay=False))
@set_option
@click.option("--json", "as_json", is_flag=True, help="Print the resolved arms as JSON.")
@click.pass_obj
def check_command(state: State, experiment: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Validate EXP.yaml and resolve every id and parameter, without building anything.

    Prints the arms x seeds that 'selfsup run' would train. Exits 2 on any problem,
    listing each with its arm, key path, value and what is allowed.
    """
    resolved = load_and_resolve(state, experiment, overrides)
    if as_json:
        echo_json(_summary(resolved))
        return
    state.out.print(arms_table(resolved))
    n_arms, n_seeds = len(resolved.arms), len(resolved.config.seeds)
    line = Text("ok: ", style="bold green")
    line.append(
        f"{experiment} resolves: {n_arms} arm(s) x {n_seeds} seed(s) = {n_arms * n_seeds} run(s), "
        f"into {Path(resolved.config.output_dir) / resolved.config.name}"
    )
    state.out.print(line, soft_wrap=True)
