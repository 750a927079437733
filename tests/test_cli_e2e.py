"""The CLI end to end in real processes: the README demo on real digits, then the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.heavy


def test_demo_runs_and_reports(workdir, need_plugin, run_selfsup) -> None:
    need_plugin("selfsup_vision")
    run = run_selfsup(
        "run",
        str(ROOT / "examples" / "demo_digits.yaml"),
        "--set",
        "train.epochs=1",
        "--set",
        "seeds=[0]",
        "--set",
        f"output_dir={workdir}",
        "--no-progress",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    exp = workdir / "demo-digits"
    summary = json.loads((exp / "results.json").read_text())
    text = json.dumps(summary)
    for arm in ("simclr", "barlow-twins", "random-init"):
        assert arm in text
        run_dir = exp / arm / "seed-0"
        for name in ("config.yaml", "env.json", "results.json", "embeddings.npz"):
            assert (run_dir / name).is_file(), f"{run_dir / name} missing"
        result = json.loads((run_dir / "results.json").read_text())
        assert result["status"] == "ok"
        assert 0.5 < result["metrics"]["linear_acc"] <= 1.0
    assert (exp / "simclr" / "seed-0" / "checkpoints" / "last.pt").is_file()
    assert "linear_acc" in (exp / "results.md").read_text()

    report = run_selfsup("report", str(exp))
    assert report.returncode == 0, report.stdout + report.stderr
    html = next(exp.rglob("report.html"))
    assert html.stat().st_size > 1000
    assert list(exp.rglob("*.png")), "the report wrote no plots"

    # Reuse: export the trained encoder (safetensors + TorchScript + torch.export) and
    # load it back: the same embeddings as the run's own encoder, on real digits.
    export = run_selfsup(
        "export", str(exp / "simclr" / "seed-0"), "--format", "torchscript", "--format", "export"
    )
    assert export.returncode == 0, export.stdout + export.stderr
    folder = exp / "simclr" / "seed-0" / "export"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["encoder"]["id"] == "vision:small-cnn"
    assert manifest["input"]["modality"] == "image" and manifest["input"]["channels"] == 1

    import selfsup
    import torch

    trained = selfsup.load_encoder(exp / "simclr" / "seed-0")
    exported = selfsup.load_encoder(folder)
    scripted = torch.jit.load(str(folder / "encoder.ts.pt"))
    # Tracing records one input path: the traced module takes items of the dataset's dtype.
    shape, dtype = manifest["input"]["item_shape"], manifest["input"]["item_dtype"]
    images = torch.randint(0, 256, (5, *shape)).to(getattr(torch, dtype.removeprefix("torch.")))
    with torch.no_grad():
        reference = trained(images).pooled
        assert torch.equal(reference, exported(images).pooled)
        assert torch.allclose(reference, scripted(images), atol=1e-5)


def test_rerun_without_resume_refuses_and_keeps_results(workdir, need_plugin, run_selfsup) -> None:
    need_plugin("selfsup_vision")
    args = (
        "run",
        str(ROOT / "examples" / "demo_digits.yaml"),
        "--set",
        "train.epochs=1",
        "--set",
        "seeds=[0]",
        "--set",
        "arms=[{name: simclr, objective: core:simclr}]",
        "--set",
        "baseline=false",
        "--set",
        f"output_dir={workdir}",
        "--no-progress",
    )
    first = run_selfsup(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    results = workdir / "demo-digits" / "simclr" / "seed-0" / "results.json"
    before = results.read_text()
    again = run_selfsup(*args)
    assert again.returncode != 0
    assert "--resume" in again.stdout + again.stderr
    assert results.read_text() == before
    resumed = run_selfsup(*args, "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert results.read_text() == before


def test_unknown_plugin_id_names_the_install_line(workdir) -> None:
    # In-process with only the core loaded: every first-party plugin may be installed in
    # this environment, and the advice is for a user who has not installed one.
    from click.testing import CliRunner
    from selfsup.cli.main import build_cli
    from selfsup.testing import core_manager

    cfg = workdir / "exp.yaml"
    cfg.write_text(
        "name: x\ndata: audio:fsdd\nencoder: core:mlp\nviews: core:noise-mask\n"
        "objective: core:simclr\ntracking: [mlflow]\n"
    )
    out = CliRunner().invoke(build_cli(core_manager()), ["check", str(cfg)])
    assert out.exit_code == 2
    assert "pip install selfsup-audio" in out.output
    assert "tracking needs the selfsup-tracking plugin: pip install selfsup-tracking" in out.output
