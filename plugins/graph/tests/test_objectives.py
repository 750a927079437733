"""Unit tests of the graph objectives: GraphMAE masking and loss, GRACE, links, multi-task."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from selfsup.losses import info_nce
from selfsup_graph.encoders import GAT, GCN
from selfsup_graph.objectives.grace import GRACE
from selfsup_graph.objectives.graphmae import GraphMAE, mask_nodes, sce_loss
from selfsup_graph.objectives.link import LinkReconstruction
from selfsup_graph.objectives.multitask import MultiTask, min_norm_weights
from selfsup_graph.sampling import NeighborSampler


def test_mask_nodes_counts_and_split() -> None:
    torch.manual_seed(0)
    masked, token, noise, source = mask_nodes(1000, 0.5, 0.1, torch.device("cpu"))
    assert masked.numel() == 500 and masked.unique().numel() == 500
    assert token.numel() == 450 and noise.numel() == 50 and source.numel() == 50
    assert set(token.tolist()) | set(noise.tolist()) == set(masked.tolist())
    assert not set(token.tolist()) & set(noise.tolist())
    masked, token, noise, _ = mask_nodes(10, 0.5, 0.0, torch.device("cpu"))
    assert torch.equal(masked, token) and noise.numel() == 0


def test_sce_loss_values() -> None:
    x = torch.randn(5, 4)
    assert sce_loss(x, 3 * x, alpha=3).item() == pytest.approx(0.0, abs=1e-6)
    assert sce_loss(x, -x, alpha=2).item() == pytest.approx(4.0, abs=1e-5)  # (1 - (-1))^2
    y = torch.randn(5, 4)
    cos = F.cosine_similarity(x, y)
    assert sce_loss(x, y, 3).item() == pytest.approx((1 - cos).pow(3).mean().item(), rel=1e-5)


def test_graphmae_corrupts_masked_nodes_with_token() -> None:
    torch.manual_seed(0)
    obj = GraphMAE(embed_dim=8, in_dim=6, mask_rate=0.5, replace_rate=0.0)
    with torch.no_grad():
        obj.mask_token.fill_(7.0)
    x = torch.rand(40, 6)
    out, masked = obj.corrupt(x)
    assert masked.numel() == 20
    assert (out[masked] == 7.0).all()
    keep = torch.ones(40, dtype=torch.bool)
    keep[masked] = False
    assert torch.equal(out[keep], x[keep])


def test_graphmae_loss_counts_masked_nodes_and_reaches_token(random_graph) -> None:
    torch.manual_seed(0)
    g = random_graph(n=40, f=6)
    enc = GAT(in_dim=6, hidden_dim=8, heads=2)
    obj = GraphMAE(embed_dim=8, in_dim=6)
    out = obj(enc, [g])
    assert out.metrics["masked_nodes"] == 20
    out.loss.backward()
    assert obj.mask_token.grad is not None and obj.mask_token.grad.abs().sum() > 0


@pytest.mark.parametrize("decoder", ["gat", "gcn", "gin", "linear"])
def test_graphmae_decoders_train(decoder, random_graph) -> None:
    torch.manual_seed(0)
    g = random_graph(n=30, f=6)
    enc = GCN(in_dim=6, hidden_dim=16)
    obj = GraphMAE(embed_dim=16, in_dim=6, decoder=decoder, decoder_dropout=0.0)
    opt = torch.optim.Adam([*enc.parameters(), *obj.parameters()], lr=1e-2)
    torch.manual_seed(1)
    first = obj(enc, [g]).loss.item()
    for _ in range(60):
        loss = obj(enc, [g]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.manual_seed(1)
    assert obj(enc, [g]).loss.item() < 0.8 * first


def test_graphmae_on_sampled_subgraph_scores_seeds_only(random_graph) -> None:
    torch.manual_seed(0)
    g = random_graph(n=200, f=6)
    sub = NeighborSampler(g, [5, 5]).sample(torch.arange(10))
    out = GraphMAE(embed_dim=8, in_dim=6)(GCN(in_dim=6, hidden_dim=8), [sub])
    assert 0 < out.metrics["masked_nodes"] <= 10


def test_graphmae_errors_name_the_parameter(random_graph) -> None:
    with pytest.raises(ValueError, match="in_dim=None must be the number of node features"):
        GraphMAE(embed_dim=8, in_dim=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"set objective\.params\.in_dim: 8"):
        GraphMAE(embed_dim=8, in_dim=5)(GCN(in_dim=8, hidden_dim=8), [random_graph()])
    with pytest.raises(ValueError, match="decoder='mlp2'"):
        GraphMAE(embed_dim=8, in_dim=5, decoder="mlp2")


def test_grace_is_the_core_infonce_of_projected_views(random_graph) -> None:
    torch.manual_seed(0)
    g = random_graph(n=25)
    enc = GCN(in_dim=8, hidden_dim=16).eval()
    obj = GRACE(embed_dim=16, proj_dim=8, temperature=0.4)
    v1, v2 = random_graph(n=25, seed=1), random_graph(n=25, seed=2)
    v1.x, v2.x = g.x, g.x * 0.5
    loss = obj(enc, [v1, v2]).loss
    z1, z2 = obj.projector(enc(v1).tokens), obj.projector(enc(v2).tokens)
    assert loss.item() == pytest.approx(info_nce(z1, z2, 0.4).item(), rel=1e-6)
    # GRACE's own formula: mean over both directions of -log(pos / (all other pairs))
    s12 = F.normalize(z1) @ F.normalize(z2).T / 0.4
    s11 = F.normalize(z1) @ F.normalize(z1).T / 0.4
    s22 = F.normalize(z2) @ F.normalize(z2).T / 0.4

    def semi(between, refl):
        denom = between.exp().sum(1) + refl.exp().sum(1) - refl.diag().exp()
        return -(between.diag().exp() / denom).log()

    manual = 0.5 * (semi(s12, s11) + semi(s12.T, s22)).mean()
    assert loss.item() == pytest.approx(manual.item(), rel=1e-5)


def test_grace_augments_a_single_graph_and_needs_two_views(random_graph) -> None:
    torch.manual_seed(0)
    obj = GRACE(embed_dim=16, proj_dim=8)
    out = obj(GCN(in_dim=8, hidden_dim=16), random_graph())
    assert torch.isfinite(out.loss)
    with pytest.raises(ValueError, match="needs 2 views"):
        obj(GCN(in_dim=8, hidden_dim=16), [random_graph()] * 3)


def test_link_reconstruction_learns_on_karate() -> None:
    from selfsup_graph.datasets import karate

    torch.manual_seed(0)
    g = karate().train  # real community structure (random graphs have nothing to learn)
    enc = GCN(in_dim=34, hidden_dim=16, last_activation=False)
    obj = LinkReconstruction(embed_dim=16, mask_rate=0.3)
    opt = torch.optim.Adam(enc.parameters(), lr=1e-2)
    losses = []
    for _ in range(80):
        out = obj(enc, g)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.05


def test_min_norm_weights() -> None:
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert torch.allclose(min_norm_weights([e1, e2]), torch.tensor([0.5, 0.5]), atol=1e-4)
    # a zero gradient is already the min-norm point: all weight on it
    assert torch.allclose(min_norm_weights([e1, torch.zeros(2)]), torch.tensor([0.0, 1.0]))
    # two-task closed form: alpha = (g2-g1).g2 / |g1-g2|^2
    g1, g2 = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0])
    a = ((g2 - g1) @ g2) / (g1 - g2).pow(2).sum()
    assert torch.allclose(min_norm_weights([g1, g2]), torch.stack([a, 1 - a]), atol=1e-4)


def test_multitask_sum_and_mgda(random_graph) -> None:
    g = random_graph(n=30, f=6)
    enc = GCN(in_dim=6, hidden_dim=16)
    tasks = {"graphmae": {"weight": 2.0, "params": {"in_dim": 6}}, "link": 1.0}
    torch.manual_seed(0)
    mt = MultiTask(16, tasks=tasks, combiner="sum")
    torch.manual_seed(1)
    out = mt(enc, [g])
    want = 2.0 * out.metrics["graphmae_loss"] + out.metrics["link_loss"]
    assert out.loss.item() == pytest.approx(float(want), rel=1e-5)
    torch.manual_seed(0)
    mgda = MultiTask(16, tasks=tasks, combiner="mgda")
    out = mgda(enc, [g])
    alphas = [out.metrics["graphmae_alpha"], out.metrics["link_alpha"]]
    assert sum(alphas) == pytest.approx(1.0, abs=1e-5) and min(alphas) >= 0
    out.loss.backward()
    with pytest.raises(ValueError, match="unknown task 'dino'"):
        MultiTask(16, tasks={"dino": 1.0})


def test_multitask_hands_meta_and_hooks_to_its_tasks(random_graph) -> None:
    from selfsup.interfaces import BatchMeta

    g = random_graph(n=30, f=6)
    enc = GCN(in_dim=6, hidden_dim=16)
    mt = MultiTask(16, tasks={"grace": 1.0, "link": 0.5})
    grace, link = mt.tasks["grace"], mt.tasks["link"]
    # The base class's forwarding sees the tasks (held in a ModuleDict) as sub-objectives.
    assert list(mt.sub_objectives()) == [grace, link]
    trained = {id(p) for p in mt.student_parameters()}
    assert {id(p) for p in grace.projector.parameters()} <= trained
    seen = []
    augment = grace.augment

    def recording(graph, meta=None):
        seen.append(meta)
        return augment(graph, meta)

    grace.augment = recording
    meta = BatchMeta(index=torch.arange(30), flags={"poisoned": torch.arange(30) < 3})
    out = mt(enc, [g], meta)
    assert torch.isfinite(out.loss) and seen == [meta]  # GRACE got the meta and used it
