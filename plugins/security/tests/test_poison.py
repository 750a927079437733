"""security:poison: which items it picks, both rate conventions, flags, refusals."""

from __future__ import annotations

import pytest
import selfsup
import torch
from selfsup import DataSplits
from selfsup_security.transforms import Poison
from selfsup_security.triggers.base import ItemTrigger
from selfsup_security.triggers.image import CTRL, Patch
from torch.utils.data import TensorDataset


class Mark(ItemTrigger):
    """Sets every input of a stamped item to 1 (easy to find afterwards)."""

    modality = "image"

    def stamp(self, x, generator):
        return torch.ones_like(x)


def _data(n: int = 200, classes: int = 4) -> DataSplits:
    y = torch.arange(n) % classes
    return DataSplits(train=TensorDataset(torch.zeros(n, 1, 4, 4), y), num_classes=classes)


def _stamped(data: DataSplits) -> torch.Tensor:
    return torch.tensor([bool(data.train[i][0].min() == 1) for i in range(len(data.train))])


@pytest.mark.parametrize(
    ("rate", "rate_of", "count"),
    [
        (0.05, "dataset", 10),
        (0.2, "dataset", 40),
        (0.2, "target-class", 10),
        (1.0, "target-class", 50),
    ],
)
def test_poisons_only_target_class_items_in_both_conventions(rate, rate_of, count):
    data = _data()
    poison = Poison(Mark(), target=2, rate=rate, rate_of=rate_of)
    out = poison(data, seed=0)
    flags = out.flag("train", "poisoned")
    assert flags.dtype == torch.bool and flags.shape == (200,)
    assert int(flags.sum()) == count
    assert torch.equal(flags, _stamped(out))  # flags align with the stamped items
    assert (data.train.tensors[1][flags] == 2).all()  # target class only (clean label)
    assert not _stamped(data).any()  # the input is never modified
    s = poison.summary()
    assert s["count"] == count and s["target"] == 2 and s["rate_of"] == rate_of
    assert s["rate_of_dataset"] == pytest.approx(count / 200)
    assert s["rate_of_target_class"] == pytest.approx(count / 50)
    assert s["items"] == 200 and s["target_class_items"] == 50 and s["trigger"] == "Mark"


def test_choice_is_seeded():
    data = _data()
    pick = [
        Poison(Mark(), target=1, rate=0.1)(data, seed=s).flag("train", "poisoned")
        for s in (0, 0, 1)
    ]
    assert torch.equal(pick[0], pick[1]) and not torch.equal(pick[0], pick[2])


def test_refuses_rates_the_target_class_cannot_give():
    with pytest.raises(ValueError, match=r"asks for 60 poisoned items.*only 50 eligible items"):
        Poison(Mark(), target=0, rate=0.3)(_data(), seed=0)
    with pytest.raises(ValueError, match="poisons no item; raise rate"):
        Poison(Mark(), target=0, rate=0.001)(_data(), seed=0)


def test_refuses_unlabelled_data_and_unknown_targets():
    unlabelled = DataSplits(train=TensorDataset(torch.zeros(10, 2), torch.full((10,), -1)))
    with pytest.raises(ValueError, match=r"no class labels.*attacker is assumed to know"):
        Poison(Mark(), target=0, rate=0.1)(unlabelled, seed=0)
    with pytest.raises(ValueError, match="target=7 is not a class"):
        Poison(Mark(), target=7, rate=0.1)(_data(), seed=0)


def test_a_second_poisoning_keeps_the_first_flags():
    data = _data()
    once = Poison(Mark(), target=0, rate=0.05)(data, seed=0)
    twice = Poison(Mark(), target=1, rate=0.05)(once, seed=0)
    flags = twice.flag("train", "poisoned")
    assert int(flags.sum()) == 20 and torch.equal(flags, _stamped(twice))


def test_ctrl_poisoning_of_real_digits_reaches_the_data_loader():
    """The poisoned images are what a DataLoader (the engine's and DataSplits.embed's) reads."""
    data = selfsup.build_component("dataset", {"id": "vision:digits", "params": {"size": 16}})
    poison = Poison(CTRL(magnitude=200.0), target=3, rate=0.02)
    out = poison(data, seed=0)
    flags = out.flag("train", "poisoned")
    n = len(data.train)
    assert int(flags.sum()) == round(0.02 * n) == poison.summary()["count"]
    loader = torch.utils.data.DataLoader(out.train, batch_size=n, collate_fn=out.collate)
    images, labels = next(iter(loader))
    clean = data.train.images
    changed = (images.int() - clean.int()).abs().flatten(1).amax(1) > 0
    assert torch.equal(changed, flags)
    assert (labels[flags] == 3).all() and torch.equal(labels, data.train.labels)
    assert images.dtype == torch.uint8


def test_patch_on_rgb_uint8_items():
    images = torch.full((30, 3, 8, 8), 128, dtype=torch.uint8)
    data = DataSplits(train=TensorDataset(images, torch.arange(30) % 3), num_classes=3)
    out = Poison(Patch(size=2, pattern="white", position="top-left"), 1, 0.2, "target-class")(
        data, 0
    )
    flags = out.flag("train", "poisoned")
    assert int(flags.sum()) == 2
    for i in range(30):
        corner = out.train[i][0][:, :2, :2]
        assert bool((corner == 255).all()) == bool(flags[i])


def test_graph_poisoning_flags_nodes_and_spares_held_out_nodes():
    pytest.importorskip("selfsup_graph")
    from selfsup_security.triggers.graph import NodeFeatures

    data = selfsup.build_component("dataset", "graph:karate")
    n = int(data.train.num_nodes)
    held = torch.cat([data.nodes("val"), data.nodes("test")])
    y = data.train.y
    target = 0
    eligible = int(((y == target).nonzero().reshape(-1)[:, None] != held[None]).all(1).sum())
    poison = Poison(NodeFeatures(num_features=3, columns="random"), target, eligible / n)
    out = poison(data, seed=0)
    flags = out.flag("train", "poisoned")
    assert flags.shape == (n,) and int(flags.sum()) == eligible
    assert (y[flags] == target).all() and not flags[held].any()
    changed = (out.train.x != data.train.x).any(1)
    assert torch.equal(changed, flags)
    with pytest.raises(ValueError, match="eligible items"):
        Poison(NodeFeatures(num_features=3), target, (eligible + 1) / n)(data, seed=0)
