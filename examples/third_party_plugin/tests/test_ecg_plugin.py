"""Tests of the example plugin, written with selfsup.testing (copy them with the template).

Run with ``pytest examples/third_party_plugin/tests`` once the plugin is installed
(``pip install -e examples/third_party_plugin``). The fixtures ``selfsup_pm``,
``cli_runner`` and ``tiny_batch`` come from selfsup's pytest plugin.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from selfsup.testing import (
    check_dataset,
    check_encoder,
    check_evaluator,
    check_installed_plugin,
    check_listing_is_light,
    check_objective,
    check_views,
    contract_cases,
    make_batch,
)

PLUGIN = "ecg"


def test_installed_and_active(cli_runner) -> None:
    result = cli_runner.invoke(["plugins", "--json"])
    assert result.exit_code == 0, result.output
    ecg = next(row for row in json.loads(result.stdout) if row["name"] == PLUGIN)
    assert ecg["status"] == "active", ecg["message"]
    assert ecg["distribution"] == "selfsup-ecg-example"
    assert ecg["components"] == {"dataset": 1, "encoder": 1, "views": 1}


def test_registers_exactly_its_components() -> None:
    check_installed_plugin(
        PLUGIN,
        distribution="selfsup-ecg-example",
        expected={
            "dataset": {"ecg:npy-folder"},
            "encoder": {"ecg:cnn1d"},
            "views": {"ecg:jitter-scale"},
        },
        modality="ecg",
    )


def test_listing_imports_neither_torch_nor_the_plugin_modules() -> None:
    check_listing_is_light(PLUGIN, heavy=("torch", "numpy"))


@pytest.mark.parametrize("spec", contract_cases(None, PLUGIN, "encoder"))
@pytest.mark.parametrize("leads", [1, 12])
def test_encoder_contract(spec, leads) -> None:
    batch = make_batch("ecg", batch_size=4, shape=(leads, 250))
    _, out = check_encoder(spec, batch, in_channels=leads, width=8, embed_dim=16)
    assert out.tokens.shape[0] == 4 and out.tokens.shape[2] == 16


@pytest.mark.parametrize("spec", contract_cases(None, PLUGIN, "views"))
def test_views_contract(spec, tiny_batch) -> None:
    views = check_views(spec, tiny_batch("ecg", batch_size=4), n_views=3)
    assert len(views) == 3 and not torch.equal(views[0], views[1])


def test_objective_from_core_trains_the_plugin_encoder(selfsup_pm) -> None:
    encoder_spec = selfsup_pm.get("encoder", "ecg:cnn1d")
    encoder = encoder_spec.create(in_channels=12, width=8, embed_dim=16)
    views = selfsup_pm.get("views", "ecg:jitter-scale").create()(make_batch("ecg", batch_size=8))
    for objective in ("core:simclr", "core:barlow-twins"):
        check_objective(selfsup_pm.get("objective", objective), encoder, views)


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    t = np.linspace(0, 1, 200)
    signals = np.stack([np.sin(2 * np.pi * (2 + c) * t) for c in labels])[:, None, :]
    signals = signals + 0.1 * rng.normal(size=signals.shape)
    np.save(tmp_path / "signals.npy", signals.astype("float32"))
    np.save(tmp_path / "labels.npy", labels)
    return tmp_path


@pytest.mark.parametrize("spec", contract_cases(None, PLUGIN, "dataset"))
def test_dataset_contract(spec, folder) -> None:
    data = check_dataset(spec, root=str(folder))
    assert (len(data.train), len(data.val), len(data.test)) == (42, 6, 12)
    assert data.num_classes == 3 and data.meta["samples"] == 200


def test_dataset_missing_folder_names_the_path(selfsup_pm, tmp_path) -> None:
    spec = selfsup_pm.get("dataset", "ecg:npy-folder")
    with pytest.raises(FileNotFoundError, match=r"signals\.npy not found.*data\.params\.root"):
        spec.create(root=str(tmp_path / "nope"))


def test_core_evaluator_on_plugin_data(selfsup_pm, folder) -> None:
    data = selfsup_pm.get("dataset", "ecg:npy-folder").create(root=str(folder))
    encoder = selfsup_pm.get("encoder", "ecg:cnn1d").create(in_channels=1, width=8, embed_dim=16)
    metrics = check_evaluator(selfsup_pm.get("evaluator", "core:knn"), encoder, data, k=5)
    assert 0.0 <= metrics["knn_acc"] <= 1.0


def test_plugin_command(cli_runner, folder) -> None:
    result = cli_runner.invoke(["ecg-info", str(folder)])
    assert result.exit_code == 0, result.output
    assert "60 records, 1 lead(s) x 200 samples" in result.stdout
    assert "classes {0: 20, 1: 20, 2: 20}" in result.stdout
