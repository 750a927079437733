"""``security:robustness``: robust accuracy of encoder + clean probe under attacks.

Protocol:

1. The defender's clean probe: a standardising linear head on frozen train features,
   weight decay chosen on validation data (:func:`selfsup.evaluation.labelled_splits`:
   the dataset's ``val`` split, or a stratified part carved from ``train``).
2. Up to ``max_test_items`` held-out items (a seeded choice) as floats in ``[0, 1]``;
   the model is :class:`~selfsup_security.probe.ProbedEncoder` (normalisation inside the
   encoder), attacked in eval mode.
3. Every attack at every budget of its norm: ``eps`` for L-inf attacks, ``eps_l2`` for
   L2 attacks. A downstream-agnostic attack (the universal perturbation) is first
   fitted on unlabelled train inputs at that budget, and never sees the probe.
   A minimal-norm attack (C&W) runs once; an item then counts as broken at radius
   ``r`` only when its adversarial example is misclassified *and* within ``r``.

Metrics (higher is better):

* ``clean_acc``: the probe on the attacked items, unperturbed.
* ``robust_acc_<attack>_<budget>``: the fraction of attacked items still classified
  correctly (items misclassified clean count as failures), e.g.
  ``robust_acc_pgd_linf_8`` (L-inf 8/255: L-inf budgets on the 0-255 scale),
  ``robust_acc_pgd_l2_0.5`` (L2 radius 0.5 on the 0-1 scale).
* ``robust_acc_<attack>``: a minimal-norm attack without a radius (C&W at its ``c``).
* ``<attack>_median_norm``: for a minimal-norm attack, the median norm of its
  successful perturbations (larger: more robust).

Two attacks with the same name get ``_v2``, ``_v3``, ... after it. Without a ``test``
split the dataset's ``val`` split is the held-out one and every name ends in ``_on_val``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import torch
from pydantic import Field
from selfsup import Ref
from selfsup.evaluation import has_split, labelled_splits, require_labelled, subsample
from torch import Tensor

from selfsup_security.attacks.base import check_unit_range, eps_label, flat_norm
from selfsup_security.items import is_graph, split_items, split_labels, split_size
from selfsup_security.probe import ProbedEncoder, fit_linear_head
from selfsup_security.triggers.base import to_unit

if TYPE_CHECKING:
    from selfsup import DataSplits, EvalContext
    from torch import nn

__all__ = ["Robustness"]

_OWNER = "security:robustness"
#: Default L-inf budgets: 2/255, 4/255, 8/255.
DEFAULT_EPS: tuple[float, ...] = (2 / 255, 4 / 255, 8 / 255)
#: Default L2 radii (for 16x16 digits, 8/255 in every pixel has an L2 norm of 0.5).
DEFAULT_EPS_L2: tuple[float, ...] = (0.25, 0.5, 1.0)
_PROTOCOL = (
    "inputs in [0, 1], normalisation inside the model, eval mode; the defender's clean "
    "linear probe (standardised frozen train features, weight decay chosen on validation) "
    "on the frozen encoder; robust accuracy over all attacked held-out items (items "
    "misclassified clean count as failures)"
)


def _grid(name: str, values: Sequence[float], upper: float | None) -> tuple[float, ...]:
    seq = [values] if isinstance(values, int | float) else list(values)
    ok = bool(seq) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0
        and (upper is None or v <= upper)
        for v in seq
    )  # fmt: skip
    if not ok:
        bound = f"in (0, {upper}]" if upper is not None else "> 0"
        raise ValueError(
            f"{_OWNER}: {name}={values!r} must be a non-empty list of numbers {bound} on the "
            "0-1 input scale (write 8/255 as 0.031373)"
        )
    return tuple(float(v) for v in seq)


def _default_attacks() -> list[Any]:
    from selfsup_security.attacks.gradient import FGSM, PGD

    return [FGSM(), PGD()]


class Robustness:
    """Robust accuracy of the encoder + its clean linear probe under each attack.

    Args:
        attacks: The attacks (ids or ``{id, params}`` of the ``attack`` kind); ``null``:
            ``security:fgsm`` and ``security:pgd`` (L-inf) with their defaults. An
            attack's own budget is replaced by each budget of its norm below.
        eps: L-inf budgets on the 0-1 input scale (8/255 is written ``0.031373``);
            default 2/255, 4/255, 8/255.
        eps_l2: L2 radii on the 0-1 input scale, for L2 attacks (PGD L2, C&W).
        max_test_items: Attack at most this many held-out items (a seeded choice);
            ``null``: all of them.
        max_fit_items: Train inputs a downstream-agnostic attack is fitted on (at most).
        batch_size: Items per attack batch.
        val_fraction: Part of ``train`` carved out for the probe's selection when the
            dataset has no separate validation split.
    """

    def __init__(
        self,
        attacks: Annotated[list[Any] | None, Ref("attack", many=True)] = None,
        eps: Annotated[list[Annotated[float, Field(gt=0, le=1)]], Field(min_length=1)]
        | float = DEFAULT_EPS,  # type: ignore[assignment]
        eps_l2: Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)]
        | float = DEFAULT_EPS_L2,  # type: ignore[assignment]
        max_test_items: Annotated[int, Field(ge=1)] | None = 500,
        max_fit_items: Annotated[int, Field(ge=1)] = 2000,
        batch_size: Annotated[int, Field(ge=1)] = 250,
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1,
    ) -> None:
        self.attacks = _default_attacks() if attacks is None else list(attacks)
        if not self.attacks:
            raise ValueError(f"{_OWNER}: attacks=[] names no attack; list at least one id")
        for attack in self.attacks:
            if not callable(getattr(attack, "perturb", None)):
                raise ValueError(
                    f"{_OWNER}: {type(attack).__name__} has no perturb(model, x, y) method; "
                    "attacks must implement the interface of selfsup_security.attacks"
                )
        self.eps = _grid("eps", eps, 1.0)
        self.eps_l2 = _grid("eps_l2", eps_l2, None)
        for key, value in (("max_fit_items", max_fit_items), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{_OWNER}: {key}={value!r} must be an integer >= 1")
        if max_test_items is not None and (
            isinstance(max_test_items, bool) or not isinstance(max_test_items, int)
            or max_test_items < 1
        ):  # fmt: skip
            raise ValueError(
                f"{_OWNER}: max_test_items={max_test_items!r} must be an integer >= 1 or null"
            )
        if not 0 < val_fraction < 1:
            raise ValueError(f"{_OWNER}: val_fraction={val_fraction!r} must be in (0, 1)")
        self.max_test_items, self.max_fit_items = max_test_items, max_fit_items
        self.batch_size, self.val_fraction = batch_size, float(val_fraction)

    # ------------------------------------------------------------------ helpers
    def _names(self) -> list[str]:
        names: list[str] = []
        for attack in self.attacks:
            base = str(getattr(attack, "name", type(attack).__name__.lower()))
            name, k = base, 2
            while name in names:
                name, k = f"{base}_v{k}", k + 1
            names.append(name)
        return names

    def _budgets(self, attack: Any) -> list[float | None]:
        if getattr(attack, "eps", None) is None or not hasattr(attack, "with_eps"):
            return [None]
        return list(self.eps if getattr(attack, "norm", "linf") == "linf" else self.eps_l2)

    def _inputs(
        self, data: DataSplits, split: str, limit: int | None, seed: int
    ) -> tuple[Tensor, Tensor]:
        """Up to ``limit`` items of ``split`` (seeded) in ``[0, 1]``, and their positions."""
        n = split_size(data, split)
        index = subsample(n, limit, seed)
        index = torch.arange(n) if index is None else index
        return to_unit(split_items(data, split, index))[0], index

    @torch.no_grad()
    def _predict(self, model: nn.Module, x: Tensor, device: torch.device) -> Tensor:
        step = self.batch_size
        return torch.cat(
            [model(x[i : i + step].to(device)).argmax(1).cpu() for i in range(0, len(x), step)]
        )

    def _perturb(
        self, attack: Any, model: nn.Module, x: Tensor, y: Tensor, device: torch.device
    ) -> Tensor:
        out = []
        for i in range(0, len(x), self.batch_size):
            xb, yb = x[i : i + self.batch_size].to(device), y[i : i + self.batch_size].to(device)
            out.append(attack.perturb(model, xb, yb).detach().cpu())
        return torch.cat(out)

    @staticmethod
    def _check_budget(name: str, x: Tensor, adv: Tensor, norm: str, eps: float | None) -> None:
        if adv.shape != x.shape:
            raise ValueError(
                f"{_OWNER}: attack {name!r} returned shape {tuple(adv.shape)} for inputs "
                f"{tuple(x.shape)}; perturb must keep the shape (a bug in the attack)"
            )
        check_unit_range(f"{_OWNER} (output of attack {name!r})", adv)
        if eps is not None:
            worst = float(flat_norm(adv - x, norm).max())
            if worst > eps * (1 + 1e-4) + 1e-6:
                raise ValueError(
                    f"{_OWNER}: attack {name!r} exceeded its {norm} budget eps={eps:.6g} "
                    f"(largest perturbation {worst:.6g}); a bug in the attack"
                )

    # ------------------------------------------------------------------ evaluate
    def evaluate(self, encoder: nn.Module, data: DataSplits, ctx: EvalContext) -> dict[str, float]:
        """Fit the clean probe, attack the held-out items at every budget, record the threats.

        Raises:
            ValueError: A graph dataset, an unlabelled dataset, inputs outside
                ``[0, 1]``, or an attack that breaks its budget.
        """
        if is_graph(data):
            raise ValueError(
                f"{_OWNER} perturbs map-style inputs item by item (images, clips) within a "
                "norm ball of [0, 1] inputs; the dataset is a graph: use security:backdoor or "
                "security:poison-detection on graphs"
            )
        require_labelled(_OWNER, data)
        device = ctx.device
        heldout = "test" if has_split(data, "test") else "val"  # as labelled_splits picks
        if not has_split(data, heldout):
            raise ValueError(
                f"{_OWNER} needs a held-out split to attack, but the dataset has neither "
                "'test' nor 'val'; give the dataset one (most dataset plugins take split sizes)"
            )
        x, index = self._inputs(data, heldout, self.max_test_items, ctx.seed)
        check_unit_range(f"{_OWNER} ({heldout!r} split)", x)  # before fitting anything
        ls = labelled_splits(_OWNER, encoder, data, ctx.runtime, ctx.seed, self.val_fraction)
        assert ls.heldout == heldout, (ls.heldout, heldout)
        head = fit_linear_head(
            ls.select_x, ls.select_y, ls.val_x, ls.val_y, data.num_classes, seed=ctx.seed
        )
        model = ProbedEncoder(encoder, head).to(device)
        y = split_labels(data, ls.heldout)[index]
        suffix = "" if ls.heldout == "test" else "_on_val"
        clean_pred = self._predict(model, x, device)
        metrics = {"clean_acc": float((clean_pred == y).double().mean())}
        train_x: Tensor | None = None
        rows: list[dict[str, Any]] = []
        for name, attack in zip(self._names(), self.attacks, strict=True):
            norm = str(getattr(attack, "norm", "linf"))
            agnostic = getattr(attack, "downstream", "probe") == "agnostic"
            row: dict[str, Any] = {"metric_name": name, **_describe(attack), "runs": []}
            for eps in self._budgets(attack):
                atk = attack if eps is None else attack.with_eps(eps)
                start = time.perf_counter()
                run: dict[str, Any] = {"eps": eps}
                if agnostic:
                    if train_x is None:
                        train_x = self._inputs(data, "train", self.max_fit_items, ctx.seed)[0]
                    atk.fit(encoder, train_x.to(device))
                    run["fit_items"] = int(getattr(atk, "fit_items", len(train_x)))
                    deviation = getattr(atk, "fit_deviation", None)
                    ok = isinstance(deviation, float) and deviation == deviation
                    run["fit_deviation"] = deviation if ok else None
                adv = self._perturb(atk, model, x, y, device)
                self._check_budget(name, x, adv, norm, eps)
                correct = self._predict(model, adv, device) == y
                run["seconds"] = round(time.perf_counter() - start, 3)
                if eps is not None:
                    metrics[f"robust_acc_{name}_{eps_label(eps, norm)}"] = float(
                        correct.double().mean()
                    )
                else:
                    metrics.update(self._minimal_norm(name, norm, x, adv, y, correct))
                row["runs"].append(run)
            rows.append(row)
        self._record(ctx, ls.heldout, len(y), rows)
        return {f"{k}{suffix}": v for k, v in metrics.items()}

    def _minimal_norm(
        self, name: str, norm: str, x: Tensor, adv: Tensor, y: Tensor, correct: Tensor
    ) -> dict[str, float]:
        """Scores of a minimal-norm attack: unbounded, at each radius, median norm."""
        size = flat_norm(adv - x, norm)
        broken = ~correct
        out = {f"robust_acc_{name}": float(correct.double().mean())}
        for r in self.eps if norm == "linf" else self.eps_l2:
            within = broken & (size <= r * (1 + 1e-4) + 1e-6)
            out[f"robust_acc_{name}_{eps_label(r, norm)}"] = float((~within).double().mean())
        moved = broken & (size > 0)  # successful perturbations (not clean errors)
        if bool(moved.any()):
            out[f"{name}_median_norm"] = float(size[moved].median())
        return out

    def _record(self, ctx: EvalContext, split: str, n: int, rows: list[dict[str, Any]]) -> None:
        knowledge = {
            row["metric_name"]: (
                "white-box on the encoder only, downstream-agnostic: fitted on unlabelled "
                "train inputs, never sees labels or the probe"
                if row.get("downstream") == "agnostic"
                else f"{row.get('knowledge', 'white-box')}: gradients of the encoder and of "
                "the clean probe, true labels"
            )
            for row in rows
        }
        ctx.record(
            threat_model={
                "knowledge": knowledge,
                "poisoned": "nothing (test-time evasion)",
                "budgets": {
                    "linf_eps": list(self.eps),
                    "linf_eps_255": [round(e * 255, 3) for e in self.eps],
                    "l2_eps": list(self.eps_l2),
                    "scale": "0-1 input scale; L-inf metric names on the 0-255 scale",
                },
                "attacks": rows,
                "items_attacked": n,
                "split": split,
                "defender_access": "none: an undefended encoder and its clean linear probe",
                "protocol": _PROTOCOL,
                "seed": ctx.seed,
            }
        )


def _describe(attack: Any) -> dict[str, Any]:
    describe = getattr(attack, "describe", None)
    out = describe() if callable(describe) else {}
    out.pop("name", None)
    out.pop("eps", None)
    return {"class": type(attack).__name__, **out}
