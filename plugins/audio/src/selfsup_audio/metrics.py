"""Detection metrics of speaker verification and deepfake detection: EER, minDCF, ROC/DET.

Conventions (stated once, used by every audio evaluator):

* A higher score means "target" (same speaker, or bona fide/fake for the class labelled
  ``1``); ``labels`` are ``1`` for target trials and ``0`` for non-target trials.
* A trial is accepted when ``score >= threshold``. The ROC curve has one point per
  distinct score (as ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``), starting
  at ``(fpr, tpr) = (0, 0)`` (threshold ``+inf``, reject everything), so a group of tied
  scores moves the curve diagonally.
* **EER** is interpolated at the ROC crossing: on the first ROC segment where the miss
  rate ``fnr = 1 - tpr`` falls to or below the false-alarm rate ``fpr``, the point with
  ``fpr == fnr`` is found by linear interpolation along the segment (the ROC convex
  combination of its two end points), and that common rate is the EER. It is exact for
  the piecewise-linear ROC and never depends on how ties are broken.
* **minDCF** is the normalised minimum detection cost of NIST SRE:
  ``DCF(t) = C_miss * P_miss(t) * P_target + C_fa * P_fa(t) * (1 - P_target)``, divided by
  ``min(C_miss * P_target, C_fa * (1 - P_target))`` (the cost of the best trivial
  system), minimised over every threshold including accept-all and reject-all.
  The defaults are ``P_target = 0.01``, ``C_miss = C_fa = 1`` (:data:`DCF_DEFAULTS`).

Example:
    >>> s = [0.9, 0.8, 0.3, 0.2]
    >>> y = [1, 1, 0, 0]
    >>> equal_error_rate(s, y)[0]
    0.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from pathlib import Path

    from selfsup.interfaces import EvalContext

__all__ = [
    "DCF_DEFAULTS",
    "det_points",
    "equal_error_rate",
    "min_dcf",
    "roc_points",
    "summary",
    "write_curves",
]

#: The minDCF operating point used unless a caller says otherwise (recorded in results).
DCF_DEFAULTS: dict[str, float] = {"p_target": 0.01, "c_miss": 1.0, "c_fa": 1.0}

ArrayLike = Sequence[float] | np.ndarray | torch.Tensor


def _as_array(values: ArrayLike, name: str, owner: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{owner}: {name} must be 1-D (one entry per trial), got {arr.shape}")
    return arr


def _check(scores: ArrayLike, labels: ArrayLike, owner: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(scores float64, labels bool)``.

    Raises:
        ValueError: Shapes differ, a score is NaN/inf, a label is not 0/1, or one of
            the two classes has no trial.
    """
    s = _as_array(scores, "scores", owner)
    y = _as_array(labels, "labels", owner)
    if s.shape != y.shape:
        raise ValueError(
            f"{owner}: scores has {s.size} entries but labels has {y.size}; give one label "
            "per trial"
        )
    if not np.isfinite(s).all():
        bad = int((~np.isfinite(s)).sum())
        raise ValueError(
            f"{owner}: {bad} of {s.size} scores are NaN or inf; the embeddings or the "
            "detector diverged"
        )
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(
            f"{owner}: labels must be 0 (non-target) or 1 (target); got values "
            f"{sorted(set(np.unique(y).tolist()) - {0.0, 1.0})[:5]}"
        )
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        missing = "target (label 1)" if n_pos == 0 else "non-target (label 0)"
        raise ValueError(
            f"{owner}: no {missing} trial among {y.size} trials; an error rate needs both "
            "classes (check the trial list or the split's labels)"
        )
    return s, y.astype(bool)


def roc_points(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points ``(fpr, tpr, thresholds)``, one per distinct score, from ``(0, 0)``.

    ``thresholds[0]`` is ``+inf`` (reject all); the last point is ``(1, 1)`` at the lowest
    score. Accept means ``score >= threshold``.

    Raises:
        ValueError: See the module docstring (bad shapes, non-finite scores, one class).
    """
    s, y = _check(scores, labels, "roc_points")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    # Last index of each run of equal scores: the cumulative counts there.
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tps = np.cumsum(y)[last].astype(np.float64)
    fps = (last + 1) - tps
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return fpr, tpr, np.r_[np.inf, s[last]]


def det_points(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DET points ``(fpr, fnr, thresholds)``: false-alarm and miss rates per threshold."""
    fpr, tpr, thr = roc_points(scores, labels)
    return fpr, 1.0 - tpr, thr


def equal_error_rate(scores: ArrayLike, labels: ArrayLike) -> tuple[float, float]:
    """The EER, interpolated at the ROC crossing, and the threshold there.

    Returns:
        ``(eer, threshold)``: the rate in ``[0, 1]`` at which the miss and false-alarm
        rates are equal, and the score threshold interpolated on the same segment (the
        segment's finite end when the other is the ``+inf`` start).

    Raises:
        ValueError: See the module docstring.
    """
    fpr, fnr, thr = det_points(scores, labels)
    diff = fnr - fpr  # starts at 1, ends at -1, never increases
    i = int(np.argmax(diff <= 0))  # first point at or past the crossing (i >= 1)
    if diff[i] == 0:
        return float(fpr[i]), float(thr[i])
    d0, d1 = diff[i - 1], diff[i]
    t = d0 / (d0 - d1)
    rate = fpr[i - 1] + t * (fpr[i] - fpr[i - 1])
    lo, hi = thr[i - 1], thr[i]
    threshold = hi if not np.isfinite(lo) else lo + t * (hi - lo)
    return float(rate), float(threshold)


def min_dcf(
    scores: ArrayLike,
    labels: ArrayLike,
    p_target: float = DCF_DEFAULTS["p_target"],
    c_miss: float = DCF_DEFAULTS["c_miss"],
    c_fa: float = DCF_DEFAULTS["c_fa"],
) -> tuple[float, float]:
    """The normalised minimum detection cost and its threshold.

    Args:
        scores: One score per trial (higher: target).
        labels: ``1`` target, ``0`` non-target.
        p_target: Prior probability of a target trial, in ``(0, 1)``.
        c_miss: Cost of a miss (``> 0``).
        c_fa: Cost of a false alarm (``> 0``).

    Returns:
        ``(min_dcf, threshold)``; the threshold is ``+inf`` when rejecting every trial
        is optimal.

    Raises:
        ValueError: A cost parameter is out of range, or as :func:`roc_points`.
    """
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"min_dcf: p_target={p_target!r} must be in (0, 1), e.g. 0.01")
    if c_miss <= 0 or c_fa <= 0:
        raise ValueError(f"min_dcf: c_miss={c_miss!r} and c_fa={c_fa!r} must both be > 0")
    fpr, fnr, thr = det_points(scores, labels)
    dcf = c_miss * fnr * p_target + c_fa * fpr * (1.0 - p_target)
    norm = min(c_miss * p_target, c_fa * (1.0 - p_target))
    i = int(np.argmin(dcf))
    return float(dcf[i] / norm), float(thr[i])


def _probit(p: np.ndarray) -> np.ndarray:
    """The standard normal deviate of probabilities (clipped away from 0 and 1)."""
    p = torch.as_tensor(np.clip(p, 1e-4, 1 - 1e-4), dtype=torch.float64)
    return torch.special.ndtri(p).numpy()


def _plot(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> bool:
    """Draw DET curves (normal-deviate axes) into a PNG; ``False`` without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is optional
        return False
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95])
    for name, (fpr, fnr) in curves.items():
        ax.plot(_probit(fpr), _probit(fnr), label=name, linewidth=1.2)
    ax.plot(_probit(ticks), _probit(ticks), "k:", linewidth=0.6)
    ax.set_xticks(_probit(ticks), [f"{100 * t:g}" for t in ticks])
    ax.set_yticks(_probit(ticks), [f"{100 * t:g}" for t in ticks])
    ax.set_xlabel("false alarm rate (%)")
    ax.set_ylabel("miss rate (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(True, linewidth=0.3)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=110)
    tmp.replace(path)
    return True


def write_curves(
    ctx: EvalContext,
    prefix: str,
    trials: Mapping[str, tuple[ArrayLike, ArrayLike]],
    title: str,
) -> list[Path]:
    """Write each system's scores (CSV) and one DET plot (PNG) as run artefacts.

    Nothing is written off the main rank or outside a run (``ctx.run_dir`` unset).

    Args:
        ctx: The evaluation context.
        prefix: File-name prefix (``verification``, ``deepfake``).
        trials: System name -> ``(scores, labels)`` of its test trials.
        title: The plot's title (the protocol in a few words).

    Returns:
        The paths written.
    """
    if not ctx.is_main or ctx.run_dir is None:
        return []
    written: list[Path] = []
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, (scores, labels) in trials.items():
        s = _as_array(scores, "scores", "write_curves")
        y = _as_array(labels, "labels", "write_curves")
        path = ctx.artefact_path(f"{prefix}_scores_{name}.csv")
        lines = ["score,label", *(f"{a:.8g},{int(b)}" for a, b in zip(s, y, strict=True))]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(path)
        ctx.add_artefact(path, kind="table", caption=f"{name}: test trial scores and labels")
        written.append(path)
        fpr, fnr, _ = det_points(s, y)
        curves[name] = (fpr, fnr)
    png = ctx.artefact_path(f"{prefix}_det.png")
    if _plot(curves, png, title):
        ctx.add_artefact(png, kind="curve", caption=f"DET curves: {title}")
        written.append(png)
    return written


def summary(scores: ArrayLike, labels: ArrayLike, **dcf: Any) -> dict[str, float]:
    """``eer``, ``eer_threshold``, ``min_dcf`` and trial counts of one system."""
    rate, thr = equal_error_rate(scores, labels)
    cost, _ = min_dcf(scores, labels, **dcf)
    y = _as_array(labels, "labels", "summary")
    return {
        "eer": rate,
        "eer_threshold": thr,
        "min_dcf": cost,
        "target_trials": float(y.sum()),
        "nontarget_trials": float(y.size - y.sum()),
    }
