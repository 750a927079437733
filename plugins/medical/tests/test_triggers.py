"""``medical:patch3d`` and ``medical:colin27-patches``: the 3-D backdoor trigger.

Unit tests on synthetic volumes (shapes and protocol only), then the security plugin's
poisoning transform and backdoor evaluator on the real Colin27 cubes (reached through
the registry: this plugin never imports selfsup_security), then a small learning check.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from selfsup import DataSplits
from selfsup.testing import load_plugins
from selfsup_medical.triggers import Patch3D
from torch.utils.data import TensorDataset


def _volumes(n: int = 6, side: int = 8) -> DataSplits:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(n, 1, side, side, side, generator=gen)
    return DataSplits(train=TensorDataset(x, torch.arange(n) % 3), num_classes=3, modality="volume")


def _security():
    """The registry with selfsup-security's trigger kind open, or a skip."""
    pm = load_plugins(strict=False)
    info = pm.infos.get("security")
    if info is None or info.status != "active":
        pytest.skip("selfsup-security is not installed: the trigger kind is not open")
    return pm.registry


# ----------------------------------------------------------------------------- unit


def test_only_chosen_items_change_labels_kept_input_untouched() -> None:
    data = _volumes()
    before = data.train.tensors[0].clone()
    out = Patch3D(size=3).apply(data, "train", torch.tensor([1, 4]), seed=0)
    assert torch.equal(data.train.tensors[0], before)  # input never mutated
    for i in range(6):
        x, y = out.train[i]
        x0, y0 = data.train[i]
        assert int(y) == int(y0)
        changed = (x != x0).sum().item()
        if i in (1, 4):
            assert 0 < changed <= 27
        else:
            assert changed == 0
    assert len(out.train) == 6


def test_cube_levels_and_pattern() -> None:
    x = torch.linspace(0, 1, 8**3).reshape(1, 8, 8, 8)
    data = DataSplits(train=[(x, 0)], num_classes=1, modality="volume")
    out = Patch3D(size=2, pattern="checkerboard", position="corner", high=100, low=0).apply(
        data, "train", torch.tensor([0]), seed=0
    )
    cube = out.train[0][0][0, :2, :2, :2]
    assert cube[0, 0, 0] == 1.0 and cube[0, 0, 1] == 0.0 and cube[1, 1, 0] == 1.0
    const = Patch3D(size=2, pattern="constant", position="center", high=50).stamp(
        x, torch.Generator()
    )
    assert torch.allclose(
        const[0, 3:5, 3:5, 3:5], torch.quantile(x.reshape(-1), 0.5).expand(2, 2, 2)
    )


def test_deterministic_by_seed_and_random_positions_vary() -> None:
    data = _volumes()
    index = torch.arange(6)
    trig = Patch3D(size=2, position="random")
    a = torch.stack([trig.apply(data, "train", index, seed=3).train[i][0] for i in range(6)])
    b = torch.stack([trig.apply(data, "train", index, seed=3).train[i][0] for i in range(6)])
    c = torch.stack([trig.apply(data, "train", index, seed=4).train[i][0] for i in range(6)])
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    where = [tuple((a[i] != data.train[i][0]).nonzero()[0].tolist()) for i in range(6)]
    assert len(set(where)) > 1  # a seeded place per item


def test_empty_index_returns_the_data() -> None:
    data = _volumes()
    assert Patch3D().apply(data, "train", torch.tensor([], dtype=torch.long), seed=0) is data


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 0}, "size=0"),
        ({"pattern": "stripes"}, "pattern='stripes'"),
        ({"position": "left"}, "position='left'"),
        ({"low": 90, "high": 10}, "low=90"),
    ],
)
def test_bad_params_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Patch3D(**kwargs)


def test_cube_bigger_than_volume_and_2d_inputs_fail_clearly() -> None:
    with pytest.raises(ValueError, match=r"size=9 is larger than the volume \(8x8x8"):
        Patch3D(size=9).apply(_volumes(), "train", torch.tensor([0]), seed=0)
    flat = DataSplits(train=TensorDataset(torch.rand(2, 1, 8, 8), torch.zeros(2)), num_classes=1)
    with pytest.raises(ValueError, match=r"volumes \[C, D, H, W\].*image trigger"):
        Patch3D(size=2).apply(flat, "train", torch.tensor([0]), seed=0)
    with pytest.raises(IndexError, match="out of range"):
        Patch3D(size=2).apply(_volumes(), "train", torch.tensor([6]), seed=0)


def test_registered_under_the_security_trigger_kind() -> None:
    registry = _security()
    spec = registry.get("trigger", "medical:patch3d")
    assert spec.modality == "volume" and spec.plugin == "medical"
    assert type(spec).__name__ == "TriggerSpec"  # converted to security's record
    assert registry.get("dataset", "medical:colin27-patches").plugin == "medical"


def test_no_import_of_the_security_plugin() -> None:
    src = Path(__file__).parents[1] / "src" / "selfsup_medical"
    for name in ("triggers.py", "region_patches.py", "plugin.py"):
        assert "selfsup_security" not in (src / name).read_text()


# ------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def cubes(colin: DataSplits) -> DataSplits:
    """``medical:colin27-patches`` (16^3, stride 8) from the session's Colin27 volume."""
    from selfsup_medical.region_patches import patches_of

    return patches_of(colin, patch=16, stride=8)


def test_colin27_patches_splits(cubes: DataSplits) -> None:
    assert cubes.task == "classification" and cubes.num_classes == 7
    for name in ("train", "val", "test"):
        labels = cubes.split(name).tensors[1]
        assert len(labels.unique()) == 7, name  # every region in every split
    x, y = cubes.train[0]
    assert x.shape == (1, 16, 16, 16) and 0 <= int(y) < 7
    left = cubes.meta["cube_starts"]["train"]
    assert len(left) == len(cubes.train)


def test_colin27_patches_bad_params(mricron_root: Path) -> None:
    from selfsup_medical.region_patches import colin27_patches

    with pytest.raises(ValueError, match=r"val_fraction=1\.5"):
        colin27_patches(root=str(mricron_root), val_fraction=1.5)
    with pytest.raises(FileNotFoundError):
        colin27_patches(root="/nonexistent/mricron")


def test_poison_and_backdoor_on_colin27(cubes: DataSplits) -> None:
    """security:poison + security:backdoor with medical:patch3d on the real cubes."""
    _security()
    from selfsup.components import build_component
    from selfsup.interfaces import EvalContext
    from selfsup.runtime import Runtime

    trigger = {"id": "medical:patch3d", "params": {"size": 4}}
    poison = build_component(
        "transform",
        {"id": "security:poison", "params": {"trigger": trigger, "target": 0, "rate": 0.1}},
    )
    out = poison(cubes, seed=0)
    flags = out.flag("train", "poisoned").bool()
    labels = cubes.train.tensors[1]
    assert int(flags.sum()) == round(0.1 * len(labels)) and bool((labels[flags] == 0).all())
    for i in range(len(labels)):
        x, y = out.train[i]
        assert int(y) == int(labels[i])
        assert torch.equal(x, cubes.train[i][0]) != bool(flags[i])
    assert poison.summary()["trigger"] == "Patch3D" and poison.summary()["size"] == 4

    backdoor = build_component(
        "evaluator", {"id": "security:backdoor", "params": {"trigger": trigger, "target": 0}}
    )
    encoder = build_component(
        "encoder", {"id": "medical:unet-encoder", "params": {"channels": [8, 16]}}
    )
    ctx = EvalContext(runtime=Runtime(torch.device("cpu")), seed=0, name="backdoor")
    metrics = backdoor.evaluate(encoder, out, ctx)
    assert set(metrics) >= {"ca", "asr", "asr_all_ctrl", "target_rate_clean", "poison_rate"}
    assert 0.0 <= metrics["asr"] <= 1.0 and metrics["ca"] > 1 / 7  # above chance at random init
    assert metrics["poison_rate"] == pytest.approx(int(flags.sum()) / len(labels))
    threat = ctx.facts["threat_model"]
    assert threat["modality"] == "volume" and threat["trigger"]["trigger"] == "Patch3D"
    assert threat["poisoned"]["of_target_class"] == int(flags.sum())
