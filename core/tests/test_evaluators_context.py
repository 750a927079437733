"""Evaluators with a context: ranks, artefacts, tasks beyond class labels.

The runner's ``_evaluate`` gives each evaluator an :class:`EvalContext`, runs
``ranks="main"`` evaluators on rank 0 only, and records their artefacts in
``results.json``; the linear probe writes its confusion matrix there; label-based
evaluators refuse datasets whose task is not one class per item.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from selfsup.builtin.evaluators.alignment import AlignmentUniformity
from selfsup.builtin.evaluators.clustering import KMeansClustering
from selfsup.builtin.evaluators.knn import KNN
from selfsup.builtin.evaluators.linear_probe import LinearProbe
from selfsup.builtin.evaluators.rankme import RankMe
from selfsup.config import ComponentRef, load_config_text
from selfsup.engine.runner import _evaluate, _Plan, _save_embeddings, run_experiment
from selfsup.hookspecs import hookimpl
from selfsup.interfaces import DataSplits, Encoder, EncoderOutput, EvalContext
from selfsup.runtime import Runtime
from selfsup.specs import EvaluatorSpec
from selfsup.testing import core_manager
from torch.utils.data import TensorDataset

CPU = Runtime(device=torch.device("cpu"))


class Flatten(Encoder):
    """Raw inputs as the embedding."""

    modality = "image"
    embed_dim = 16

    def forward(self, x):
        return EncoderOutput(pooled=x.flatten(1).float())


def blobs(n: int = 240, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable Gaussian blobs ``[n, 16]`` with labels ``0 .. classes-1``."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, 16, generator=gen) + 3.0 * torch.nn.functional.one_hot(y, 16).float()
    return x, y


def class_splits(task: str = "classification") -> DataSplits:
    x, y = blobs()
    return DataSplits(
        train=TensorDataset(x[:160], y[:160]),
        val=TensorDataset(x[160:200], y[160:200]),
        test=TensorDataset(x[200:], y[200:]),
        num_classes=3,
        task=task,
        meta={"class_names": ["ant", "bee", "cat"]},
    )


def segmentation_splits() -> DataSplits:
    """Items with a 4x4 label map each (task "segmentation")."""
    x, _ = blobs(60)
    maps = (torch.arange(60)[:, None, None] + torch.arange(16).view(1, 4, 4)) % 3
    return DataSplits(
        train=TensorDataset(x[:40], maps[:40]),
        test=TensorDataset(x[40:], maps[40:]),
        num_classes=3,
        task="segmentation",
        label_shape=(4, 4),
    )


# --------------------------------------------------------------------------- tasks


@pytest.mark.parametrize(
    ("evaluator", "owner"),
    [
        (LinearProbe(weight_decays=[1e-3]), "core:linear-probe"),
        (KNN(k=5), "core:knn"),
        (KMeansClustering(n_init=1), "core:kmeans"),
    ],
    ids=["probe", "knn", "kmeans"],
)
def test_label_based_evaluators_refuse_non_class_tasks(evaluator: Any, owner: str) -> None:
    ctx = EvalContext(runtime=CPU)
    with pytest.raises(ValueError, match="task is 'segmentation'") as info:
        evaluator.evaluate(Flatten(), segmentation_splits(), ctx)
    message = str(info.value)
    assert message.startswith(owner) and "segmentation evaluator" in message
    assert "core:rankme" in message  # what to use instead
    multilabel = class_splits().replace(task="multilabel", label_shape=(3,))
    with pytest.raises(ValueError, match=f"{owner} needs one class label.*'multilabel'"):
        evaluator.evaluate(Flatten(), multilabel, ctx)


def test_vision_finetune_refuses_non_class_tasks() -> None:
    pytest.importorskip("selfsup_vision")
    pytest.importorskip("timm")
    from selfsup_vision.evaluators import FineTune

    with pytest.raises(ValueError, match=r"vision:finetune needs one class label.*segmentation"):
        FineTune(epochs=1).evaluate(Flatten(), segmentation_splits(), EvalContext(runtime=CPU))


def test_label_free_evaluators_work_on_any_task() -> None:
    data = segmentation_splits()
    assert RankMe().evaluate(Flatten(), data, EvalContext(runtime=CPU))["rankme"] > 5.0
    ctx = EvalContext(runtime=CPU, views=lambda b: [b, b + 0.1])
    out = AlignmentUniformity(max_items=40).evaluate(Flatten(), data, ctx)
    assert out["alignment"] == pytest.approx(0.0, abs=0.05) and out["uniformity"] < 0


def test_class_tasks_other_than_classification_are_accepted() -> None:
    out = KNN(k=5).evaluate(Flatten(), class_splits("detection"), EvalContext(runtime=CPU))
    assert out["knn_acc"] > 0.9


# --------------------------------------------------------------------------- artefacts


def test_linear_probe_writes_its_confusion_matrix(tmp_path: Path) -> None:
    data = class_splits()
    ctx = EvalContext(runtime=CPU, run_dir=tmp_path, name="linear-probe")
    out = LinearProbe(weight_decays=[1e-3]).evaluate(Flatten(), data, ctx)
    kinds = {Path(a["path"]).suffix: a["kind"] for a in ctx.artefacts}
    assert kinds[".csv"] == "table"
    table = tmp_path / "artefacts" / "linear-probe" / "linear_confusion_test.csv"
    assert ctx.artefacts[0]["path"] == "artefacts/linear-probe/linear_confusion_test.csv"
    rows = list(csv.reader(table.open()))
    assert rows[0] == ["true \\ predicted", "ant", "bee", "cat"]
    counts = np.array([[int(v) for v in row[1:]] for row in rows[1:]])
    assert counts.sum() == 40  # the test split
    assert np.trace(counts) / counts.sum() == pytest.approx(out["linear_acc"])
    assert counts.sum(1).tolist() == np.bincount(np.arange(200, 240) % 3).tolist()
    pytest.importorskip("matplotlib")
    assert kinds[".png"] == "image"
    png = tmp_path / "artefacts" / "linear-probe" / "linear_confusion_test.png"
    assert png.read_bytes().startswith(b"\x89PNG")


def test_probe_writes_no_artefact_off_the_main_rank_or_outside_a_run(tmp_path: Path) -> None:
    probe = LinearProbe(weight_decays=[1e-3])
    rank1 = Runtime(device=torch.device("cpu"), rank=1, world_size=2)
    ctx = EvalContext(runtime=rank1, run_dir=tmp_path)
    plain = EvalContext(runtime=CPU)
    assert probe.evaluate(Flatten(), class_splits(), ctx) == probe.evaluate(
        Flatten(), class_splits(), plain
    )
    assert ctx.artefacts == [] and plain.artefacts == [] and plain.run_dir is None
    assert not (tmp_path / "artefacts").exists()


# --------------------------------------------------------------------------- runner


class Recorder:
    """Records the context it was called with; writes one artefact on the main rank."""

    def __init__(self, tag: str = "x", fail: bool = False) -> None:
        self.tag, self.fail = tag, fail

    def evaluate(self, encoder: Any, data: Any, ctx: EvalContext) -> dict[str, float]:
        CALLS.append((self.tag, ctx))
        if ctx.is_main:
            path = ctx.artefact_path(f"{self.tag}.txt")
            path.write_text(self.tag)
            ctx.add_artefact(path, kind="file", caption=f"from {self.tag}")
        if self.fail:
            raise RuntimeError(f"{self.tag} failed")
        return {f"{self.tag}_rank": float(ctx.rank), "shared": 1.0}


CALLS: list[tuple[str, EvalContext]] = []


class LabPlugin:
    @staticmethod
    @hookimpl
    def register_evaluators(register: Any) -> None:
        register(EvaluatorSpec(name="main-only", build=lambda: Recorder("main")))
        register(EvaluatorSpec(name="every-rank", build=lambda: Recorder("all"), ranks="all"))
        register(EvaluatorSpec(name="broken", build=lambda: Recorder("broken", fail=True)))
        register(EvaluatorSpec(name="not-a-dict", build=lambda: NotADict()))


class NotADict:
    def evaluate(self, encoder: Any, data: Any, ctx: EvalContext) -> Any:
        return [("acc", 1.0)]


@pytest.fixture
def lab() -> Any:
    CALLS.clear()
    return core_manager(("lab", LabPlugin()))


def _plan(pm: Any, *ids: str) -> _Plan:
    evaluators = [(ComponentRef(id=i), pm.get("evaluator", i)) for i in ids]
    return _Plan(arm=None, dirname="arm", specs={}, evaluators=evaluators)  # type: ignore[arg-type]


def _run(pm: Any, plan: _Plan, rt: Runtime, run_dir: Path) -> tuple[dict, dict]:
    record: dict[str, Any] = {}
    views = object()
    metrics = _evaluate(plan, Flatten(), class_splits(), rt, 7, views, run_dir, pm, record)
    return metrics, record


def test_ranks_main_runs_on_rank_zero_only(lab: Any, tmp_path: Path) -> None:
    plan = _plan(lab, "lab:main-only", "lab:every-rank", "lab:main-only")
    rank1 = Runtime(device=torch.device("cpu"), rank=1, world_size=2)
    metrics, record = _run(lab, plan, rank1, tmp_path)
    assert [tag for tag, _ in CALLS] == ["all"]  # the main-only evaluators were skipped
    assert metrics == {"all_rank": 1.0, "shared": 1.0}
    assert record["artefacts"] == []  # only rank 0 writes

    CALLS.clear()
    metrics, record = _run(lab, plan, CPU, tmp_path)
    assert [tag for tag, _ in CALLS] == ["main", "all", "main"]
    assert metrics == {
        "main_rank": 0.0,
        "shared": 1.0,
        "all_rank": 0.0,
        "every-rank/shared": 1.0,
        "main-only/main_rank": 0.0,
        "main-only/shared": 1.0,
    }
    ctx = CALLS[0][1]
    assert (ctx.seed, ctx.run_dir, ctx.name, ctx.runtime) == (7, tmp_path, "main-only", CPU)
    assert ctx.views is not None
    assert [c.name for _, c in CALLS] == ["main-only", "every-rank", "main-only-2"]
    assert record["artefacts"] == [
        {
            "evaluator": "lab:main-only",
            "path": "artefacts/main-only/main.txt",
            "kind": "file",
            "caption": "from main",
        },
        {
            "evaluator": "lab:every-rank",
            "path": "artefacts/every-rank/all.txt",
            "kind": "file",
            "caption": "from all",
        },
        {
            "evaluator": "lab:main-only",
            "path": "artefacts/main-only-2/main.txt",
            "kind": "file",
            "caption": "from main",
        },
    ]
    assert all((tmp_path / a["path"]).is_file() for a in record["artefacts"])


def test_artefacts_survive_a_failing_evaluator(lab: Any, tmp_path: Path) -> None:
    record: dict[str, Any] = {}
    plan = _plan(lab, "lab:every-rank", "lab:broken")
    with pytest.raises(RuntimeError, match="broken failed"):
        _evaluate(plan, Flatten(), class_splits(), CPU, 0, None, tmp_path, lab, record)
    assert [a["evaluator"] for a in record["artefacts"]] == ["lab:every-rank", "lab:broken"]


def test_an_evaluator_that_returns_no_dict_is_named(lab: Any, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="'lab:not-a-dict' returned list"):
        _run(lab, _plan(lab, "lab:not-a-dict"), CPU, tmp_path)


def test_save_embeddings_keeps_labels_for_class_tasks_only(tmp_path: Path) -> None:
    _save_embeddings(class_splits(), Flatten(), CPU, tmp_path / "a.npz", 0)
    with np.load(tmp_path / "a.npz") as saved:
        assert set(saved.files) == {"features", "labels", "split"}
        assert saved["labels"].tolist() == (np.arange(200, 240) % 3).tolist()
    got = _save_embeddings(segmentation_splits(), Flatten(), CPU, tmp_path / "b.npz", 0)
    assert got == {"embeddings": "b.npz"}
    with np.load(tmp_path / "b.npz") as saved:
        assert set(saved.files) == {"features", "split"} and saved["features"].shape == (20, 16)


def test_run_records_the_probe_artefacts_and_the_report_links_them(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from selfsup.report import build_report

    x, y = blobs()
    np.savez(tmp_path / "blobs.npz", x=x.numpy(), y=y.numpy())
    cfg = load_config_text(
        f"""
name: probe
seeds: [0]
output_dir: {tmp_path / "runs"}
data: {{id: core:arrays, params: {{path: {tmp_path / "blobs.npz"}}}}}
encoder: {{id: core:mlp, params: {{in_dim: 16, widths: [16], embed_dim: 8}}}}
evaluators: [{{id: core:linear-probe, params: {{weight_decays: [0.001]}}}}]
train: {{device: cpu}}
"""
    )
    from rich.console import Console

    result = run_experiment(cfg, pm=core_manager(), console=Console(quiet=True), progress=False)
    (run,) = result.runs
    assert run["status"] == "ok", run
    run_dir = tmp_path / "runs" / "probe" / run["arm"] / "seed-0"
    record = json.loads((run_dir / "results.json").read_text())
    paths = {a["path"]: a for a in record["artefacts"]}
    csv_path = "artefacts/linear-probe/linear_confusion_test.csv"
    png_path = "artefacts/linear-probe/linear_confusion_test.png"
    assert paths[csv_path]["evaluator"] == "core:linear-probe"
    assert paths[png_path]["kind"] == "image"
    assert (run_dir / csv_path).is_file() and (run_dir / png_path).is_file()

    html = build_report(tmp_path / "runs" / "probe").read_text()
    assert f'href="{run["arm"]}/seed-0/{csv_path}"' in html
    assert html.count("data:image/png;base64,") >= 2  # the embeddings plot and the matrix


class FakeDistributed(Runtime):
    """A runtime that says it is distributed (no process group: the meetings are faked)."""

    distributed = True  # type: ignore[assignment]


def test_ranks_meet_after_every_evaluator_and_share_failures(
    lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each rank meets once per evaluator (also one it skips), and a failure anywhere
    stops every rank: no rank waits for a meeting the others never reach."""
    from selfsup.engine import runner

    meetings: list[bool] = []
    others_failed = {"value": False}
    destroyed: list[object] = []

    def meet(group: object, failed: bool) -> bool:
        meetings.append(failed)
        return failed or others_failed["value"]

    monkeypatch.setattr(runner.dist, "new_group", lambda **kw: "group")
    monkeypatch.setattr(runner.dist, "destroy_process_group", destroyed.append)
    monkeypatch.setattr(runner, "_meet", meet)
    rank1 = FakeDistributed(device=torch.device("cpu"), rank=1, world_size=2)
    plan = _plan(lab, "lab:main-only", "lab:every-rank", "lab:main-only")
    metrics, _ = _run(lab, plan, rank1, tmp_path)
    assert metrics == {"all_rank": 1.0, "shared": 1.0}
    assert meetings == [False, False, False] and destroyed == ["group"]

    meetings.clear()
    CALLS.clear()
    others_failed["value"] = True  # rank 0 failed in the first (main-only) evaluator
    with pytest.raises(RuntimeError, match="'lab:main-only' failed on another rank"):
        _run(lab, plan, rank1, tmp_path)
    assert meetings == [False] and CALLS == []  # rank 1 stopped before "every-rank"

    meetings.clear()
    others_failed["value"] = False
    rank0 = FakeDistributed(device=torch.device("cpu"))
    with pytest.raises(RuntimeError, match="broken failed"):  # its own error, not the other's
        _run(lab, _plan(lab, "lab:broken", "lab:every-rank"), rank0, tmp_path)
    assert meetings == [True]
