"""The experiment runner end to end on real data (scikit-learn's digits as a .npz)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from rich.console import Console
from selfsup.config import ExperimentConfig, load_config_text
from selfsup.engine.metrics import read_metrics
from selfsup.engine.runinfo import safe_dir_name
from selfsup.engine.runner import RunDirExistsError, run_experiment
from selfsup.registry import UnknownIdError
from selfsup.testing import torchrun_selfsup
from sklearn.datasets import load_digits

FILES = ("config.yaml", "env.json", "results.json", "embeddings.npz")


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    digits = load_digits()
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x=(digits.data / 16).astype("float32"), y=digits.target)
    return path


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread: tiny models train faster, and CI's 2 cores are shared."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _config(npz: Path, out: Path, **extra: str) -> str:
    text = f"""
name: digits
output_dir: {out}
seeds: [0, 1]
data: {{id: core:arrays, params: {{path: {npz}}}}}
encoder: {{id: core:mlp, params: {{in_dim: 64, widths: [128], embed_dim: 16}}}}
views: core:noise-mask
objective: {{id: core:simclr, params: {{temperature: 0.2, hidden_dim: 128}}}}
evaluators: [core:knn, core:linear-probe]
train:
  epochs: 8
  batch_size: 128
  device: cpu
  optimizer: {{lr: 0.003}}
  schedule: {{warmup_epochs: 1}}
"""
    return text + "".join(f"{k}: {v}\n" for k, v in extra.items())


@pytest.mark.heavy
def test_two_arms_two_seeds_write_everything_and_pretraining_wins(
    tmp_path: Path, digits_npz: Path, one_thread: None
) -> None:
    cfg = load_config_text(_config(digits_npz, tmp_path))
    out = io.StringIO()
    result = run_experiment(cfg, console=Console(file=out, width=150), progress=True)
    exp = tmp_path / "digits"
    assert result.output_dir == exp and len(result.runs) == 4
    for arm in ("simclr", "random-init"):
        for seed in (0, 1):
            run_dir = exp / arm / f"seed-{seed}"
            assert all((run_dir / f).is_file() for f in FILES), sorted(run_dir.iterdir())
            conf = yaml.safe_load((run_dir / "config.yaml").read_text())
            assert conf["seed"] == seed and conf["encoder"]["id"] == "core:mlp"
            assert conf["train"]["batch_size"] == 128  # resolved, defaults filled in
            env = json.loads((run_dir / "env.json").read_text())
            assert env["torch"] == torch.__version__ and env["hardware"]["world_size"] == 1
            assert env["plugins"]["core"]["status"] == "active"
            emb = np.load(run_dir / "embeddings.npz")
            assert emb["features"].shape == (359, 16) and emb["labels"].shape == (359,)
            res = json.loads((run_dir / "results.json").read_text())
            assert res["status"] == "ok" and res["arm"] == arm and res["seed"] == seed
            assert {"knn_acc", "linear_acc"} <= res["metrics"].keys()
    trained = json.loads((exp / "simclr" / "seed-0" / "results.json").read_text())
    # 1259 train items // 128 = 9 steps per epoch.
    assert trained["epochs"] == 8 and trained["steps"] == 72 and trained["items_per_s"] > 0
    assert (exp / "simclr" / "seed-1" / "checkpoints" / "last.pt").is_file()
    assert not (exp / "random-init" / "seed-0" / "checkpoints").exists()

    rows = {row["arm"]: row for row in result.summary()}
    assert rows.keys() == {"simclr", "random-init"}
    _, std, n = rows["simclr"]["knn_acc"]
    assert n == 2 and std >= 0
    md = (exp / "results.md").read_text()
    assert "| simclr |" in md and "| random-init |" in md and " ± " in md
    summary = json.loads((exp / "results.json").read_text())
    assert summary["arms"][0]["knn_acc"]["n"] == 2 and len(summary["runs"]) == 4
    assert "knn_acc" in out.getvalue() and "epoch 8/8" in out.getvalue()

    # SimCLR features beat the same encoder at random init (measured: kNN 0.90 vs 0.72,
    # linear 0.92 vs 0.70 on digits' stratified 20% test split, seeds 0 and 1).
    for metric in ("knn_acc", "linear_acc"):
        assert rows["simclr"][metric][0] > rows["random-init"][metric][0] + 0.08, metric

    # Resuming a finished experiment skips every run; a fresh start is refused.
    again = run_experiment(cfg, resume=True, console=Console(file=io.StringIO()))
    assert [r["metrics"] for r in again.runs] == [r["metrics"] for r in result.runs]
    with pytest.raises(RunDirExistsError, match=r"seed-0 exists and is not empty.*--resume"):
        run_experiment(cfg, console=Console(file=io.StringIO()))


def test_unknown_id_errors_with_the_choices(tmp_path: Path, digits_npz: Path) -> None:
    text = _config(digits_npz, tmp_path).replace("id: core:mlp", "id: core:mpl")
    with pytest.raises(UnknownIdError) as info:
        run_experiment(load_config_text(text), console=Console(file=io.StringIO()))
    msg = str(info.value)
    assert "'core:mpl'" in msg and "Did you mean 'core:mlp'" in msg and "core:mlp" in msg
    assert not (tmp_path / "digits").exists()  # nothing ran


def test_baseline_arm_exists_and_arm_names_are_safe_paths(digits_npz: Path) -> None:
    from selfsup.config import expand_arms

    cfg = load_config_text(_config(digits_npz, Path("unused"), matrix="{train.epochs: [1, 2]}"))
    names = [arm.name for arm in expand_arms(cfg)]
    assert names == ["simclr[epochs=1]", "simclr[epochs=2]", "random-init"]
    assert safe_dir_name("simclr[epochs=1]") == "simclr_epochs=1"
    assert safe_dir_name("a/b c") == "a_b_c" and safe_dir_name("..") == "arm"


def test_train_threads_sets_torch_threads(
    tmp_path: Path, digits_npz: Path, one_thread: None
) -> None:
    from selfsup.config import ConfigError

    text = _config(digits_npz, tmp_path, baseline="false").replace("[0, 1]", "[0]")
    text = text.replace("  epochs: 8\n", "  epochs: 1\n  threads: 2\n")
    assert torch.get_num_threads() == 1  # the fixture's setting (restored after the test)
    run_experiment(load_config_text(text), console=Console(file=io.StringIO()), progress=False)
    assert torch.get_num_threads() == 2
    with pytest.raises(ConfigError, match=r"train\.threads"):
        load_config_text(text.replace("threads: 2", "threads: 0"))


def test_more_epochs_on_resume_follow_the_longer_schedule(
    tmp_path: Path, digits_npz: Path, one_thread: None
) -> None:
    """A finished run continued to more epochs trains the added steps at the learning
    rates of a run planned for the new total, not at the old cosine's final 0.0."""

    def config(out: Path, epochs: int) -> ExperimentConfig:
        text = _config(digits_npz, out, baseline="false").replace("[0, 1]", "[0]")
        text = text.replace("[core:knn, core:linear-probe]", "[core:knn]")
        return load_config_text(text.replace("epochs: 8", f"epochs: {epochs}\n  log_every: 1"))

    def lrs(root: Path) -> dict[int, float]:
        records = read_metrics(root / "digits" / "simclr" / "seed-0" / "metrics.jsonl")
        return {r["step"]: r["lr"] for r in records if "epoch" not in r}

    quiet = Console(file=io.StringIO())
    run_experiment(config(tmp_path / "a", 2), console=quiet, progress=False)
    assert lrs(tmp_path / "a")[18] > 0  # 9 steps per epoch; the 2-epoch cosine ends next
    run_experiment(config(tmp_path / "a", 4), resume=True, console=quiet, progress=False)
    run_experiment(config(tmp_path / "b", 4), console=quiet, progress=False)
    a, b = lrs(tmp_path / "a"), lrs(tmp_path / "b")
    assert a.keys() == b.keys() == set(range(1, 37))
    assert a[12] < b[12]  # the first two epochs ran on the 2-epoch plan
    for step in range(19, 37):
        assert a[step] == pytest.approx(b[step], rel=1e-6) and a[step] > 0, step
    conf = yaml.safe_load(
        (tmp_path / "a" / "digits" / "simclr" / "seed-0" / "config.yaml").read_text()
    )
    assert conf["train"]["epochs"] == 2  # what the first two epochs ran with


@pytest.mark.heavy
@pytest.mark.distributed
def test_ddp_two_processes_on_gloo(tmp_path: Path, digits_npz: Path) -> None:
    cfg = tmp_path / "ddp.yaml"
    text = _config(digits_npz, tmp_path / "runs", baseline="false")
    text = text.replace("seeds: [0, 1]", "seeds: [0]").replace("epochs: 8", "epochs: 2")
    cfg.write_text(
        text.replace("evaluators: [core:knn, core:linear-probe]", "evaluators: [core:knn]")
    )
    proc = torchrun_selfsup(cfg)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = tmp_path / "runs" / "digits" / "simclr" / "seed-0"
    res = json.loads((run_dir / "results.json").read_text())
    env_json = json.loads((run_dir / "env.json").read_text())
    assert res["status"] == "ok" and env_json["hardware"]["world_size"] == 2
    # Each rank reads half of the 1259 train items: 629 // 128 = 4 steps per epoch.
    assert res["steps"] == 8 and res["epochs"] == 2
    assert 0.5 < res["metrics"]["knn_acc"] <= 1.0
