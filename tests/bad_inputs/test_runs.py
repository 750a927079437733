"""Bad-input corpus: run directories resumed, re-run and written (issue 9, items 2 and 6).

Each case is one careless or hostile start of ``selfsup run`` and the answer selfsup
must give: the exit code, the key phrases of the message (the run directory, key,
file or parameter named, and the fix) and what must stay untouched on disk. The
runs are real and tiny (``core:arrays`` + ``core:mlp`` on 120 items, 2 steps per
epoch). A "kill" is simulated by a sink whose ``epoch_finished`` raises
``KeyboardInterrupt``: the epoch's metrics line is written, its checkpoint is not,
exactly the window a ``SIGKILL`` hits (``core/tests/test_resume.py`` kills for real).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner, Result
from selfsup import hookimpl
from selfsup.cli.main import build_cli
from selfsup.testing import core_manager

EPOCHS = 3
RUN = Path("exp") / "simclr" / "seed-0"


class _Kill:
    """A sink that stops the process after the metrics line of ``epoch``, before its checkpoint."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    @hookimpl
    def epoch_finished(self, run_dir: str, epoch: int, metrics: dict[str, float]) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt


def _data(tmp_path: Path) -> Path:
    path = tmp_path / "toy.npz"
    if not path.exists():
        rng = np.random.default_rng(0)
        y = np.arange(120) % 3
        np.savez(path, x=rng.normal(size=(120, 6)).astype("float32") + 2.0 * y[:, None], y=y)
    return path


def _config(tmp_path: Path, arms: str = "", name: str = "exp.yaml", seeds: str = "[0]") -> Path:
    path = tmp_path / name
    path.write_text(
        f"""
name: exp
seeds: {seeds}
output_dir: {tmp_path / "runs"}
baseline: false
data: {{id: core:arrays, params: {{path: {_data(tmp_path)}}}}}
encoder: {{id: core:mlp, params: {{in_dim: 6, widths: [16], embed_dim: 8}}}}
views: core:noise-mask
objective: {{id: core:simclr, params: {{temperature: 0.2, hidden_dim: 16}}}}
evaluators: [core:knn]
train:
  epochs: {EPOCHS}
  batch_size: 32
  device: cpu
  log_every: 1
  progress: false
  optimizer: {{lr: 0.003}}
{arms}"""
    )
    return path


def _run(cfg: Path, *args: str, plugins: tuple[tuple[str, object], ...] = ()) -> Result:
    cli = build_cli(core_manager(*plugins))
    return CliRunner().invoke(cli, ["run", str(cfg), "--no-progress", *args])


def _killed(tmp_path: Path, at_epoch: int = 2) -> Path:
    """A run killed after epoch ``at_epoch``'s metrics line (checkpoint at the epoch before)."""
    result = _run(_config(tmp_path), plugins=(("killer", _Kill(at_epoch)),))
    assert result.exit_code == 130, result.output
    run_dir = tmp_path / "runs" / RUN
    assert not (run_dir / "results.json").exists()
    assert [r["epoch"] for r in _records(run_dir) if "epoch" in r] == list(range(1, at_epoch + 1))
    return run_dir


def _finished(tmp_path: Path) -> Path:
    result = _run(_config(tmp_path))
    assert result.exit_code == 0, result.output
    return tmp_path / "runs" / RUN


def _records(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    names = ("config.yaml", "checkpoints/last.pt", "metrics.jsonl", "results.json")
    return {n: (run_dir / n).read_bytes() for n in names if (run_dir / n).is_file()}


def _one_line(text: str) -> str:
    """The error paragraph's first line (render_error prints the message unwrapped)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "no error message"
    return lines[0]


# --------------------------------------------------------------------------- refused resumes


@pytest.mark.parametrize(
    ("state", "overrides", "phrases"),
    [
        pytest.param(
            "killed",
            ["train.optimizer.lr=0.5", "objective.params.temperature=0.9"],
            [
                "train.optimizer.lr: stored 0.003, new 0.5",
                "objective.params.temperature: stored 0.2, new 0.9",
            ],
            id="resume-changed-lr-and-temperature",
        ),
        pytest.param(
            "killed",
            ["encoder.params.widths=[32]"],
            ["encoder.params.widths: stored [16], new [32]"],
            id="resume-other-encoder-width",
        ),
        pytest.param(
            "killed",
            ["data.params.test_fraction=0.3"],
            ["data.params.test_fraction: stored <not set>, new 0.3"],
            id="resume-other-data-split",
        ),
        pytest.param(
            "killed",
            ["train.epochs=1"],
            ["train.epochs: stored 3, new 1", "fewer epochs"],
            id="resume-fewer-epochs",
        ),
        pytest.param(
            "finished",
            ["train.optimizer.lr=0.5"],
            ["train.optimizer.lr: stored 0.003, new 0.5"],
            id="resume-finished-run-changed-lr",
        ),
    ],
)
def test_resume_with_another_config_is_refused_before_anything_trains(
    tmp_path: Path, state: str, overrides: list[str], phrases: list[str]
) -> None:
    run_dir = _killed(tmp_path) if state == "killed" else _finished(tmp_path)
    before = _snapshot(run_dir)
    sets = [arg for o in overrides for arg in ("--set", o)]
    result = _run(_config(tmp_path), "--resume", *sets)
    assert result.exit_code == 2, result.output
    line = _one_line(result.stderr)
    assert str(run_dir) in line and "config.yaml" in line, line
    for phrase in phrases:
        assert phrase in line, line
    assert "--set output_dir=" in line and "without" in line, line
    assert "size mismatch" not in result.output and "Traceback" not in result.output
    assert _snapshot(run_dir) == before  # config.yaml, checkpoint and metrics untouched
    assert not (run_dir / "results.json").exists() or state == "finished"


# --------------------------------------------------------------------------- allowed resumes


def test_resume_with_more_epochs_continues_with_a_notice(tmp_path: Path) -> None:
    """id: resume-more-epochs. A finished run continues from its checkpoint, re-evaluated."""
    run_dir = _finished(tmp_path)
    stored = (run_dir / "config.yaml").read_bytes()
    result = _run(_config(tmp_path), "--resume", "--set", "train.epochs=5")
    assert result.exit_code == 0, result.output
    assert "train.epochs: stored 3, new 5" in result.stdout, result.stdout
    assert (run_dir / "config.yaml").read_bytes() == stored  # history is not rewritten
    notices = [json.loads(line) for line in (run_dir / "notices.jsonl").read_text().splitlines()]
    continued = [n for n in notices if n["kind"] == "resume"]
    assert continued and {"key": "train.epochs", "stored": 3, "new": 5} in continued[-1]["changes"]
    records = _records(run_dir)
    assert [r["epoch"] for r in records if "epoch" in r] == [1, 2, 3, 4, 5]
    steps = [r["step"] for r in records if "epoch" not in r]
    assert steps == list(range(1, 11))
    # The schedule is re-planned over 5 epochs: the continued steps train at lr > 0
    # (the restored 3-epoch cosine would give 0.0 from step 7 on).
    assert all(r["lr"] > 0 for r in records if "epoch" not in r and r["step"] > 6)
    res = json.loads((run_dir / "results.json").read_text())
    assert res["status"] == "ok" and res["epochs"] == 5 and res["steps"] == 10

    # id: resume-continued-run-with-its-old-epochs. It is a 5-epoch run now: resuming
    # it with the config file's 3 epochs is refused, naming notices.jsonl.
    before = _snapshot(run_dir)
    again = _run(_config(tmp_path), "--resume")
    assert again.exit_code == 2, again.output
    line = _one_line(again.stderr)
    assert "train.epochs: stored 5, new 3 (fewer epochs" in line and "notices.jsonl" in line
    assert _snapshot(run_dir) == before


@pytest.mark.parametrize(
    ("overrides", "phrase"),
    [
        pytest.param([], None, id="resume-after-kill-metrics-unique"),
        pytest.param(
            ["train.log_every=2", "train.checkpoint_every=2"],
            "train.log_every: stored 1, new 2",
            id="resume-operational-keys-noted",
        ),
    ],
)
def test_killed_run_resumes_with_each_epoch_once(
    tmp_path: Path, overrides: list[str], phrase: str | None
) -> None:
    run_dir = _killed(tmp_path, at_epoch=2)  # metrics hold epoch 2, the checkpoint epoch 1
    stored = (run_dir / "config.yaml").read_bytes()
    sets = [arg for o in overrides for arg in ("--set", o)]
    result = _run(_config(tmp_path), "--resume", *sets)
    assert result.exit_code == 0, result.output
    assert (run_dir / "config.yaml").read_bytes() == stored
    records = _records(run_dir)
    epochs = [r["epoch"] for r in records if "epoch" in r]
    assert epochs == [1, 2, 3], epochs
    steps = [r["step"] for r in records if "epoch" not in r]
    assert len(steps) == len(set(steps)) and steps == sorted(steps), steps
    assert "dropped" in result.stdout and "metrics.jsonl" in result.stdout
    if phrase is not None:
        assert phrase in result.stdout, result.stdout
        notices = (run_dir / "notices.jsonl").read_text()
        assert "train.log_every" in notices


# --------------------------------------------------------------------------- checkpoints


def _wider_checkpoint(tmp_path: Path, run_dir: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    cfg = _config(other)
    text = cfg.read_text().replace("widths: [16]", "widths: [32]")
    cfg.write_text(text)
    result = _run(cfg)
    assert result.exit_code == 0, result.output
    shutil.copy(other / "runs" / RUN / "checkpoints" / "last.pt", run_dir / "checkpoints")


class _Evil:
    def __reduce__(self) -> tuple[Callable[..., Any], tuple[()]]:
        return (os.getcwd, ())  # harmless here; os.system in a real attack


def _malicious_checkpoint(tmp_path: Path, run_dir: Path) -> None:
    torch.save({"epoch": 1, "payload": _Evil()}, run_dir / "checkpoints" / "last.pt")


def _garbage_checkpoint(tmp_path: Path, run_dir: Path) -> None:
    (run_dir / "checkpoints" / "last.pt").write_bytes(pickle.dumps("x") + b"\x00" * 64)


def _truncated_checkpoint(tmp_path: Path, run_dir: Path) -> None:
    path = run_dir / "checkpoints" / "last.pt"
    path.write_bytes(path.read_bytes()[:200])


@pytest.mark.parametrize(
    ("damage", "phrases"),
    [
        pytest.param(
            _wider_checkpoint,
            [
                "does not fit",
                "encoder parameter",
                "[32, 6] in the checkpoint",
                "[16, 6] in the model",
                "delete",
            ],
            id="checkpoint-from-another-model",
        ),
        pytest.param(
            _malicious_checkpoint,
            ["not a selfsup checkpoint", "untrusted", "posix.getcwd", "delete"],
            id="checkpoint-malicious-pickle",
        ),
        pytest.param(
            _garbage_checkpoint,
            ["not a selfsup checkpoint", "corrupt", "delete"],
            id="checkpoint-garbage-bytes",
        ),
        pytest.param(
            _truncated_checkpoint,
            ["not a selfsup checkpoint", "corrupt", "delete"],
            id="checkpoint-truncated",
        ),
    ],
)
def test_bad_checkpoint_fails_in_one_line_with_the_fix(
    tmp_path: Path, damage: Callable[[Path, Path], None], phrases: list[str]
) -> None:
    run_dir = _killed(tmp_path)
    damage(tmp_path, run_dir)
    stored = (run_dir / "config.yaml").read_bytes()
    result = _run(_config(tmp_path), "--resume")
    assert result.exit_code == 1, result.output
    line = _one_line(result.stderr)
    assert "CheckpointError" in line and str(run_dir / "checkpoints" / "last.pt") in line, line
    for phrase in phrases:
        assert phrase in line, line
    assert "another run directory" in line or "--set output_dir=" in line, line
    assert "weights_only" not in result.output  # never torch's "retry unsafely" advice
    assert "size mismatch" not in result.output and "Traceback" not in result.output
    assert (run_dir / "config.yaml").read_bytes() == stored
    assert not (run_dir / "results.json").exists()


# --------------------------------------------------------------------------- temp files


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("checkpoints/.last.pt.k2j4h5g6.tmp", id="temp-file-of-killed-checkpoint"),
        pytest.param("checkpoints/.last.pt.1f3a9c.selfsup-tmp", id="temp-file-new-style"),
    ],
)
def test_temp_files_of_a_killed_write_are_removed_on_resume(tmp_path: Path, name: str) -> None:
    run_dir = _killed(tmp_path)
    temp = run_dir / name
    temp.write_bytes((run_dir / "checkpoints" / "last.pt").read_bytes())  # full size
    keep = run_dir / "checkpoints" / "notes.tmp"  # not a name selfsup writes: kept
    keep.write_text("mine")
    result = _run(_config(tmp_path), "--resume")
    assert result.exit_code == 0, result.output
    assert not temp.exists() and keep.exists()
    assert "removed" in result.stdout and temp.name in result.stdout, result.stdout
    assert temp.name in (run_dir / "notices.jsonl").read_text()


def test_temp_file_in_the_experiment_dir_is_removed_on_a_fresh_start(tmp_path: Path) -> None:
    """id: temp-file-experiment-dir. A fresh start (no --resume) cleans up as well."""
    exp = tmp_path / "runs" / "exp"
    exp.mkdir(parents=True)
    temp = exp / ".results.json.a8b7c6d5.tmp"
    temp.write_text("{half")
    result = _run(_config(tmp_path))
    assert result.exit_code == 0, result.output
    assert not temp.exists()
    assert "removed" in result.stdout and temp.name in result.stdout


# --------------------------------------------------------------------------- experiment results

ARM_A = "arms: [{name: simclr}]\n"
ARM_B = "arms: [{name: vicreg, objective: {id: core:vicreg, params: {hidden_dim: 16}}}]\n"


def _summary(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "runs" / "exp" / "results.json").read_text())


def test_rerun_with_other_arms_merges_the_experiment_results(tmp_path: Path) -> None:
    """id: rerun-other-arms-merges. The report made before is stale: removed, and said."""
    assert _run(_config(tmp_path, ARM_A)).exit_code == 0
    exp = tmp_path / "runs" / "exp"
    (exp / "report.html").write_text("<html>simclr only</html>")
    result = _run(_config(tmp_path, ARM_B, name="b.yaml"))
    assert result.exit_code == 0, result.output
    summary = _summary(tmp_path)
    assert [row["arm"] for row in summary["arms"]] == ["vicreg", "simclr"]
    assert {(r["arm"], r["seed"]) for r in summary["runs"]} == {("vicreg", 0), ("simclr", 0)}
    md = (exp / "results.md").read_text()
    assert "| simclr |" in md and "| vicreg |" in md
    assert not (exp / "report.html").exists()
    assert "report.html" in result.stdout and "selfsup report" in result.stdout


def test_rerun_of_an_arm_is_refused_naming_resume_and_overwrite(tmp_path: Path) -> None:
    """id: rerun-same-arm-refused."""
    assert _run(_config(tmp_path)).exit_code == 0
    result = _run(_config(tmp_path))
    assert result.exit_code == 1, result.output
    line = _one_line(result.stderr)
    assert "seed-0 exists and is not empty" in line and "--resume" in line
    assert "--overwrite" in line and "--set output_dir=" in line


def test_overwrite_deletes_only_the_runs_it_reruns_and_says_so(tmp_path: Path) -> None:
    """id: overwrite-reruns."""
    assert _run(_config(tmp_path, "arms: [{name: simclr}, {name: other}]\n")).exit_code == 0
    exp = tmp_path / "runs" / "exp"
    marker = exp / "simclr" / "seed-0" / "mine.txt"
    marker.write_text("gone with the run")
    other = _snapshot(exp / "other" / "seed-0")
    result = _run(_config(tmp_path, ARM_A), "--overwrite")
    assert result.exit_code == 0, result.output
    assert not marker.exists() and (exp / "simclr" / "seed-0" / "results.json").is_file()
    assert "deleted" in result.stdout and str(exp / "simclr" / "seed-0") in result.stdout
    assert _snapshot(exp / "other" / "seed-0") == other  # not re-run: untouched
    assert {row["arm"] for row in _summary(tmp_path)["arms"]} == {"simclr", "other"}


def test_overwrite_with_resume_is_refused(tmp_path: Path) -> None:
    """id: overwrite-and-resume."""
    result = _run(_config(tmp_path), "--resume", "--overwrite")
    assert result.exit_code == 2, result.output
    assert "--overwrite" in result.output and "--resume" in result.output
    assert not (tmp_path / "runs").exists()


def test_other_seed_with_another_config_is_left_out_with_a_notice(tmp_path: Path) -> None:
    """id: rerun-other-seed-other-config: seed 0 (lr 0.003) is not averaged with seed 1."""
    assert _run(_config(tmp_path)).exit_code == 0
    cfg = _config(tmp_path, name="b.yaml", seeds="[1]")
    result = _run(cfg, "--set", "train.optimizer.lr=0.01")
    assert result.exit_code == 0, result.output
    summary = _summary(tmp_path)
    assert [(r["arm"], r["seed"]) for r in summary["runs"]] == [("simclr", 1)]
    assert "seed-0" in result.stdout and "train.optimizer.lr" in result.stdout
    assert summary["left_out"][0]["run_dir"].endswith("seed-0")


# --------------------------------------------------------------------------- umask


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    old = os.umask(0o022)
    os.umask(old)

    def set_umask(value: int) -> None:
        os.umask(value)

    try:
        yield set_umask
    finally:
        os.umask(old)


@pytest.mark.parametrize(
    "mask", [pytest.param(0o022, id="umask-022"), pytest.param(0o077, id="umask-077")]
)
def test_run_files_honour_the_umask(
    tmp_path: Path, umask: Callable[[int], None], mask: int
) -> None:
    umask(mask)
    assert _run(_config(tmp_path)).exit_code == 0
    exp = tmp_path / "runs" / "exp"
    seen = set()
    for path in [exp, *exp.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        want = (0o777 if path.is_dir() else 0o666) & ~mask
        assert mode == want, f"{path}: {oct(mode)} != {oct(want)}"
        seen.add(path.name)
    assert {"config.yaml", "results.json", "last.pt", "metrics.jsonl", "results.md"} <= seen
    assert yaml.safe_load((exp / "simclr" / "seed-0" / "config.yaml").read_text())["seed"] == 0
