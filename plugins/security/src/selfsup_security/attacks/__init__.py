"""Adversarial attacks on encoders (the ``attack`` kind): what an attack is.

**The interface.** An attack is built from its config parameters (its budget among
them) and implements::

    attack.perturb(model, x, y) -> x_adv

* ``model``: the attacked classifier, ``x in [0, 1] -> logits``; for probe attacks this
  is :class:`selfsup_security.probe.ProbedEncoder` (the frozen SSL encoder + the
  defender's clean linear probe), with the normalisation inside the encoder, as
  torchattacks and ART expect.
* ``x``: a float batch in ``[0, 1]`` (``uint8`` images are divided by 255 first); ``y``:
  the true classes (``int64``).
* ``x_adv``: same shape, in ``[0, 1]``, within the budget of ``x``.
* The attack runs the model in eval mode with frozen parameters and restores both
  afterwards (:func:`~selfsup_security.attacks.base.frozen_eval`): it never changes the
  model's mode, its parameters or their ``requires_grad``.

Attributes the robustness evaluator reads (defaults on :class:`Attack`): ``name`` (a
short, stable label for metric names, ``"pgd_linf"``), ``norm`` (``"linf"`` / ``"l2"``),
``eps`` (the budget, or ``None`` for a minimal-norm attack such as C&W), ``downstream``
(``"probe"``, or ``"agnostic"`` for an attack that never sees labels or a probe and is
fitted first with ``fit(encoder, inputs, eps=...)``), ``with_eps(eps)`` (a copy at another
budget) and ``describe()`` (plain data for the threat model). An attack from another
plugin needs only ``perturb``; the rest has defaults when it subclasses :class:`Attack`.

**Budgets** are on the 0-1 input scale. YAML has no expressions: write 8/255 as
``0.031373`` (``0.0314`` also reads as 8). Metric names give L-inf budgets on the 0-255
scale (``robust_acc_pgd_linf_8``) and L2 radii as they are (``robust_acc_pgd_l2_0.5``).

Attacks here: :class:`FGSM`, :class:`PGD` (L-inf, L2), :class:`CarliniWagner` (L2,
minimal norm) in :mod:`.gradient`; :class:`UniversalPerturbation` (downstream-agnostic,
AdvEncoder-style) in :mod:`.universal`.
"""

from __future__ import annotations

from selfsup_security.attacks.base import Attack, eps_label, frozen_eval
from selfsup_security.attacks.gradient import FGSM, PGD, CarliniWagner
from selfsup_security.attacks.universal import UniversalPerturbation

__all__ = [
    "FGSM",
    "PGD",
    "Attack",
    "CarliniWagner",
    "UniversalPerturbation",
    "eps_label",
    "frozen_eval",
]
