"""A real kill: SIGKILL ``selfsup run`` after its first checkpoint, resume, compare weights.

The resumed run must end with exactly the weights of an uninterrupted run: model,
optimiser, scheduler and every random generator come back from the checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from selfsup.config import load_config
from selfsup.engine.checkpoint import load_checkpoint
from selfsup.engine.runner import RunDirExistsError, run_experiment
from sklearn.datasets import load_digits

pytestmark = pytest.mark.heavy

EPOCHS = 8


def _config(tmp_path: Path, out: str) -> Path:
    digits = load_digits()
    data = tmp_path / "digits.npz"
    if not data.exists():
        np.savez(data, x=(digits.data / 16).astype("float32"), y=digits.target)
    path = tmp_path / f"{out}.yaml"
    path.write_text(
        f"""
name: resume
output_dir: {tmp_path / out}
baseline: false
seeds: [3]
data: {{id: core:arrays, params: {{path: {data}}}}}
encoder: {{id: core:mlp, params: {{in_dim: 64, widths: [256, 256], embed_dim: 64}}}}
views: {{id: core:noise-mask, params: {{mask_prob: 0.3, noise_std: 0.1}}}}
objective: {{id: core:simclr, params: {{temperature: 0.2, hidden_dim: 256}}}}
train:
  epochs: {EPOCHS}
  batch_size: 64
  device: cpu
  log_every: 5
  optimizer: {{name: adamw, lr: 0.002, weight_decay: 0.0001}}
  schedule: {{warmup_epochs: 1}}
"""
    )
    return path


def _cmd(cfg: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "selfsup", "run", str(cfg), "--no-progress", *extra]


def _env() -> dict[str, str]:
    # One thread: bit-identical CPU kernels in both processes, and no oversubscription.
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _run(cfg: Path, *extra: str) -> None:
    proc = subprocess.run(
        _cmd(cfg, *extra), env=_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_killed_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    run = Path("resume") / "simclr" / "seed-3"
    cfg_a, cfg_b = _config(tmp_path, "straight"), _config(tmp_path, "killed")
    ckpt_b = tmp_path / "killed" / run / "checkpoints" / "last.pt"

    proc = subprocess.Popen(
        _cmd(cfg_b), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 240
        while not ckpt_b.exists():
            assert proc.poll() is None, f"the run ended before its first checkpoint: {proc.stderr}"
            assert time.monotonic() < deadline, "no checkpoint after 240 s"
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    killed_at = load_checkpoint(ckpt_b)["epoch"]
    print(f"killed after epoch {killed_at}")
    assert 1 <= killed_at < EPOCHS
    assert not (tmp_path / "killed" / run / "results.json").exists()

    # Without --resume the partial run directory is refused, with a pointer to the fix.
    with pytest.raises(RunDirExistsError, match=r"seed-3 exists and is not empty.*--resume"):
        run_experiment(load_config(cfg_b))

    stored = (tmp_path / "killed" / run / "config.yaml").read_bytes()
    _run(cfg_b, "--resume")
    _run(cfg_a)

    a = load_checkpoint(tmp_path / "straight" / run / "checkpoints" / "last.pt")
    b = load_checkpoint(ckpt_b)
    assert a["epoch"] == b["epoch"] == EPOCHS and a["global_step"] == b["global_step"]
    for part in ("encoder", "objective"):
        assert a[part].keys() == b[part].keys()
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), f"{part}.{key} differs after resume"
    result = json.loads((tmp_path / "killed" / run / "results.json").read_text())
    assert result["status"] == "ok" and result["epochs"] == EPOCHS
    assert result["steps"] == a["global_step"]

    # The log holds each epoch and each logged step once, as the uninterrupted run's.
    def logged(root: str) -> list[tuple[int | None, int]]:
        lines = (tmp_path / root / run / "metrics.jsonl").read_text().splitlines()
        return [(r.get("epoch"), r["step"]) for r in map(json.loads, lines)]

    assert logged("killed") == logged("straight")
    assert [e for e, _ in logged("killed") if e is not None] == list(range(1, EPOCHS + 1))
    # The resume is on record; config.yaml is the one the run started with.
    notice = json.loads((tmp_path / "killed" / run / "notices.jsonl").read_text().splitlines()[-1])
    assert notice["kind"] == "resume" and notice["from_epoch"] == killed_at
    assert (tmp_path / "killed" / run / "config.yaml").read_bytes() == stored
