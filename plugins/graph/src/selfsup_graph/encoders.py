"""Graph encoders: GCN, GAT and GIN stacks of PyG message-passing layers.

Every encoder takes a PyG ``Data`` or ``Batch`` (``x`` ``[N, in_dim]``, ``edge_index``
``[2, E]`` and, for a batch of graphs, ``batch``) and returns an
:class:`~selfsup.interfaces.EncoderOutput` with

* ``tokens``: node embeddings ``[N, hidden_dim]`` (what node-level evaluators use),
* ``pooled``: graph embeddings ``[num_graphs, hidden_dim]`` (mean, sum or max pooling;
  a plain ``Data`` is one graph),
* ``hidden_states``: the output of every layer, first to last.

Each layer is ``dropout -> conv (+ residual) -> norm -> activation``; the last layer
keeps its activation unless ``last_activation=False`` (GraphMAE and GRACE both
activate the encoder's output).

GAT initialisation: ``init="xavier-relu"`` (the default) draws the projection, the
attention vectors and the residual projections from a Xavier normal with ReLU gain, as
DGL's ``GATConv`` does and as GraphMAE's published results use; ``init="pyg"`` keeps
PyG's Glorot-uniform default. On Cora with GraphMAE the reference initialisation is
worth about five points of linear-probe accuracy (see ``benchmarks/README.md``).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from selfsup.interfaces import Encoder, EncoderOutput
from torch import Tensor, nn
from torch_geometric.nn import GINConv, global_add_pool, global_max_pool, global_mean_pool

from selfsup_graph.layers import GATLayer, GCNLayer, reference_gat_init
from selfsup_graph.views import Rate

__all__ = [
    "GAT",
    "GCN",
    "GIN",
    "GATLayer",
    "GCNLayer",
    "GraphEncoder",
    "NodeFeatures",
    "make_activation",
    "make_norm",
]

NORMS = ("none", "batch", "layer")
ACTIVATIONS = ("relu", "prelu", "elu", "none")
POOLINGS = ("mean", "sum", "max")
GAT_INITS = ("xavier-relu", "pyg")
_POOL = {"mean": global_mean_pool, "sum": global_add_pool, "max": global_max_pool}

# Parameter types: the constraints ``selfsup check`` enforces from the signatures.
Norm = Literal["none", "batch", "layer"]
Activation = Literal["relu", "prelu", "elu", "none"]
Pooling = Literal["mean", "sum", "max"]


def _choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{owner}: {name}={value!r} is not one of {', '.join(choices)}")
    return str(value)


def _positive(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        hint = " (the number of node features, e.g. 1433 for Cora)" if name == "in_dim" else ""
        raise ValueError(f"{owner}: {name}={value!r} must be a positive integer{hint}")
    return value


def _rate(owner: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ValueError(f"{owner}: {name}={value!r} must be a number in [0, 1)")
    return float(value)


def make_norm(name: str, dim: int) -> nn.Module:
    """A node-wise normalisation layer: ``none``, ``batch`` (BatchNorm1d) or ``layer``."""
    if name == "batch":
        return nn.BatchNorm1d(dim)
    if name == "layer":
        return nn.LayerNorm(dim)
    return nn.Identity()


def make_activation(name: str) -> nn.Module:
    """An activation module: ``relu``, ``prelu`` (one learnable slope), ``elu`` or ``none``."""
    return {"relu": nn.ReLU, "prelu": nn.PReLU, "elu": nn.ELU}.get(name, nn.Identity)()


def unpack_graph(owner: str, data: Any, in_dim: int) -> tuple[Tensor, Tensor]:
    """Node features and edges of a PyG graph, checked against the encoder's ``in_dim``.

    Raises:
        TypeError: ``data`` is not a graph (no ``x`` / ``edge_index``).
        ValueError: The feature width differs from ``in_dim``.
    """
    x = getattr(data, "x", None)
    edge_index = getattr(data, "edge_index", None)
    if not isinstance(x, Tensor) or not isinstance(edge_index, Tensor):
        raise TypeError(
            f"{owner} expects a torch_geometric Data/Batch with 'x' and 'edge_index', "
            f"got {type(data).__name__}; use a graph: dataset (see 'selfsup list dataset')"
        )
    if x.dim() != 2 or x.size(1) != in_dim:
        raise ValueError(
            f"{owner}: the graph has node features of shape {tuple(x.shape)} but the encoder "
            f"was built with in_dim={in_dim}; set encoder.params.in_dim: {x.size(-1)}"
        )
    return (x if x.is_floating_point() else x.float()), edge_index


class NodeFeatures(Encoder):
    """The raw node features as embeddings: the no-learning baseline (``embed_dim = in_dim``).

    Args:
        in_dim: Number of node features.
        pooling: ``mean``, ``sum`` or ``max`` graph pooling.
    """

    modality = "graph"

    def __init__(self, in_dim: PositiveInt, pooling: Pooling = "mean") -> None:
        super().__init__()
        self.in_dim = self.embed_dim = _positive("graph:features", "in_dim", in_dim)
        self.pooling = _choice("graph:features", "pooling", pooling, POOLINGS)

    def forward(self, data: Any) -> EncoderOutput:
        """Return the features as node embeddings, pooled per graph."""
        x, _ = unpack_graph("graph:features", data, self.in_dim)
        batch = getattr(data, "batch", None)
        if batch is None:
            batch = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
        return EncoderOutput(pooled=_POOL[self.pooling](x, batch), tokens=x, hidden_states=(x,))


class GraphEncoder(Encoder):
    """A stack of message-passing layers with dropout, residuals, norm and activation.

    Subclasses provide :meth:`make_conv`. See the module docstring for the layout.

    Args:
        in_dim: Number of input node features.
        hidden_dim: Width of every layer (the embedding width ``embed_dim``).
        num_layers: Number of message-passing layers.
        norm: ``none``, ``batch`` or ``layer``.
        activation: ``relu``, ``prelu``, ``elu`` or ``none``.
        dropout: Feature dropout applied to the input of every layer.
        residual: Add a (linear, when widths differ) skip connection to every layer.
        pooling: Graph-level pooling of ``pooled``: ``mean``, ``sum`` or ``max``.
        last_activation: Apply norm and activation after the last layer too.
    """

    modality = "graph"
    owner = "graph encoder"

    def __init__(
        self,
        in_dim: PositiveInt,
        hidden_dim: PositiveInt = 256,
        num_layers: PositiveInt = 2,
        norm: Norm = "none",
        activation: Activation = "relu",
        dropout: Rate = 0.0,
        residual: bool = False,
        pooling: Pooling = "mean",
        last_activation: bool = True,
    ) -> None:
        super().__init__()
        owner = self.owner
        self.in_dim = _positive(owner, "in_dim", in_dim)
        self.embed_dim = _positive(owner, "hidden_dim", hidden_dim)
        self.num_layers = _positive(owner, "num_layers", num_layers)
        self.norm = _choice(owner, "norm", norm, NORMS)
        self.activation = _choice(owner, "activation", activation, ACTIVATIONS)
        self.dropout = _rate(owner, "dropout", dropout)
        self.pooling = _choice(owner, "pooling", pooling, POOLINGS)
        dims = [self.in_dim] + [self.embed_dim] * self.num_layers
        self.convs = nn.ModuleList(
            self.make_conv(dims[i], dims[i + 1], i) for i in range(self.num_layers)
        )
        last = self.num_layers - 1
        self.norms = nn.ModuleList(
            make_norm(self.norm if (i < last or last_activation) else "none", self.embed_dim)
            for i in range(self.num_layers)
        )
        self.acts = nn.ModuleList(
            make_activation(self.activation if (i < last or last_activation) else "none")
            for i in range(self.num_layers)
        )
        self.residuals: nn.ModuleList | None = None
        if residual:
            self.residuals = nn.ModuleList(
                nn.Identity() if d == self.embed_dim else nn.Linear(d, self.embed_dim, bias=False)
                for d in dims[:-1]
            )

    def make_conv(self, d_in: int, d_out: int, index: int) -> nn.Module:  # pragma: no cover
        """Build layer ``index`` mapping ``d_in`` to ``d_out`` features."""
        raise NotImplementedError

    def forward(self, data: Any) -> EncoderOutput:
        """Encode a graph or a batch of graphs (see the module docstring)."""
        h, edge_index = unpack_graph(self.owner, data, self.in_dim)
        hidden = []
        for i, conv in enumerate(self.convs):
            h_in = F.dropout(h, p=self.dropout, training=self.training)
            out = conv(h_in, edge_index)
            if self.residuals is not None:
                out = out + self.residuals[i](h_in)
            h = self.acts[i](self.norms[i](out))
            hidden.append(h)
        return EncoderOutput(
            pooled=self.pool(h, getattr(data, "batch", None)), tokens=h, hidden_states=tuple(hidden)
        )

    def pool(self, h: Tensor, batch: Tensor | None) -> Tensor:
        """Graph-level pooling of node embeddings ``h`` (one graph when ``batch`` is None)."""
        if batch is None:
            batch = torch.zeros(h.size(0), dtype=torch.long, device=h.device)
        return _POOL[self.pooling](h, batch)


class GCN(GraphEncoder):
    """Graph convolutional network (Kipf & Welling) with symmetric normalisation.

    Args:
        in_dim: Number of input node features.
        hidden_dim: Width of every layer.
        num_layers: Number of ``GCNConv`` layers.
        norm: ``none``, ``batch`` or ``layer``.
        activation: ``relu``, ``prelu``, ``elu`` or ``none``.
        dropout: Feature dropout before every layer.
        residual: Skip connections.
        pooling: ``mean``, ``sum`` or ``max`` graph pooling.
        last_activation: Activate the last layer's output.

    Example:
        >>> import torch
        >>> from torch_geometric.data import Data
        >>> enc = GCN(in_dim=3, hidden_dim=8)
        >>> g = Data(x=torch.randn(4, 3), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]))
        >>> enc(g).tokens.shape, enc(g).pooled.shape
        (torch.Size([4, 8]), torch.Size([1, 8]))
    """

    owner = "graph:gcn"

    def make_conv(self, d_in: int, d_out: int, index: int) -> nn.Module:
        """A ``GCNConv`` layer (sparse-input aware)."""
        return GCNLayer(d_in, d_out)


class GIN(GraphEncoder):
    """Graph isomorphism network: sum aggregation followed by a two-layer MLP per layer.

    Args:
        in_dim: Number of input node features.
        hidden_dim: Width of every layer.
        num_layers: Number of ``GINConv`` layers.
        norm: ``none``, ``batch`` or ``layer`` (after each layer's MLP).
        activation: ``relu``, ``prelu``, ``elu`` or ``none`` (also inside the MLPs).
        dropout: Feature dropout before every layer.
        residual: Skip connections.
        pooling: ``mean``, ``sum`` or ``max`` graph pooling.
        last_activation: Activate the last layer's output.
        train_eps: Learn GIN's epsilon (the weight of a node's own features).
    """

    owner = "graph:gin"

    def __init__(
        self,
        in_dim: PositiveInt,
        hidden_dim: PositiveInt = 256,
        num_layers: PositiveInt = 2,
        norm: Norm = "none",
        activation: Activation = "relu",
        dropout: Rate = 0.0,
        residual: bool = False,
        pooling: Pooling = "mean",
        last_activation: bool = True,
        train_eps: bool = False,
    ) -> None:
        self.train_eps = bool(train_eps)
        super().__init__(
            in_dim,
            hidden_dim,
            num_layers,
            norm,
            activation,
            dropout,
            residual,
            pooling,
            last_activation,
        )

    def make_conv(self, d_in: int, d_out: int, index: int) -> nn.Module:
        """A ``GINConv`` layer around ``Linear -> activation -> Linear``."""
        mlp = nn.Sequential(
            nn.Linear(d_in, d_out), make_activation(self.activation), nn.Linear(d_out, d_out)
        )
        return GINConv(mlp, train_eps=self.train_eps)


class GAT(GraphEncoder):
    """Graph attention network; ``hidden_dim`` is split over ``heads`` concatenated heads.

    Args:
        in_dim: Number of input node features.
        hidden_dim: Width of every layer (``heads * hidden_dim // heads``).
        num_layers: Number of ``GATConv`` layers.
        heads: Attention heads per layer (must divide ``hidden_dim``).
        norm: ``none``, ``batch`` or ``layer``.
        activation: ``relu``, ``prelu``, ``elu`` or ``none``.
        dropout: Feature dropout before every layer (GraphMAE's ``in_drop``).
        attn_dropout: Dropout on attention coefficients (GraphMAE's ``attn_drop``).
        negative_slope: LeakyReLU slope of the attention scores.
        residual: Skip connections.
        pooling: ``mean``, ``sum`` or ``max`` graph pooling.
        last_activation: Activate the last layer's output.
        init: ``xavier-relu`` (DGL/GraphMAE reference) or ``pyg`` (PyG default).
    """

    owner = "graph:gat"

    def __init__(
        self,
        in_dim: PositiveInt,
        hidden_dim: PositiveInt = 256,
        num_layers: PositiveInt = 2,
        heads: PositiveInt = 4,
        norm: Norm = "none",
        activation: Activation = "prelu",
        dropout: Rate = 0.0,
        attn_dropout: Rate = 0.0,
        negative_slope: float = 0.2,
        residual: bool = False,
        pooling: Pooling = "mean",
        last_activation: bool = True,
        init: Literal["xavier-relu", "pyg"] = "xavier-relu",
    ) -> None:
        self.heads = _positive(self.owner, "heads", heads)
        if isinstance(hidden_dim, int) and hidden_dim % self.heads:
            raise ValueError(
                f"graph:gat: hidden_dim={hidden_dim} is not divisible by heads={heads}; "
                "hidden_dim is the concatenated width of all heads"
            )
        self.attn_dropout = _rate(self.owner, "attn_dropout", attn_dropout)
        self.negative_slope = float(negative_slope)
        self.init = _choice(self.owner, "init", init, GAT_INITS)
        super().__init__(
            in_dim,
            hidden_dim,
            num_layers,
            norm,
            activation,
            dropout,
            residual,
            pooling,
            last_activation,
        )
        if self.init == "xavier-relu":
            reference_gat_init(self)

    def make_conv(self, d_in: int, d_out: int, index: int) -> nn.Module:
        """A ``GATConv`` layer with concatenated heads."""
        return GATLayer(
            d_in,
            d_out // self.heads,
            heads=self.heads,
            concat=True,
            dropout=self.attn_dropout,
            negative_slope=self.negative_slope,
        )
