"""The generic core components (core:arrays, core:mlp, core:noise-mask) and the metrics log."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from selfsup.builtin.datasets import ArrayDataset, stratified_split
from selfsup.builtin.encoders import MLP
from selfsup.builtin.views import NoiseMask
from selfsup.engine.metrics import MetricsLog, read_metrics
from selfsup.plugins import PluginManager
from sklearn.datasets import load_digits


def test_core_registers_the_generic_components() -> None:
    pm = PluginManager()
    assert pm.get("dataset", "core:arrays").modality == "any"
    assert pm.get("encoder", "core:mlp").create(in_dim=4).embed_dim == 128
    assert pm.get("views", "core:noise-mask").create(n_views=3).n_views == 3
    assert pm.get("routine", "core:minibatch").create(drop_last=False).drop_last is False


# --------------------------------------------------------------------------- core:arrays


def test_arrays_on_real_digits_with_stratified_splits(tmp_path: Path) -> None:
    digits = load_digits()
    path = tmp_path / "digits.npz"
    np.savez(path, x=digits.images.astype("float32"), y=digits.target)
    splits = ArrayDataset(str(path), val_fraction=0.1, test_fraction=0.2, split_seed=3)
    n = len(splits.train) + len(splits.val) + len(splits.test)
    assert n == 1797 and splits.num_classes == 10
    x, y = splits.test[0]
    assert x.dtype == torch.float32 and x.shape == (8, 8) and y.dtype == torch.int64
    test_y = splits.test.tensors[1].numpy()
    share = np.bincount(test_y, minlength=10) / len(test_y)
    full = np.bincount(digits.target, minlength=10) / 1797
    assert np.abs(share - full).max() < 0.01  # class proportions kept
    again = ArrayDataset(str(path), split_seed=3)
    assert torch.equal(again.val.tensors[0], splits.val.tensors[0])  # deterministic
    other = ArrayDataset(str(path), split_seed=4)
    assert not torch.equal(other.val.tensors[0], splits.val.tensors[0])


def test_arrays_explicit_splits_and_standardize(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "a.npz"
    np.savez(
        path,
        x=rng.normal(5, 3, size=(50, 4)),
        y=np.arange(50) % 2,
        x_test=rng.normal(5, 3, size=(10, 4)),
        y_test=np.zeros(10),
    )
    splits = ArrayDataset(str(path), val_fraction=0.2, standardize=True)
    assert len(splits.test) == 10 and len(splits.val) == 10 and len(splits.train) == 40
    train_x = splits.train.tensors[0]
    assert torch.allclose(train_x.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(train_x.std(0, unbiased=False), torch.ones(4), atol=1e-4)


def test_arrays_errors_name_the_file_and_the_keys(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.npz does not exist.*data\.params\.path"):
        ArrayDataset(str(tmp_path / "nope.npz"))
    path = tmp_path / "bad.npz"
    np.savez(path, features=np.zeros((4, 2)), x_val=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"bad\.npz lacks key\(s\) x, y, y_val.*found: features"):
        ArrayDataset(str(path))
    np.savez(path, x=np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(ValueError, match="x has 4 rows but y has 3"):
        ArrayDataset(str(path))
    (tmp_path / "junk.npz").write_text("hello")
    with pytest.raises(ValueError, match=r"junk\.npz is not a readable \.npz"):
        ArrayDataset(str(tmp_path / "junk.npz"))
    np.savez(path, x=np.zeros((4, 2)), y=np.zeros(4))
    with pytest.raises(ValueError, match="sum to less than 1"):
        ArrayDataset(str(path), val_fraction=0.5, test_fraction=0.5)


class _Evil:
    """Unpickling this creates a folder: proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        import os

        return (os.mkdir, (str(self.marker),))


def test_arrays_never_unpickles_and_names_bad_values(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = np.empty((2, 1), dtype=object)
    evil[0, 0] = _Evil(marker)
    path = tmp_path / "evil.npz"
    np.savez(path, x=evil, y=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"array 'x' holds Python objects.*never unpickles"):
        ArrayDataset(str(path))
    assert not marker.exists()
    x = np.zeros((6, 2))
    x[3, 1] = np.inf
    np.savez(path, x=x, y=np.arange(6) % 2)
    with pytest.raises(ValueError, match=r"'x' holds 1 non-finite value\(s\).*index \(3, 1\)"):
        ArrayDataset(str(path))
    np.savez(path, x=np.zeros((6, 2)), y=np.full(6, 4))
    with pytest.raises(ValueError, match=r"y has 1 class \(4\).*at least 2"):
        ArrayDataset(str(path))


def test_stratified_split_keeps_every_index_once() -> None:
    labels = np.repeat(np.arange(3), [10, 20, 30])
    train, val, test = stratified_split(labels, (0.1, 0.2), seed=0)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(60))
    assert np.bincount(labels[test]).tolist() == [2, 4, 6]


# --------------------------------------------------------------------------- core:mlp


def test_mlp_shapes_norms_and_input_check() -> None:
    for norm in ("batch", "layer", "none"):
        enc = MLP(in_dim=64, widths=(32, 16), embed_dim=8, norm=norm, activation="gelu")
        out = enc(torch.randn(5, 8, 8))
        assert out.pooled.shape == (5, 8) and [h.shape[1] for h in out.hidden_states] == [32, 16, 8]
        out.pooled.sum().backward()
        assert all(p.grad is not None for p in enc.parameters())
    with pytest.raises(ValueError, match=r"in_dim=64.*100 features.*in_dim=100"):
        MLP(in_dim=64)(torch.randn(2, 100))
    with pytest.raises(ValueError, match="norm='group'"):
        MLP(in_dim=4, norm="group")


# --------------------------------------------------------------------------- core:noise-mask


def test_noise_mask_corrupts_a_fraction_of_features() -> None:
    torch.manual_seed(0)
    x = torch.arange(2000, dtype=torch.float32).reshape(200, 10)
    v1, v2 = NoiseMask(mask_prob=0.3, noise_std=0.0)(x)
    changed = (v1 != x).float().mean().item()
    assert 0.25 < changed < 0.32  # 30% masked, a few replaced by their own value
    assert not torch.equal(v1, v2)
    # Shuffle fills come from the same column of other rows (the feature's marginal).
    assert torch.all((v1 - x) % 10 == 0)
    zeros = NoiseMask(mask_prob=1.0, replace="zero", noise_std=0.0)(x)[0]
    assert torch.count_nonzero(zeros) == 0
    same = NoiseMask(n_views=1, mask_prob=0.0, noise_std=0.0)(x.reshape(200, 2, 5))
    assert len(same) == 1 and torch.equal(same[0], x.reshape(200, 2, 5))
    noisy = NoiseMask(mask_prob=0.0, noise_std=0.5)(torch.zeros(4000, 5))[0]
    assert noisy.std().item() == pytest.approx(0.5, rel=0.05)
    with pytest.raises(TypeError, match="floating-point"):
        NoiseMask()(torch.ones(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="replace='swap'"):
        NoiseMask(replace="swap")


# --------------------------------------------------------------------------- metrics log


def test_metrics_log_appends_and_survives_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "m" / "metrics.jsonl"
    log = MetricsLog(path)
    log.write({"step": 1, "loss": torch.tensor(2.5), "bad": float("nan")})
    log.close()
    with path.open("a") as handle:
        handle.write('{"step": 2, "lo')  # a run killed mid-write
    MetricsLog(path).write({"step": 3, "loss": 1.0})
    assert read_metrics(path) == [{"step": 1, "loss": 2.5, "bad": "nan"}, {"step": 3, "loss": 1.0}]
    assert json.loads(path.read_text().splitlines()[-1]) == {"step": 3, "loss": 1.0}
    MetricsLog(tmp_path / "off.jsonl", enabled=False).write({"step": 1})
    assert not (tmp_path / "off.jsonl").exists() and read_metrics(tmp_path / "off.jsonl") == []


def test_read_metrics_names_every_skipped_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(
        b'{"step": 1, "loss": 2.0}\n'
        b"garbage line\n"
        b"\n"  # blank lines are not records and not warned about
        b"[1, 2]\n"
        b"\xff\xfe not utf-8\n"
        b'{"step": 2, "loss": 1.5}\n'
        b'{"step": 3, "lo'
    )
    warnings: list[str] = []
    records = read_metrics(path, warnings=warnings)
    assert records == [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}]
    assert [w.split(": ", 1)[0] for w in warnings] == [
        f"{path}:2",
        f"{path}:4",
        f"{path}:5",
        f"{path}:7",
    ]
    assert "not JSON" in warnings[0] and warnings[0].endswith("skipped")
    assert "not a JSON object (a list)" in warnings[1]
    assert "not UTF-8 text" in warnings[2]
    assert "torn by a killed run" in warnings[3]
    assert read_metrics(path) == records  # without a list: the same records, silently
