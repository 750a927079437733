"""Data transforms: the core ones, and ``data.transforms`` through check and run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from selfsup import DataSplits, load_config_text, run_experiment
from selfsup.builtin.transforms import LabelNoise, Subsample
from selfsup.testing import core_manager
from torch.utils.data import TensorDataset


def _data(n: int = 200, classes: int = 4) -> DataSplits:
    x = torch.randn(n, 6)
    y = torch.arange(n) % classes
    return DataSplits(
        train=TensorDataset(x, y), test=TensorDataset(x[:20], y[:20]), num_classes=classes
    )


def test_subsample_keeps_a_seeded_part_and_slices_flags() -> None:
    data = _data().with_flags("train", marked=torch.arange(200) < 50)
    out = Subsample(fraction=0.25)(data, seed=3)
    again = Subsample(fraction=0.25)(data, seed=3)
    other = Subsample(fraction=0.25)(data, seed=4)
    assert len(out.train) == 50 and len(data.train) == 200  # the input is untouched
    assert out.train.indices == again.train.indices != other.train.indices
    kept = torch.tensor(out.train.indices)
    assert torch.equal(out.flag("train", "marked"), kept < 50)


def test_subsample_stratified_keeps_every_class_and_refuses_unlabelled_data() -> None:
    out = Subsample(fraction=0.1, stratified=True)(_data(), seed=0)
    labels = torch.stack([out.train[i][1] for i in range(len(out.train))])
    assert sorted(labels.unique().tolist()) == [0, 1, 2, 3]
    unlabelled = DataSplits(train=TensorDataset(torch.randn(10, 2), torch.full((10,), -1)))
    with pytest.raises(ValueError, match="stratified=true needs class labels"):
        Subsample(fraction=0.5, stratified=True)(unlabelled, seed=0)


def test_label_noise_flips_the_stated_fraction_to_other_classes_and_flags_them() -> None:
    data = _data(400)
    transform = LabelNoise(rate=0.25)
    out = transform(data, seed=1)
    old = data.train.tensors[1]
    new = torch.stack([out.train[i][1] for i in range(400)])
    flipped = new != old
    assert int(flipped.sum()) == 100 == transform.summary()["flipped"]
    assert torch.equal(out.flag("train", "label_noise"), flipped)
    assert torch.equal(out.train[5][0], data.train[5][0])  # items unchanged, labels only
    with pytest.raises(ValueError, match="at least two classes"):
        LabelNoise()(DataSplits(train=TensorDataset(torch.randn(4, 2), torch.zeros(4))), 0)


def test_a_graph_like_split_is_refused_with_the_way_out() -> None:
    class Graph:
        num_nodes = 10

    with pytest.raises(ValueError, match="not a list of items"):
        Subsample(fraction=0.5)(DataSplits(train=Graph()), seed=0)


CONFIG = """
name: noisy
seeds: [0]
output_dir: {out}
baseline: false
data:
  id: core:arrays
  params: {{path: {npz}}}
  transforms: [{{id: core:label-noise, params: {{rate: 0.3}}}}]
encoder: {{id: core:mlp, params: {{in_dim: 8, widths: [16], embed_dim: 8}}}}
views: core:noise-mask
objective: core:simclr
evaluators: [core:linear-probe]
train: {{epochs: 1, batch_size: 64, progress: false}}
arms:
  - {{name: noisy}}
  - {{name: clean, data: {{transforms: []}}}}
"""


def test_transforms_run_per_arm_and_are_recorded(tmp_path: Path, cli_runner) -> None:
    rng = np.random.default_rng(0)
    npz = tmp_path / "data.npz"
    np.savez(npz, x=rng.normal(size=(300, 8)).astype("float32"), y=np.arange(300) % 3)
    text = CONFIG.format(out=tmp_path / "runs", npz=npz)
    config = tmp_path / "exp.yaml"
    config.write_text(text)

    checked = cli_runner.invoke(["check", str(config)])
    assert checked.exit_code == 0, checked.output
    assert "core:label-noise" in checked.output

    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("rate: 0.3", "rate: 1.5"))
    refused = cli_runner.invoke(["check", str(bad)])
    assert refused.exit_code != 0
    assert "data.transforms[0].params.rate = 1.5" in refused.output

    result = run_experiment(load_config_text(text), pm=core_manager(), progress=False)
    runs = {r["arm"]: r for r in result.runs}
    assert runs["noisy"]["status"] == runs["clean"]["status"] == "ok"
    assert runs["noisy"]["transforms"][0]["summary"]["flipped"] > 0
    assert "transforms" not in runs["clean"]
    recorded = json.loads((tmp_path / "runs/noisy/noisy/seed-0/transforms.json").read_text())
    assert recorded[0]["id"] == "core:label-noise" and recorded[0]["params"] == {"rate": 0.3}
    assert not (tmp_path / "runs/noisy/clean/seed-0/transforms.json").exists()
