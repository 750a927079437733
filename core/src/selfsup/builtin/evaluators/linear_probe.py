"""Linear probe: multinomial logistic regression on frozen features.

The probe minimises ``mean cross-entropy + weight_decay / 2 * ||W||^2`` (the bias is not
penalised) with full-batch L-BFGS in torch, on the runtime's device. This is the same
objective as scikit-learn's ``LogisticRegression(C=1 / (weight_decay * n))``.

Two solvers. ``lbfgs`` (the default) fits each weight decay to convergence. ``adam``
follows the protocol of many graph SSL papers (GraphMAE, GRACE, DGI): a linear layer
trained with Adam for a fixed number of full-batch epochs, the epoch with the best
validation accuracy kept (early stopping is the regularisation, chosen on validation);
that model is reported once on the held-out split, without a refit.

Protocol: the weight decay is chosen on validation data from a log grid (strongest
regularisation first, each fit warm-started from the previous solution, ties going to
the stronger one); the probe is then refit with the chosen weight decay and reported
once on the held-out split. Features are standardised with the statistics of the fitting
split by default (right for dense embeddings); sparse bag-of-words inputs such as the
citation graphs' node features lose their scale that way (Cora's raw features: 46.9%
standardised vs 60.4% as they are), so ``standardize`` may be ``false`` or ``"auto"``
(both searched, the better validation accuracy wins). Splits are arranged by
:func:`~selfsup.builtin.evaluators._features.labelled_splits`: with a dataset ``val``
split the refit uses ``train`` only (as in the usual Cora/GraphMAE protocol) unless
``refit_on_val`` is set; when validation data was carved from ``train`` the refit uses
the whole ``train`` split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt
from torch import Tensor, nn

from selfsup.builtin.evaluators._artefacts import confusion_matrix, write_confusion_matrix
from selfsup.builtin.evaluators._features import (
    LabelledSplits,
    accuracy,
    as_grid,
    compute_device,
    cpu_threads_for,
    labelled_splits,
    positive_float,
    positive_int,
    standardize,
)

if TYPE_CHECKING:
    from selfsup.interfaces import DataSplits, EvalContext

__all__ = ["LinearProbe", "fit_logistic_regression"]

_OWNER = "core:linear-probe"
#: Default weight-decay grid: 1e-6 ... 1 in decades.
DEFAULT_WEIGHT_DECAYS: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def standardize_mode(value: object) -> bool | Literal["auto"]:
    """Validate the probe's ``standardize`` parameter.

    Raises:
        ValueError: ``value`` is not ``true``, ``false`` or ``"auto"``.
    """
    if isinstance(value, bool) or value == "auto":
        return value  # type: ignore[return-value]
    raise ValueError(
        f'{_OWNER}: standardize={value!r} is not one of true, false, "auto"; use true for '
        'dense embeddings, false for sparse raw features, "auto" to choose on validation'
    )


def fit_logistic_regression(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    weight_decay: float,
    max_iter: int = 200,
    tol: float = 1e-4,
    init: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Fit multinomial logistic regression with full-batch L-BFGS.

    Args:
        x: Features ``[N, D]`` (on the compute device).
        y: Class indices ``[N]`` (same device).
        num_classes: Number of classes ``C``.
        weight_decay: L2 strength on the weights (``>= 0``); the bias is not penalised.
        max_iter: Maximum L-BFGS iterations.
        tol: Stop when the largest gradient entry falls below ``tol``.
        init: Warm start ``(W [D, C], b [C])``; zeros when ``None``.

    Returns:
        The weights ``W`` ``[D, C]`` and bias ``b`` ``[C]`` (detached).
    """
    dim = x.shape[1]
    if init is None:
        weight = torch.zeros(dim, num_classes, device=x.device, dtype=x.dtype)
        bias = torch.zeros(num_classes, device=x.device, dtype=x.dtype)
    else:
        weight, bias = (t.detach().clone() for t in init)
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    opt = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=10,
        tolerance_grad=tol,
        tolerance_change=1e-10,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(torch.addmm(bias, x, weight), y)
        if weight_decay:
            loss = loss + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad(), cpu_threads_for(x.device, x.numel()):
        opt.step(closure)
    return weight.detach(), bias.detach()


def fit_logistic_regression_adam(
    x: Tensor,
    y: Tensor,
    val_x: Tensor,
    val_y: Tensor,
    num_classes: int,
    weight_decay: float,
    lr: float = 0.01,
    epochs: int = 300,
    seed: int = 0,
) -> tuple[float, tuple[Tensor, Tensor]]:
    """Train a linear layer with Adam, keeping the epoch of best validation accuracy.

    The layer starts from ``nn.Linear``'s initialisation drawn under ``seed``; Adam's
    ``weight_decay`` is an L2 term on weights and bias (as ``torch.optim.Adam`` and the
    graph SSL reference code apply it). Ties in validation accuracy go to the later
    epoch.

    Args:
        x: Training features ``[N, D]``.
        y: Training labels ``[N]``.
        val_x: Validation features ``[M, D]`` (same device).
        val_y: Validation labels ``[M]``.
        num_classes: Number of classes ``C``.
        weight_decay: Adam's L2 strength (``>= 0``).
        lr: Adam's learning rate.
        epochs: Full-batch epochs.
        seed: Seed of the initial weights.

    Returns:
        The best validation accuracy and that epoch's ``(W [D, C], b [C])`` (detached).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = nn.Linear(x.shape[1], num_classes)
    layer = layer.to(device=x.device, dtype=x.dtype)
    opt = torch.optim.Adam(layer.parameters(), lr=lr, weight_decay=weight_decay)
    best_acc, best = -1.0, (layer.weight.detach().T.clone(), layer.bias.detach().clone())
    with torch.enable_grad(), cpu_threads_for(x.device, x.numel()):
        for _ in range(epochs):
            loss = F.cross_entropy(layer(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                acc = accuracy(layer(val_x).argmax(1), val_y)
            if acc >= best_acc:
                best_acc = acc
                best = (layer.weight.detach().T.clone(), layer.bias.detach().clone())
    return best_acc, best


def _prepare(scaled: bool, fit: Tensor, *others: Tensor) -> list[Tensor]:
    """``fit`` and ``others`` standardised with ``fit``'s statistics, or as they are."""
    return standardize(fit, *others) if scaled else [fit, *others]


def _predict(x: Tensor, params: tuple[Tensor, Tensor]) -> Tensor:
    weight, bias = params
    return torch.addmm(bias, x, weight).argmax(1)


class LinearProbe:
    """Linear probe on frozen features, weight decay chosen on validation data.

    Metrics: ``linear_acc`` (held-out test accuracy; ``linear_acc_on_val`` when the
    dataset has no test split and its ``val`` split is the held-out one),
    ``linear_val_acc`` (validation accuracy of the chosen weight decay),
    ``linear_train_acc``, ``linear_weight_decay`` and ``linear_standardized`` (1 when
    the chosen probe saw standardised features).

    Args:
        weight_decays: The log grid of L2 strengths searched on validation data
            (a single number fixes it; ``0`` means no penalty).
        max_iter: Maximum L-BFGS iterations per fit.
        tol: Stop a fit when the largest gradient entry of the (mean) loss falls below
            this (scikit-learn's default). Tighter values cost time but, on digits and
            Fashion-MNIST, change no accuracy: float32 gradients rarely get below 1e-5.
        val_fraction: Fraction of ``train`` carved out (stratified, seeded) for
            validation when the dataset has no usable ``val`` split.
        refit_on_val: Refit the chosen probe on ``train`` + the dataset's ``val``
            split (default: ``train`` only).
        patience: Stop walking the grid (strongest to weakest weight decay) after
            this many consecutive points below the best validation accuracy so far:
            validation accuracy is unimodal along the path in practice, and the
            weakly regularised fits are the slowest. ``None`` searches the whole grid.
        standardize: ``True`` scales every feature to zero mean and unit variance
            (statistics of the fitting split), ``False`` uses the features as they
            are, ``"auto"`` searches the grid both ways and keeps the better
            validation accuracy (ties go to standardised features). The choice is
            reported as ``linear_standardized`` (1 or 0).
        solver: ``lbfgs`` (each weight decay fit to convergence, then the chosen one
            refit on the final split) or ``adam`` (see the module docstring: Adam for
            ``epochs`` full-batch epochs at learning rate ``lr``, the epoch with the best
            validation accuracy kept and reported without a refit).
        lr: Adam's learning rate (``solver: adam`` only).
        epochs: Adam's full-batch epochs (``solver: adam`` only).

    Example:
        >>> probe = LinearProbe(weight_decays=[1e-4, 1e-3])
        >>> probe.weight_decays
        (0.0001, 0.001)
    """

    def __init__(
        self,
        weight_decays: Annotated[Sequence[NonNegativeFloat], Field(min_length=1)]
        | NonNegativeFloat = DEFAULT_WEIGHT_DECAYS,
        max_iter: PositiveInt = 200,
        tol: PositiveFloat = 1e-4,
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1,
        refit_on_val: bool = False,
        patience: PositiveInt | None = 2,
        standardize: bool | Literal["auto"] = True,
        solver: Literal["lbfgs", "adam"] = "lbfgs",
        lr: PositiveFloat = 0.01,
        epochs: PositiveInt = 300,
    ) -> None:
        self.weight_decays = as_grid(_OWNER, "weight_decays", weight_decays)
        self.max_iter = positive_int(_OWNER, "max_iter", max_iter)
        self.tol = positive_float(_OWNER, "tol", tol)
        self.val_fraction = positive_float(_OWNER, "val_fraction", val_fraction)
        if self.val_fraction >= 1:
            raise ValueError(f"{_OWNER}: val_fraction={val_fraction!r} must be in (0, 1)")
        self.refit_on_val = bool(refit_on_val)
        self.patience = None if patience is None else positive_int(_OWNER, "patience", patience)
        self.standardize = standardize_mode(standardize)
        if solver not in ("lbfgs", "adam"):
            raise ValueError(
                f"{_OWNER}: solver={solver!r} is not one of 'lbfgs', 'adam'; use lbfgs for "
                "a converged probe, adam for the early-stopped protocol of graph SSL papers"
            )
        self.solver = solver
        self.lr = positive_float(_OWNER, "lr", lr)
        self.epochs = positive_int(_OWNER, "epochs", epochs)

    def _fit(
        self,
        x: Tensor,
        y: Tensor,
        val_x: Tensor,
        val_y: Tensor,
        n_cls: int,
        wd: float,
        init: tuple[Tensor, Tensor] | None,
        seed: int,
    ) -> tuple[float, tuple[Tensor, Tensor]]:
        """One candidate: its validation accuracy and parameters."""
        if self.solver == "adam":
            return fit_logistic_regression_adam(
                x, y, val_x, val_y, n_cls, wd, self.lr, self.epochs, seed
            )
        params = fit_logistic_regression(x, y, n_cls, wd, self.max_iter, self.tol, init=init)
        return accuracy(_predict(val_x, params), val_y), params

    def _search(
        self, s: LabelledSplits, scaled: bool, dev: torch.device, n_cls: int, seed: int
    ) -> tuple[float, float, tuple[Tensor, Tensor]]:
        """Walk the weight-decay grid; the best ``(val_acc, weight_decay, params)``."""
        sel_x, val_x = (t.to(dev) for t in _prepare(scaled, s.select_x, s.val_x))
        sel_y, val_y = s.select_y.to(dev), s.val_y.to(dev)
        best: tuple[float, float, tuple[Tensor, Tensor]] | None = None
        params = None
        worse = 0
        for wd in sorted(self.weight_decays, reverse=True):
            acc, params = self._fit(sel_x, sel_y, val_x, val_y, n_cls, wd, params, seed)
            if best is None or acc > best[0]:
                best, worse = (acc, wd, params), 0
            elif acc < best[0]:
                worse += 1
                if self.patience is not None and worse >= self.patience:
                    break
        assert best is not None
        return best

    def evaluate(self, encoder: nn.Module, data: DataSplits, ctx: EvalContext) -> dict[str, float]:
        """Fit the probe on frozen features and report held-out accuracy.

        Inside a run (``ctx.run_dir`` set) the main rank also writes the held-out
        confusion matrix as artefacts: ``linear_confusion_<split>.csv`` and, with
        matplotlib installed and at most 50 classes, a ``.png``.

        Raises:
            ValueError: The dataset's task is not a class task, it is unlabelled, or
                it has no held-out split.
        """
        runtime, seed = ctx.runtime, ctx.seed
        s = labelled_splits(
            _OWNER, encoder, data, runtime, seed, self.val_fraction, self.refit_on_val
        )
        dev = compute_device(runtime)
        n_cls = data.num_classes
        modes = (True, False) if self.standardize == "auto" else (bool(self.standardize),)
        scaled, (val_acc, wd, params) = modes[0], self._search(s, modes[0], dev, n_cls, seed)
        for mode in modes[1:]:
            other = self._search(s, mode, dev, n_cls, seed)
            if other[0] > val_acc:
                scaled, (val_acc, wd, params) = mode, other

        # L-BFGS refits the chosen weight decay on the final split; the early-stopped
        # Adam model is final as it is (and keeps the selection split's statistics).
        refit = self.solver == "lbfgs"
        fit_x, fit_y = (s.final_x, s.final_y) if refit else (s.select_x, s.select_y)
        fin_x, ho_x = (t.to(dev) for t in _prepare(scaled, fit_x, s.heldout_x))
        fin_y = fit_y.to(dev)
        if refit:
            params = fit_logistic_regression(
                fin_x, fin_y, n_cls, wd, self.max_iter, self.tol, init=params
            )
        pred = _predict(ho_x, params)
        cm = confusion_matrix(pred, s.heldout_y, n_cls)
        write_confusion_matrix(ctx, cm, data.meta, s.heldout, "linear")
        return {
            s.name("linear_acc"): accuracy(pred, s.heldout_y.to(dev)),
            "linear_val_acc": val_acc,
            "linear_train_acc": accuracy(_predict(fin_x, params), fin_y),
            "linear_weight_decay": float(wd),
            "linear_standardized": float(scaled),
        }
