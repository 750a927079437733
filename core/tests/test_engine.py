"""Engine unit tests: optimisers, schedules, checkpoints, the train stepper, NaN handling."""

from __future__ import annotations

import io
import itertools
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import selfsup.builtin.plugin as core_plugin
import torch
from rich.console import Console
from selfsup import ObjectiveOutput, hookimpl
from selfsup.config import ArmConfig, OptimizerConfig, ScheduleConfig, load_config_text
from selfsup.engine import checkpoint as ckpt
from selfsup.engine.context import RunContext
from selfsup.engine.metrics import read_metrics
from selfsup.engine.optim import LARS, build_optimizer, build_scheduler
from selfsup.engine.results import ExperimentFailedError
from selfsup.engine.runner import run_experiment
from selfsup.engine.runtime import Runtime
from selfsup.engine.step import NonFiniteLossError
from selfsup.interfaces import DataSplits, Objective
from selfsup.plugins import PluginManager
from selfsup.specs import ObjectiveSpec
from torch import nn

# --------------------------------------------------------------------------- optimisers


def _lrs(sched: torch.optim.lr_scheduler.LRScheduler, n: int) -> list[float]:
    out = []
    for _ in range(n):
        out.append(sched.optimizer.param_groups[0]["lr"])
        sched.optimizer.step()
        sched.step()
    return out


def test_warmup_then_cosine_values() -> None:
    p = nn.Parameter(torch.zeros(2, 2))
    opt = build_optimizer([p], OptimizerConfig(name="sgd", lr=1.0), 256)
    sched = build_scheduler(opt, ScheduleConfig(warmup_epochs=1, min_lr_ratio=0.1), 110, 10)
    lrs = _lrs(sched, 110)
    assert lrs[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])  # linear warmup
    assert lrs[10] == pytest.approx(1.0)  # cosine starts at the peak
    assert lrs[60] == pytest.approx(0.1 + 0.9 * 0.5)  # halfway down
    assert lrs[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 99 / 100)))
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))  # monotone decay


def test_constant_schedule_and_lr_scaling() -> None:
    p = nn.Parameter(torch.zeros(3))
    cfg = OptimizerConfig(name="adamw", lr=0.1, scale_lr_by_batch=True, weight_decay=0.05)
    opt = build_optimizer([p], cfg, global_batch=512)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.param_groups[0]["weight_decay"] == 0.05
    sched = build_scheduler(opt, ScheduleConfig(name="constant", warmup_epochs=2), 50, 5)
    lrs = _lrs(sched, 50)
    assert lrs[0] == pytest.approx(0.2 / 10)  # 0.1 * 512/256, warmup step 1 of 10
    assert lrs[10:] == pytest.approx([0.2] * 40)


def test_sgd_nesterov_and_empty_params() -> None:
    p = nn.Parameter(torch.zeros(3))
    opt = build_optimizer([p], OptimizerConfig(name="sgd", nesterov=True, momentum=0.9), 256)
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["nesterov"] is True
    frozen = nn.Parameter(torch.zeros(3), requires_grad=False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer([frozen], OptimizerConfig(), 256)


def test_lars_excludes_biases_and_norms_from_decay_and_adaptation() -> None:
    layer = nn.Linear(4, 3)
    norm = nn.BatchNorm1d(3)
    params = [*layer.parameters(), *norm.parameters()]
    cfg = OptimizerConfig(name="lars", lr=0.5, weight_decay=0.1, momentum=0.0)
    opt = build_optimizer(params, cfg, 256)
    assert isinstance(opt, LARS)
    adapted, excluded = opt.param_groups
    assert [p.ndim for p in adapted["params"]] == [2]
    assert sorted(p.ndim for p in excluded["params"]) == [1, 1, 1]
    assert excluded["weight_decay"] == 0.0 and excluded["lars_exclude"] is True

    w0, b0, g0 = layer.weight.detach().clone(), layer.bias.detach().clone(), norm.weight.clone()
    layer.weight.grad = torch.full_like(layer.weight, 0.5)
    layer.bias.grad = torch.full_like(layer.bias, 0.5)
    norm.weight.grad = torch.zeros_like(norm.weight)  # decay alone would move it
    norm.bias.grad = torch.zeros_like(norm.bias)
    opt.step()
    # Bias: plain SGD (no trust ratio, no decay).
    assert torch.allclose(layer.bias, b0 - 0.5 * 0.5)
    assert torch.equal(norm.weight.detach(), g0)
    # Weight: update = lr * eta * ||w|| / ||g + wd w|| * (g + wd w).
    g = torch.full_like(w0, 0.5) + 0.1 * w0
    trust = 0.001 * w0.norm() / g.norm()
    assert torch.allclose(layer.weight, w0 - 0.5 * trust * g, atol=1e-7)


# --------------------------------------------------------------------------- checkpoints


def test_save_atomic_survives_a_crash_mid_write(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "checkpoints" / "last.pt"
    ckpt.save_atomic({"epoch": 1, "w": torch.arange(4.0)}, path)

    def crash(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="simulated"):
        ckpt.save_atomic({"epoch": 2, "w": torch.zeros(4)}, path)
    monkeypatch.undo()
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.arange(4.0))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left


def test_corrupt_checkpoint_error_names_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    path.write_bytes(b"not a checkpoint at all")
    fix = r"last\.pt: not a selfsup checkpoint.*delete .*last\.pt"
    with pytest.raises(ckpt.CheckpointError, match=fix):
        ckpt.load_checkpoint(path)
    torch.save({"epoch": 1}, path)
    with pytest.raises(ckpt.CheckpointError, match="missing global_step"):
        ckpt.load_checkpoint(path)


def test_rng_state_round_trips_through_weights_only(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.normal()  # a cached Gaussian is part of numpy's state
    ckpt.save_atomic({"rng": ckpt.get_rng_state()}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.normal(), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    state = torch.load(tmp_path / "rng.pt", weights_only=True)
    ckpt.set_rng_state(state["rng"])
    got = (random.random(), np.random.normal(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])


# --------------------------------------------------------------------------- stepper


class Align(Objective):
    """A per-sample loss (mean over items): accumulation must equal the full batch."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.head = nn.Linear(embed_dim, 8)

    def forward(self, encoder: nn.Module, views, meta=None) -> ObjectiveOutput:
        a, b = (self.head(encoder(v).pooled) for v in views)
        return ObjectiveOutput(loss=(a - b).pow(2).sum(1).mean(), metrics={"gap": a.std()})


def _ctx(tmp_path: Path, data: DataSplits, **train) -> RunContext:
    from selfsup.builtin.encoders import MLP

    torch.manual_seed(0)
    arm = ArmConfig.model_validate(
        {
            "name": "t",
            "data": "core:arrays",
            "encoder": "core:mlp",
            "views": "core:noise-mask",
            "objective": "test:align",
            "train": {"device": "cpu", "optimizer": {"name": "sgd", "lr": 0.1}, **train},
        }
    )
    encoder = MLP(in_dim=6, widths=(16,), embed_dim=8, norm="none")
    return RunContext(
        arm=arm,
        seed=0,
        run_dir=tmp_path,
        runtime=Runtime(device=torch.device("cpu")),
        encoder=encoder,
        objective=Align(8),
        views=lambda x, meta=None: x,
        data=data,
    )


def _stepper(ctx: RunContext):
    model = ctx.wrap_model()
    opt = ctx.make_optimizer()
    sched = ctx.make_scheduler(opt, 4)
    return ctx.make_stepper(model, opt, sched, 4)


def test_grad_accumulation_equals_one_big_batch(tmp_path: Path) -> None:
    data = DataSplits(train=None)
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(16, 6, generator=g), torch.randn(16, 6, generator=g)]
    big = _ctx(tmp_path / "a", data, batch_size=16)
    small = _ctx(tmp_path / "b", data, batch_size=8, grad_accum=2)
    s_big, s_small = _stepper(big), _stepper(small)
    for _ in range(3):
        out_big = s_big.step(views)
        assert s_small.step([v[:8] for v in views]) is None  # no optimiser step yet
        out_small = s_small.step([v[8:] for v in views])
        assert out_small["loss"] == pytest.approx(out_big["loss"], rel=1e-5)
    assert big.global_step == small.global_step == 3
    for key, value in big.encoder.state_dict().items():
        assert torch.allclose(value, small.encoder.state_dict()[key], atol=1e-6)
    single = _ctx(tmp_path / "c", data, batch_size=8)
    _stepper(single).step([v[:8] for v in views])
    assert not torch.allclose(single.encoder.blocks[0][0].weight, big.encoder.blocks[0][0].weight)


def test_nan_loss_raises_with_a_clear_message(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, DataSplits(train=None), batch_size=4)
    stepper = _stepper(ctx)
    x = torch.randn(4, 6)
    stepper.step([x, x + 0.1])
    bad = x.clone()
    bad[0, 0] = float("nan")
    weights = ctx.encoder.blocks[0][0].weight.detach().clone()
    with pytest.raises(NonFiniteLossError) as info:
        stepper.step([bad, x])
    msg = str(info.value)
    assert "step 2" in msg and "arm 't'" in msg and "seed 0" in msg
    # No checkpoint exists yet: the message must not claim one is kept.
    assert "no checkpoint had been written yet" in msg and str(ctx.checkpoint_path) not in msg
    assert "clip_grad" in msg and "fp32" in msg
    assert torch.equal(ctx.encoder.blocks[0][0].weight, weights)  # no update after the NaN
    assert ctx.global_step == 1


def test_fp16_is_refused_on_cpu_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"fp16.*needs a GPU.*bf16"):
        Runtime.from_env("cpu", "fp16")
    cfg = load_config_text(
        f"""
name: half
output_dir: {tmp_path / "runs"}
data: {{id: core:arrays, params: {{path: {_arrays(tmp_path)}}}}}
encoder: {{id: core:mlp, params: {{in_dim: 6}}}}
views: core:noise-mask
objective: core:simclr
train: {{device: cpu, precision: fp16}}
"""
    )
    with pytest.raises(RuntimeError, match=r"train\.precision='fp16' needs a GPU"):
        run_experiment(cfg, console=Console(file=io.StringIO()))
    assert not (tmp_path / "runs").exists()  # refused before anything was written


# --------------------------------------------------------------------------- NaN in a run


class NanAfter(Align):
    """Trains normally, then returns a NaN loss from the ``after``-th forward on."""

    def __init__(self, embed_dim: int, after: int = 5) -> None:
        super().__init__(embed_dim)
        self.after = after
        self.calls = 0

    def forward(self, encoder: nn.Module, views, meta=None) -> ObjectiveOutput:
        self.calls += 1
        out = super().forward(encoder, views, meta)
        if self.calls > self.after:
            out.loss = out.loss * float("nan")
        return out


class _TestPlugin:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    @hookimpl
    def register_objectives(self, register) -> None:
        register(ObjectiveSpec(name="nan-after", build=NanAfter))

    @hookimpl
    def run_started(self, run_dir, config, info) -> None:
        self.events.append(("run_started", info["arm"], info["seed"], config["name"]))

    @hookimpl
    def step_finished(self, run_dir, step, metrics) -> None:
        self.events.append(("step_finished", step))

    @hookimpl
    def epoch_finished(self, run_dir, epoch, metrics) -> None:
        self.events.append(("epoch_finished", epoch, "items_per_s" in metrics))

    @hookimpl
    def checkpoint_saved(self, run_dir, path, epoch) -> None:
        self.events.append(("checkpoint_saved", Path(path).name, epoch))

    @hookimpl
    def run_finished(self, run_dir, results) -> None:
        self.events.append(("run_finished", results["status"], results["steps"]))


def _arrays(tmp_path: Path, n: int = 120) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(path, x=rng.normal(size=(n, 6)).astype("float32"), y=np.arange(n) % 3)
    return path


def test_nan_in_a_run_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    pm = PluginManager(load_entrypoints=False)
    pm.register(core_plugin, name="core")
    pm.register(_TestPlugin(), name="test")
    cfg = load_config_text(
        f"""
name: nan
output_dir: {tmp_path / "runs"}
baseline: false
data: {{id: core:arrays, params: {{path: {_arrays(tmp_path)}, test_fraction: 0.2}}}}
encoder: {{id: core:mlp, params: {{in_dim: 6, widths: [16], embed_dim: 8}}}}
views: core:noise-mask
objective: {{id: test:nan-after, params: {{after: 5}}}}
train: {{epochs: 4, batch_size: 32, device: cpu, progress: false}}
"""
    )
    # 84 train items / 32 = 2 steps per epoch: epochs 1-2 are fine, step 6 is NaN.
    with pytest.raises(ExperimentFailedError, match="NonFiniteLossError") as info:
        run_experiment(cfg, pm=pm, console=Console(file=io.StringIO()))
    assert isinstance(info.value.__cause__, NonFiniteLossError)
    run_dir = tmp_path / "runs" / "nan" / "nan-after" / "seed-0"
    result = json.loads((run_dir / "results.json").read_text())
    assert result["status"] == "failed" and "last good checkpoint" in result["error"]
    assert result["dataset"]["sizes"]["train"] == 84  # the data's facts survive a failure
    assert result["dataset"]["task"] == "classification"
    state = ckpt.load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["epoch"] == 2 and state["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in state["encoder"].values())
    assert (tmp_path / "runs" / "nan" / "results.md").is_file()


def test_max_steps_budget_checkpoints_and_stops_cleanly(tmp_path: Path) -> None:
    pm = PluginManager(load_entrypoints=False)
    pm.register(core_plugin, name="core")
    plugin = _TestPlugin()
    pm.register(plugin, name="test")
    cfg = load_config_text(
        f"""
name: budget
output_dir: {tmp_path / "runs"}
baseline: false
data: {{id: core:arrays, params: {{path: {_arrays(tmp_path)}}}}}
encoder: {{id: core:mlp, params: {{in_dim: 6, widths: [16], embed_dim: 8}}}}
views: core:noise-mask
objective: {{id: test:nan-after, params: {{after: 1000}}}}
train: {{epochs: 5, max_steps: 3, batch_size: 32, device: cpu, log_every: 1, clip_grad: 1.0,
         progress: false}}
"""
    )
    result = run_experiment(cfg, pm=pm, console=Console(file=io.StringIO()))
    run = result.runs[0]
    assert run["status"] == "ok" and run["steps"] == 3 and run["epochs"] == 1
    run_dir = tmp_path / "runs" / "budget" / "nan-after" / "seed-0"
    state = ckpt.load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["global_step"] == 3 and state["epoch"] == 1  # mid-epoch 2: 1 completed
    assert state["scheduler"]["last_epoch"] == 3
    steps = [r for r in read_metrics(run_dir / "metrics.jsonl") if "epoch" not in r]
    assert [r["step"] for r in steps] == [1, 2, 3]
    assert all({"loss", "lr", "grad_norm", "gap"} <= r.keys() for r in steps)
    # The cosine spans max_steps (3), not 5 epochs: step 3 uses 0.5 * (1 + cos(2 pi / 3)).
    assert steps[0]["lr"] == pytest.approx(1e-3) and steps[2]["lr"] == pytest.approx(2.5e-4)
    assert plugin.events == [
        ("run_started", "nan-after", 0, "nan-after"),
        ("step_finished", 1),
        ("step_finished", 2),
        ("epoch_finished", 1, True),
        ("checkpoint_saved", "last.pt", 1),
        ("step_finished", 3),
        ("checkpoint_saved", "last.pt", 1),
        ("run_finished", "ok", 3),
    ]
