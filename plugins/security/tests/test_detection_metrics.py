"""AUROC, ROC curve and TPR at a given FPR against scikit-learn, ties and edge cases included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from selfsup_security.metrics import auroc, roc_curve, tpr_at_fpr

sk = pytest.importorskip("sklearn.metrics")


def _sk_tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float) -> float:
    fprs, tprs, _ = sk.roc_curve(labels, scores, drop_intermediate=False)
    return float(tprs[fprs <= fpr + 1e-12].max())


def _cases() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = []
    for n, decimals, shift in ((40, 1, 0.5), (300, 2, 1.0), (101, 0, 0.2), (57, 6, 0.0)):
        labels = (rng.random(n) < 0.3).astype(int)
        labels[:2] = [0, 1]
        scores = np.round(rng.normal(size=n) + shift * labels, decimals)  # many ties at 0-1 dp
        cases.append((scores, labels))
    return cases


@pytest.mark.parametrize("case", range(4))
def test_auroc_matches_sklearn_with_ties(case: int) -> None:
    scores, labels = _cases()[case]
    assert len(np.unique(scores)) < len(scores) or case == 3  # ties are exercised
    assert auroc(torch.tensor(scores), torch.tensor(labels)) == pytest.approx(
        sk.roc_auc_score(labels, scores), abs=1e-12
    )


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("fpr", [0.0, 0.01, 0.05, 0.1, 0.5, 1.0])
def test_tpr_at_fpr_matches_sklearn_roc_curve(case: int, fpr: float) -> None:
    scores, labels = _cases()[case]
    assert tpr_at_fpr(scores, labels, fpr) == pytest.approx(
        _sk_tpr_at_fpr(scores, labels, fpr), abs=1e-12
    )


def test_roc_curve_matches_sklearn_points() -> None:
    scores, labels = _cases()[0]
    fpr, tpr, thr = roc_curve(scores, labels)
    sk_fpr, sk_tpr, sk_thr = sk.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr.numpy(), sk_fpr)
    np.testing.assert_allclose(tpr.numpy(), sk_tpr)
    np.testing.assert_allclose(thr.numpy()[1:], sk_thr[1:])


def test_hand_checked_values() -> None:
    y = [0, 0, 1, 1]
    assert auroc([0.1, 0.2, 0.3, 0.4], y) == 1.0
    assert auroc([0.4, 0.3, 0.2, 0.1], y) == 0.0
    assert auroc([0.5, 0.5, 0.5, 0.5], y) == 0.5  # all tied: chance
    assert auroc([0.1, 0.5, 0.5, 0.9], y) == pytest.approx(0.875)  # one tied pair = 1/2
    # a tie between a positive and a negative cannot be split by a threshold
    assert tpr_at_fpr([0.1, 0.5, 0.5, 0.9], y, fpr=0.0) == 0.5
    assert tpr_at_fpr([0.1, 0.5, 0.5, 0.9], y, fpr=0.5) == 1.0
    assert tpr_at_fpr([0.5, 0.5, 0.5, 0.5], y, fpr=0.4) == 0.0
    assert tpr_at_fpr(torch.tensor([0.1, 0.2, 0.3]), torch.tensor([False, True, True])) == 1.0


@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1, 1]])
def test_one_class_only_is_a_clear_error(labels: list[int]) -> None:
    with pytest.raises(ValueError, match="needs both classes"):
        auroc([0.1, 0.2, 0.3], labels)
    with pytest.raises(ValueError, match="needs both classes"):
        tpr_at_fpr([0.1, 0.2, 0.3], labels)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="3 scores but 2 labels"):
        auroc([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="NaN or infinite"):
        auroc([0.1, float("nan")], [0, 1])
    with pytest.raises(ValueError, match=r"0 \(clean\) or 1"):
        auroc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match=r"fpr=1\.5"):
        tpr_at_fpr([0.1, 0.2], [0, 1], fpr=1.5)
