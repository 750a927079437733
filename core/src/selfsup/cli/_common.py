"""What every command shares: the state object, consoles, rank, and error rendering.

Errors are shown as one paragraph (what went wrong, with the file/key/value the
message names, and what to do), without a traceback unless ``--debug`` or
``SELFSUP_DEBUG=1``. Exit codes: 0 success, 1 a failure while working, 2 a problem
with the command line or the configuration, 130 interrupted.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from selfsup.plugins import PluginManager

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "State",
    "debug_requested",
    "echo_json",
    "exit_code_for",
    "make_consoles",
    "plain",
    "process_rank",
    "render_error",
]

EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130


def process_rank() -> int:
    """The global rank under ``torchrun`` (``RANK``), else 0."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def debug_requested(argv: list[str] | None = None) -> bool:
    """Whether tracebacks were asked for (``--debug`` or ``SELFSUP_DEBUG=1``)."""
    if os.environ.get("SELFSUP_DEBUG", "").strip().lower() in ("1", "true", "yes"):
        return True
    return "--debug" in (sys.argv[1:] if argv is None else argv)


def make_consoles() -> tuple[Console, Console]:
    """Consoles for results (stdout) and messages (stderr).

    Ranks other than 0 get quiet consoles, so that a command under ``torchrun``
    prints once. Neither binds a stream: they write to whatever ``sys.stdout`` and
    ``sys.stderr`` are at print time (click's test runner swaps them).
    """
    quiet = process_rank() != 0
    return Console(quiet=quiet, highlight=False), Console(stderr=True, quiet=quiet, highlight=False)


@dataclass
class State:
    """The context object of every command (``ctx.obj``).

    Attributes:
        pm: The plugin manager.
        out: Console for results (stdout).
        err: Console for warnings and errors (stderr).
        debug: Show tracebacks.
    """

    pm: PluginManager
    out: Console
    err: Console
    debug: bool = False
    warned: set[str] = field(default_factory=set)

    def warn(self, message: str) -> None:
        """Print a one-line warning on stderr (once per message)."""
        if message in self.warned:
            return
        self.warned.add(message)
        line = Text("warning: ", style="bold yellow")
        line.append(message)
        self.err.print(line, soft_wrap=True)


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout (rank 0 only)."""
    if process_rank() == 0:
        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def plain(*cells: Any) -> list[Any]:
    """Table cells with strings as literal text (no rich markup: ``[int]`` stays)."""
    return [Text(c) if isinstance(c, str) else c for c in cells]


_CONFIG_ERRORS = ("ConfigError", "ResolutionError", "UnknownIdError", "DuplicateIdError")


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def exit_code_for(exc: BaseException) -> int:
    """The exit code of an exception (2 for configuration errors)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return EXIT_CONFIG if _names(exc) & set(_CONFIG_ERRORS) else EXIT_FAILURE


def _title_and_hint(exc: BaseException) -> tuple[str, str]:
    names = _names(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", "continue a run where it stopped with 'selfsup run EXP.yaml --resume'"
    if "ResumeConfigError" in names:
        return "resume refused", (
            "resume with the config the run started with, or start afresh "
            "(--overwrite, or --set output_dir=...)"
        )
    if names & {"ConfigError", "ResolutionError"}:
        return "configuration error", "fix the config (or the --set values) and run 'selfsup check'"
    if "UnknownIdError" in names:
        return "unknown id", "see 'selfsup list' and 'selfsup plugins' for what is installed"
    if "PluginLoadError" in names:
        return "plugin error", (
            "run 'selfsup doctor'; SELFSUP_STRICT_PLUGINS=1 makes any plugin failure fatal"
        )
    if "NonFiniteLossError" in names:
        return "training diverged", (
            "lower train.optimizer.lr, set train.clip_grad, or use precision fp32, then "
            "re-run with --overwrite (a resume keeps the config the run started with); "
            "the last good checkpoint is kept"
        )
    if isinstance(exc, FileNotFoundError):
        return "file not found", "check the path in the config (data params) or on the command line"
    if "PluginBugError" in names:  # a wrong lazy build path, not a missing dependency
        return "plugin bug", "until it is fixed, SELFSUP_DISABLE_PLUGINS=<plugin> hides the plugin"
    if isinstance(exc, ImportError):
        return (
            "missing dependency",
            "install the package named above; 'selfsup doctor' lists extras",
        )
    if isinstance(exc, OSError | RuntimeError | ValueError | TypeError | LookupError):
        return "error", ""
    return "unexpected error", "this may be a bug in selfsup or a plugin; please report it"


def render_error(console: Console, exc: BaseException, debug: bool = False) -> None:
    """Print ``exc`` as a short paragraph: what happened, then what to do.

    Under ``torchrun`` configuration errors (identical on every rank) print on rank 0
    only; other failures print on every rank, prefixed with the rank, since they may
    be specific to one process.
    """
    rank = process_rank()
    if rank != 0 and exit_code_for(exc) == EXIT_CONFIG:
        return
    title, hint = _title_and_hint(exc)
    message = str(exc).strip() or type(exc).__name__
    if title in ("error", "unexpected error"):
        message = f"{type(exc).__name__}: {message}"
    prefix = f"[rank {rank}] " if rank != 0 else ""
    console = Console(stderr=True, highlight=False) if console.quiet else console
    if debug:
        console.print(Text("".join(traceback.format_exception(exc)), style="dim"), soft_wrap=True)
    text = Text(f"{prefix}{title}: ", style="bold red")
    text.append(message)
    console.print(text, soft_wrap=True)
    more = "" if debug or exit_code_for(exc) == EXIT_CONFIG else "(--debug shows the traceback)"
    tail = " ".join(p for p in (hint, more) if p)
    if tail:
        console.print(Text(tail, style="dim"), soft_wrap=True)
