"""White-box gradient attacks through encoder + clean probe: FGSM, PGD (L-inf, L2), C&W.

Each follows its paper and the reference implementations the tests compare against
(torchattacks 3.5, the Adversarial Robustness Toolbox): untargeted, cross-entropy
(FGSM, PGD) or the C&W margin loss, inputs in ``[0, 1]`` with the normalisation inside
the model, the model in eval mode with frozen parameters during the attack (both
restored afterwards).

Budgets are on the 0-1 input scale: a config writes 8/255 as ``0.031373`` (YAML has no
expressions); metric names show L-inf budgets on the 0-255 scale (``..._linf_8``).

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    >>> x, y = torch.rand(3, 1, 2, 2), torch.tensor([0, 1, 0])
    >>> adv = PGD(eps=0.1, steps=3, random_start=False).perturb(model, x, y)
    >>> bool((adv - x).abs().max() <= 0.1 + 1e-6), bool(adv.min() >= 0), bool(adv.max() <= 1)
    (True, True, True)
"""

from __future__ import annotations

from typing import Annotated, Any

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn import functional as F

from selfsup_security.attacks.base import (
    Attack,
    Norm,
    check_unit_range,
    flat_norm,
    frozen_eval,
    project,
)

__all__ = ["FGSM", "PGD", "CarliniWagner"]

#: Default budgets: 8/255 for L-inf, 0.5 for L2 (on the 0-1 scale).
DEFAULT_EPS = {"linf": 8 / 255, "l2": 0.5}


def _require(owner: str, name: str, value: Any, ok: bool, allowed: str) -> None:
    if isinstance(value, bool) or not ok:
        raise ValueError(f"{owner}: {name}={value!r} is not allowed; it must be {allowed}")


def _input_grad(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Gradient of the mean cross-entropy with respect to the input ``x``.

    The mean, as torchattacks and ART take it: only the direction matters, but the same
    rounding gives the same sign on near-zero entries, hence the same examples.
    """
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    return torch.autograd.grad(loss, x)[0]


class FGSM(Attack):
    """Fast gradient sign method (Goodfellow et al., 2015): one L-inf step of size ``eps``.

    ``x_adv = clip(x + eps * sign(grad_x CE(model(x), y)), 0, 1)``.

    Args:
        eps: L-inf budget on the 0-1 input scale (8/255 is written ``0.031373``).
    """

    name = "fgsm_linf"
    norm = "linf"

    def __init__(self, eps: Annotated[float, Field(gt=0, le=1)] = 8 / 255) -> None:
        _require("security:fgsm", "eps", eps, isinstance(eps, int | float) and 0 < eps <= 1,
                 "a number in (0, 1] (the 0-1 input scale)")  # fmt: skip
        self.eps = float(eps)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """One signed-gradient step of size ``eps``, clipped to ``[0, 1]``."""
        check_unit_range("security:fgsm", x)
        assert self.eps is not None
        with frozen_eval(model), torch.enable_grad():
            grad = _input_grad(model, x, y)
        return (x + self.eps * grad.sign()).clamp(0, 1).detach()


class PGD(Attack):
    """Projected gradient descent (Madry et al., 2018), L-inf or L2, untargeted.

    Each of ``steps`` iterations takes a step of size ``alpha`` along the sign of the
    cross-entropy gradient (L-inf) or its L2-normalised direction (L2), projects back
    onto the ``eps`` ball around ``x`` and clips to ``[0, 1]``, exactly as torchattacks'
    ``PGD`` / ``PGDL2`` do.

    Args:
        eps: Budget on the 0-1 input scale; ``None``: 8/255 for L-inf, 0.5 for L2.
            (Write 8/255 as ``0.031373``.)
        alpha: Step size on the same scale; ``None``: ``2.5 * eps / steps`` (Madry's
            rule), which also follows ``eps`` when an evaluator sweeps budgets.
        steps: Number of iterations.
        norm: ``"linf"`` or ``"l2"``.
        random_start: Start from a uniform random point of the ball (L-inf) or a
            random direction at a uniform radius (L2), as torchattacks does.
        seed: Seed of the random start.
    """

    def __init__(
        self,
        eps: Annotated[float, Field(gt=0)] | None = None,
        alpha: Annotated[float, Field(gt=0)] | None = None,
        steps: Annotated[int, Field(ge=1)] = 10,
        norm: Norm = "linf",
        random_start: bool = True,
        seed: int = 0,
    ) -> None:
        owner = "security:pgd"
        _require(owner, "norm", norm, norm in ("linf", "l2"), "'linf' or 'l2'")
        eps = DEFAULT_EPS[norm] if eps is None else eps
        _require(owner, "eps", eps, isinstance(eps, int | float) and eps > 0, "a number > 0")
        _require(owner, "alpha", alpha,
                 alpha is None or (isinstance(alpha, int | float) and alpha > 0),
                 "a number > 0, or null for 2.5 * eps / steps")  # fmt: skip
        _require(owner, "steps", steps, isinstance(steps, int) and steps >= 1, "an integer >= 1")
        self.eps, self.norm, self.steps = float(eps), norm, steps
        self.alpha = None if alpha is None else float(alpha)
        self.random_start, self.seed = bool(random_start), int(seed)
        self.name = f"pgd_{norm}"

    def step_size(self) -> float:
        """The step size: ``alpha``, or ``2.5 * eps / steps`` when it is not set."""
        assert self.eps is not None
        return self.alpha if self.alpha is not None else 2.5 * self.eps / self.steps

    def _start(self, x: Tensor) -> Tensor:
        assert self.eps is not None
        if not self.random_start:
            return x.clone()
        gen = torch.Generator().manual_seed(self.seed)
        if self.norm == "linf":
            delta = (torch.rand(x.shape, generator=gen) * 2 - 1) * self.eps
        else:
            direction = torch.randn(x.shape, generator=gen)
            radius = torch.rand(x.shape[0], generator=gen) * self.eps
            n = flat_norm(direction, "l2").clamp_min(1e-12)
            delta = direction * (radius / n).view(-1, *([1] * (x.ndim - 1)))
        return (x + delta.to(x.device, x.dtype)).clamp(0, 1)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """``steps`` projected gradient steps from ``x`` (or a random start)."""
        check_unit_range("security:pgd", x)
        assert self.eps is not None
        x = x.detach()
        alpha, adv = self.step_size(), self._start(x)
        with frozen_eval(model), torch.enable_grad():
            for _ in range(self.steps):
                # Inline, not through _input_grad: on CPU a helper call per step measured
                # about 4% slower (the loss and its buffers freed at every return).
                adv.requires_grad_(True)
                loss = F.cross_entropy(model(adv), y)
                grad = torch.autograd.grad(loss, adv)[0]
                adv = adv.detach()
                if self.norm == "linf":
                    adv = adv + alpha * grad.sign()
                else:
                    g = flat_norm(grad, "l2").add_(1e-10)
                    adv = adv + alpha * grad / g.view(-1, *([1] * (x.ndim - 1)))
                adv = (x + project(adv - x, self.norm, self.eps)).clamp_(0, 1)
        return adv.detach()


class CarliniWagner(Attack):
    """Carlini-Wagner L2 (2017), untargeted, a fixed trade-off ``c`` (no binary search).

    Minimises ``||x' - x||_2^2 + c * max(Z_y - max_{i != y} Z_i, -kappa)`` over
    ``x' = (tanh(w) + 1) / 2`` with Adam, and returns for each input the successful
    adversarial example of smallest L2 norm found (the input itself where none was).
    It is a minimal-norm attack: it has no budget; the robustness evaluator scores it
    at each L2 radius it is given (an example counts only within the radius).
    Stops early, as the paper's code does, when the loss has not fallen by 0.01% over
    the last tenth of the steps.

    Args:
        c: Weight of the misclassification term against the squared L2 distance.
        kappa: Confidence margin of the logits.
        steps: Adam iterations.
        lr: Adam's learning rate (in the tanh space).
        abort_early: Stop when the loss stalls (see above).
    """

    name = "cw_l2"
    norm = "l2"
    eps = None

    def __init__(
        self,
        c: Annotated[float, Field(gt=0)] = 1.0,
        kappa: Annotated[float, Field(ge=0)] = 0.0,
        steps: Annotated[int, Field(ge=1)] = 50,
        lr: Annotated[float, Field(gt=0)] = 0.01,
        abort_early: bool = True,
    ) -> None:
        owner = "security:cw"
        for key, value, bound in (("c", c, "> 0"), ("kappa", kappa, ">= 0"), ("lr", lr, "> 0")):
            number = isinstance(value, int | float)
            ok = number and (value >= 0 if bound == ">= 0" else value > 0)
            _require(owner, key, value, ok, f"a number {bound}")
        _require(owner, "steps", steps, isinstance(steps, int) and steps >= 1, "an integer >= 1")
        self.c, self.kappa, self.steps, self.lr = float(c), float(kappa), steps, float(lr)
        self.abort_early = bool(abort_early)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """The smallest successful adversarial example found for each input (or the input)."""
        check_unit_range("security:cw", x)
        x = x.detach()
        w = torch.atanh((x * 2 - 1) * 0.999999).requires_grad_(True)
        opt = torch.optim.Adam([w], lr=self.lr)
        best = x.clone()
        best_l2 = torch.full((x.shape[0],), float("inf"), device=x.device)
        shape = (-1, *([1] * (x.ndim - 1)))
        prev, check_every = float("inf"), max(self.steps // 10, 1)
        with frozen_eval(model), torch.enable_grad():
            for step in range(self.steps):
                adv = (torch.tanh(w) + 1) / 2
                l2 = (adv - x).pow(2).reshape(x.shape[0], -1).sum(1)
                logits = model(adv)
                real = logits.gather(1, y.view(-1, 1)).squeeze(1)
                other = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
                margin = (real - other.amax(1)).clamp(min=-self.kappa)
                loss = l2.sum() + self.c * margin.sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    better = (logits.argmax(1) != y) & (l2 < best_l2)
                    best_l2 = torch.where(better, l2, best_l2)
                    best = torch.where(better.view(shape), adv, best)
                if self.abort_early and step % check_every == 0:
                    value = float(loss.detach())
                    if value > prev - 1e-4 * abs(prev):  # not 0.01% lower than before
                        break
                    prev = value
        return best.detach()
