"""The ``selfsup`` command: the root group, plugin commands and error handling.

:func:`build_cli` makes a fresh command group for a plugin manager (the built-in
commands plus those that active plugins add through ``register_commands``), so that
tests can invoke the CLI with a manager of their own; :func:`main` is the console
entry point (``selfsup = "selfsup.cli.main:main"``) and ``python -m selfsup``.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import click

from selfsup.cli import check, components, doctor, export, plugins, report, run
from selfsup.cli._common import (
    State,
    debug_requested,
    exit_code_for,
    make_consoles,
    render_error,
)
from selfsup.hookguard import current_plugin, error_policy

__all__ = ["BUILTIN_COMMANDS", "SelfsupGroup", "build_cli", "main"]

#: The commands of the core; a plugin may not replace them.
BUILTIN_COMMANDS: dict[str, click.Command] = {
    "plugins": plugins.plugins_command,
    "list": components.list_command,
    "describe": components.describe_command,
    "check": check.check_command,
    "run": run.run_command,
    "report": report.report_command,
    "doctor": doctor.doctor_command,
    "export": export.export_command,
}

# Commands that show plugin failures themselves (no warning lines before them).
_SHOW_FAILURES = {"plugins", "doctor"}


class SelfsupGroup(click.Group):
    """A group that renders exceptions as short messages with a proper exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; turn any error into a message and an exit code."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except (Exception, KeyboardInterrupt) as exc:
            state = ctx.obj if isinstance(ctx.obj, State) else None
            debug = state.debug if state else debug_requested()
            err = state.err if state else make_consoles()[1]
            render_error(err, exc, debug=debug)
            ctx.exit(exit_code_for(exc))


def _load_manager() -> Any:
    from selfsup.plugins import get_plugin_manager

    with warnings.catch_warnings():
        # Failures are shown by the CLI itself, once, as one line each.
        warnings.simplefilter("ignore", RuntimeWarning)
        pm = get_plugin_manager()
        pm.failed()  # builds the registry: registration hooks run (and may fail) now
    return pm


def _add_plugin_commands(group: click.Group, pm: Any) -> None:
    """Let active plugins add commands, through pluggy's hook caller.

    Ordering (``tryfirst``/``trylast``) and wrappers work as for every hook. A plugin
    whose implementation raises, or that adds a command named like a built-in one, is
    failed (its commands removed) and the others keep theirs.
    """
    added: dict[str, str] = {}
    failed: dict[str, str] = {}
    plain_add = group.add_command

    def add_command(cmd: click.Command, name: str | None = None) -> None:
        plugin = current_plugin()
        cmd_name = name or cmd.name or ""
        if plugin is not None:
            if cmd_name in BUILTIN_COMMANDS:
                raise RuntimeError(f"it replaces the built-in command {cmd_name!r}")
            added[cmd_name] = plugin
        plain_add(cmd, name)

    def on_error(plugin: str, hook: str, exc: Exception) -> None:
        failed.setdefault(plugin, f"{hook} raised {type(exc).__name__}: {exc}")

    group.add_command = add_command  # type: ignore[method-assign]
    try:
        with error_policy(on_error):
            pm.hook.register_commands(cli=group)
    finally:
        del group.add_command
    for name, command in BUILTIN_COMMANDS.items():
        if group.commands.get(name) is not command:  # replaced behind add_command's back
            group.commands[name] = command
            culprit = added.get(name)
            if culprit:
                failed.setdefault(culprit, f"it replaces the built-in command {name!r}")
    for plugin, reason in failed.items():
        for cmd_name in [n for n, p in added.items() if p == plugin]:
            if group.commands.get(cmd_name) is not BUILTIN_COMMANDS.get(cmd_name):
                group.commands.pop(cmd_name, None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            pm.fail_plugin(plugin, reason)


def build_cli(pm: Any = None) -> click.Group:
    """A fresh ``selfsup`` command group bound to a plugin manager.

    Args:
        pm: A :class:`selfsup.plugins.PluginManager`; the process-wide one (entry
            points loaded) when ``None``.

    Returns:
        The group, with the built-in commands and the active plugins' commands.

    Raises:
        PluginLoadError: In strict mode (``SELFSUP_STRICT_PLUGINS=1``), a plugin failed.
    """
    if pm is None:
        pm = _load_manager()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            pm.failed()

    @click.group(
        cls=SelfsupGroup,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )
    @click.version_option(package_name="selfsup", prog_name="selfsup")
    @click.option(
        "--debug", is_flag=True, help="Show tracebacks (also SELFSUP_DEBUG=1).", default=False
    )
    @click.pass_context
    def cli(ctx: click.Context, debug: bool) -> None:
        """selfsup: self-supervised representation learning across modalities.

        Components come from plugins: 'selfsup plugins' shows what is installed,
        'selfsup list encoder' what they provide. Run an experiment with
        'selfsup check EXP.yaml' then 'selfsup run EXP.yaml'.
        """
        out, err = make_consoles()
        state = State(pm=pm, out=out, err=err, debug=debug or debug_requested([]))
        ctx.obj = state
        if ctx.invoked_subcommand not in _SHOW_FAILURES:
            for info in pm.failed():
                state.warn(info.one_line_error())

    for name, command in BUILTIN_COMMANDS.items():
        cli.add_command(command, name=name)
    _add_plugin_commands(cli, pm)
    return cli


def main(argv: list[str] | None = None) -> None:
    """Console entry point: build the CLI and run it (exits with its code)."""
    try:
        cli = build_cli()
    except Exception as exc:  # strict mode: a plugin failed while loading
        render_error(make_consoles()[1], exc, debug=debug_requested(argv))
        sys.exit(exit_code_for(exc))
    cli.main(args=argv, prog_name="selfsup")
