"""World size 2 over gloo gives the loss and gradients of one process on the global batch.

Scaling (see ``selfsup.engine.distributed``): DDP averages parameter gradients over
the ``W`` ranks, and the autograd-aware collectives hand every rank the *sum* of all
ranks' gradients for its own rows. So what DDP optimises is the mean of the per-rank
losses, and the gradient it applies through rank ``r``'s rows is
``grad_on_rank_r / W``. The test therefore checks

* ``mean_r loss_r == loss(global batch)`` and
* ``cat_r(grad_r) / W == d loss(global batch) / d inputs``

for every core loss, on fixed embeddings (rank ``r`` holds rows ``r*n .. (r+1)*n-1``).
It then checks whole objectives wrapped in ``DistributedDataParallel`` (heads without
batch norm, whose per-rank statistics would legitimately differ): the parameter
gradients after DDP's averaging equal one process's gradients on the global batch.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from selfsup.builtin.objectives.barlow_twins import BarlowTwins, barlow_twins_loss
from selfsup.builtin.objectives.byol import byol_loss
from selfsup.builtin.objectives.dino import DINO, dino_loss, update_center
from selfsup.builtin.objectives.infonce import SimCLR, info_nce
from selfsup.builtin.objectives.simsiam import negative_cosine
from selfsup.builtin.objectives.vicreg import VICReg, vicreg_loss
from selfsup.engine import distributed as D
from selfsup.interfaces import Encoder, EncoderOutput, Objective
from torch import nn

pytestmark = pytest.mark.distributed

WORLD = 2
N_LOCAL = 6
DIM = 8
N_INPUTS = 6  # 2 views + 2 local crops + 2 teacher views (DINO); two-view losses use 0, 1
CENTER = torch.linspace(-0.5, 0.5, DIM).unsqueeze(0)

Loss = Callable[[list[torch.Tensor]], torch.Tensor]

CASES: dict[str, Loss] = {
    "simclr": lambda z: info_nce(z[0], z[1], temperature=0.5),
    "dcl": lambda z: info_nce(z[0], z[1], temperature=0.1, decoupled=True),
    "infonce_cross_view_only": lambda z: info_nce(z[0], z[1], 0.2, intra_view_negatives=False),
    "barlow_twins": lambda z: barlow_twins_loss(z[0], z[1], lambd=5e-3),
    "vicreg": lambda z: vicreg_loss(z[0], z[1]),
    "byol": lambda z: 0.5 * (byol_loss(z[0], z[1]) + byol_loss(z[1], z[0])),
    "simsiam": lambda z: 0.5 * (negative_cosine(z[0], z[1]) + negative_cosine(z[1], z[0])),
    "dino": lambda z: dino_loss(z[:4], z[4:6], CENTER, teacher_temp=0.05, student_temp=0.1),
}
# A deliberately wrong variant: negatives from the local batch only. It must NOT match,
# which shows that the comparison can fail.
LOCAL_ONLY: Loss = lambda z: info_nce(z[0], z[1], 0.5, gather_distributed=False)  # noqa: E731


OBJECTIVES: dict[str, Callable[[], Objective]] = {
    "simclr": lambda: SimCLR(DIM, out_dim=16, num_layers=1),
    "barlow_twins": lambda: BarlowTwins(DIM, out_dim=16, num_layers=1),
    "vicreg": lambda: VICReg(DIM, out_dim=16, num_layers=1),
    "dino": lambda: DINO(DIM, hidden_dim=16, bottleneck_dim=8, out_dim=32, num_layers=2),
}


class LinearEncoder(Encoder):
    def __init__(self) -> None:
        super().__init__()
        self.embed_dim = DIM
        self.net = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, DIM))

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        return EncoderOutput(pooled=self.net(x))


class Model(nn.Module):
    def __init__(self, name: str) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.encoder, self.objective = LinearEncoder(), OBJECTIVES[name]()
        attach = getattr(self.objective, "attach", None)
        if attach is not None:
            attach(self.encoder)

    def forward(self, views: list[torch.Tensor]) -> torch.Tensor:
        return self.objective(self.encoder, views).loss


def _objective_grads(name: str, rows: slice | None = None) -> tuple[float, dict, torch.Tensor]:
    """Loss, parameter gradients and (DINO) centre after one backward, DDP-wrapped if rows."""
    model: nn.Module = Model(name)
    gen = torch.Generator().manual_seed(99)
    n_views = 4 if name == "dino" else 2
    views = [torch.randn(WORLD * N_LOCAL, 5, generator=gen) for _ in range(n_views)]
    if rows is not None:
        views = [v[rows] for v in views]
        model = nn.parallel.DistributedDataParallel(model)
    loss = model(views)
    loss.backward()
    inner = model.module if rows is not None else model
    grads = {k: p.grad.clone() for k, p in inner.named_parameters() if p.requires_grad}
    center = getattr(inner.objective, "center", torch.zeros(()))
    return float(loss.detach()), grads, center.clone()


def _global_inputs() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1234)
    base = torch.randn(WORLD * N_LOCAL, DIM, generator=gen)
    # Correlated views, so that positives are more similar than negatives.
    return [base + 0.5 * torch.randn(base.shape, generator=gen) for _ in range(N_INPUTS)]


def _run(fn: Loss, inputs: list[torch.Tensor]) -> tuple[float, list[torch.Tensor]]:
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    loss = fn(leaves)
    loss.backward()
    grads = [x.grad if x.grad is not None else torch.zeros_like(x) for x in leaves]
    return float(loss.detach()), grads


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        assert D.is_distributed() and D.world_size() == WORLD and D.rank() == rank
        rows = slice(rank * N_LOCAL, (rank + 1) * N_LOCAL)
        local = [x[rows] for x in _global_inputs()]
        results = {name: _run(fn, local) for name, fn in CASES.items()}
        results["local_only"] = _run(LOCAL_ONLY, local)
        results["center"] = update_center(CENTER, local[4:6], momentum=0.9)
        results["objectives"] = {name: _objective_grads(name, rows) for name in OBJECTIVES}
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    # Spawned children import this module by name: make its root importable for them
    # (pytest's importlib mode does not put it on sys.path).
    root = Path(__file__).resolve().parents[len(__name__.split(".")) - 1]
    sys.path.insert(0, str(root))
    out = tmp_path_factory.mktemp("ddp")
    try:
        ctx = mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=False)
        deadline = time.monotonic() + 120
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                for p in ctx.processes:
                    p.kill()
                pytest.fail("distributed workers did not finish within 120 s")
    finally:
        sys.path.remove(str(root))
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def _ddp_view(ranks: list[dict], name: str) -> tuple[float, list[torch.Tensor]]:
    """Mean per-rank loss and the gradients DDP applies (summed slices over W)."""
    loss = sum(r[name][0] for r in ranks) / WORLD
    grads = [torch.cat([r[name][1][i] for r in ranks]) / WORLD for i in range(N_INPUTS)]
    return loss, grads


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_and_grads_match_single_process(ranks: list[dict], name: str) -> None:
    ref_loss, ref_grads = _run(CASES[name], _global_inputs())
    loss, grads = _ddp_view(ranks, name)
    assert loss == pytest.approx(ref_loss, rel=1e-5, abs=1e-6)
    assert any(g.abs().sum() > 0 for g in ref_grads), "reference gradient is zero"
    for i, (g, ref) in enumerate(zip(grads, ref_grads, strict=True)):
        torch.testing.assert_close(g, ref, rtol=1e-4, atol=1e-6, msg=f"{name}: input {i}")


def test_statistics_losses_are_global_on_every_rank(ranks: list[dict]) -> None:
    for name in ("barlow_twins",):
        ref_loss, _ = _run(CASES[name], _global_inputs())
        for r in ranks:
            assert r[name][0] == pytest.approx(ref_loss, rel=1e-5)


def test_local_negatives_only_would_differ(ranks: list[dict]) -> None:
    ref_loss, ref_grads = _run(CASES["simclr"], _global_inputs())
    loss, grads = _ddp_view(ranks, "local_only")
    assert abs(loss - ref_loss) > 1e-3
    assert not torch.allclose(grads[0], ref_grads[0], atol=1e-5)


def test_dino_center_uses_the_global_batch(ranks: list[dict]) -> None:
    ref = update_center(CENTER, _global_inputs()[4:6], momentum=0.9)
    for r in ranks:
        torch.testing.assert_close(r["center"], ref)
    assert not torch.allclose(ref, CENTER)


def test_helpers_are_identities_without_a_process_group() -> None:
    t = torch.randn(3, 2, requires_grad=True)
    assert D.world_size() == 1 and D.rank() == 0 and not D.is_distributed()
    assert D.gather_with_grad(t) is t
    assert D.all_reduce_sum(t) is t and D.all_reduce_mean(t) is t


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_ddp_wrapped_objective_matches_single_process(ranks: list[dict], name: str) -> None:
    ref_loss, ref_grads, ref_center = _objective_grads(name)
    losses = [r["objectives"][name][0] for r in ranks]
    assert sum(losses) / WORLD == pytest.approx(ref_loss, rel=1e-5, abs=1e-6)
    for r in ranks:
        _, grads, center = r["objectives"][name]
        assert grads.keys() == ref_grads.keys()
        for key, ref in ref_grads.items():
            assert ref.abs().sum() > 0, f"{name}: zero reference gradient for {key}"
            torch.testing.assert_close(grads[key], ref, rtol=1e-4, atol=1e-6, msg=key)
        torch.testing.assert_close(center, ref_center)
