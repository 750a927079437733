"""Our loss functions against lightly 1.6's independent implementations (value and grads).

Conventions matched (see each loss module's docstring):
* NT-Xent / DCL: same temperature; lightly's DCL averages the two directions, as we do.
* Barlow Twins: lightly's ``lambda_param`` is our ``lambd``; both standardise with the
  biased batch variance and eps 1e-5 and divide ``C`` by the batch size.
* VICReg: lightly's ``lambda/mu/nu`` are our ``sim/std/cov_coeff``; same eps.
* BYOL: ours is ``2 - 2 cos`` = ``2 + 2 * NegativeCosineSimilarity`` on a detached target.
* DINO: lightly's ``DINOLoss(teacher_out, student_out, teacher_temp=...)`` with its
  ``center`` buffer set to ours; its centre update equals ours on one process.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from selfsup.builtin.objectives.barlow_twins import barlow_twins_loss
from selfsup.builtin.objectives.byol import byol_loss
from selfsup.builtin.objectives.dino import dino_loss, update_center
from selfsup.builtin.objectives.infonce import info_nce
from selfsup.builtin.objectives.simsiam import negative_cosine
from selfsup.builtin.objectives.vicreg import vicreg_loss

lightly_loss = pytest.importorskip("lightly.loss", reason="lightly is the reference")

Fn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread avoids OpenMP barrier costs on busy, shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _pair(n: int = 16, d: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=gen)
    return a, a + 0.7 * torch.randn(n, d, generator=gen)


def _value_and_grads(fn: Fn, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, ...]:
    a = a.clone().requires_grad_(True)
    b = b.clone().requires_grad_(True)
    loss = fn(a, b)
    ga, gb = torch.autograd.grad(loss, (a, b), allow_unused=True)
    return (
        loss.detach(),
        ga if ga is not None else torch.zeros_like(a),
        (gb if gb is not None else torch.zeros_like(b)),
    )


def _assert_same(ours: Fn, theirs: Fn, n: int = 16, d: int = 12) -> None:
    for seed in range(3):
        a, b = _pair(n, d, seed)
        mine, ref = _value_and_grads(ours, a, b), _value_and_grads(theirs, a, b)
        torch.testing.assert_close(mine[0], ref[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(mine[1], ref[1], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(mine[2], ref[2], rtol=1e-4, atol=1e-6)
        assert mine[1].abs().sum() > 0


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_nt_xent_matches_lightly(temperature: float) -> None:
    ref = lightly_loss.NTXentLoss(temperature=temperature)
    _assert_same(lambda a, b: info_nce(a, b, temperature), ref)


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_dcl_matches_lightly(temperature: float) -> None:
    ref = lightly_loss.DCLLoss(temperature=temperature)
    _assert_same(lambda a, b: info_nce(a, b, temperature, decoupled=True), ref)


def test_decoupling_changes_the_loss() -> None:
    a, b = _pair()
    assert not torch.allclose(info_nce(a, b, 0.1), info_nce(a, b, 0.1, decoupled=True))


@pytest.mark.parametrize("lambd", [5e-3, 0.05])
def test_barlow_twins_matches_lightly(lambd: float) -> None:
    ref = lightly_loss.BarlowTwinsLoss(lambda_param=lambd)
    _assert_same(lambda a, b: barlow_twins_loss(a, b, lambd=lambd), ref)


def test_vicreg_matches_lightly() -> None:
    ref = lightly_loss.VICRegLoss(lambda_param=25.0, mu_param=25.0, nu_param=1.0, eps=1e-4)
    _assert_same(lambda a, b: vicreg_loss(a, b, 25.0, 25.0, 1.0, eps=1e-4), ref)
    ref2 = lightly_loss.VICRegLoss(lambda_param=5.0, mu_param=10.0, nu_param=2.0)
    _assert_same(lambda a, b: vicreg_loss(a, b, 5.0, 10.0, 2.0), ref2)


def test_simsiam_matches_lightly_negative_cosine() -> None:
    ncs = lightly_loss.NegativeCosineSimilarity()

    def theirs(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return ncs(p, z.detach())

    _assert_same(negative_cosine, theirs)
    _assert_same(lambda p, z: negative_cosine(p, z, stop_gradient=False), ncs)


def test_byol_matches_lightly_negative_cosine() -> None:
    ncs = lightly_loss.NegativeCosineSimilarity()
    _assert_same(byol_loss, lambda p, z: 2.0 + 2.0 * ncs(p, z.detach()))


@pytest.mark.parametrize("n_local", [0, 3])
def test_dino_matches_lightly(n_local: int) -> None:
    gen = torch.Generator().manual_seed(n_local)
    k, batch = 32, 8
    center = 0.3 * torch.randn(1, k, generator=gen)
    teacher = [torch.randn(batch, k, generator=gen) for _ in range(2)]
    student = [torch.randn(batch, k, generator=gen) for _ in range(2 + n_local)]

    ref = lightly_loss.DINOLoss(
        output_dim=k, teacher_temp=0.05, student_temp=0.1, center_momentum=0.9
    )
    ref.center.copy_(center.view(1, 1, k))
    s_ref = [s.clone().requires_grad_(True) for s in student]
    loss_ref = ref(teacher, s_ref, teacher_temp=0.05)
    grads_ref = torch.autograd.grad(loss_ref, s_ref)

    s_ours = [s.clone().requires_grad_(True) for s in student]
    loss = dino_loss(s_ours, teacher, center, teacher_temp=0.05, student_temp=0.1)
    grads = torch.autograd.grad(loss, s_ours)

    torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-6)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-7)
    new_center = update_center(center, teacher, momentum=0.9)
    torch.testing.assert_close(new_center.view(1, 1, k), ref.center)
