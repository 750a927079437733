"""The plugin's image pathways learn on real data: each beats its encoder at random init.

Runs ``examples/vision/objectives_digits.yaml`` as a user does (``run_experiment``, the
core linear probe, scikit-learn's real handwritten digits, seed 0), restricted to the
objectives whose image pathways are the plugin's own or that the Fashion-MNIST table
uses: Barlow Twins and VICReg (``vision:simclr`` views), BYOL (``vision:byol`` views),
DINO (``vision:multicrop`` global + local crops) and MAE (``vision:mae-mask`` views,
``vision:mae`` on a small ViT). The two random-init baselines (the CNN; the ViT, for
MAE) come from ``baseline: true``. SimCLR has its own test (``test_quality.py``); DCL
and SimSiam are asserted on real digits in the core's objective tests.

Measured when written (linear-probe test accuracy, 450 test digits): random CNN 96.0;
Barlow Twins 98.2, VICReg 98.4, BYOL 98.4, DINO 96.9; random ViT 82.0, MAE 85.1.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from selfsup import load_config_text, run_experiment

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "vision" / "objectives_digits.yaml"
ARMS = ("barlow-twins", "vicreg", "byol", "dino", "mae")
#: Asserted margins over the arm's random-init encoder (points of test accuracy / 100).
MARGINS = {"barlow-twins": 0.01, "vicreg": 0.01, "byol": 0.01, "dino": 0.005, "mae": 0.01}


@pytest.mark.heavy
def test_image_objectives_beat_random_init_on_digits(tmp_path: Path) -> None:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    raw["arms"] = [arm for arm in raw["arms"] if arm["name"] in ARMS]
    raw["evaluators"] = ["core:linear-probe"]
    raw["train"].update(device="cpu", progress=False, checkpoint_every=100)
    cfg = load_config_text(
        yaml.safe_dump(raw), source=str(EXAMPLE), overrides=[f"output_dir={tmp_path}"]
    )
    result = run_experiment(cfg, progress=False)  # one torch thread (conftest)
    acc = {run["arm"]: run["metrics"]["linear_acc"] for run in result.runs}
    assert set(acc) == {*ARMS, "random-init", "random-init[mae]"}, acc
    for arm in ARMS:
        baseline = acc["random-init[mae]" if arm == "mae" else "random-init"]
        assert acc[arm] >= baseline + MARGINS[arm], (arm, acc)
