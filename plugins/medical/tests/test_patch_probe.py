"""The patch-region linear probe: labels, the raw baseline, protocol, bad inputs."""

from __future__ import annotations

import pytest
import torch
from selfsup.components import get_component
from selfsup.interfaces import DataSplits, EvalContext
from selfsup.runtime import Runtime
from selfsup.testing import check_evaluator


def test_patch_labels_take_the_majority_foreground_region() -> None:
    from selfsup_medical.evaluators.patch_probe import patch_labels

    y = torch.zeros(1, 4, 4, 8, dtype=torch.long)
    y[0, :, :, :4] = 2  # first cube: all region 2
    y[0, :1, :, 4:] = 3  # second cube: a quarter region 3, rest background
    labels = patch_labels(y, patch=4, min_foreground=0.5, num_classes=4)
    assert labels.tolist() == [[2, -1]]
    assert patch_labels(y, 4, 0.2, 4).tolist() == [[2, 3]]


def test_probe_on_colin_reports_embeddings_and_raw_baseline(colin) -> None:
    enc = get_component("encoder", "medical:resnet3d").create(depth=10, width=8)
    spec = get_component("evaluator", "medical:patch-probe")
    metrics = check_evaluator(spec, enc, colin, max_items=8, c_grid=[0.1, 1.0])
    assert set(metrics) == {
        "patch_acc", "patch_balanced_acc", "raw_patch_acc", "raw_patch_balanced_acc",
    }  # fmt: skip
    # 7 regions: the raw-intensity probe is better than chance on real anatomy
    assert metrics["raw_patch_balanced_acc"] > 1 / 7


def test_probe_records_cube_counts_and_selection(colin) -> None:
    from selfsup_medical.evaluators.patch_probe import PatchProbe

    enc = get_component("encoder", "medical:resnet3d").create(depth=10, width=8)
    ctx = EvalContext(runtime=Runtime(torch.device("cpu")))
    PatchProbe(max_items=4, c_grid=(1.0,)).evaluate(enc, colin, ctx)
    protocol = ctx.facts["protocol"]
    assert protocol["cubes"]["fit"] > 0 and protocol["cubes"]["test"] > 0
    assert "validation" in protocol["selection"]


def test_bad_patch_and_task_are_named(colin) -> None:
    from selfsup_medical.evaluators.patch_probe import PatchProbe

    enc = get_component("encoder", "medical:resnet3d").create(depth=10, width=8)
    ctx = EvalContext(runtime=Runtime(torch.device("cpu")))
    with pytest.raises(ValueError, match="patch=12 must divide"):
        PatchProbe(patch=12, max_items=2).evaluate(enc, colin, ctx)
    flat = DataSplits(train=[(torch.rand(1, 8, 8, 8), 0)], test=[], num_classes=2)
    with pytest.raises(ValueError, match="needs a segmentation dataset"):
        PatchProbe().evaluate(enc, flat, ctx)
    with pytest.raises(ValueError, match="c_grid"):
        PatchProbe(c_grid=())
