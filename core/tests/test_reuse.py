"""Reuse: selfsup.load_encoder, selfsup export, encoder.init (run dir and export)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import selfsup
import torch
from click.testing import CliRunner
from selfsup.cli.main import build_cli
from selfsup.reuse import ReuseError, find_source
from selfsup.testing import core_manager


def _config(tmp: Path, name: str, init: str | None = None, epochs: int = 1) -> Path:
    init_line = f", init: {{from: {init}}}" if init else ""
    exp = tmp / f"{name}.yaml"
    exp.write_text(
        f"""
name: {name}
seeds: [0]
output_dir: {tmp / "runs"}
data: {{id: core:arrays, params: {{path: toy.npz}}}}
encoder: {{id: core:mlp, params: {{in_dim: 6, widths: [16], embed_dim: 8}}{init_line}}}
views: core:noise-mask
objective: {{id: core:vicreg, params: {{hidden_dim: 16, out_dim: 16}}}}
evaluators: [core:knn]
train: {{epochs: {epochs}, batch_size: 40, device: cpu}}
"""
    )
    return exp


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny finished run: (the tmp folder, the run directory)."""
    tmp = tmp_path_factory.mktemp("reuse")
    rng = np.random.default_rng(0)
    y = np.arange(120) % 3
    x = rng.normal(size=(120, 6)).astype("float32") + 2.0 * y[:, None]
    np.savez(tmp / "toy.npz", x=x, y=y)
    result = CliRunner().invoke(
        build_cli(core_manager()), ["run", str(_config(tmp, "base")), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    return tmp, tmp / "runs" / "base" / "vicreg" / "seed-0"


def _probe() -> torch.Tensor:
    return torch.randn(5, 6, generator=torch.Generator().manual_seed(1))


def test_load_encoder_eval_mode_and_input_spec(trained) -> None:
    _, run = trained
    encoder = selfsup.load_encoder(run, pm=core_manager())
    assert not encoder.training
    spec = encoder.input_spec
    assert spec.embed_dim == 8 and spec.item_shape == [6] and spec.item_dtype == "float32"
    assert spec.data["id"] == "core:arrays"
    assert "forward" in spec.preprocessing
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["encoder"]
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_checkpoints_are_read_with_weights_only(trained, monkeypatch) -> None:
    _, run = trained
    seen: list[object] = []
    real = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    selfsup.load_encoder(run, pm=core_manager())
    assert seen and all(flag is True for flag in seen)


def test_export_round_trip_gives_identical_embeddings(trained) -> None:
    tmp, run = trained
    out = tmp / "exported"
    result = CliRunner().invoke(
        build_cli(core_manager()),
        ["export", str(run), "--out", str(out), "--format", "torchscript", "--format", "export"],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["encoder"]["id"] == "core:mlp"
    assert manifest["encoder"]["params"]["embed_dim"] == 8
    assert manifest["input"]["item_shape"] == [6]
    assert manifest["selfsup_version"] == selfsup.__version__
    assert set(manifest["files"]) == {"weights", "torchscript", "export"}
    x = _probe()
    with torch.no_grad():
        reference = selfsup.load_encoder(run, pm=core_manager())(x).pooled
        again = selfsup.load_encoder(out, pm=core_manager())(x).pooled
        scripted = torch.jit.load(str(out / "encoder.ts.pt"))(x)
        program = torch.export.load(str(out / "encoder.pt2")).module()(x)
    assert torch.equal(reference, again)
    assert torch.allclose(reference, scripted, atol=1e-6)
    assert torch.allclose(reference, program, atol=1e-6)
    with torch.no_grad():  # any batch size, including one item
        one = torch.export.load(str(out / "encoder.pt2")).module()(x[:1])
    assert torch.allclose(reference[:1], one, atol=1e-6)


@pytest.mark.parametrize("source", ["run", "export"])
def test_encoder_init_from_run_or_export(trained, source) -> None:
    tmp, run = trained
    path = run if source == "run" else tmp / "exported-init"
    if source == "export":
        selfsup.export_encoder(run, path, pm=core_manager())
    exp = _config(tmp, f"init-{source}", init=str(path), epochs=0)
    result = CliRunner().invoke(build_cli(core_manager()), ["run", str(exp), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "initialised from" in result.stdout
    # epochs 0: the arm only evaluates, with the loaded weights: same features.
    out = tmp / "runs" / f"init-{source}"
    trained_feats = np.load(run / "embeddings.npz")["features"]
    arm = next(p for p in out.iterdir() if p.is_dir() and p.name != "random-init")
    init_feats = np.load(arm / "seed-0" / "embeddings.npz")["features"]
    np.testing.assert_array_equal(trained_feats, init_feats)


def test_init_that_does_not_fit_names_the_parameter(trained) -> None:
    tmp, run = trained
    exp = _config(tmp, "misfit", init=str(run))
    text = exp.read_text().replace("embed_dim: 8", "embed_dim: 4")
    exp.write_text(text)
    result = CliRunner().invoke(build_cli(core_manager()), ["run", str(exp), "--no-progress"])
    assert result.exit_code != 0
    assert "does not fit" in result.output and "[8, 16]" in result.output


def test_bad_paths_say_what_to_give(trained, tmp_path) -> None:
    tmp, run = trained
    with pytest.raises(ReuseError, match="no such run directory or export"):
        find_source(tmp_path / "missing")
    with pytest.raises(ReuseError, match="an experiment directory with 2 run"):
        find_source(run.parent.parent)
    baseline = run.parent.parent / "random-init" / "seed-0"
    with pytest.raises(ReuseError, match="does not pretrain"):
        selfsup.load_encoder(baseline, pm=core_manager())
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(ReuseError, match="not a selfsup encoder manifest"):
        find_source(bad)
    exp = _config(tmp, "nowhere", init=str(tmp_path / "nowhere"))
    result = CliRunner().invoke(build_cli(core_manager()), ["check", str(exp)])
    assert result.exit_code == 2 and "encoder.init.from" in result.output
