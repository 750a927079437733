"""Objectives that wrap objectives, and the BatchMeta that the engine hands them.

* An objective that holds core BYOL as a sub-module (and only delegates ``forward``)
  trains through ``run_experiment``: the engine attaches the inner teacher through
  :meth:`Objective.attach` before any forward and before a checkpoint is restored, the
  teacher follows the student by EMA through the forwarded ``on_step_end``, and a
  crashed run resumes to exactly the weights of an uninterrupted one.
* Every training batch's :class:`BatchMeta` (train indices, labels, flags) reaches the
  view maker and the objective; a routine that yields no meta gives them ``None``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from rich.console import Console
from selfsup import hookimpl
from selfsup.builtin.objectives.byol import BYOL
from selfsup.config import load_config_text
from selfsup.engine.checkpoint import load_checkpoint
from selfsup.engine.results import ExperimentFailedError
from selfsup.engine.runner import run_experiment
from selfsup.interfaces import BatchMeta, DataSplits, Objective, ObjectiveOutput
from selfsup.specs import DatasetSpec, ObjectiveSpec, RoutineSpec, ViewSpec
from selfsup.testing import core_manager
from selfsup.training import RunContext, train_epochs
from torch import nn
from torch.utils.data import TensorDataset

# --------------------------------------------------------------------------- test plugin


class WrapBYOL(Objective):
    """Holds core BYOL as a sub-module and delegates ``forward``; nothing else.

    ``attach``, ``on_step_end`` and ``student_parameters`` are the base class's, so
    the inner teacher works only if the base forwards them.
    """

    instances: ClassVar[list[WrapBYOL]] = []
    crash_at: ClassVar[int | None] = None  # raise on this forward call (a simulated kill)

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.byol = BYOL(embed_dim, hidden_dim=32, proj_dim=16, base_momentum=0.9)
        self.calls = 0
        self.attached_at_first_forward: bool | None = None
        self.first_teacher: dict[str, torch.Tensor] = {}
        WrapBYOL.instances.append(self)

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        self.calls += 1
        if self.calls == 1:
            teacher = self.byol.teacher
            self.attached_at_first_forward = teacher.attached
            if teacher.encoder is not None:
                self.first_teacher = {
                    k: v.detach().clone() for k, v in teacher.encoder.state_dict().items()
                }
        if WrapBYOL.crash_at is not None and self.calls >= WrapBYOL.crash_at:
            raise RuntimeError("simulated crash")
        out = self.byol(encoder, views, meta)
        return ObjectiveOutput(
            loss=out.loss, metrics={f"byol_{k}": v for k, v in out.metrics.items()}
        )


class Recorder:
    """What the view maker and the objective saw, call by call."""

    views: ClassVar[list[BatchMeta | None]] = []
    objective: ClassVar[list[BatchMeta | None]] = []

    @classmethod
    def clear(cls) -> None:
        cls.views.clear()
        cls.objective.clear()


class RecordingViews:
    """Two noisy views; records the meta it is called with."""

    def __call__(self, batch: torch.Tensor, meta: BatchMeta | None = None) -> list[torch.Tensor]:
        Recorder.views.append(meta)
        return [batch + 0.1 * torch.randn_like(batch) for _ in range(2)]


class RecordingAlign(Objective):
    """Pulls two views together; records the meta it is called with."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.head = nn.Linear(embed_dim, 4)

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        Recorder.objective.append(meta)
        a, b = (self.head(encoder(v).pooled) for v in views)
        return ObjectiveOutput(loss=(a - b).pow(2).mean())


N_FLAGGED = 100


def flagged_data() -> DataSplits:
    """100 items of 6 features, labels ``i % 3``, item ``i`` poisoned iff ``i % 7 == 0``."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N_FLAGGED, 6, generator=g)
    y = torch.arange(N_FLAGGED) % 3
    data = DataSplits(train=TensorDataset(x, y), num_classes=3)
    return data.with_flags("train", poisoned=_poisoned())


def _poisoned() -> torch.Tensor:
    return torch.arange(N_FLAGGED) % 7 == 0


class Pairs:
    """A routine whose micro-batches are ``(input, count)`` pairs (no meta), or bad ones."""

    def __init__(self, bad: bool = False) -> None:
        self.bad = bad

    def fit(self, ctx: RunContext) -> None:
        x = ctx.data.train.tensors[0].to(ctx.runtime.device)

        def batches(epoch: int) -> Iterator[tuple[Any, ...]]:
            for chunk in x.split(25):
                yield (chunk, len(chunk), "meta?") if self.bad else (chunk, len(chunk))

        train_epochs(ctx, 4, batches)


class Plain(nn.Module):
    """The old contract: a plain module with ``forward`` and no ``attach``."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.head = nn.Linear(embed_dim, 4)

    def forward(self, encoder: nn.Module, views: Any, meta: Any = None) -> ObjectiveOutput:
        return ObjectiveOutput(loss=self.head(encoder(views[0]).pooled).pow(2).mean())


class _Plugin:
    @hookimpl
    def register_objectives(self, register) -> None:
        register(ObjectiveSpec(name="wrap-byol", build=WrapBYOL))
        register(ObjectiveSpec(name="recording", build=RecordingAlign))
        register(ObjectiveSpec(name="plain", build=Plain))

    @hookimpl
    def register_views(self, register) -> None:
        register(ViewSpec(name="recording", build=RecordingViews))

    @hookimpl
    def register_datasets(self, register) -> None:
        register(DatasetSpec(name="flagged", build=flagged_data))

    @hookimpl
    def register_routines(self, register) -> None:
        register(RoutineSpec(name="pairs", build=Pairs))


@pytest.fixture
def pm():
    WrapBYOL.instances.clear()
    WrapBYOL.crash_at = None
    Recorder.clear()
    yield core_manager(("test", _Plugin()))
    WrapBYOL.crash_at = None


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread: bit-identical kernels across the runs compared below."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _run(text: str, pm, **kwargs: Any) -> Any:
    return run_experiment(
        load_config_text(text), pm=pm, console=Console(file=io.StringIO()), progress=False, **kwargs
    )


# --------------------------------------------------------------------------- wrapping


def _wrap_config(tmp_path: Path, out: str) -> str:
    data = tmp_path / "data.npz"
    if not data.exists():
        rng = np.random.default_rng(0)
        np.savez(data, x=rng.normal(size=(120, 6)).astype("float32"), y=np.arange(120) % 3)
    return f"""
name: wrap
output_dir: {tmp_path / out}
baseline: false
data: {{id: core:arrays, params: {{path: {data}}}}}
encoder: {{id: core:mlp, params: {{in_dim: 6, widths: [16], embed_dim: 8}}}}
views: core:noise-mask
objective: test:wrap-byol
train: {{epochs: 3, batch_size: 16, device: cpu, progress: false,
         optimizer: {{name: adamw, lr: 0.01}}}}
"""


def _last(tmp_path: Path, out: str) -> dict[str, Any]:
    return load_checkpoint(
        tmp_path / out / "wrap" / "wrap-byol" / "seed-0" / "checkpoints" / "last.pt"
    )


def test_an_objective_wrapping_byol_trains_attaches_its_teacher_and_resumes(
    tmp_path: Path, pm, one_thread: None
) -> None:
    result = _run(_wrap_config(tmp_path, "straight"), pm)
    assert result.runs[0]["status"] == "ok", result.runs[0].get("error")
    (wrapper,) = WrapBYOL.instances
    # The engine attached the inner teacher through the wrapper before any forward.
    assert wrapper.attached_at_first_forward is True and wrapper.first_teacher
    state = _last(tmp_path, "straight")
    steps = state["global_step"]
    assert state["epoch"] == 3 and steps > 3
    objective, encoder = state["objective"], state["encoder"]
    # on_step_end reached the inner BYOL: its momentum (0.9 at step 0) ended the
    # cosine schedule at 1.0 on the last step...
    assert float(objective["byol.teacher.momentum"]) == pytest.approx(1.0)
    # ...and the teacher moved away from its initial copy, but lags the student.
    teacher = {k.removeprefix("byol.teacher.encoder."): v for k, v in objective.items()
               if k.startswith("byol.teacher.encoder.")}  # fmt: skip
    assert teacher.keys() == encoder.keys() == wrapper.first_teacher.keys()
    weights = [k for k in teacher if k.endswith("weight")]
    assert all(not torch.equal(teacher[k], wrapper.first_teacher[k]) for k in weights)
    assert all(not torch.allclose(teacher[k], encoder[k]) for k in weights)
    # The optimiser trained the inner student but never the inner teacher.
    assert all(not v.requires_grad for v in wrapper.byol.teacher.parameters())
    trained = {id(p) for p in wrapper.student_parameters()}
    assert {id(p) for p in wrapper.byol.projector.parameters()} <= trained
    assert not trained & {id(p) for p in wrapper.byol.teacher.parameters()}

    # A run that dies in epoch 3 resumes from its epoch-2 checkpoint (restoring the
    # inner teacher needs it attached first) to exactly the uninterrupted weights.
    per_epoch = steps // 3
    WrapBYOL.crash_at = 2 * per_epoch + 2
    with pytest.raises(ExperimentFailedError, match="simulated crash"):
        _run(_wrap_config(tmp_path, "killed"), pm)
    assert _last(tmp_path, "killed")["epoch"] == 2
    WrapBYOL.crash_at = None
    WrapBYOL.instances.clear()
    resumed = _run(_wrap_config(tmp_path, "killed"), pm, resume=True)
    assert resumed.runs[0]["status"] == "ok", resumed.runs[0].get("error")
    (again,) = WrapBYOL.instances
    assert again.attached_at_first_forward is True
    # Its first forward saw the restored teacher, not a fresh copy of the encoder.
    first = {f"byol.teacher.encoder.{k}": v for k, v in again.first_teacher.items()}
    assert any(not torch.equal(v, first[k]) for k, v in objective.items() if k in first)
    final = _last(tmp_path, "killed")
    assert final["global_step"] == steps
    for part in ("encoder", "objective"):
        assert final[part].keys() == state[part].keys()
        for key, value in state[part].items():
            assert torch.equal(value, final[part][key]), f"{part}.{key} differs after resume"


# --------------------------------------------------------------------------- BatchMeta


def _meta_config(
    tmp_path: Path, routine: str = "{id: core:minibatch, params: {drop_last: false}}"
) -> str:
    return f"""
name: meta
output_dir: {tmp_path / "runs"}
baseline: false
data: test:flagged
encoder: {{id: core:mlp, params: {{in_dim: 6, widths: [16], embed_dim: 8, norm: none}}}}
views: test:recording
objective: test:recording
routine: {routine}
train: {{epochs: 2, batch_size: 32, device: cpu, progress: false}}
"""


def test_batch_meta_reaches_views_and_objective_with_index_labels_and_flags(
    tmp_path: Path, pm
) -> None:
    result = _run(_meta_config(tmp_path), pm)
    assert result.runs[0]["status"] == "ok", result.runs[0].get("error")
    metas = Recorder.objective
    per_epoch = -(-N_FLAGGED // 32)  # drop_last=False: 32, 32, 32, 4
    assert len(metas) == 2 * per_epoch
    assert all(isinstance(m, BatchMeta) for m in metas)
    poisoned, labels = _poisoned(), torch.arange(N_FLAGGED) % 3
    orders = []
    for epoch in range(2):
        seen = metas[epoch * per_epoch : (epoch + 1) * per_epoch]
        index = torch.cat([m.index for m in seen])
        # Every item once per epoch, its flag and label sliced along with it.
        assert sorted(index.tolist()) == list(range(N_FLAGGED))
        assert torch.equal(torch.cat([m.flags["poisoned"] for m in seen]), poisoned[index])
        assert torch.equal(torch.cat([m.labels for m in seen]), labels[index])
        assert set(seen[0].flags) == {"poisoned"} and seen[0].index.dtype == torch.long
        orders.append(index.tolist())
    assert orders[0] != orders[1]  # reshuffled every epoch
    # The view maker got the same meta for the same micro-batch.
    assert len(Recorder.views) == len(metas)
    for seen_by_views, seen_by_objective in zip(Recorder.views, metas, strict=True):
        assert seen_by_views is seen_by_objective


def test_a_routine_without_meta_gives_none_and_a_bad_micro_batch_is_named(
    tmp_path: Path, pm
) -> None:
    result = _run(_meta_config(tmp_path, "test:pairs"), pm)
    assert result.runs[0]["status"] == "ok", result.runs[0].get("error")
    assert len(Recorder.objective) == 2 * 4 and set(Recorder.objective) == {None}
    assert set(Recorder.views) == {None}
    with pytest.raises(ExperimentFailedError) as info:
        _run(_meta_config(tmp_path / "bad", "{id: test:pairs, params: {bad: true}}"), pm)
    cause = info.value.__cause__
    assert isinstance(cause, TypeError)
    assert "must be a selfsup.interfaces.BatchMeta or None, got str" in str(cause)
    assert "epoch_batches" in str(cause)


def test_an_objective_that_is_not_an_objective_is_refused_with_the_fix(tmp_path: Path, pm) -> None:
    text = _meta_config(tmp_path).replace("objective: test:recording", "objective: test:plain")
    with pytest.raises(ExperimentFailedError) as info:
        _run(text, pm)
    cause = info.value.__cause__
    assert isinstance(cause, TypeError)
    assert "'test:plain' built a Plain, not a selfsup.Objective" in str(cause)
    assert "subclass selfsup.interfaces.Objective" in str(cause)
