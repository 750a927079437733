"""The example third-party plugin (examples/third_party_plugin) installs and works.

It is installed by ``scripts/setup.sh`` (``pip install -e examples/third_party_plugin``).
Without it these tests skip with the install line, except under ``CI=true``, where
a missing example plugin is a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from selfsup.testing import (
    check_dataset,
    check_encoder,
    check_objective,
    check_views,
    contract_cases,
    make_batch,
)

ROOT = Path(__file__).resolve().parents[1]
INSTALLED = importlib.util.find_spec("selfsup_ecg_example") is not None
IN_CI = os.environ.get("CI", "").lower() == "true"
REASON = (
    "the example plugin is not installed: "
    f"pip install -e {ROOT / 'examples' / 'third_party_plugin'} (scripts/setup.sh does it)"
)

if not INSTALLED and not IN_CI:
    pytest.skip(REASON, allow_module_level=True)


def test_installed() -> None:
    assert INSTALLED, REASON


def test_selfsup_plugins_shows_it_active() -> None:
    exe = Path(sys.executable).with_name("selfsup")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "selfsup"]
    out = subprocess.run(
        [*command, "plugins", "--json"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    rows = {row["name"]: row for row in json.loads(out.stdout)}
    assert "ecg" in rows, f"plugin 'ecg' not found; installed: {sorted(rows)}"
    ecg = rows["ecg"]
    assert ecg["status"] == "active", ecg["message"]
    assert (ecg["distribution"], ecg["version"]) == ("selfsup-ecg-example", "0.1.0")
    assert ecg["hooks"] == [
        "register_commands",
        "register_datasets",
        "register_encoders",
        "register_views",
    ]


ENCODERS = contract_cases(None, "ecg", "encoder") if INSTALLED else []
VIEWS = contract_cases(None, "ecg", "views") if INSTALLED else []
DATASETS = contract_cases(None, "ecg", "dataset") if INSTALLED else []


def test_it_registers_every_kind_it_promises() -> None:
    assert [p.id for p in ENCODERS + VIEWS + DATASETS] == [
        "ecg:cnn1d",
        "ecg:jitter-scale",
        "ecg:npy-folder",
    ]


@pytest.mark.parametrize("spec", ENCODERS)
def test_encoder_contract(spec) -> None:
    check_encoder(spec, make_batch("ecg", batch_size=3), width=8, embed_dim=16)


@pytest.mark.parametrize("spec", VIEWS)
def test_views_contract_and_a_core_objective_on_top(spec, selfsup_pm) -> None:
    views = check_views(spec, make_batch("ecg", batch_size=6))
    encoder = selfsup_pm.get("encoder", "ecg:cnn1d").create(width=8, embed_dim=16)
    check_objective(selfsup_pm.get("objective", "core:vicreg"), encoder, views)


@pytest.mark.parametrize("spec", DATASETS)
def test_dataset_contract(spec, tmp_path) -> None:
    np.save(tmp_path / "signals.npy", np.random.default_rng(0).normal(size=(30, 12, 64)))
    np.save(tmp_path / "labels.npy", np.arange(30) % 2)
    data = check_dataset(spec, root=str(tmp_path))
    assert data.num_classes == 2 and data.meta["leads"] == 12
