"""EER, minDCF and ROC/DET points against an independent computation (scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from selfsup.interfaces import EvalContext
from selfsup.runtime import Runtime
from selfsup_audio.metrics import (
    DCF_DEFAULTS,
    det_points,
    equal_error_rate,
    min_dcf,
    roc_points,
    summary,
    write_curves,
)
from sklearn.metrics import roc_curve


def _fixed_scores(n_pos: int = 300, n_neg: int = 3000, seed: int = 0, decimals: int = 6):
    """Overlapping Gaussian scores (rounded so that some ties occur) and their labels."""
    rng = np.random.default_rng(seed)
    s = np.r_[rng.normal(1.2, 1.0, n_pos), rng.normal(0.0, 1.0, n_neg)].round(decimals)
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)].astype(int)
    return s, y


def _sklearn_eer(s: np.ndarray, y: np.ndarray) -> float:
    """The usual recipe: solve 1 - x - TPR(x) = 0 on sklearn's interpolated ROC."""
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    return float(brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0))


def _brute_min_dcf(s: np.ndarray, y: np.ndarray, p: float, cm: float, cf: float) -> float:
    """Every threshold tried directly (plus reject-all), no ROC involved."""
    pos, neg = s[y == 1], s[y == 0]
    best = cm * p  # reject all: every target missed
    for t in np.unique(s):
        p_miss = float((pos < t).mean())
        p_fa = float((neg >= t).mean())
        best = min(best, cm * p_miss * p + cf * p_fa * (1 - p))
    return best / min(cm * p, cf * (1 - p))


@pytest.mark.parametrize("seed,decimals", [(0, 6), (1, 1), (2, 0)])
def test_roc_points_match_sklearn(seed: int, decimals: int) -> None:
    s, y = _fixed_scores(seed=seed, decimals=decimals)
    fpr, tpr, thr = roc_points(s, y)
    ref_fpr, ref_tpr, ref_thr = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    np.testing.assert_allclose(thr[1:], ref_thr[1:])
    d_fpr, d_fnr, _ = det_points(torch.tensor(s), torch.tensor(y))
    np.testing.assert_allclose(d_fnr, 1 - ref_tpr)
    np.testing.assert_allclose(d_fpr, ref_fpr)


@pytest.mark.parametrize("seed,decimals", [(0, 6), (1, 1), (2, 0), (3, 3)])
def test_eer_matches_independent_sklearn_computation(seed: int, decimals: int) -> None:
    s, y = _fixed_scores(seed=seed, decimals=decimals)
    rate, threshold = equal_error_rate(s, y)
    assert rate == pytest.approx(_sklearn_eer(s, y), abs=1e-9)
    # At the threshold the empirical miss and false-alarm rates bracket the EER.
    p_miss = float((s[y == 1] < threshold).mean())
    p_fa = float((s[y == 0] >= threshold).mean())
    assert min(p_miss, p_fa) - 0.02 <= rate <= max(p_miss, p_fa) + 0.02
    # Gaussian overlap of d' = 1.2: the theoretical EER is Phi(-0.6) ~ 0.274.
    if decimals >= 3:
        assert rate == pytest.approx(0.274, abs=0.04)


def test_eer_exact_cases() -> None:
    assert equal_error_rate([3, 2, 1, 0], [1, 1, 0, 0])[0] == 0.0
    assert equal_error_rate([0, 1, 2, 3], [1, 1, 0, 0])[0] == 1.0
    # One target below one non-target out of two each: EER 0.5 at the crossing.
    assert equal_error_rate([4, 2, 3, 1], [1, 1, 0, 0])[0] == pytest.approx(0.5)
    # Every score tied: the ROC is the diagonal, the EER is 0.5 (not 0 or 1).
    assert equal_error_rate([0.7] * 6, [1, 0, 1, 0, 0, 0])[0] == pytest.approx(0.5)


def test_eer_does_not_depend_on_trial_order() -> None:
    s, y = _fixed_scores(seed=4, decimals=1)
    perm = np.random.default_rng(0).permutation(s.size)
    assert equal_error_rate(s, y)[0] == pytest.approx(equal_error_rate(s[perm], y[perm])[0])


@pytest.mark.parametrize("p_target,c_miss,c_fa", [(0.01, 1.0, 1.0), (0.05, 1.0, 1.0), (0.5, 2, 1)])
def test_min_dcf_matches_brute_force(p_target: float, c_miss: float, c_fa: float) -> None:
    s, y = _fixed_scores(seed=5, decimals=2)
    cost, _ = min_dcf(s, y, p_target=p_target, c_miss=c_miss, c_fa=c_fa)
    assert cost == pytest.approx(_brute_min_dcf(s, y, p_target, c_miss, c_fa), rel=1e-9)
    assert 0.0 <= cost <= 1.0


def test_min_dcf_bounds_and_defaults() -> None:
    assert DCF_DEFAULTS == {"p_target": 0.01, "c_miss": 1.0, "c_fa": 1.0}
    assert min_dcf([3, 2, 1, 0], [1, 1, 0, 0])[0] == 0.0
    # Reversed scores: the best a system can do is the trivial one, normalised to 1.
    assert min_dcf([0, 1, 2, 3], [1, 1, 0, 0])[0] == pytest.approx(1.0)
    # All-equal scores carry no information: also exactly the trivial cost.
    assert min_dcf([0.5] * 4, [1, 0, 1, 0])[0] == pytest.approx(1.0)


@pytest.mark.parametrize("fn", [equal_error_rate, min_dcf, roc_points])
def test_one_class_missing_is_a_clear_error(fn) -> None:
    with pytest.raises(ValueError, match="no non-target"):
        fn([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="no target"):
        fn([0.1, 0.2], [0, 0])


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="one label per trial"):
        equal_error_rate([0.1, 0.2, 0.3], [1, 0])
    with pytest.raises(ValueError, match="NaN or inf"):
        equal_error_rate([0.1, float("nan")], [1, 0])
    with pytest.raises(ValueError, match=r"0 \(non-target\) or 1"):
        equal_error_rate([0.1, 0.2], [1, 2])
    with pytest.raises(ValueError, match="1-D"):
        equal_error_rate([[0.1, 0.2]], [[1, 0]])
    with pytest.raises(ValueError, match="p_target"):
        min_dcf([0.1, 0.2], [1, 0], p_target=1.0)
    with pytest.raises(ValueError, match="c_miss"):
        min_dcf([0.1, 0.2], [1, 0], c_miss=0.0)


def test_summary_and_curve_artefacts(tmp_path) -> None:
    s, y = _fixed_scores(n_pos=50, n_neg=200, seed=6)
    out = summary(s, y)
    assert out["target_trials"] == 50 and out["nontarget_trials"] == 200
    assert out["eer"] == pytest.approx(_sklearn_eer(s, y), abs=1e-9)
    ctx = EvalContext(runtime=Runtime(torch.device("cpu")), run_dir=tmp_path, name="verif")
    paths = write_curves(ctx, "verification", {"cosine": (s, y)}, "test trials")
    names = sorted(p.name for p in paths)
    assert "verification_scores_cosine.csv" in names
    csv = (tmp_path / "artefacts" / "verif" / "verification_scores_cosine.csv").read_text()
    assert csv.splitlines()[0] == "score,label" and len(csv.splitlines()) == 251
    assert {a["kind"] for a in ctx.artefacts} >= {"table"}
    # No run directory: nothing is written.
    assert write_curves(EvalContext(runtime=Runtime(torch.device("cpu"))), "x", {}, "t") == []
