"""The selfsup CLI, in-process through click's CliRunner, with isolated plugin managers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from selfsup import EncoderSpec, hookimpl
from selfsup.cli.main import build_cli
from selfsup.plugins import PluginManager
from selfsup.testing import core_manager

CONFIG = """
name: exp
output_dir: {out}
data: {{id: core:arrays, params: {{path: /nowhere/data.npz}}}}
encoder: {{id: core:mlp, params: {{in_dim: 4}}}}
views: core:noise-mask
objective: {{id: core:simclr, params: {{temperature: 0.2}}}}
evaluators: [core:knn]
arms:
  - {{name: simclr}}
  - {{name: vicreg, objective: core:vicreg}}
"""


def invoke(pm: PluginManager, *args: str, **kwargs):
    return CliRunner().invoke(build_cli(pm), list(args), **kwargs)


@pytest.fixture
def exp(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(CONFIG.format(out=tmp_path / "runs"))
    return path


# ------------------------------------------------------------------ basics


def test_help_and_version() -> None:
    pm = core_manager()
    result = invoke(pm, "--help")
    assert result.exit_code == 0
    for command in ("plugins", "list", "describe", "check", "run", "report", "doctor"):
        assert command in result.stdout
    version = invoke(pm, "--version")
    import importlib.metadata

    import selfsup

    installed = importlib.metadata.version("selfsup")
    assert installed == selfsup.__version__, "pyproject and selfsup.__version__ disagree"
    assert version.exit_code == 0 and f"selfsup, version {installed}" in version.stdout


def test_python_dash_m_works() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "selfsup", "--version"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("selfsup, version")


# ------------------------------------------------------------------ plugins


def test_plugins_json_lists_core_with_hooks_and_counts() -> None:
    result = invoke(core_manager(), "plugins", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    core = next(r for r in rows if r["name"] == "core")
    assert core["status"] == "active" and core["error"] == ""
    assert "register_objectives" in core["hooks"]
    assert core["components"]["objective"] >= 7


class RaisingEncoders:
    @hookimpl
    def register_encoders(self, register):
        raise ValueError("no GPU today")


def test_failed_plugin_shows_exactly_one_error_line_and_core_works() -> None:
    pm = core_manager(("lab", RaisingEncoders()))
    table = invoke(pm, "plugins")
    assert table.exit_code == 0
    failed = [line for line in table.stdout.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1
    assert failed[0].startswith("failed: plugin 'lab' (")
    assert "RaisingEncoders) failed to load: register_encoders raised ValueError: " in failed[0]
    assert failed[0].endswith("no GPU today [silence with SELFSUP_DISABLE_PLUGINS=lab]")
    rows = json.loads(invoke(pm, "plugins", "--json").stdout)
    assert next(r for r in rows if r["name"] == "lab")["status"] == "failed"
    listing = invoke(pm, "list", "objective")
    assert listing.exit_code == 0 and "core:simclr" in listing.stdout
    warnings_ = [line for line in listing.stderr.splitlines() if "failed to load" in line]
    assert len(warnings_) == 1 and warnings_[0].startswith("warning: plugin 'lab'")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SELFSUP_PLUGINS": "core"}, {"timm", "torch_geometric", "torchvision", "torch"}),
        ({}, {"timm", "torch_geometric", "torchvision", "torchaudio", "monai", "matplotlib"}),
    ],
)
def test_plugins_command_does_not_import_heavy_stacks(env, expected) -> None:
    code = (
        "import sys\n"
        "from selfsup.cli.main import main\n"
        "try:\n    main(['plugins', '--json'])\nexcept SystemExit:\n    pass\n"
        f"print('IMPORTED', sorted(m for m in {sorted(expected)!r} if m in sys.modules))\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SELFSUP_")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**environ, **env},
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "IMPORTED []"


# ------------------------------------------------------------------ list / describe


@pytest.mark.parametrize("kind", ["objective", "objectives", "OBJECTIVES"])
def test_list_accepts_plurals(kind) -> None:
    result = invoke(core_manager(), "list", kind, "--json")
    assert result.exit_code == 0, result.output
    ids = [r["id"] for r in json.loads(result.stdout)]
    assert "core:simclr" in ids and all(r["kind"] == "objective" for r in json.loads(result.stdout))


def test_list_everything_and_modality_filter() -> None:
    class Images:
        @hookimpl
        def register_encoders(self, register):
            register(EncoderSpec(name="cnn", build="x:y", modality="image"))
            register(EncoderSpec(name="gnn", build="x:z", modality="graph"))

    pm = core_manager(("img", Images()))
    every = json.loads(invoke(pm, "list", "all", "--json").stdout)
    assert {r["kind"] for r in every} >= {"encoder", "objective", "evaluator", "views", "routine"}
    assert "img:cnn" in {r["id"] for r in every} and "core:simclr" in {r["id"] for r in every}
    image = [
        r["id"] for r in json.loads(invoke(pm, "list", "encoders", "-m", "image", "--json").stdout)
    ]
    assert "img:cnn" in image and "img:gnn" not in image and "core:mlp" in image  # "any" matches
    table = invoke(pm, "list", "encoder")
    assert "img:cnn" in table.stdout and "img:gnn" in table.stdout


def test_list_unknown_kind_suggests() -> None:
    result = invoke(core_manager(), "list", "encodr")
    assert result.exit_code == 2
    assert "Did you mean 'encoder'?" in result.stderr and "views" in result.stderr
    other = invoke(core_manager(), "list", "trigger")
    assert other.exit_code == 2 and "'trigger' is not a known kind" in other.stderr
    assert "install it" in other.stderr and "transform" in other.stderr


@pytest.mark.parametrize("args", [(), ("kinds",)])
def test_list_without_kind_shows_the_kinds(args) -> None:
    rows = json.loads(invoke(core_manager(), "list", *args, "--json").stdout)
    assert [r["kind"] for r in rows] == [
        "encoder", "objective", "evaluator", "dataset", "views", "routine", "transform"
    ]  # fmt: skip
    assert all(r["plugin"] == "core" and r["description"] for r in rows)
    objective = next(r for r in rows if r["kind"] == "objective")
    assert objective["record"] == "ObjectiveSpec" and objective["components"] >= 7
    table = invoke(core_manager(), "list", *args)
    assert table.exit_code == 0 and "kinds of component" in table.stdout
    assert "'selfsup list all'" in table.stdout


def test_describe_evaluator_shows_ranks() -> None:
    record = json.loads(invoke(core_manager(), "describe", "core:knn", "--json").stdout)
    assert record["kind"] == "evaluator" and record["fields"] == {"ranks": "main"}
    assert "ranks: main" in invoke(core_manager(), "describe", "core:knn").stdout


def test_describe_shows_parameters_defaults_and_doc() -> None:
    result = invoke(core_manager(), "describe", "core:simclr", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert (record["kind"], record["plugin"], record["modality"]) == ("objective", "core", "any")
    params = {p["name"]: p for p in record["parameters"]}
    assert params["embed_dim"]["set_by_engine"] and not params["embed_dim"]["required"]
    assert params["temperature"]["annotation"].startswith("float")
    assert not params["temperature"]["required"]
    assert isinstance(params["temperature"]["default"], float)
    assert record["doc"]
    text = invoke(core_manager(), "describe", "core:simclr")
    assert "temperature" in text.stdout and "(set by the engine)" in text.stdout


def test_describe_keeps_brackets_in_annotations() -> None:
    result = invoke(core_manager(), "describe", "core:knn")
    assert result.exit_code == 0
    assert "Sequence[int" in result.stdout  # not eaten as rich markup


def test_describe_unknown_id_suggests() -> None:
    result = invoke(core_manager(), "describe", "core:simclrr")
    assert result.exit_code == 2
    assert "Did you mean 'core:simclr'" in result.stderr
    assert "Traceback" not in result.output
    other = invoke(core_manager(), "describe", "ecg:resnet1d")
    assert "No loaded plugin provides 'ecg:' ids" in other.stderr


def test_describe_unimportable_factory_is_a_clear_error() -> None:
    class Missing:
        @hookimpl
        def register_encoders(self, register):
            register(EncoderSpec(name="ghost", build="no_such_module_xyz:Ghost"))

    result = invoke(core_manager(("lab", Missing())), "describe", "lab:ghost")
    assert result.exit_code == 1
    assert "missing dependency" in result.stderr
    assert (
        "encoder 'lab:ghost': cannot load its factory 'no_such_module_xyz:Ghost'" in result.stderr
    )


@pytest.mark.parametrize(
    ("build", "why"),
    [
        ("selfsup.builtin.encoders:NoSuchEncoder", "has no attribute 'NoSuchEncoder'"),
        ("selfsup.builtin.no_such_module:Enc", "no module named 'selfsup.builtin.no_such_module'"),
    ],
)
def test_describe_wrong_build_path_is_a_plugin_bug(build, why) -> None:
    class Wrong:
        @hookimpl
        def register_encoders(self, register):
            register(EncoderSpec(name="typo", build=build))

    result = invoke(core_manager(("lab", Wrong())), "describe", "lab:typo")
    assert result.exit_code == 1
    err = " ".join(result.stderr.split())
    assert err.startswith("plugin bug: plugin 'lab' registers encoder 'lab:typo' with build")
    assert why in err and "a bug in plugin 'lab' (selfsup " in err  # distribution, version
    assert "report it to its authors" in err and "missing dependency" not in err


# ------------------------------------------------------------------ check


def test_check_valid_prints_arms_table(exp) -> None:
    result = invoke(core_manager(), "check", str(exp))
    assert result.exit_code == 0, result.output
    for name in ("simclr", "vicreg", "random-init"):
        assert name in result.stdout
    assert "3 arm(s) x 1 seed(s) = 3 run(s)" in result.stdout
    data = json.loads(invoke(core_manager(), "check", str(exp), "--json").stdout)
    assert data["runs"] == 3
    assert data["arms"][1]["components"]["objective"]["id"] == "core:vicreg"


def test_check_does_not_build_or_read_data(exp, tmp_path) -> None:
    # the data path does not exist: check must still pass, and create no output
    assert invoke(core_manager(), "check", str(exp)).exit_code == 0
    assert not (tmp_path / "runs").exists()


def test_check_bad_param_exit_2_with_arm_path_and_suggestion(exp) -> None:
    result = invoke(core_manager(), "check", str(exp), "--set", "objective.params.temprature=0.3")
    assert result.exit_code == 2
    err = result.stderr
    assert "configuration error" in err and "Traceback" not in result.output
    assert "arm 'simclr': objective.params.temprature = 0.3" in err
    assert "did you mean 'temperature'?" in err and "allowed:" in err


def test_check_bad_set_and_missing_file(exp, tmp_path) -> None:
    bad = invoke(core_manager(), "check", str(exp), "--set", "train.epochs")
    assert bad.exit_code == 2 and "expected key.path=value" in bad.stderr
    missing = invoke(core_manager(), "check", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "no such config file" in missing.stderr


def test_debug_shows_the_traceback(exp, monkeypatch) -> None:
    args = ("check", str(exp), "--set", "encoder.id=core:nope")
    quiet = invoke(core_manager(), *args)
    assert quiet.exit_code == 2 and "Traceback" not in quiet.stderr
    loud = invoke(core_manager(), "--debug", *args)
    assert loud.exit_code == 2 and "Traceback" in loud.stderr and "ResolutionError" in loud.stderr
    monkeypatch.setenv("SELFSUP_DEBUG", "1")
    assert "Traceback" in invoke(core_manager(), *args).stderr


def test_run_fails_before_any_work_on_a_bad_config(exp, tmp_path) -> None:
    result = invoke(core_manager(), "run", str(exp), "--set", "encoder.params.widht=3")
    assert result.exit_code == 2 and "widht" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_only_rank_0_prints(exp, monkeypatch) -> None:
    monkeypatch.setenv("RANK", "1")
    listing = invoke(core_manager(), "list", "objective")
    assert listing.exit_code == 0 and listing.stdout == ""
    config_error = invoke(core_manager(), "check", str(exp), "--set", "encoder.id=core:nope")
    assert config_error.exit_code == 2 and config_error.stderr == ""

    class Missing:
        @hookimpl
        def register_encoders(self, register):
            register(EncoderSpec(name="ghost", build="no_such_module_xyz:Ghost"))

    # a failure that may be specific to one process is printed by every rank, prefixed
    runtime_error = invoke(core_manager(("lab", Missing())), "describe", "lab:ghost")
    assert runtime_error.exit_code == 1
    assert runtime_error.stderr.startswith("[rank 1] missing dependency: ")


@pytest.mark.parametrize(
    ("exc", "code", "title", "hint"),
    [
        ("nonfinite", 1, "training diverged", "lower train.optimizer.lr"),
        (KeyboardInterrupt(), 130, "interrupted", "--resume"),
        (FileNotFoundError("/data/x.npz: no such file"), 1, "file not found", "check the path"),
        (ZeroDivisionError("division by zero"), 1, "unexpected error", "may be a bug"),
    ],
)
def test_error_rendering(exc, code, title, hint) -> None:
    from rich.console import Console
    from selfsup.cli._common import exit_code_for, render_error

    if exc == "nonfinite":
        from selfsup.engine.step import NonFiniteLossError

        exc = NonFiniteLossError("loss is nan at step 12 (arm simclr, seed 0)")
    console = Console(record=True, width=200, stderr=True)
    with console.capture() as captured:
        render_error(console, exc)
    text = captured.get()
    assert exit_code_for(exc) == code
    assert text.startswith(f"{title}: ") and hint in text and "Traceback" not in text
    if str(exc):
        assert str(exc) in text
