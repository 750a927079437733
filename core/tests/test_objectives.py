"""The core objectives through the plugin manager: contract, EMA teachers, checkpoints, learning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from selfsup.builtin.objectives import (
    barlow_twins_loss,
    byol_loss,
    dino_loss,
    info_nce,
    negative_cosine,
    vicreg_loss,
)
from selfsup.builtin.objectives.byol import BYOL
from selfsup.builtin.objectives.ema import cosine_momentum
from selfsup.interfaces import Encoder, EncoderOutput, Objective, ObjectiveOutput
from selfsup.plugins import PluginManager
from torch import nn

CORE_OBJECTIVES = [
    "core:simclr",
    "core:dcl",
    "core:barlow-twins",
    "core:vicreg",
    "core:byol",
    "core:simsiam",
    "core:dino",
]
TEACHER_OBJECTIVES = ["core:byol", "core:dino"]
DIM = 32


class TinyEncoder(Encoder):
    """Mean-pools ``[B, L, 6]`` sequences of any length ``L`` (so local crops can be shorter)."""

    modality = "any"

    def __init__(self, in_dim: int = 6, dim: int = DIM) -> None:
        super().__init__()
        self.embed_dim = dim
        self.net = nn.Sequential(nn.Linear(in_dim, 48), nn.BatchNorm1d(48), nn.ReLU())
        self.out = nn.Linear(48, dim)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        self.calls += 1
        b, length, f = x.shape
        h = self.net(x.reshape(b * length, f)).reshape(b, length, -1).mean(dim=1)
        return EncoderOutput(pooled=self.out(h))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (OpenMP barriers cost more on busy, shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def manager() -> PluginManager:
    return PluginManager()


def _build(manager: PluginManager, oid: str, embed_dim: int = DIM, **params) -> Objective:
    return manager.get("objective", oid).create(embed_dim=embed_dim, **params)


def _views(oid: str, batch: int = 8, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    views = [torch.randn(batch, 5, 6, generator=gen) for _ in range(2)]
    if oid == "core:dino":  # two global views, then three shorter local crops
        views += [torch.randn(batch, 2, 6, generator=gen) for _ in range(3)]
    return views


def _teacher_params(obj: Objective) -> list[nn.Parameter]:
    return list(obj.teacher.parameters())  # type: ignore[attr-defined]


def test_every_core_objective_is_registered(manager: PluginManager) -> None:
    ids = {s.id for s in manager.registry.list("objective") if s.plugin == "core"}
    assert ids == set(CORE_OBJECTIVES)


@pytest.mark.parametrize("oid", CORE_OBJECTIVES)
def test_forward_backward_reaches_the_encoder(manager: PluginManager, oid: str) -> None:
    torch.manual_seed(0)
    obj, enc = _build(manager, oid), TinyEncoder()
    assert isinstance(obj, Objective)
    out = obj(enc, _views(oid))
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    scalars = out.scalars()
    assert len(scalars) >= 3 and all(math.isfinite(v) for v in scalars.values())
    out.loss.backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{oid}: no grad on encoder {name}"
    trained = list(obj.student_parameters())
    assert trained and any(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)


@pytest.mark.parametrize("oid", CORE_OBJECTIVES)
def test_bad_views_and_widths_are_rejected(manager: PluginManager, oid: str) -> None:
    obj, enc = _build(manager, oid), TinyEncoder()
    with pytest.raises(ValueError, match="views"):
        obj(enc, _views(oid)[:1])
    with pytest.raises(TypeError, match="list of views"):
        obj(enc, torch.randn(8, 5, 6))
    with pytest.raises(ValueError, match=r"embed_dim=encoder\.embed_dim"):
        _build(manager, oid, embed_dim=DIM + 1)(enc, _views(oid))


def test_two_view_objectives_refuse_extra_views(manager: PluginManager) -> None:
    with pytest.raises(ValueError, match="exactly 2 views"):
        _build(manager, "core:simclr")(TinyEncoder(), _views("core:dino"))


@pytest.mark.parametrize(
    ("oid", "params"),
    [
        ("core:simclr", {"temperature": 0.0}),
        ("core:dino", {"student_temp": -1.0}),
        ("core:vicreg", {"cov_coeff": -1.0}),
        ("core:barlow-twins", {"lambd": float("nan")}),
        ("core:byol", {"embed_dim": 0}),
    ],
)
def test_bad_parameters_name_the_key(manager: PluginManager, oid: str, params: dict) -> None:
    key = next(iter(params))
    with pytest.raises(ValueError, match=key):
        manager.get("objective", oid).create(**{"embed_dim": DIM, **params})


def test_dcl_is_simclr_with_the_decoupled_switch(manager: PluginManager) -> None:
    torch.manual_seed(0)
    dcl, enc = _build(manager, "core:dcl"), TinyEncoder()
    torch.manual_seed(0)
    simclr = _build(manager, "core:simclr", temperature=0.1, decoupled=True)
    views = _views("core:dcl")
    assert dcl.decoupled
    torch.testing.assert_close(dcl(enc, views).loss, simclr(enc, views).loss)


def test_dino_teacher_sees_only_the_global_views(manager: PluginManager) -> None:
    obj, enc = _build(manager, "core:dino"), TinyEncoder()
    obj.attach(enc)
    teacher_enc = obj.teacher.encoder
    views = _views("core:dino")
    obj(enc, views)
    assert enc.calls == len(views) and teacher_enc.calls == 2
    assert float(obj.center.abs().sum()) > 0  # the centre moved


@pytest.mark.parametrize("oid", TEACHER_OBJECTIVES)
def test_ema_teacher_moves_after_step_and_is_not_trained(manager: PluginManager, oid: str) -> None:
    torch.manual_seed(0)
    obj, enc = _build(manager, oid), TinyEncoder()
    obj.attach(enc)
    teacher = _teacher_params(obj)
    assert teacher and all(not p.requires_grad for p in teacher)
    trained_ids = {id(p) for p in obj.student_parameters()}
    assert not trained_ids & {id(p) for p in teacher}
    opt = torch.optim.SGD([*enc.parameters(), *obj.student_parameters()], lr=0.5)
    before = [p.detach().clone() for p in teacher]
    out = obj(enc, _views(oid))
    out.loss.backward()
    assert all(p.grad is None for p in teacher)
    opt.step()
    obj.on_step_end(1, 10)
    m = cosine_momentum(1, 10, obj.teacher.base_momentum)
    assert float(obj.teacher.momentum) == pytest.approx(m)
    pairs = [
        *zip(obj.teacher.encoder.parameters(), enc.parameters(), strict=True),
        *zip(obj.teacher.head.parameters(), obj.student_head().parameters(), strict=True),
    ]
    assert len(pairs) == len(teacher)
    old = dict(zip(map(id, teacher), before, strict=True))
    for new, student in pairs:
        expected = m * old[id(new)] + (1 - m) * student.detach()
        torch.testing.assert_close(new, expected, rtol=1e-5, atol=1e-7)
    moved = sum(int(not torch.equal(old[id(p)], p)) for p in teacher)
    assert moved > len(teacher) // 2


def test_teacher_student_objectives_nest(manager: PluginManager) -> None:
    """BYOL holding DINO (both with EMA teachers): each hook reaches both teachers."""
    torch.manual_seed(0)

    class BYOLWithDINO(BYOL):
        def __init__(self, embed_dim: int) -> None:
            super().__init__(embed_dim, hidden_dim=16, proj_dim=8)
            self.aux = nn.ModuleList([_build(manager, "core:dino", embed_dim=embed_dim)])

        def forward(self, encoder, views, meta=None):
            out = super().forward(encoder, views[:2], meta)
            aux = self.aux[0](encoder, views, meta)
            return ObjectiveOutput(loss=out.loss + aux.loss)

    obj, enc = BYOLWithDINO(DIM), TinyEncoder()
    dino = obj.aux[0]
    assert list(obj.sub_objectives()) == [dino]
    obj.attach(enc)
    assert obj.teacher.attached and dino.teacher.attached  # attach reached the inner one
    teachers = {id(p) for t in (obj.teacher, dino.teacher) for p in t.parameters()}
    trained = {id(p) for p in obj.student_parameters()}
    assert not trained & teachers
    assert {id(p) for p in [*obj.projector.parameters(), *dino.head.parameters()]} <= trained
    opt = torch.optim.SGD([*enc.parameters(), *obj.student_parameters()], lr=0.5)
    before = [p.detach().clone() for p in dino.teacher.encoder.parameters()]
    obj(enc, _views("core:dino")).loss.backward()
    opt.step()
    obj.on_step_end(3, 10)  # reaches the inner DINO: its EMA and its temperature schedule
    assert int(dino.step) == 3 and int(dino.total_steps) == 10
    assert float(dino.teacher.momentum) == pytest.approx(cosine_momentum(3, 10, 0.996))
    assert float(obj.teacher.momentum) == pytest.approx(cosine_momentum(3, 10, 0.996))
    after = list(dino.teacher.encoder.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


PAIR_LOSSES = {
    "info_nce": lambda a, b: info_nce(a, b, temperature=0.1),
    "barlow_twins": barlow_twins_loss,
    "vicreg": vicreg_loss,
    "byol": byol_loss,
    "simsiam": negative_cosine,
    "dino": lambda a, b: dino_loss([a, b], [b, a], torch.zeros(1, a.shape[1])),
}


@pytest.mark.parametrize("name", sorted(PAIR_LOSSES))
def test_losses_compute_in_fp32_under_autocast(name: str) -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(16, 12, generator=gen).bfloat16()
    b = (a.float() + 0.5 * torch.randn(16, 12, generator=gen)).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = PAIR_LOSSES[name](a, b)
    ref = PAIR_LOSSES[name](a.float(), b.float())
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, ref, rtol=1e-5, atol=1e-6)


def test_cosine_momentum_schedule() -> None:
    assert cosine_momentum(0, 100, 0.996) == pytest.approx(0.996)
    assert cosine_momentum(50, 100, 0.996) == pytest.approx(0.998)
    assert cosine_momentum(100, 100, 0.996) == pytest.approx(1.0)
    assert cosine_momentum(250, 100, 0.996) == pytest.approx(1.0)


def test_dino_teacher_temperature_warms_up(manager: PluginManager) -> None:
    obj = _build(manager, "core:dino", warmup_teacher_temp=0.04, teacher_temp=0.07)
    assert obj.current_teacher_temp() == pytest.approx(0.04)
    obj.on_step_end(15, 100)  # warmup over 30% of the run: halfway
    assert obj.current_teacher_temp() == pytest.approx(0.055)
    obj.on_step_end(40, 100)
    assert obj.current_teacher_temp() == pytest.approx(0.07)


@pytest.mark.parametrize("oid", TEACHER_OBJECTIVES)
def test_teacher_is_created_lazily_on_first_forward(manager: PluginManager, oid: str) -> None:
    obj, enc = _build(manager, oid), TinyEncoder()
    assert not any(k.startswith("teacher.encoder.") for k in obj.state_dict())
    obj(enc, _views(oid))
    assert any(k.startswith("teacher.encoder.") for k in obj.state_dict())


@pytest.mark.parametrize("oid", TEACHER_OBJECTIVES)
def test_state_dict_round_trip_restores_the_teacher(manager: PluginManager, oid: str) -> None:
    torch.manual_seed(0)
    obj, enc = _build(manager, oid), TinyEncoder()
    obj.attach(enc)
    opt = torch.optim.SGD([*enc.parameters(), *obj.student_parameters()], lr=0.5)
    for step in range(3):
        out = obj(enc, _views(oid, seed=step))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        obj.on_step_end(step + 1, 10)
    saved = {k: v.clone() for k, v in obj.state_dict().items()}

    torch.manual_seed(1)
    fresh, fresh_enc = _build(manager, oid), TinyEncoder()
    with pytest.raises(RuntimeError, match=r"attach\(encoder\)"):
        fresh.load_state_dict(saved)
    fresh.attach(fresh_enc)
    assert not torch.equal(fresh.teacher.encoder.out.weight, obj.teacher.encoder.out.weight)
    fresh.load_state_dict(saved)
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(value, saved[key], msg=key)
    if oid == "core:dino":
        assert fresh.current_teacher_temp() == pytest.approx(obj.current_teacher_temp())
    # The restored objective computes exactly what the original computes.
    fresh_enc.load_state_dict(enc.state_dict())
    obj.eval(), fresh.eval(), enc.eval(), fresh_enc.eval()
    views = _views(oid, seed=9)
    torch.testing.assert_close(fresh(fresh_enc, views).loss, obj(enc, views).loss)


# ---------------------------------------------------------------- learning on real data
class DigitsMLP(Encoder):
    modality = "image"

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.embed_dim = dim
        self.net = nn.Sequential(nn.Linear(64, 256), nn.BatchNorm1d(256), nn.ReLU())
        self.head = nn.Linear(256, dim)

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        return EncoderOutput(pooled=self.head(self.net(x.flatten(1))))


def _noisy_masked_views(x: torch.Tensor, gen: torch.Generator) -> list[torch.Tensor]:
    return [
        x * (torch.rand(x.shape, generator=gen) > 0.3) + 0.1 * torch.randn(x.shape, generator=gen)
        for _ in range(2)
    ]


def _probe_accuracy(enc: Encoder, x: torch.Tensor, y: np.ndarray, tr: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    te = np.setdiff1d(np.arange(len(y)), tr)
    enc.eval()
    with torch.no_grad():
        feats = enc(x).pooled.numpy()
    enc.train()
    scaler = StandardScaler().fit(feats[tr])
    clf = LogisticRegression(max_iter=500).fit(scaler.transform(feats[tr]), y[tr])
    return float(clf.score(scaler.transform(feats[te]), y[te]))


@pytest.mark.heavy
@pytest.mark.parametrize(
    ("oid", "params"),
    [
        ("core:simclr", {"hidden_dim": 128, "out_dim": 64, "temperature": 0.2}),
        ("core:barlow-twins", {"hidden_dim": 256, "out_dim": 256, "lambd": 0.01}),
        ("core:dcl", {"hidden_dim": 128, "out_dim": 64, "temperature": 0.2}),
        ("core:vicreg", {"hidden_dim": 256, "out_dim": 256}),
        ("core:byol", {}),
        ("core:simsiam", {}),
        ("core:dino", {}),
    ],
)
def test_objective_learns_digits_features(manager: PluginManager, oid: str, params: dict) -> None:
    """100 steps on real 8x8 digits beat the same random-init encoder under a linear probe."""
    from sklearn.datasets import load_digits

    data, labels = load_digits(return_X_y=True)
    x = torch.tensor(data / 16.0, dtype=torch.float32)
    y = np.asarray(labels)
    tr = np.random.default_rng(0).permutation(len(y))[:1200]

    torch.manual_seed(0)
    enc = DigitsMLP()
    baseline = _probe_accuracy(enc, x, y, tr)
    obj = _build(manager, oid, embed_dim=enc.embed_dim, **params)
    opt = torch.optim.Adam([*enc.parameters(), *obj.student_parameters()], lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    x_train = x[tr]
    for step in range(100):
        batch = x_train[torch.randint(0, len(tr), (256,), generator=gen)]
        loss = obj(enc, _noisy_masked_views(batch, gen)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        obj.on_step_end(step + 1, 100)  # EMA teachers (BYOL, DINO) follow the student
    learned = _probe_accuracy(enc, x, y, tr)
    assert learned >= baseline + 0.03, f"{oid}: probe {learned:.3f} vs random init {baseline:.3f}"
