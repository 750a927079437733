"""The attack base class, budgets and the eval-mode guard shared by every attack.

See :mod:`selfsup_security.attacks` for the interface an attack implements.

Example:
    >>> import torch
    >>> eps_label(8 / 255), eps_label(0.0314), eps_label(0.5, "l2")
    ('8', '8', '0.5')
    >>> project(torch.full((1, 1, 2, 2), 0.5), "linf", 0.1).max().item()
    0.10000000149011612
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any, Literal

from torch import Tensor, nn

__all__ = [
    "Attack",
    "Norm",
    "check_unit_range",
    "eps_label",
    "flat_norm",
    "frozen_eval",
    "project",
]

Norm = Literal["linf", "l2"]


def flat_norm(x: Tensor, norm: str) -> Tensor:
    """Per-item norm of a batch ``[B, ...]``: ``"linf"`` (max abs) or ``"l2"``."""
    flat = x.reshape(x.shape[0], -1)
    if norm == "linf":
        return flat.abs().amax(1)
    return flat.norm(p=2, dim=1)


def project(delta: Tensor, norm: str, eps: float) -> Tensor:
    """``delta`` projected onto the ``norm`` ball of radius ``eps`` (per item)."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    n = flat_norm(delta, "l2").clamp_min(1e-12)
    factor = (eps / n).clamp(max=1.0)
    return delta * factor.view(-1, *([1] * (delta.ndim - 1)))


def eps_label(eps: float, norm: str = "linf") -> str:
    """The budget as metric names show it: L-inf on the 0-255 scale, L2 as given.

    ``8/255`` and ``0.0314`` both read ``"8"`` (0-255 scale rounded to one decimal);
    an L2 radius of ``0.5`` reads ``"0.5"``.
    """
    value = round(eps * 255, 1) if norm == "linf" else round(eps, 3)
    return f"{value:g}"


@contextlib.contextmanager
def frozen_eval(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode with frozen parameters, both restored on exit.

    An attack needs gradients with respect to its input only: freezing the
    parameters spares their gradients, and eval mode fixes BatchNorm statistics and
    switches dropout off, as torchattacks and ART do by default.
    """
    modes = [(m, m.training) for m in model.modules()]  # each one: an eval encoder
    flags = [(p, p.requires_grad) for p in model.parameters()]  # inside a new wrapper
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, training in modes:
            m.training = training


class Attack:
    """Base of the attacks: a name for metrics, a budget, and :meth:`perturb`.

    Attributes:
        name: Short, stable label used in metric names (``"pgd_linf"``).
        knowledge: What the attacker knows: ``"white-box"`` (the encoder's gradients)
            or ``"black-box"`` (queries only).
        norm: The norm that bounds (or, for minimal-norm attacks, measures) the
            perturbation: ``"linf"`` or ``"l2"``.
        eps: The budget on the 0-1 input scale, or ``None`` for an unbounded,
            minimal-norm attack (C&W).
        downstream: ``"probe"`` (attacks encoder + the clean probe) or ``"agnostic"``
            (never sees labels or a probe; fitted with :meth:`fit` first).
    """

    name: str = "attack"
    knowledge: str = "white-box"
    norm: str = "linf"
    eps: float | None = None
    downstream: str = "probe"
    #: Attributes that hold fitted state, not settings (left out of :meth:`describe`).
    state_keys: tuple[str, ...] = ()

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Adversarial inputs for ``model`` (``x`` in ``[0, 1]``, ``y`` the true classes)."""
        raise NotImplementedError

    def with_eps(self, eps: float) -> Attack:
        """A copy of this attack at another budget (same norm and settings)."""
        if self.eps is None:
            raise ValueError(
                f"{type(self).__name__} is a minimal-norm attack without a budget; it "
                "cannot be run at eps={eps}"
            )
        other = copy.copy(self)
        other.eps = float(eps)
        return other

    def describe(self) -> dict[str, Any]:
        """Plain-data settings of the attack, for the threat model record."""
        out: dict[str, Any] = {
            "name": self.name,
            "knowledge": self.knowledge,
            "downstream": self.downstream,
            "norm": self.norm,
            "eps": self.eps,
        }
        for key, value in vars(self).items():
            if key.startswith("_") or key in self.state_keys:
                continue
            if isinstance(value, str | int | float | bool | None):
                out[key] = value
        return out


def check_unit_range(owner: str, x: Tensor) -> None:
    """Fail for inputs outside ``[0, 1]`` (attacks work on the model's raw input scale).

    Raises:
        ValueError: Naming the range found and the fix.
    """
    if not x.is_floating_point():
        raise ValueError(
            f"{owner}: inputs must be floats in [0, 1], got dtype {x.dtype}; convert uint8 "
            "images with x.float() / 255 (the encoder normalises inside)"
        )
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(
            f"{owner}: inputs must be in [0, 1] with the normalisation inside the model, "
            f"got values in [{lo:.3g}, {hi:.3g}]; pass unnormalised inputs"
        )
