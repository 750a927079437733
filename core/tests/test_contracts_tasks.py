"""selfsup.testing's dataset and evaluator contracts beyond class labels.

``check_dataset`` checks each item's ``y`` against the dataset's declared task
(segmentation maps of ``label_shape``, multi-label vectors, verification trials, ...);
``check_evaluator`` runs an evaluator with an :class:`EvalContext` and checks the
artefacts it records.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from selfsup import DatasetSpec, DataSplits, Encoder, EncoderOutput, EvaluatorSpec
from selfsup.interfaces import EvalContext
from selfsup.testing import check_dataset, check_evaluator
from torch import nn


def spec(record: type, build: Callable[..., Any], name: str = "thing") -> Any:
    return record(name=name, build=build, plugin="lab")


def pairs(y: Callable[[int], Any], n: int = 6) -> list[tuple[torch.Tensor, Any]]:
    return [(torch.randn(2, 4, 4), y(i)) for i in range(n)]


def dataset(**fields: Any) -> Any:
    """The spec of a dataset that builds ``DataSplits(**fields)``."""
    return spec(DatasetSpec, lambda: DataSplits(**fields))


def test_classification_and_detection_labels() -> None:
    ok = check_dataset(dataset(train=pairs(lambda i: i % 3), num_classes=3))
    assert ok.task == "classification"
    with pytest.raises(AssertionError, match="label 4 out of range"):
        check_dataset(dataset(train=pairs(lambda i: 4), num_classes=3))
    with pytest.raises(AssertionError, match=r"must be one class index, got shape \(4, 4\)"):
        check_dataset(dataset(train=pairs(lambda i: torch.zeros(4, 4)), num_classes=3))
    with pytest.raises(AssertionError, match="not an integer class index"):
        check_dataset(dataset(train=pairs(lambda i: 0.5), num_classes=3))
    check_dataset(dataset(train=pairs(lambda i: i % 2), num_classes=2, task="detection"))
    with pytest.raises(AssertionError, match="detection labels are 1"):
        check_dataset(dataset(train=pairs(lambda i: 2), num_classes=0, task="detection"))


def test_segmentation_labels_have_the_declared_shape() -> None:
    def maps(shape: tuple[int, ...] = (4, 4), high: int = 3) -> Callable[[int], torch.Tensor]:
        return lambda i: torch.randint(-1, high, shape)

    good = dataset(train=pairs(maps()), num_classes=3, task="segmentation", label_shape=(4, 4))
    assert check_dataset(good).label_shape == (4, 4)
    with pytest.raises(AssertionError, match="needs label_shape"):
        check_dataset(dataset(train=pairs(maps()), num_classes=3, task="segmentation"))
    with pytest.raises(AssertionError, match=r"shape \(4, 5\) but the dataset declares"):
        check_dataset(
            dataset(train=pairs(maps((4, 5))), num_classes=3, task="segmentation",
                    label_shape=(4, 4))
        )  # fmt: skip
    with pytest.raises(AssertionError, match=r"outside \[-1, num_classes=3\)"):
        check_dataset(
            dataset(train=pairs(lambda i: torch.full((4, 4), 7)), num_classes=3,
                    task="segmentation", label_shape=(4, 4))
        )  # fmt: skip
    with pytest.raises(AssertionError, match="integer label map"):
        check_dataset(
            dataset(train=pairs(lambda i: torch.rand(4, 4)), num_classes=3,
                    task="segmentation", label_shape=(4, 4))
        )  # fmt: skip


def test_multilabel_regression_and_unlabelled() -> None:
    def vec(i: int) -> torch.Tensor:
        return torch.tensor([1, 0, i % 2])

    check_dataset(dataset(train=pairs(vec), num_classes=3, task="multilabel", label_shape=(3,)))
    with pytest.raises(AssertionError, match="vector of num_classes=4"):
        check_dataset(dataset(train=pairs(vec), num_classes=4, task="multilabel"))
    with pytest.raises(AssertionError, match="only 0 and 1"):
        twos = pairs(lambda i: torch.tensor([2, 0, 1]))
        check_dataset(dataset(train=twos, num_classes=3, task="multilabel"))
    check_dataset(dataset(train=pairs(lambda i: 0.3 * i), task="regression"))
    with pytest.raises(AssertionError, match="not finite"):
        check_dataset(dataset(train=pairs(lambda i: float("nan")), task="regression"))
    assert check_dataset(dataset(train=pairs(lambda i: -1))).task == "none"
    with pytest.raises(AssertionError, match="y must be -1"):
        check_dataset(dataset(train=pairs(lambda i: 2), task="none"))
    with pytest.raises(AssertionError, match="default collate cannot batch"):
        check_dataset(dataset(train=pairs(lambda i: None)))

    class OwnCollate(DataSplits):
        def collate(self, items):
            return torch.stack([x for x, _ in items]), None

    own = spec(DatasetSpec, lambda: OwnCollate(train=pairs(lambda i: None)))
    assert check_dataset(own).task == "none"


def test_verification_needs_trials_over_the_test_split() -> None:
    def verification(trials: Any) -> Any:
        ids = pairs(lambda i: i % 2)
        meta = {} if trials is None else {"trials": trials}
        return dataset(train=ids, test=ids[:4], num_classes=2, task="verification", meta=meta)

    good = check_dataset(verification([(0, 1, False), (0, 2, True), (1, 3, 1)]))
    assert good.has_class_labels
    check_dataset(verification(torch.tensor([[0, 1, 0], [2, 3, 1]])))
    with pytest.raises(AssertionError, match=r"needs meta\['trials'\]"):
        check_dataset(verification(None))
    with pytest.raises(AssertionError, match=r"outside the test split \[0, 4\)"):
        check_dataset(verification([(0, 4, 1)]))
    with pytest.raises(AssertionError, match="must be 0 or 1"):
        check_dataset(verification([(0, 1, 2)]))
    with pytest.raises(AssertionError, match=r"\(i, j, same\) triples"):
        check_dataset(verification([(0, 1)]))


class Flat(Encoder):
    embed_dim = 4

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(32, 4)

    def forward(self, x):
        return EncoderOutput(pooled=self.net(x.flatten(1)))


def test_check_evaluator_gives_a_context_and_checks_artefacts(tmp_path: Path) -> None:
    seen: list[EvalContext] = []

    class Writes:
        def __init__(self, write: bool = True) -> None:
            self.write = write

        def evaluate(self, encoder, data, ctx):
            seen.append(ctx)
            path = ctx.artefact_path("roc.json")
            if self.write:
                path.write_text("{}")
            ctx.add_artefact(path, kind="curve")
            return {"auc": 0.5}

    data = DataSplits(train=pairs(lambda i: i % 2), num_classes=2)
    evaluator = spec(EvaluatorSpec, Writes, name="roc")
    assert check_evaluator(evaluator, Flat(), data, seed=3, run_dir=tmp_path) == {"auc": 0.5}
    ctx = seen[-1]
    assert (ctx.seed, ctx.name, ctx.run_dir, ctx.rank) == (3, "roc", tmp_path, 0)
    assert ctx.artefacts == [{"path": "artefacts/roc/roc.json", "kind": "curve", "caption": ""}]
    assert (tmp_path / "artefacts" / "roc" / "roc.json").is_file()
    assert check_evaluator(evaluator, Flat(), data) == {"auc": 0.5}  # a temporary run_dir
    assert seen[-1].run_dir is not None and not seen[-1].run_dir.exists()  # cleaned up
    with pytest.raises(AssertionError, match=r"'artefacts/roc/roc\.json' was recorded but no"):
        check_evaluator(evaluator, Flat(), data, write=False)


def test_check_evaluator_runs_the_core_probe_with_its_artefacts(tmp_path: Path) -> None:
    from selfsup.builtin.evaluators.linear_probe import LinearProbe

    gen = torch.Generator().manual_seed(0)
    y = torch.arange(90) % 3
    x = torch.randn(90, 2, 4, 4, generator=gen) + y.view(-1, 1, 1, 1).float()
    items = list(zip(x, y, strict=True))
    data = DataSplits(train=items[:60], test=items[60:], num_classes=3)
    probe = spec(EvaluatorSpec, LinearProbe, name="linear-probe")
    metrics = check_evaluator(probe, Flat(), data, run_dir=tmp_path, weight_decays=[1e-3])
    assert 0.0 <= metrics["linear_acc"] <= 1.0
    assert (tmp_path / "artefacts" / "linear-probe" / "linear_confusion_test.csv").is_file()
