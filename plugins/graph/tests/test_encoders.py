"""Unit tests of the GNN encoders: options, shapes, GAT initialisation and the GAT layer."""

from __future__ import annotations

import math

import pytest
import torch
from selfsup_graph.encoders import GAT, GCN, GIN, GATLayer, NodeFeatures
from torch_geometric.data import Batch
from torch_geometric.nn import GATConv


@pytest.mark.parametrize("cls", [GCN, GAT, GIN])
@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
@pytest.mark.parametrize("activation", ["relu", "prelu", "elu"])
def test_options_shapes(cls, norm, activation, random_graph) -> None:
    torch.manual_seed(0)
    g = random_graph(n=20, f=6)
    enc = cls(
        in_dim=6,
        hidden_dim=8,
        num_layers=3,
        norm=norm,
        activation=activation,
        dropout=0.1,
        residual=True,
        pooling="sum",
    )
    out = enc(Batch.from_data_list([g, random_graph(n=7, f=6, seed=1)]))
    assert out.tokens.shape == (27, 8) and out.pooled.shape == (2, 8)
    assert len(out.hidden_states) == 3 and out.hidden_states[-1] is out.tokens
    # sum pooling: the pooled row of the first graph is the sum of its node embeddings
    assert torch.allclose(out.pooled[0], out.tokens[:20].sum(0), atol=1e-5)


def test_last_activation_and_residual_change_output(random_graph) -> None:
    torch.manual_seed(0)
    g = random_graph()
    enc = GCN(in_dim=8, hidden_dim=8, activation="relu", last_activation=True).eval()
    assert (enc(g).tokens >= 0).all()
    enc_lin = GCN(in_dim=8, hidden_dim=8, activation="relu", last_activation=False).eval()
    assert (enc_lin(g).tokens < 0).any()
    res = GCN(in_dim=8, hidden_dim=16, residual=True)
    assert isinstance(res.residuals[0], torch.nn.Linear)  # width changes: linear skip
    assert isinstance(res.residuals[1], torch.nn.Identity)


def test_reference_gat_init_statistics() -> None:
    torch.manual_seed(0)
    enc = GAT(in_dim=1433, hidden_dim=512, heads=4, init="xavier-relu")
    w = enc.convs[0].lin.weight
    gain = math.sqrt(2.0)
    expected = gain * math.sqrt(2.0 / (1433 + 512))
    assert abs(w.std().item() / expected - 1) < 0.02
    assert abs(w.mean().item()) < 1e-3
    att = enc.convs[0].att_src  # [1, H, C]: fans are H*C and C
    assert abs(att.std().item() / (gain * math.sqrt(2.0 / (4 * 128 + 128))) - 1) < 0.1
    assert torch.count_nonzero(enc.convs[0].bias) == 0
    pyg = GAT(in_dim=1433, hidden_dim=512, heads=4, init="pyg")
    bound = math.sqrt(6.0 / (1433 + 512))  # glorot uniform: std = bound / sqrt(3)
    assert abs(pyg.convs[0].lin.weight.std().item() / (bound / math.sqrt(3)) - 1) < 0.02


@pytest.mark.parametrize("heads", [1, 3])
def test_gat_layer_matches_pyg_gatconv(heads) -> None:
    torch.manual_seed(0)
    x = torch.randn(60, 5, requires_grad=True)
    edges = torch.randint(0, 60, (2, 300))
    ours, ref = GATLayer(5, 12, heads=heads), GATConv(5, 12, heads=heads)
    ref.load_state_dict(ours.state_dict())
    ours.eval(), ref.eval()
    targets = torch.randperm(60)[:25]
    assert torch.allclose(ours(x, edges), ref(x, edges), atol=1e-5)  # aggregate-first path
    out, want = ours(x, edges, targets=targets), ref(x, edges)[targets]
    assert torch.allclose(out, want, atol=1e-5)
    (g1,) = torch.autograd.grad(out.pow(2).sum(), x)
    (g2,) = torch.autograd.grad(want.pow(2).sum(), x)
    assert torch.allclose(g1, g2, atol=1e-4)


def test_node_features_are_the_input(random_graph) -> None:
    g = random_graph()
    out = NodeFeatures(in_dim=8)(g)
    assert torch.equal(out.tokens, g.x) and out.pooled.shape == (1, 8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_dim": None}, "in_dim=None must be a positive integer.*1433"),
        ({"in_dim": 8, "norm": "group"}, "norm='group' is not one of"),
        ({"in_dim": 8, "activation": "tanh"}, "activation='tanh'"),
        ({"in_dim": 8, "dropout": 1.5}, r"dropout=1.5 must be a number in \[0, 1\)"),
        ({"in_dim": 8, "hidden_dim": 10, "heads": 4}, "not divisible by heads=4"),
        ({"in_dim": 8, "init": "kaiming"}, "init='kaiming'"),
    ],
)
def test_bad_parameters_are_explained(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        GAT(**kwargs)


def test_wrong_feature_width_names_the_fix(random_graph) -> None:
    with pytest.raises(ValueError, match=r"set encoder\.params\.in_dim: 8"):
        GCN(in_dim=5)(random_graph(f=8))
    with pytest.raises(TypeError, match="torch_geometric Data"):
        GCN(in_dim=5)(torch.randn(3, 5))


def test_gcn_layer_sparse_input_matches_pyg_gcnconv() -> None:
    from selfsup_graph.layers import GCNLayer, sparse_input
    from torch_geometric.nn import GCNConv

    torch.manual_seed(0)
    x = (torch.rand(400, 300) < 0.02).float()  # bag-of-words-like
    edges = torch.randint(0, 400, (2, 2000))
    assert sparse_input(x) and not sparse_input(x.requires_grad_(True))
    x = x.detach()
    ours, ref = GCNLayer(300, 16), GCNConv(300, 16)
    ref.load_state_dict(ours.state_dict())
    out, want = ours(x, edges), ref(x, edges)
    assert torch.allclose(out, want, atol=1e-6)
    out.pow(2).sum().backward()
    want.pow(2).sum().backward()
    assert torch.allclose(ours.lin.weight.grad, ref.lin.weight.grad, atol=1e-5)
