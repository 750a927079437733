"""The SSAST objective: masking, losses, wiring errors, and learning on real FSDD."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from selfsup.components import get_component
from selfsup.interfaces import Padded
from selfsup.testing import check_objective, make_batch
from selfsup_audio.encoders.cnn1d import CNN1d
from selfsup_audio.encoders.ssast import SSASTEncoder
from selfsup_audio.objectives.ssast import SSAST, cluster_patch_mask, random_patch_mask

SMALL = {"sample_rate": 8000, "n_mels": 32, "embed_dim": 32, "depth": 2}


def _real(lengths: list[int], n: int) -> torch.Tensor:
    return torch.arange(n)[None] < torch.tensor(lengths)[:, None]


@pytest.mark.parametrize("maker", ["random", "cluster"])
def test_masks_hide_exactly_the_count_of_real_patches(maker: str) -> None:
    torch.manual_seed(0)
    real = _real([40, 24, 8], 40)
    counts = torch.tensor([30, 18, 6])
    for _ in range(20):
        if maker == "random":
            mask = random_patch_mask(real, counts)
        else:
            mask = cluster_patch_mask(real, counts, n_freq=4, min_size=2, max_size=3)
        assert mask.sum(1).tolist() == counts.tolist()
        assert not bool((mask & ~real).any()), "a padding patch was masked"


def _runs(row: torch.Tensor) -> int:
    """Number of maximal runs of True in a 1-D boolean row."""
    padded = torch.cat([torch.zeros(1, dtype=torch.bool), row])
    return int((padded[1:] & ~padded[:-1]).sum())


def test_cluster_masking_groups_neighbours() -> None:
    """Frame patches (one frequency row): clusters are runs in time, unlike random masks."""
    torch.manual_seed(0)
    real = torch.ones(200, 60, dtype=torch.bool)
    counts = torch.full((200,), 15)
    cluster = cluster_patch_mask(real, counts, n_freq=1, min_size=3, max_size=5)
    rand = random_patch_mask(real, counts)
    runs_cluster = np.mean([_runs(r) for r in cluster])
    runs_random = np.mean([_runs(r) for r in rand])
    assert runs_cluster <= 15 / 3 + 1  # runs of 3-5 patches (the last one cut)
    assert runs_random > 2 * runs_cluster


def test_square_clusters_span_time_and_frequency() -> None:
    torch.manual_seed(0)
    real = torch.ones(1, 10 * 4, dtype=torch.bool)  # 10 time x 4 frequency patches
    mask = cluster_patch_mask(real, torch.tensor([4]), n_freq=4, min_size=2, max_size=2)
    grid = mask.view(10, 4)  # one 2x2 block (unless it falls off the grid's edge)
    t, f = grid.nonzero(as_tuple=True)
    assert int(t.max() - t.min()) <= 1 and int(f.max() - f.min()) <= 2


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"shared_mask": True, "cluster": False},
        {"mse_weight": 0.0},
        {"nce_weight": 0.0, "mask_patches": 4},
    ],
)
def test_objective_contract(params: dict) -> None:
    torch.manual_seed(0)
    encoder = SSASTEncoder(**SMALL)
    views = [make_batch("audio", variable_length=True, lengths=[4000, 2600, 1800])]
    _, out = check_objective(get_component("objective", "audio:ssast"), encoder, views, **params)
    metrics = out.scalars()
    assert ("nce" in metrics) == (params.get("nce_weight", 1.0) > 0)
    assert ("mse" in metrics) == (params.get("mse_weight", 10.0) > 0)


@pytest.mark.parametrize("params", [{}, {"nce_weight": 0.0}, {"mse_weight": 0.0}])
def test_every_parameter_gets_a_gradient(params: dict) -> None:
    """DDP runs with find_unused_parameters=False: no parameter may be left out."""
    torch.manual_seed(0)
    encoder = SSASTEncoder(**SMALL)
    objective = SSAST(32, **params)
    objective.attach(encoder)
    batch = make_batch("audio", variable_length=True, lengths=[4000, 2600])
    objective(encoder, [batch]).loss.backward()
    missing = [
        n
        for module in (encoder, objective)
        for n, p in module.named_parameters()
        if p.requires_grad and p.grad is None
    ]
    assert not missing, missing


def test_mask_ratio_and_fixed_count() -> None:
    torch.manual_seed(0)
    encoder = SSASTEncoder(**SMALL)
    batch = make_batch("audio", variable_length=True, lengths=[8000, 4000])
    patches = encoder.prepare_patches(batch)
    n_real = patches.mask.sum(1)
    ratio = SSAST(32, mask_ratio=0.5).make_mask(patches.mask, patches.n_freq)
    assert ratio.sum(1).tolist() == (n_real.float() * 0.5).round().long().tolist()
    fixed = SSAST(32, mask_patches=7, cluster=False).make_mask(patches.mask, patches.n_freq)
    assert fixed.sum(1).tolist() == [7, 7]


def test_objective_takes_logmel_feature_views() -> None:
    """audio:specaugment-style feature batches work as well as waveforms."""
    from selfsup_audio.features import LogMel

    torch.manual_seed(0)
    encoder = SSASTEncoder(**SMALL)
    feats = LogMel(8000, n_mels=32)(make_batch("audio", variable_length=True, lengths=[4000, 2000]))
    out = SSAST(32)(encoder, [feats, feats])
    assert torch.isfinite(out.loss)


def test_nce_prefers_the_right_patch() -> None:
    """A head that outputs the true patch scores low InfoNCE and full accuracy.

    SSAST scores with plain dot products, so the patches here have equal norms.
    """
    obj = SSAST(4)
    obj.patch_dim = 5
    obj.cls_head = torch.nn.Identity()
    patches = 10 * torch.eye(5)[None].repeat(2, 1, 1)
    masked = torch.tensor([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]], dtype=torch.bool)
    nce, acc = obj._nce(patches, patches, masked)
    assert float(acc) == 1.0 and float(nce) < 1e-3
    nce_bad, _ = obj._nce(patches.flip(1), patches, masked)
    assert float(nce_bad) > 1.0


def test_non_ssast_encoder_is_a_clear_error() -> None:
    obj = SSAST(32)
    with pytest.raises(TypeError, match="needs the audio:ssast patch-transformer encoder"):
        obj.attach(CNN1d(sample_rate=8000, n_mels=32, channels=[32]))
    with pytest.raises(ValueError, match="embed_dim=16"):
        SSAST(16).attach(SSASTEncoder(**SMALL))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"nce_weight": 0.0, "mse_weight": 0.0}, "both 0"),
        ({"cluster_min": 6, "cluster_max": 3}, "cluster_min=6 > cluster_max=3"),
    ],
)
def test_bad_parameters(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SSAST(32, **params)


def test_state_dict_restores_heads() -> None:
    torch.manual_seed(0)
    encoder = SSASTEncoder(**SMALL)
    obj = SSAST(32)
    obj.attach(encoder)
    fresh = SSAST(32)
    fresh.attach(encoder)
    fresh.load_state_dict(obj.state_dict())
    for a, b in zip(obj.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)


# --------------------------------------------------------------------------- learning


def _embed(encoder: torch.nn.Module, waves: list[torch.Tensor]) -> np.ndarray:
    encoder.eval()
    with torch.no_grad():
        chunks = [
            encoder(Padded.from_list(waves[i : i + 256])).pooled for i in range(0, len(waves), 256)
        ]
    return torch.cat(chunks).numpy()


def _probes(encoder: torch.nn.Module, data, train: list, test: list) -> dict[str, float]:
    """Digit and speaker linear probes (train split -> test split) and cosine speaker EER.

    The speaker probe is near its ceiling on FSDD's split (~99% for a random encoder
    too), so speaker identity is also scored by the equal error rate of cosine scoring
    over all test pairs (embeddings centred with the train mean), which is not.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_curve
    from sklearn.preprocessing import StandardScaler

    a, b = _embed(encoder, train), _embed(encoder, test)
    out = {}
    scaler = StandardScaler().fit(a)
    for flag in ("digit", "speaker"):
        ya, yb = data.flags["train"][flag].numpy(), data.flags["test"][flag].numpy()
        clf = LogisticRegression(max_iter=500).fit(scaler.transform(a), ya)
        out[flag] = float(clf.score(scaler.transform(b), yb))
    e = b - a.mean(0)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    spk = data.flags["test"]["speaker"].numpy()
    iu = np.triu_indices(len(e), 1)
    fpr, tpr, _ = roc_curve((spk[:, None] == spk[None])[iu], (e @ e.T)[iu])
    i = int(np.argmin(np.abs(1 - tpr - fpr)))
    out["eer"] = float((fpr[i] + 1 - tpr[i]) / 2)
    return out


@pytest.mark.heavy
def test_ssast_learns_on_fsdd(fsdd_root: Path) -> None:
    """SSAST pretraining beats the same encoder at random init (digit probe, speaker EER).

    Six epochs of a small model (SSAST's two masked passes per step). The digit probe
    gains several points; the speaker probe, at its ceiling, must not lose, and the
    cosine speaker EER must fall.
    """
    from selfsup_audio.datasets import fsdd

    torch.manual_seed(0)  # the train split's random 0.6 s crops draw from it
    data = fsdd(str(fsdd_root), label="digit", split="by-index", max_seconds=0.6)
    train = [data.train[i][0] for i in range(len(data.train))]
    test = [data.test[i][0] for i in range(len(data.test))]
    torch.manual_seed(0)
    encoder = SSASTEncoder(sample_rate=8000, n_mels=40, embed_dim=64, depth=2, num_heads=4)
    random_init = copy.deepcopy(encoder)
    objective = SSAST(64)
    objective.attach(encoder)
    params = [*encoder.parameters(), *objective.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    gen = torch.Generator().manual_seed(0)
    first = last = None
    for _ in range(6):
        encoder.train()
        order = torch.randperm(len(train), generator=gen).tolist()
        for i in range(0, len(order) - 63, 64):
            batch = Padded.from_list([train[j] for j in order[i : i + 64]])
            out = objective(encoder, [batch])
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            first = first or out.scalars()
        last = out.scalars()
    assert last["mse"] < 0.8 * first["mse"] and last["nce_acc"] > first["nce_acc"], (first, last)
    before, after = _probes(random_init, data, train, test), _probes(encoder, data, train, test)
    print(f"random init {before} -> SSAST {after}")
    assert after["digit"] > before["digit"] + 0.03, (before, after)
    assert after["speaker"] >= before["speaker"], (before, after)
    assert after["eer"] < before["eer"], (before, after)
