"""The evaluators' numerical building blocks against scikit-learn and known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from selfsup.builtin.evaluators._cluster_metrics import (
    adjusted_rand_index,
    contingency_table,
    normalized_mutual_info,
)
from selfsup.builtin.evaluators._features import standardize, stratified_split
from selfsup.builtin.evaluators.clustering import kmeans
from selfsup.builtin.evaluators.knn import knn_predict
from selfsup.builtin.evaluators.linear_probe import fit_logistic_regression
from selfsup.builtin.evaluators.rankme import rankme

pytest.importorskip("sklearn", reason="scikit-learn is the reference implementation")
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from threadpoolctl import ThreadpoolController

_single_threaded = ThreadpoolController().wrap(limits=1)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return load_digits(return_X_y=True)


# ----------------------------------------------------------------------- NMI / ARI
@pytest.mark.parametrize("seed", range(6))
def test_nmi_ari_match_sklearn_on_random_labelings(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    a = rng.integers(0, int(rng.integers(1, 12)), size=n)
    b = rng.integers(0, int(rng.integers(1, 12)), size=n) * 7 - 3  # arbitrary label values
    assert normalized_mutual_info(a, b) == pytest.approx(
        normalized_mutual_info_score(a, b), abs=1e-6
    )
    assert adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-6)


def test_nmi_ari_match_sklearn_on_real_labelings(digits):
    x, y = digits
    pred = KMeans(10, n_init=1, random_state=0).fit_predict(x)
    noisy = np.where(np.random.default_rng(0).random(len(y)) < 0.3, 0, y)
    for other in (pred, noisy, y // 2, y[::-1].copy()):
        assert normalized_mutual_info(y, other) == pytest.approx(
            normalized_mutual_info_score(y, other), abs=1e-6
        )
        assert adjusted_rand_index(y, other) == pytest.approx(
            adjusted_rand_score(y, other), abs=1e-6
        )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([0, 0, 0, 0], [1, 1, 1, 1]),  # both one cluster
        ([0, 1, 2, 3], [3, 2, 1, 0]),  # both singletons
        ([0, 0, 1, 1], [1, 1, 0, 0]),  # permuted
        ([0, 0, 0, 0], [0, 1, 2, 3]),  # one vs singletons
        ([0, 0, 1, 1], [0, 0, 0, 0]),
        ([5], [2]),
    ],
)
def test_nmi_ari_degenerate_cases_match_sklearn(a, b):
    assert normalized_mutual_info(a, b) == pytest.approx(normalized_mutual_info_score(a, b))
    assert adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(a, b))


def test_ari_does_not_overflow_on_large_inputs():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, size=200_000)
    b = np.where(rng.random(a.size) < 0.9, a, 0)
    assert adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-6)


def test_contingency_table_counts_and_rejects_mismatch():
    table = contingency_table([1, 1, 2, 9], [0, 5, 5, 5])
    assert table.tolist() == [[1, 1], [0, 1], [0, 1]]
    with pytest.raises(ValueError, match="differ in length"):
        contingency_table([0, 1], [0])


# ----------------------------------------------------------------------- k-means
def test_kmeans_recovers_separated_groups_and_is_seeded():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    truth = torch.arange(4).repeat_interleave(50)
    x = centres[truth] + 0.5 * torch.randn(200, 2, generator=gen)
    labels, found, inertia = kmeans(x, 4, n_init=3, seed=1)
    assert adjusted_rand_index(truth.numpy(), labels.numpy()) == 1.0
    assert found.shape == (4, 2)
    again = kmeans(x, 4, n_init=3, seed=1)
    assert torch.equal(again[0], labels) and again[2] == inertia


@_single_threaded
def test_kmeans_inertia_close_to_sklearn_on_digits(digits):
    x, _ = digits
    ours = kmeans(torch.tensor(x, dtype=torch.float32), 10, n_init=5, seed=0)[2]
    ref = KMeans(10, n_init=5, random_state=0).fit(x).inertia_
    assert ours <= ref * 1.01


def test_kmeans_handles_duplicate_points_and_bad_k():
    x = torch.tensor([[0.0, 0.0]] * 6 + [[1.0, 1.0]] * 2)
    labels, centres, inertia = kmeans(x, 3, n_init=2)
    assert torch.isfinite(centres).all() and labels.shape == (8,)
    assert inertia == 0.0 and labels[6] == labels[7] and labels[0] != labels[6]
    with pytest.raises(ValueError, match="k=9"):
        kmeans(x, 9)


# ----------------------------------------------------------------------- RankMe
@pytest.mark.parametrize("k", [1, 3, 10])
def test_rankme_of_rank_k_with_equal_singular_values_is_k(k):
    gen = torch.Generator().manual_seed(k)
    u, _ = torch.linalg.qr(torch.randn(500, k, generator=gen))
    v, _ = torch.linalg.qr(torch.randn(64, k, generator=gen))
    assert rankme(3.0 * u @ v.T) == pytest.approx(k, abs=1e-2)


def test_rankme_of_random_rank_k_is_at_most_k():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(1000, 8, generator=gen) @ torch.randn(8, 128, generator=gen)
    assert 5.0 < rankme(z) <= 8.0 + 1e-3
    full = torch.randn(1000, 128, generator=gen)
    assert rankme(full) > 100.0
    assert rankme(torch.zeros(10, 4)) == 1.0
    with pytest.raises(ValueError, match="non-empty"):
        rankme(torch.zeros(0, 4))


# ----------------------------------------------------------------------- probe / kNN / splits
@_single_threaded
def test_logistic_regression_solves_sklearns_problem(digits):
    x, y = digits
    xs = standardize(torch.tensor(x[:1000], dtype=torch.float32))[0]
    wd = 1e-3
    weight, bias = fit_logistic_regression(
        xs, torch.tensor(y[:1000]), 10, wd, max_iter=1000, tol=1e-7
    )
    ref = LogisticRegression(C=1.0 / (wd * 1000), tol=1e-8, max_iter=5000).fit(xs.numpy(), y[:1000])
    assert np.abs(weight.T.numpy() - ref.coef_).max() < 5e-3
    # sklearn's intercepts are only defined up to a common shift (softmax invariance)
    shift = bias.numpy() - ref.intercept_
    assert np.abs(shift - shift.mean()).max() < 5e-3


def test_knn_predict_votes_with_temperature():
    bank = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), dim=1)
    bank_y = torch.tensor([0, 0, 1])
    query = torch.nn.functional.normalize(torch.tensor([[0.2, 1.0]]), dim=1)
    preds = knn_predict(bank, bank_y, query, [1, 3], num_classes=2, temperature=0.07)
    assert preds[1].tolist() == [1]
    assert preds[3].tolist() == [1]  # the one close neighbour outweighs two far ones
    flat = knn_predict(bank, bank_y, query, [3], num_classes=2, temperature=100.0)
    assert flat[3].tolist() == [0]  # near-uniform weights: the majority wins


def test_stratified_split_is_stratified_disjoint_and_seeded():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 2 + [3])
    rest, held = stratified_split(y, 0.2, seed=3)
    assert torch.cat([rest, held]).sort().values.tolist() == list(range(len(y)))
    assert torch.bincount(y[held], minlength=4).tolist() == [10, 6, 1, 0]
    assert torch.equal(held, stratified_split(y, 0.2, seed=3)[1])
    assert not torch.equal(held, stratified_split(y, 0.2, seed=4)[1])
    with pytest.raises(ValueError, match="fraction"):
        stratified_split(y, 1.0, seed=0)


def test_standardize_uses_fit_statistics_only():
    fit = torch.tensor([[0.0, 5.0], [2.0, 5.0]])
    other = torch.tensor([[4.0, 7.0]])
    a, b = standardize(fit, other)
    assert a.tolist() == [[-1.0, 0.0], [1.0, 0.0]]
    assert b.tolist() == [[3.0, 2.0]]  # constant feature: centred, not scaled
