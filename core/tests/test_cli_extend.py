"""CLI extension and environment: plugin commands, doctor, strict plugin failures."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from selfsup import EncoderSpec, hookimpl
from selfsup.cli.main import build_cli
from selfsup.plugins import PluginManager
from selfsup.testing import core_manager


def invoke(pm: PluginManager, *args: str, **kwargs):
    return CliRunner().invoke(build_cli(pm), list(args), **kwargs)


class RaisingEncoders:
    @hookimpl
    def register_encoders(self, register):
        register(EncoderSpec(name="ok", build="x:y"))
        raise ValueError("no GPU today")


# ------------------------------------------------------------------ plugin commands


class Commands:
    @hookimpl
    def register_commands(self, cli):
        import click

        @cli.command(name="ecg-convert")
        @click.argument("folder")
        def convert(folder):
            """Convert FOLDER."""
            click.echo(f"converted {folder}")


class BadCommands:
    @hookimpl
    def register_commands(self, cli):

        @cli.command(name="half-added")
        def half():
            """Added before the failure."""

        raise RuntimeError("oops")


class HijackRun:
    @hookimpl
    def register_commands(self, cli):

        @cli.command(name="run")
        def run():
            """Not the real run."""


def test_plugin_commands_are_added_and_failures_isolated() -> None:
    pm = core_manager(("ecg", Commands()), ("bad", BadCommands()), ("hijack", HijackRun()))
    cli = build_cli(pm)
    runner = CliRunner()
    ok = runner.invoke(cli, ["ecg-convert", "/data"])
    assert ok.exit_code == 0 and ok.stdout == "converted /data\n"
    assert "half-added" not in cli.commands
    assert cli.commands["run"].help.startswith("Pretrain and evaluate")
    assert pm.infos["bad"].status == "failed"
    assert "register_commands raised RuntimeError: oops" in pm.infos["bad"].error
    assert "replaces the built-in command 'run'" in pm.infos["hijack"].error
    listing = runner.invoke(cli, ["list", "views"])
    assert listing.exit_code == 0
    lines = [line for line in listing.stderr.splitlines() if "failed to load" in line]
    assert len(lines) == 2


def test_cli_runner_fixture(cli_runner) -> None:
    result = cli_runner.invoke(["list", "routine", "--json"])
    assert result.exit_code == 0
    assert "core:minibatch" in [r["id"] for r in json.loads(result.stdout)]


# ------------------------------------------------------------------ doctor


def test_doctor_reports_environment(monkeypatch) -> None:
    monkeypatch.setenv("SELFSUP_DEBUG_SOMETHING", "x")
    result = invoke(core_manager(), "doctor", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    import torch

    assert report["torch"]["version"] == torch.__version__
    assert report["torch"]["backends"]["gloo"] is torch.distributed.is_gloo_available()
    assert any(d["name"] == "selfsup" for d in report["distributions"])
    assert "matplotlib" in report["extras"]
    assert report["environment"]["SELFSUP_DEBUG_SOMETHING"] == "x"
    assert report["plugin_errors"] == []
    text = invoke(core_manager(), "doctor")
    assert text.exit_code == 0 and "distributed" in text.stdout and "gloo" in text.stdout


def test_doctor_fails_when_a_plugin_failed() -> None:
    result = invoke(core_manager(("lab", RaisingEncoders())), "doctor", "--json")
    assert result.exit_code == 1
    errors = json.loads(result.stdout)["plugin_errors"]
    assert len(errors) == 1 and "plugin 'lab'" in errors[0]


def test_strict_mode_failure_is_a_clean_error(monkeypatch, capsys) -> None:
    import selfsup.cli.main as cli_main
    from selfsup.plugins import PluginLoadError

    pm = PluginManager(load_entrypoints=False, strict=True)
    pm.register(RaisingEncoders(), name="lab")
    with pytest.raises(PluginLoadError, match="register_encoders raised ValueError"):
        build_cli(pm)

    def load():
        raise PluginLoadError("plugin 'lab' (lab 1.0) failed to load: boom")

    monkeypatch.setattr(cli_main, "_load_manager", load)
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["list"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("plugin error: plugin 'lab' (lab 1.0) failed to load: boom")
    assert "SELFSUP_STRICT_PLUGINS=1" in err and "Traceback" not in err


class WrapsCommands:
    seen: list[str] = []

    @hookimpl(wrapper=True)
    def register_commands(self, cli):
        WrapsCommands.seen.append("before")
        result = yield
        WrapsCommands.seen.append(f"after:{'ecg-convert' in cli.commands}")
        return result


def test_register_commands_goes_through_pluggy_so_wrappers_run() -> None:
    WrapsCommands.seen = []
    pm = core_manager(("ecg", Commands()), ("wrap", WrapsCommands()))
    cli = build_cli(pm)
    assert "ecg-convert" in cli.commands
    assert WrapsCommands.seen == ["before", "after:True"]
