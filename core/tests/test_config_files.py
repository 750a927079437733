"""extends:, ${env:VAR}, relative paths, data.help, --only and --overwrite after a failed load."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from selfsup.cli.main import build_cli
from selfsup.config import ConfigError, expand_arms, load_config, load_config_text
from selfsup.testing import core_manager

BASE = """
name: base
seeds: [0]
data: {id: core:arrays, params: {path: data/toy.npz}}
encoder: {id: core:mlp, params: {in_dim: 6, widths: [16], embed_dim: 8}}
views: core:noise-mask
objective: {id: core:vicreg, params: {hidden_dim: 16, out_dim: 16}}
evaluators: [core:knn]
train: {epochs: 1, batch_size: 40, device: cpu, optimizer: {lr: 0.01}}
"""


def _toy(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    y = np.arange(120) % 3
    x = rng.normal(size=(120, 6)).astype("float32") + 2.0 * y[:, None]
    np.savez(folder / "toy.npz", x=x, y=y)
    return folder / "toy.npz"


def test_extends_deep_merges_a_base_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "common.yaml").write_text(BASE)
    child = tmp_path / "exp" / "child.yaml"
    child.parent.mkdir()
    child.write_text(
        "extends: ../base/common.yaml\nname: child\ntrain: {epochs: 3}\n"
        "objective: {params: {out_dim: 32}}\n"
    )
    cfg = load_config(child)
    assert cfg.name == "child"
    assert cfg.train == {"epochs": 3, "batch_size": 40, "device": "cpu", "optimizer": {"lr": 0.01}}
    assert cfg.objective.params == {"hidden_dim": 16, "out_dim": 32}
    # the base's relative data path is relative to the base file, not to child.yaml
    assert cfg.data.params["path"] == str(tmp_path / "base" / "data" / "toy.npz")


def test_extends_with_another_component_id_replaces_it(tmp_path: Path) -> None:
    (tmp_path / "common.yaml").write_text(BASE)
    child = tmp_path / "child.yaml"
    child.write_text("extends: [common.yaml]\nobjective: {id: core:simclr}\n")
    cfg = load_config(child)
    assert cfg.objective.id == "core:simclr" and cfg.objective.params == {}


def test_extends_cycle_and_missing_base_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    with pytest.raises(
        ConfigError, match=r"'extends' makes a cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"
    ):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: nope.yaml\nname: c\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: extends: 'nope\.yaml' is not a file"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("extends: {a: 1}\nname: d\n")
    with pytest.raises(ConfigError, match="give a file name or a list"):
        load_config(tmp_path / "d.yaml")


def test_env_interpolation(monkeypatch) -> None:
    monkeypatch.setenv("SELFSUP_TEST_EPOCHS", "4")
    monkeypatch.setenv("SELFSUP_TEST_NAME", "envname")
    monkeypatch.delenv("SELFSUP_TEST_UNSET", raising=False)
    text = BASE.replace("name: base", "name: ${env:SELFSUP_TEST_NAME}").replace(
        "epochs: 1", "epochs: '${env:SELFSUP_TEST_EPOCHS}'"
    )  # inside {...} flow mappings the reference is quoted; block style needs no quotes
    text = text.replace("batch_size: 40", "batch_size: '${oc.env:SELFSUP_TEST_UNSET,32}'")
    text = text.replace("data/toy.npz", "'/d/${env:SELFSUP_TEST_NAME}/toy.npz'")
    cfg = load_config_text(text)
    assert cfg.name == "envname" and cfg.train["epochs"] == 4 and cfg.train["batch_size"] == 32
    assert cfg.data.params["path"] == "/d/envname/toy.npz"
    with pytest.raises(
        ConfigError, match=r"train\.epochs: the environment variable SELFSUP_TEST_UNSET"
    ):
        load_config_text(BASE.replace("epochs: 1", "epochs: '${env:SELFSUP_TEST_UNSET}'"))
    over = load_config_text(BASE, overrides=["train.epochs=${env:SELFSUP_TEST_EPOCHS}"])
    assert over.train["epochs"] == 4


def test_relative_data_path_runs_from_any_working_directory(tmp_path: Path, monkeypatch) -> None:
    _toy(tmp_path / "project" / "data")
    exp = tmp_path / "project" / "exp.yaml"
    exp.write_text(BASE + f"output_dir: {tmp_path / 'runs'}\nbaseline: false\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(
        build_cli(core_manager()), ["run", os.path.relpath(exp), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "base" / "vicreg" / "seed-0" / "results.json").is_file()


def test_missing_data_says_where_to_get_it(tmp_path: Path) -> None:
    exp = tmp_path / "exp.yaml"
    text = BASE.replace(
        "params: {path: data/toy.npz}}",
        "params: {path: data/toy.npz}, help: 'make it with scripts/make_toy.py'}",
    )
    exp.write_text(text + f"output_dir: {tmp_path / 'runs'}\n")
    result = CliRunner().invoke(build_cli(core_manager()), ["run", str(exp), "--no-progress"])
    assert result.exit_code == 1
    assert str(tmp_path / "data" / "toy.npz") in result.output
    assert "Where to get this data (data.help): make it with scripts/make_toy.py" in result.output


def test_overwrite_after_a_failed_data_load_then_only_one_arm(tmp_path: Path) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        BASE + f"output_dir: {tmp_path / 'runs'}\n"
        "arms: [{name: a}, {name: b, train: {optimizer: {lr: 0.02}}}]\n"
    )
    cli, runner = build_cli(core_manager()), CliRunner()
    failed = runner.invoke(cli, ["run", str(exp), "--no-progress"])
    assert failed.exit_code == 1 and "does not exist" in failed.output
    _toy(tmp_path / "data")
    blocked = runner.invoke(cli, ["run", str(exp), "--no-progress"])
    assert blocked.exit_code == 1 and "--overwrite" in blocked.output
    again = runner.invoke(cli, ["run", str(exp), "--overwrite", "--no-progress", "--only", "a"])
    assert again.exit_code == 0, again.output
    assert "epoch 1/1  loss" in again.stdout  # --no-progress: one line per epoch
    out = tmp_path / "runs" / "base"
    assert (out / "a" / "seed-0" / "results.json").is_file()
    assert '"status": "ok"' in (out / "a" / "seed-0" / "results.json").read_text()
    unknown = runner.invoke(cli, ["run", str(exp), "--overwrite", "--only", "zzz"])
    assert (
        unknown.exit_code == 2
        and "matches no arm; the arms are: a, b, random-init" in unknown.output
    )


def test_set_with_brackets_and_init_survive_arms(tmp_path: Path) -> None:
    text = BASE + "arms: [{name: a}, {name: b}]\n"
    cfg = load_config_text(text, overrides=["arms[1].train.epochs=2"])
    arms = {a.name: a for a in expand_arms(cfg)}
    assert arms["b"].train.epochs == 2 and arms["a"].train.epochs == 1


def test_arm_config_still_takes_a_plain_component_ref_as_encoder() -> None:
    """``selfsup.training.ArmConfig`` / ``ComponentRef`` are public: code written before
    ``encoder.init`` existed keeps working."""
    from selfsup.training import ArmConfig, ComponentRef

    arm = ArmConfig(
        name="t",
        data={"id": "core:arrays"},
        encoder=ComponentRef(id="core:mlp", params={"hidden_dim": 8}),
        objective=ComponentRef(id="core:simclr"),
        views=ComponentRef(id="core:identity"),
    )
    assert arm.encoder.id == "core:mlp" and arm.encoder.params == {"hidden_dim": 8}
    assert arm.encoder.init is None
