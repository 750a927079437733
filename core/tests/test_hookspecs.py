"""Every hook is documented (Args + Example) and exercised by a real CLI run.

The recording plugin below implements every hook. One tiny ``selfsup run`` through
the CLI (plus one plugin command) must call each of them; a hook added to
``selfsup.hookspecs`` without being wired into the engine or the CLI fails here.
"""

from __future__ import annotations

import inspect
import json
import re
from collections import defaultdict

import numpy as np
import pytest
from click.testing import CliRunner
from selfsup import (
    ComponentSpec,
    DatasetSpec,
    EncoderSpec,
    EvaluatorSpec,
    KindSpec,
    ObjectiveSpec,
    RoutineSpec,
    TransformSpec,
    ViewSpec,
    hookimpl,
    hookspecs,
)

HOOKS = sorted(
    name
    for name, fn in vars(hookspecs).items()
    if inspect.isfunction(fn) and hasattr(fn, "selfsup_spec")
)


def test_hooks_found() -> None:
    assert "register_encoders" in HOOKS and "run_finished" in HOOKS and len(HOOKS) >= 12


@pytest.mark.parametrize("name", HOOKS)
def test_hookspec_is_documented(name: str) -> None:
    fn = getattr(hookspecs, name)
    doc = inspect.getdoc(fn) or ""
    summary = doc.splitlines()[0] if doc else ""
    assert summary.endswith("."), f"{name}: needs a one-line summary ending with a period"
    assert "\nArgs:\n" in doc, f"{name}: needs an Args: section"
    assert "\nExample:\n" in doc, f"{name}: needs an Example: section"
    args_block = doc.split("\nArgs:\n", 1)[1].split("\n\n", 1)[0]
    for arg in inspect.signature(fn).parameters:
        assert re.search(rf"^\s+{arg}:", args_block, re.M), f"{name}: argument {arg!r} undocumented"
    example = doc.split("\nExample:\n", 1)[1]
    assert f"def {name}(" in example, f"{name}: the example should implement the hook"


CALLS: dict[str, list[dict]] = defaultdict(list)


class Recorder:
    """Implements every hook; registration hooks add usable components under ``rec:``."""

    @hookimpl
    def register_encoders(self, register):
        CALLS["register_encoders"].append({})
        register(EncoderSpec(name="mlp", build="selfsup.builtin.encoders:MLP"))

    @hookimpl
    def register_objectives(self, register):
        CALLS["register_objectives"].append({})
        register(ObjectiveSpec(name="simclr", build="selfsup.builtin.objectives.infonce:SimCLR"))

    @hookimpl
    def register_evaluators(self, register):
        CALLS["register_evaluators"].append({})
        register(EvaluatorSpec(name="rankme", build="selfsup.builtin.evaluators.rankme:RankMe"))

    @hookimpl
    def register_datasets(self, register):
        CALLS["register_datasets"].append({})
        register(DatasetSpec(name="arrays", build="selfsup.builtin.datasets:ArrayDataset"))

    @hookimpl
    def register_views(self, register):
        CALLS["register_views"].append({})
        register(ViewSpec(name="noise", build="selfsup.builtin.views:NoiseMask"))

    @hookimpl
    def register_routines(self, register):
        CALLS["register_routines"].append({})
        register(RoutineSpec(name="loop", build="selfsup.engine.loop:MiniBatch"))

    @hookimpl
    def register_transforms(self, register):
        CALLS["register_transforms"].append({})
        register(TransformSpec(name="subsample", build="selfsup.builtin.transforms:Subsample"))

    @hookimpl
    def register_kinds(self, register):
        CALLS["register_kinds"].append({})
        register(KindSpec(name="rec-kind", description="A kind the recorder opens."))

    @hookimpl
    def register_components(self, register):
        CALLS["register_components"].append({})
        register(ComponentSpec(kind="rec-kind", name="thing", build="selfsup.builtin.encoders:MLP"))

    @hookimpl
    def register_commands(self, cli):
        import click

        CALLS["register_commands"].append({})

        @cli.command(name="rec-hello")
        @click.argument("who")
        def hello(who):
            """Say hello (a plugin command)."""
            click.echo(f"hello {who}")

    @hookimpl
    def run_started(self, run_dir, config, info):
        CALLS["run_started"].append({"run_dir": run_dir, "config": config, "info": info})

    @hookimpl
    def step_finished(self, run_dir, step, metrics):
        CALLS["step_finished"].append({"step": step, "metrics": metrics})

    @hookimpl
    def epoch_finished(self, run_dir, epoch, metrics):
        CALLS["epoch_finished"].append({"epoch": epoch, "metrics": metrics})

    @hookimpl
    def checkpoint_saved(self, run_dir, path, epoch):
        CALLS["checkpoint_saved"].append({"path": path, "epoch": epoch})

    @hookimpl
    def run_finished(self, run_dir, results):
        CALLS["run_finished"].append({"run_dir": run_dir, "results": results})

    @hookimpl
    def experiment_finished(self, output_dir, results):
        CALLS["experiment_finished"].append({"output_dir": output_dir, "results": results})


def test_every_registration_hook_is_called_when_the_registry_builds(
    selfsup_pm, register_plugin
) -> None:
    CALLS.clear()
    info = register_plugin(Recorder(), name="rec")
    assert info.status == "active", info.error
    registration = [h for h in HOOKS if h.startswith("register_") and h != "register_commands"]
    assert sorted(CALLS) == registration
    assert len(registration) == 9  # the six typed hooks, transforms, kinds, components
    assert selfsup_pm.get("transform", "rec:subsample").kind == "transform"
    assert selfsup_pm.registry.kinds()["rec-kind"].plugin == "rec"
    assert [s.id for s in selfsup_pm.registry.list("rec-kind")] == ["rec:thing"]


@pytest.mark.heavy
def test_every_hook_is_called_by_a_tiny_cli_run(tmp_path, selfsup_pm, register_plugin) -> None:
    from selfsup.cli.main import build_cli

    CALLS.clear()
    info = register_plugin(Recorder(), name="rec")
    assert info.status == "active", info.error
    rng = np.random.default_rng(0)
    y = np.arange(96) % 3
    np.savez(tmp_path / "toy.npz", x=rng.normal(size=(96, 6)).astype("float32") + y[:, None], y=y)
    (tmp_path / "exp.yaml").write_text(
        f"""
name: hooks
seeds: [0]
baseline: false
output_dir: {tmp_path / "runs"}
data: {{id: rec:arrays, params: {{path: {tmp_path / "toy.npz"}}}}}
encoder: {{id: rec:mlp, params: {{in_dim: 6, widths: [16], embed_dim: 8}}}}
views: rec:noise
objective: {{id: rec:simclr, params: {{hidden_dim: 16, out_dim: 8}}}}
routine: rec:loop
evaluators: [rec:rankme]
train: {{epochs: 2, batch_size: 32, device: cpu, log_every: 1, progress: false}}
"""
    )
    cli = build_cli(selfsup_pm)
    runner = CliRunner()
    result = runner.invoke(cli, ["run", str(tmp_path / "exp.yaml"), "--no-progress"])
    assert result.exit_code == 0, result.output
    hello = runner.invoke(cli, ["rec-hello", "world"])
    assert hello.exit_code == 0 and hello.stdout == "hello world\n"

    assert sorted(CALLS) == HOOKS, f"never called: {sorted(set(HOOKS) - set(CALLS))}"
    started = CALLS["run_started"][0]
    assert started["info"]["seed"] == 0 and started["config"]["encoder"]["id"] == "rec:mlp"
    assert [c["epoch"] for c in CALLS["epoch_finished"]] == [1, 2]
    assert [c["epoch"] for c in CALLS["checkpoint_saved"]] == [1, 2]
    steps = [c["step"] for c in CALLS["step_finished"]]
    assert (
        steps == sorted(steps) and steps[0] == 1 and "loss" in CALLS["step_finished"][0]["metrics"]
    )
    finished = CALLS["run_finished"][0]
    assert "rankme" in finished["results"]["metrics"]
    on_disk = json.loads(
        (tmp_path / "runs" / "hooks")
        .joinpath(finished["run_dir"].split("hooks/", 1)[1], "results.json")
        .read_text()
    )
    assert on_disk["metrics"]["rankme"] == pytest.approx(finished["results"]["metrics"]["rankme"])
    (done,) = CALLS["experiment_finished"]
    assert done["output_dir"] == str(tmp_path / "runs" / "hooks")
    assert done["results"]["run_dirs"] == [finished["run_dir"]] and done["results"]["failed"] == 0
