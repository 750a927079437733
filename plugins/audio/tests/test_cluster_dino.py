"""audio:cluster-dino: EMA teacher, online clusters, the cluster-aware term, learning on FSDD."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from selfsup.interfaces import Padded
from selfsup.testing import check_objective
from selfsup_audio.encoders.cnn1d import CNN1d
from selfsup_audio.objectives.cluster_dino import ClusterDINO
from selfsup_audio.views import WaveViews

SR = 8000


def small_cnn(seed: int = 0) -> CNN1d:
    torch.manual_seed(seed)
    return CNN1d(sample_rate=SR, n_mels=40, channels=(64, 64, 128))


def waves(seed: int = 0, n: int = 12) -> Padded:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2000, 4000, (n,), generator=gen).tolist()
    return Padded.from_list([0.1 * torch.randn(t, generator=gen) for t in lengths])


def test_contract_teacher_and_schedule(selfsup_pm) -> None:
    spec = selfsup_pm.get("objective", "audio:cluster-dino")
    encoder = small_cnn()
    views = WaveViews(sample_rate=SR, crop_seconds=0.3)(waves())
    params = {"hidden_dim": 32, "bottleneck_dim": 16, "out_dim": 64, "num_clusters": 3,
              "cluster_start": 0.0, "cluster_ramp_end": 0.0, "confidence_gate": 0.0}  # fmt: skip
    objective, out = check_objective(spec, encoder, views, **params)
    for key in ("dino", "teacher_entropy", "cluster_loss", "cluster_confidence"):
        assert key in out.metrics, key
    # the teacher is a frozen copy, excluded from the optimiser, moved by on_step_end
    student = {id(p) for p in objective.student_parameters()}
    assert not student & {id(p) for p in objective.teacher_encoder.parameters()}
    assert all(not p.requires_grad for p in objective.teacher_encoder.parameters())
    before = [p.clone() for p in objective.teacher_encoder.parameters()]
    with torch.no_grad():
        for p in encoder.parameters():
            p.add_(1.0)
    objective.on_step_end(1, 100)
    after = list(objective.teacher_encoder.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_cluster_weight_ramps_between_start_and_end() -> None:
    obj = ClusterDINO(16, hidden_dim=8, bottleneck_dim=4, out_dim=8, cluster_weight=2.0,
                      cluster_start=0.2, cluster_ramp_end=0.6)  # fmt: skip
    weights = []
    for step in (0, 20, 40, 60, 100):
        obj.progress.fill_(step / 100)
        weights.append(obj.current_cluster_weight())
    assert weights == pytest.approx([0.0, 0.0, 1.0, 2.0, 2.0], abs=1e-6)


def test_online_clusters_separate_distinct_groups() -> None:
    obj = ClusterDINO(4, hidden_dim=8, bottleneck_dim=4, out_dim=8, num_clusters=2)
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[3.0, 0, 0, 1], [-3.0, 0, 0, 1]])
    for _ in range(5):
        labels = torch.arange(16) % 2
        pooled = centres[labels] + 0.3 * torch.randn(16, 4, generator=gen)
        obj._update_prototypes(obj._centred(pooled))
    emb = obj._centred(centres[torch.tensor([0, 1, 0, 1])])
    assign = (emb @ obj.prototypes.T).argmax(1)
    assert assign[0] == assign[2] and assign[1] == assign[3] and assign[0] != assign[1]


def test_cluster_term_targets_other_members_of_the_cluster() -> None:
    obj = ClusterDINO(2, hidden_dim=4, bottleneck_dim=2, out_dim=3, num_clusters=2,
                      confidence_gate=0.0, teacher_temp=1.0)  # fmt: skip
    obj.prototypes.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    teacher = [torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])]
    student = torch.zeros(3, 3, requires_grad=True)
    loss, stats = obj._cluster_term([student], teacher, emb)
    loss.backward()
    # item 0's target is item 1's distribution (class 1): its gradient lowers logit 1
    assert float(student.grad[0, 1]) < 0 < float(student.grad[0, 0])
    assert float(student.grad[2].abs().sum()) == 0.0, "a lone utterance has no partner"
    assert float(stats["cluster_partners"]) == pytest.approx(2 / 3)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="cluster_ramp_end"):
        ClusterDINO(16, cluster_start=0.5, cluster_ramp_end=0.2)
    with pytest.raises(ValueError, match="temperatures"):
        ClusterDINO(16, teacher_temp=0.0)
    obj = ClusterDINO(16, hidden_dim=8, bottleneck_dim=4, out_dim=8)
    with pytest.raises(TypeError, match="audio:wave-views"):
        obj(small_cnn(), waves())


# ---------------------------------------- learning (fsdd_probe, pretrain: conftest.py)


def cosine_eer(encoder, data) -> float:
    """Equal error rate of cosine scores over every pair of test clips (speaker trials)."""
    from sklearn.metrics import roc_curve

    encoder.eval()
    with torch.no_grad():
        idx = list(range(len(data.test)))
        emb = torch.cat([encoder(data.collate([data.test[i] for i in idx[j : j + 100]])[0]).pooled
                         for j in range(0, len(idx), 100)])  # fmt: skip
    encoder.train()
    emb = torch.nn.functional.normalize(emb - emb.mean(0), dim=1)
    spk = data.flags["test"]["speaker"]
    iu = torch.triu_indices(len(idx), len(idx), offset=1)
    scores = (emb @ emb.T)[iu[0], iu[1]].numpy()
    same = (spk[iu[0]] == spk[iu[1]]).numpy()
    fpr, tpr, _ = roc_curve(same, scores)
    k = int(np.nanargmin(np.abs((1 - tpr) - fpr)))
    return float((fpr[k] + 1 - tpr[k]) / 2)


@pytest.mark.heavy
def test_cluster_dino_beats_random_init_on_fsdd(fsdd_digits, fsdd_probe, pretrain) -> None:
    data, train_idx = fsdd_digits
    encoder = small_cnn(seed=0)
    before = fsdd_probe(encoder, data, train_idx)
    eer_before = cosine_eer(encoder, data)
    torch.manual_seed(0)
    objective = ClusterDINO(encoder.embed_dim, hidden_dim=256, bottleneck_dim=64, out_dim=256,
                            num_clusters=6)  # fmt: skip
    views = WaveViews(sample_rate=SR, crop_seconds=0.5)
    out = pretrain(encoder, objective, data, train_idx, steps=75, views=views)
    after = fsdd_probe(encoder, data, train_idx)
    eer_after = cosine_eer(encoder, data)
    assert float(out.metrics["cluster_weight"]) > 0 and float(out.metrics["clusters_used"]) > 1
    assert after["digit"] > before["digit"] + 0.02, (before, after)
    assert after["speaker"] >= before["speaker"], (before, after)
    assert eer_after < eer_before - 0.02, (eer_before, eer_after)
