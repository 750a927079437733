"""The core evaluators end to end on real data: scikit-learn's 1797 handwritten digits."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from selfsup.builtin.evaluators.alignment import AlignmentUniformity
from selfsup.builtin.evaluators.clustering import KMeansClustering
from selfsup.builtin.evaluators.knn import KNN
from selfsup.builtin.evaluators.linear_probe import DEFAULT_WEIGHT_DECAYS, LinearProbe
from selfsup.builtin.evaluators.rankme import RankMe
from selfsup.interfaces import DataSplits, Encoder, EncoderOutput, EvalContext
from selfsup.runtime import Runtime
from torch import nn
from torch.utils.data import TensorDataset

sklearn = pytest.importorskip("sklearn", reason="scikit-learn provides the real digits data")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import ThreadpoolController  # noqa: E402

# BLAS/OpenMP threads fight torch's for the same cores on these small problems (~40x slower).
_single_threaded = ThreadpoolController().wrap(limits=1)

CPU = Runtime(device=torch.device("cpu"))


def cpu_ctx(seed: int = 0, views=None, run_dir=None) -> EvalContext:
    """The evaluation context of a CPU run (no run directory: no artefacts written)."""
    return EvalContext(runtime=CPU, seed=seed, views=views, run_dir=run_dir)


class Flatten(Encoder):
    """The identity encoder: raw pixels as the embedding."""

    modality = "image"
    embed_dim = 64

    def forward(self, x):
        return EncoderOutput(pooled=x.flatten(1).float())


class RandomLinear(Encoder):
    """A random-init (untrained) linear encoder."""

    modality = "image"

    def __init__(self, dim: int = 32):
        super().__init__()
        torch.manual_seed(0)
        self.embed_dim = dim
        self.net = nn.Linear(64, dim)

    def forward(self, x):
        return EncoderOutput(pooled=self.net(x.flatten(1).float()))


class Constant(Encoder):
    """A fully collapsed encoder: the same vector for every input."""

    modality = "image"
    embed_dim = 16

    def forward(self, x):
        return EncoderOutput(pooled=torch.ones(x.shape[0], self.embed_dim))


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_digits(return_X_y=True)
    perm = np.random.default_rng(0).permutation(len(y))
    return torch.tensor(x[perm], dtype=torch.float32).view(-1, 8, 8), torch.tensor(y[perm])


def make_splits(x, y, val=True, test=True, num_classes=10) -> DataSplits:
    """60 / 20 / 20 train / val / test (a missing split's items are dropped)."""
    n = len(y)
    a, b = int(0.6 * n), int(0.8 * n)
    return DataSplits(
        train=TensorDataset(x[:a], y[:a]),
        val=TensorDataset(x[a:b], y[a:b]) if val else None,
        test=TensorDataset(x[b:], y[b:]) if test else None,
        num_classes=num_classes,
        modality="image",
    )


@_single_threaded
def sklearn_probe(x, y) -> float:
    """The same protocol with scikit-learn: C = 1 / (wd * n) on the same grid and splits.

    ``tol`` is tightened because scikit-learn's default (1e-4) stops L-BFGS well before
    convergence at weak regularisation, which makes its validation choice noisy.
    """
    n = len(y)
    a, b = int(0.6 * n), int(0.8 * n)
    flat = x.flatten(1).numpy()
    scaler = StandardScaler().fit(flat[:a])
    tr, va, te = (scaler.transform(flat[s]) for s in (slice(0, a), slice(a, b), slice(b, None)))
    y_np = y.numpy()
    best = (-1.0, None)
    for wd in sorted(DEFAULT_WEIGHT_DECAYS, reverse=True):
        clf = LogisticRegression(C=1.0 / (wd * a), max_iter=5000, tol=1e-6)
        clf.fit(tr, y_np[:a])
        acc = clf.score(va, y_np[a:b])
        if acc > best[0]:
            best = (acc, clf)
    return float(best[1].score(te, y_np[b:]))


def test_linear_probe_on_digits_matches_sklearn(digits):
    x, y = digits
    out = LinearProbe().evaluate(Flatten(), make_splits(x, y), cpu_ctx(0))
    assert set(out) == {
        "linear_acc",
        "linear_val_acc",
        "linear_train_acc",
        "linear_weight_decay",
        "linear_standardized",
    }
    assert out["linear_standardized"] == 1.0
    assert out["linear_acc"] >= 0.93
    assert out["linear_weight_decay"] in DEFAULT_WEIGHT_DECAYS
    assert abs(out["linear_acc"] - sklearn_probe(x, y)) <= 0.015
    # and scikit-learn's default probe (C=1, standardised features)
    a, b = int(0.6 * len(y)), int(0.8 * len(y))
    scaler = StandardScaler().fit(x[:a].flatten(1).numpy())
    with ThreadpoolController().limit(limits=1):
        default = LogisticRegression(max_iter=3000).fit(scaler.transform(x[:a].flatten(1)), y[:a])
    default_acc = default.score(scaler.transform(x[b:].flatten(1)), y[b:])
    assert abs(out["linear_acc"] - default_acc) <= 0.015
    # and clearly beats a collapsed encoder (chance level, ~0.1)
    collapsed = LinearProbe(weight_decays=[1e-3]).evaluate(Constant(), make_splits(x, y), cpu_ctx())
    assert collapsed["linear_acc"] < 0.2


def test_linear_probe_carves_validation_and_reports_on_val(digits):
    x, y = digits
    no_val = LinearProbe().evaluate(Flatten(), make_splits(x, y, val=False), cpu_ctx(1))
    assert no_val["linear_acc"] >= 0.93
    no_val_splits = make_splits(x, y, val=False)
    full_grid = LinearProbe(patience=None).evaluate(Flatten(), no_val_splits, cpu_ctx(1))
    assert full_grid == no_val  # stopping the grid walk early lost nothing here
    no_test = LinearProbe().evaluate(Flatten(), make_splits(x, y, test=False), cpu_ctx(1))
    assert "linear_acc" not in no_test and no_test["linear_acc_on_val"] >= 0.93
    with pytest.raises(ValueError, match="held-out split"):
        LinearProbe().evaluate(Flatten(), make_splits(x, y, val=False, test=False), cpu_ctx())


def test_linear_probe_standardize_modes(digits):
    x, y = digits
    splits = make_splits(x, y)
    scaled = LinearProbe(standardize=True).evaluate(Flatten(), splits, cpu_ctx())
    raw = LinearProbe(standardize=False).evaluate(Flatten(), splits, cpu_ctx())
    auto = LinearProbe(standardize="auto").evaluate(Flatten(), splits, cpu_ctx())
    assert raw["linear_standardized"] == 0.0 and raw["linear_acc"] >= 0.9
    # raw 0..16 pixel intensities need a different weight decay than unit-variance ones
    assert raw["linear_weight_decay"] != scaled["linear_weight_decay"]
    # auto keeps whichever validation accuracy is higher, ties going to standardised
    want = raw if raw["linear_val_acc"] > scaled["linear_val_acc"] else scaled
    assert auto == want
    with pytest.raises(ValueError, match=r"standardize='yes'.*true, false, \"auto\""):
        LinearProbe(standardize="yes")


def test_linear_probe_adam_solver_is_the_early_stopped_reference_protocol(digits):
    """``solver: adam`` equals the graph SSL papers' loop: Adam, keep the best-val epoch."""
    x, y = digits
    n = len(y)
    a, b = int(0.6 * n), int(0.8 * n)
    flat = x.flatten(1).float()
    probe = LinearProbe(solver="adam", weight_decays=[1e-4], lr=0.01, epochs=100, standardize=False)
    out = probe.evaluate(Flatten(), make_splits(x, y), cpu_ctx(3))

    torch.manual_seed(3)
    layer = nn.Linear(64, 10)
    opt = torch.optim.Adam(layer.parameters(), lr=0.01, weight_decay=1e-4)
    best_val = best_test = -1.0
    for _ in range(100):
        loss = torch.nn.functional.cross_entropy(layer(flat[:a]), y[:a])
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            pred = layer(flat).argmax(1)
        val = float((pred[a:b] == y[a:b]).float().mean())
        if val >= best_val:
            best_val, best_test = val, float((pred[b:] == y[b:]).float().mean())
    assert out["linear_val_acc"] == pytest.approx(best_val)
    assert out["linear_acc"] == pytest.approx(best_test)
    assert out["linear_acc"] >= 0.9
    with pytest.raises(ValueError, match=r"solver='sgd'.*'lbfgs', 'adam'"):
        LinearProbe(solver="sgd")


class MaskedSplits(DataSplits):
    """Graph-style splits: all items in ``train``, split masks in ``meta``, ``embed`` overridden."""

    @torch.no_grad()
    def embed(self, encoder, split, runtime, batch_size=512):
        mask = self.meta.get(f"{split}_mask")
        if mask is None:
            raise KeyError(f"dataset has no {split!r} split")
        x, y = self.train.tensors
        return encoder(x[mask]).pooled.cpu(), y[mask]


def test_evaluators_use_overridden_embed_for_mask_splits(digits):
    x, y = digits
    n = len(y)
    train_mask = torch.arange(n) < int(0.6 * n)
    test_mask = torch.arange(n) >= int(0.8 * n)
    masked = MaskedSplits(
        train=TensorDataset(x, y),
        num_classes=10,
        meta={"train_mask": train_mask, "test_mask": test_mask},
    )
    plain = make_splits(x, y, val=False)
    evaluators = [LinearProbe(weight_decays=[1e-3, 1e-2]), KNN(k=10), KMeansClustering(n_init=2)]
    for ev in [*evaluators, RankMe()]:
        assert ev.evaluate(Flatten(), masked, cpu_ctx()) == ev.evaluate(Flatten(), plain, cpu_ctx())
    with pytest.raises(ValueError, match="split='val'"):
        RankMe(split="val").evaluate(Flatten(), masked, cpu_ctx())


class ReadOnceSplits(DataSplits):
    """Embeds a reversed view of each split with drop_last: both seams are observable."""

    def embed_dataset(self, split):
        x, y = self.split(split).tensors
        return TensorDataset(x.flip(0), y.flip(0))

    def embed_loader_options(self, runtime):
        return {"drop_last": True}


def test_embed_reads_the_overridable_dataset_and_loader_options(digits):
    x, y = digits
    splits = ReadOnceSplits(train=TensorDataset(x[:10], y[:10]), num_classes=10)
    feats, labels = splits.embed(Flatten(), "train", Runtime(torch.device("cpu")), batch_size=4)
    assert labels.tolist() == y[:10].flip(0)[:8].tolist()  # reversed, last partial batch dropped
    assert torch.equal(feats, x[:10].flip(0)[:8].flatten(1).float())


def test_knn_on_digits(digits):
    x, y = digits
    out = KNN().evaluate(Flatten(), make_splits(x, y), cpu_ctx(0))
    assert out["knn_acc"] >= 0.95
    assert out["knn_k"] in (10, 20, 50, 100, 200)
    fixed = KNN(k=5).evaluate(Flatten(), make_splits(x, y), cpu_ctx())
    assert fixed["knn_k"] == 5 and fixed["knn_acc"] >= 0.95
    # a random-init encoder loses accuracy; a collapsed one is at chance
    assert KNN(k=20).evaluate(Constant(), make_splits(x, y), cpu_ctx())["knn_acc"] < 0.2
    # grid values above the bank size are clipped to it
    small = make_splits(x[:300], y[:300])
    assert KNN(k_grid=[10, 5000]).evaluate(Flatten(), small, cpu_ctx())["knn_k"] <= 180


def test_kmeans_on_digits_beats_random_labels(digits):
    x, y = digits
    out = KMeansClustering(n_init=3).evaluate(Flatten(), make_splits(x, y), cpu_ctx(0))
    rng = np.random.default_rng(0)
    y_test = y[int(0.8 * len(y)) :].numpy()
    random_labels = rng.integers(0, 10, size=len(y_test))
    base_nmi = normalized_mutual_info_score(y_test, random_labels)
    base_ari = adjusted_rand_score(y_test, random_labels)
    assert out["kmeans_nmi"] > base_nmi + 0.5
    assert out["kmeans_ari"] > base_ari + 0.4
    again = KMeansClustering(n_init=3).evaluate(Flatten(), make_splits(x, y), cpu_ctx(0))
    assert again == out  # seeded


def test_rankme_random_init_vs_collapsed(digits):
    x, y = digits
    data = make_splits(x, y)
    random_init = RankMe().evaluate(RandomLinear(32), data, cpu_ctx())["rankme"]
    collapsed = RankMe().evaluate(Constant(), data, cpu_ctx())["rankme"]
    assert collapsed == pytest.approx(1.0, abs=1e-3)
    assert random_init > 5.0
    assert random_init <= 32.0


def test_alignment_uniformity(digits):
    x, y = digits
    data = make_splits(x, y)
    ev = AlignmentUniformity(max_items=300)
    same = ev.evaluate(Flatten(), data, cpu_ctx(views=lambda b: [b, b]))
    assert same["alignment"] == pytest.approx(0.0, abs=1e-7)
    assert -4.0 <= same["uniformity"] < -0.1  # spread out, and log E exp(-2 d^2) >= -4
    single = ev.evaluate(Flatten(), data, cpu_ctx(views=lambda b: [b]))  # one view per call
    assert single["alignment"] == pytest.approx(0.0, abs=1e-7)

    def noisy(sigma):
        return lambda b: [b + sigma * torch.randn_like(b) for _ in range(2)]

    low = ev.evaluate(Flatten(), data, cpu_ctx(0, views=noisy(1.0)))["alignment"]
    high = ev.evaluate(Flatten(), data, cpu_ctx(0, views=noisy(8.0)))["alignment"]
    assert 0.0 < low < high
    collapsed = ev.evaluate(Constant(), data, cpu_ctx(views=noisy(1.0)))
    assert collapsed["uniformity"] == pytest.approx(0.0, abs=1e-9)
    assert collapsed["alignment"] == pytest.approx(0.0, abs=1e-9)


def test_alignment_needs_views(digits):
    x, y = digits
    ev = AlignmentUniformity()
    assert list(inspect.signature(ev.evaluate).parameters) == ["encoder", "data", "ctx"]
    with pytest.raises(ValueError, match=r"view maker.*ctx\.views is None"):
        ev.evaluate(Flatten(), make_splits(x, y), cpu_ctx())
    with pytest.raises(ValueError, match="returns a dict"):
        ev.evaluate(Flatten(), make_splits(x, y), cpu_ctx(views=lambda b: {"input": b, "mask": b}))


@pytest.mark.parametrize(
    "evaluator",
    [LinearProbe(), KNN(), KMeansClustering(n_init=1)],
    ids=["probe", "knn", "kmeans"],
)
def test_label_based_evaluators_reject_unlabelled_data(digits, evaluator):
    x, y = digits
    with pytest.raises(ValueError, match=r"task is 'none' \(DataSplits.task, num_classes=0\)"):
        evaluator.evaluate(Flatten(), make_splits(x, y, num_classes=0), cpu_ctx())
    with pytest.raises(ValueError, match="declares num_classes=0"):  # a class task, no classes
        unlabelled = make_splits(x, y, num_classes=0).replace(task="classification")
        evaluator.evaluate(Flatten(), unlabelled, cpu_ctx())
    with pytest.raises(ValueError, match="label -1"):
        evaluator.evaluate(Flatten(), make_splits(x, torch.full_like(y, -1)), cpu_ctx())
    with pytest.raises(ValueError, match="num_classes=5"):
        evaluator.evaluate(Flatten(), make_splits(x, y, num_classes=5), cpu_ctx())


def test_rankme_needs_no_labels(digits):
    x, y = digits
    data = make_splits(x, torch.full_like(y, -1), num_classes=0)
    assert RankMe(max_items=500).evaluate(Flatten(), data, cpu_ctx())["rankme"] > 5.0


def test_nan_embeddings_are_reported(digits):
    x, y = digits
    bad = x.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        KNN().evaluate(Flatten(), make_splits(bad, y), cpu_ctx())


@pytest.mark.parametrize(
    ("factory", "params", "match"),
    [
        (LinearProbe, {"weight_decays": []}, "at least one"),
        (LinearProbe, {"weight_decays": [-1.0]}, "weight_decays entry"),
        (LinearProbe, {"max_iter": 0}, "max_iter=0"),
        (LinearProbe, {"val_fraction": 1.5}, "val_fraction"),
        (LinearProbe, {"patience": 0}, "patience=0"),
        (KNN, {"k": 0}, "k=0"),
        (KNN, {"k_grid": []}, "k_grid"),
        (KNN, {"temperature": 0}, "temperature"),
        (KMeansClustering, {"n_clusters": 0}, "n_clusters=0"),
        (KMeansClustering, {"preprocess": "pca"}, "preprocess='pca'"),
        (KMeansClustering, {"split": "dev"}, "split='dev'"),
        (RankMe, {"max_items": 0}, "max_items=0"),
        (RankMe, {"split": "all"}, "split='all'"),
        (AlignmentUniformity, {"t": -1.0}, "t=-1.0"),
        (AlignmentUniformity, {"max_items": 1}, "max_items=1"),
    ],
)
def test_bad_parameters_are_rejected(factory, params, match):
    with pytest.raises(ValueError, match=match):
        factory(**params)


def test_registered_evaluators_build_from_their_specs():
    from selfsup.builtin.plugin import register_evaluators

    specs = []
    register_evaluators(specs.append)
    names = {s.name for s in specs}
    assert names == {"linear-probe", "knn", "rankme", "kmeans", "alignment-uniformity"}
    for spec in specs:
        evaluator = spec.create()
        assert callable(evaluator.evaluate)
