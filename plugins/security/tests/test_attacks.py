"""The attacks: budgets, the model left as it was, errors, and their effect on real digits."""

from __future__ import annotations

import copy

import pytest
import torch
from selfsup.interfaces import EncoderOutput
from selfsup_security.attacks import FGSM, PGD, CarliniWagner, UniversalPerturbation, eps_label
from selfsup_security.attacks.base import flat_norm
from selfsup_security.probe import ProbedEncoder
from torch import nn


class _Enc(nn.Module):
    """A tiny encoder with BatchNorm and dropout (modes matter) on 1x4x4 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.Dropout(0.5))

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        return EncoderOutput(pooled=self.net(x))


def _model() -> nn.Module:
    torch.manual_seed(0)
    return ProbedEncoder(_Enc(), nn.Linear(8, 3))


def _batch(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 4, 4, generator=gen), torch.randint(3, (n,), generator=gen)


ATTACKS = [
    pytest.param(FGSM(eps=0.05), id="fgsm"),
    pytest.param(PGD(eps=0.05, steps=4), id="pgd-linf"),
    pytest.param(PGD(eps=0.3, steps=4, norm="l2"), id="pgd-l2"),
    pytest.param(CarliniWagner(steps=5), id="cw"),
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_keeps_the_budget_and_range(attack):
    model = _model()
    x, y = _batch()
    adv = attack.perturb(model, x, y)
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    if attack.eps is not None:
        assert float(flat_norm(adv - x, attack.norm).max()) <= attack.eps + 1e-6
    assert not adv.requires_grad


@pytest.mark.parametrize("attack", ATTACKS)
def test_attack_leaves_the_model_as_it_was(attack):
    model = _model().train()
    model.head.weight.requires_grad_(False)  # a mixed state must come back as it was
    before = copy.deepcopy(model.state_dict())
    flags = [p.requires_grad for p in model.parameters()]
    attack.perturb(model, *_batch())
    assert model.training and all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # BatchNorm running stats included
    assert all(p.grad is None for p in model.parameters())


def test_attack_restores_each_submodule_mode():
    model = _model().train()
    model.encoder.eval()  # an eval-mode encoder inside a wrapper left in train mode
    PGD(eps=0.05, steps=1).perturb(model, *_batch())
    assert model.training and model.head.training and not model.encoder.training
    assert not any(m.training for m in model.encoder.modules())


def test_attack_runs_the_model_in_eval_mode():
    seen = []

    class Spy(nn.Module):
        def forward(self, x):
            seen.append(self.training)
            return x.flatten(1)[:, :3] * 10

    x, y = _batch(4)
    PGD(eps=0.1, steps=2).perturb(Spy().train(), x, y)
    FGSM(eps=0.1).perturb(Spy().train(), x, y)
    assert seen and not any(seen)


def test_fgsm_is_one_signed_step():
    w = torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.0, 1.0, -1.0, 3.0]])
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False))
    model[1].weight.data = w
    x, y = torch.full((1, 1, 2, 2), 0.5), torch.tensor([0])
    adv = FGSM(eps=0.1).perturb(model, x, y)
    # d CE / d x = W^T (softmax - onehot): sign of (w[1] - w[0]) for class 0.
    expected = 0.5 + 0.1 * torch.sign(w[1] - w[0])
    assert torch.allclose(adv.flatten(), expected)


def test_pgd_default_eps_and_step_follow_the_norm():
    assert PGD().eps == pytest.approx(8 / 255) and PGD(norm="l2").eps == 0.5
    assert PGD(eps=0.04, steps=10).step_size() == pytest.approx(0.01)
    assert PGD(eps=0.04, alpha=0.002).with_eps(0.08).step_size() == 0.002
    swept = PGD(eps=0.04, steps=10).with_eps(0.08)
    assert swept.eps == 0.08 and swept.step_size() == pytest.approx(0.02)


def test_pgd_random_start_is_seeded():
    model, (x, y) = _model(), _batch()
    a = PGD(eps=0.05, alpha=0.001, steps=1, seed=3).perturb(model, x, y)
    b = PGD(eps=0.05, alpha=0.001, steps=1, seed=3).perturb(model, x, y)
    c = PGD(eps=0.05, alpha=0.001, steps=1, seed=4).perturb(model, x, y)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_cw_returns_the_input_where_it_fails_and_misclassified_examples_elsewhere():
    model, (x, y) = _model().eval(), _batch(32)
    adv = CarliniWagner(c=5.0, steps=30, lr=0.05).perturb(model, x, y)
    moved = flat_norm(adv - x, "l2") > 0
    with torch.no_grad():
        pred = model(adv).argmax(1)
    assert bool(moved.any())
    assert bool((pred[moved] != y[moved]).all())  # every change is a successful one
    assert torch.equal(adv[~moved], x[~moved])


def test_attacks_refuse_inputs_outside_the_unit_range():
    model, (x, y) = _model(), _batch()
    with pytest.raises(ValueError, match=r"in \[0, 1\].*normalisation inside"):
        PGD().perturb(model, x * 4 - 2, y)
    with pytest.raises(ValueError, match=r"uint8 images with x\.float"):
        FGSM().perturb(model, (x * 255).to(torch.uint8), y)


@pytest.mark.parametrize(
    ("factory", "kwargs", "message"),
    [
        (FGSM, {"eps": 0}, "security:fgsm: eps=0"),
        (FGSM, {"eps": 8}, "eps=8 .*0-1 input scale"),
        (PGD, {"norm": "l1"}, "norm='l1'.*'linf' or 'l2'"),
        (PGD, {"steps": 0}, "steps=0"),
        (PGD, {"alpha": -1.0}, "alpha=-1.0"),
        (CarliniWagner, {"c": 0}, "security:cw: c=0"),
        (CarliniWagner, {"kappa": -1}, "kappa=-1"),
        (UniversalPerturbation, {"eps": 2.0}, "security:universal: eps=2.0"),
        (UniversalPerturbation, {"loss": "kl"}, "loss='kl'"),
    ],
)
def test_bad_parameters_name_the_key(factory, kwargs, message):
    with pytest.raises(ValueError, match=message):
        factory(**kwargs)


def test_universal_needs_fit_and_keeps_the_budget():
    enc, (x, y) = _Enc(), _batch(40)
    atk = UniversalPerturbation(eps=0.05, steps=5, batch_size=16)
    with pytest.raises(ValueError, match="before fit"):
        atk.perturb(_model(), x, y)
    delta = atk.fit(enc, torch.utils.data.DataLoader(list(zip(x, y, strict=True)), batch_size=8))
    assert tuple(delta.shape) == (1, 4, 4) and float(delta.abs().max()) <= 0.05 + 1e-7
    assert atk.fit_items == 40 and atk.fit_deviation > 0
    adv = atk.perturb(_model(), x, y)
    assert torch.allclose(adv, (x + delta).clamp(0, 1))
    assert atk.with_eps(0.1).delta is None  # another budget needs another fit
    with pytest.raises(ValueError, match="fitted on"):
        atk.perturb(_model(), torch.rand(2, 1, 5, 5), y[:2])


def test_eps_labels():
    assert [eps_label(e) for e in (2 / 255, 4 / 255, 8 / 255, 0.031373, 0.0314)] == [
        "2", "4", "8", "8", "8"
    ]  # fmt: skip
    assert eps_label(0.5, "l2") == "0.5" and eps_label(1 / 255) == "1"


# --------------------------------------------------------------------------- real digits


def _acc(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).double().mean())


def test_pgd_drops_accuracy_far_below_clean_on_digits(digits_model):
    model, x, y, _ = digits_model
    clean = _acc(model, x, y)
    robust = {e: _acc(model, PGD(eps=e / 255, steps=10).perturb(model, x, y), y) for e in (2, 8)}
    fgsm = _acc(model, FGSM(eps=8 / 255).perturb(model, x, y), y)
    noise = (x + (torch.randint(2, x.shape[1:], generator=torch.Generator().manual_seed(0)) * 2 - 1)
             * 8 / 255).clamp(0, 1)  # fmt: skip
    assert clean > 0.9
    assert _acc(model, noise, y) > clean - 0.03  # random sign noise of the same budget: harmless
    assert robust[8] < clean - 0.5  # measured: clean 0.96, PGD 2/255 0.80, 8/255 0.05
    assert robust[8] < robust[2] < clean  # a larger budget hurts more
    assert robust[8] <= fgsm < clean - 0.2  # PGD at least as strong as FGSM (0.32)


def test_cw_breaks_most_inputs_with_small_l2_on_digits(digits_model):
    model, x, y, _ = digits_model
    x, y = x[:100], y[:100]
    adv = CarliniWagner(c=1.0, steps=30).perturb(model, x, y)
    wrong = (model(adv).argmax(1) != y).detach()
    norms = flat_norm(adv - x, "l2")
    assert float(wrong.double().mean()) > 0.8  # measured: 1.0
    assert float(norms[wrong].median()) < 1.0  # well below the 16-pixel-wide 8/255 box (0.5..)


def test_universal_perturbation_beats_random_noise_without_labels(digits_model):
    model, x, y, train_x = digits_model
    eps = 32 / 255
    atk = UniversalPerturbation(eps=eps, steps=40, batch_size=128, max_fit_items=600)
    atk.fit(model.encoder, train_x)  # labels and the probe are never given
    gen = torch.Generator().manual_seed(0)
    noise = (torch.randint(2, x.shape[1:], generator=gen) * 2 - 1) * eps
    universal, random = (
        _acc(model, atk.perturb(model, x, y), y),
        _acc(model, (x + noise).clamp(0, 1), y),
    )
    assert universal < random - 0.1, (universal, random)  # measured: 0.71 vs 0.93
