"""Message-passing layers: PyG's GCNConv and GATConv with cheaper execution orders.

* :class:`GCNLayer` multiplies sparse bag-of-words inputs as sparse matrices.
* :class:`GATLayer` aggregates before projecting when a head's output is wider than its
  input, and can compute only some target nodes' outputs.
* :func:`reference_gat_init` re-initialises GAT layers like DGL's ``GATConv``.

Both layers keep PyG's parameters and state dicts and give the same values as PyG's
layers (see ``tests/test_encoders.py``).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv, GCNConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import add_self_loops, remove_self_loops, scatter, softmax

__all__ = ["SPARSE_DENSITY", "GATLayer", "GCNLayer", "reference_gat_init", "sparse_input"]


#: Inputs with at most this share of non-zero entries are multiplied as sparse matrices.
SPARSE_DENSITY = 0.05


def sparse_input(x: Tensor) -> bool:
    """Whether ``x`` is a constant (no grad), mostly-zero 2-D input worth a sparse product.

    Bag-of-words node features (Cora: 1.3% non-zero) are; hidden activations are not.
    """
    if x.requires_grad or x.dim() != 2 or x.numel() < 100_000 or x.layout != torch.strided:
        return False
    return int(torch.count_nonzero(x)) <= SPARSE_DENSITY * x.numel()


class GCNLayer(GCNConv):
    """PyG's ``GCNConv`` whose input projection uses a sparse product for sparse inputs.

    ``A_hat (X W) + b`` with ``X W`` computed from a CSR copy of ``X`` when ``X`` is
    mostly zeros and needs no gradient (raw bag-of-words features); otherwise the
    ordinary ``GCNConv.forward``. Same parameters, same values.
    """

    def forward(self, x: Tensor, edge_index: Tensor) -> Tensor:  # type: ignore[override]
        """Graph convolution of ``x`` over ``edge_index``."""
        if not isinstance(edge_index, Tensor) or not self.normalize or not sparse_input(x):
            return super().forward(x, edge_index)
        edge_index, weight = gcn_norm(
            edge_index, None, x.size(0), self.improved, self.add_self_loops, self.flow, x.dtype
        )
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            h = x.to_sparse_csr() @ self.lin.weight.t()
        out = self.propagate(edge_index, x=h, edge_weight=weight)
        return out + self.bias if self.bias is not None else out


class GATLayer(GATConv):
    """PyG's ``GATConv`` that aggregates before projecting when that is cheaper.

    A GAT layer computes ``sum_j a_ij W x_j``. When a head's output is wider than the
    input (GraphMAE's decoder maps 512 codes to 1433 features), ``W sum_j a_ij x_j``
    gives the same result with per-edge work at the input width; the attention
    logits use ``<W x, a> = <x, W^T a>``. Parameters and state dict are ``GATConv``'s,
    and the ordinary ``GATConv.forward`` runs whenever it is the cheaper order.
    """

    def forward(  # type: ignore[override]
        self, x: Tensor, edge_index: Tensor, targets: Tensor | None = None
    ) -> Tensor:
        """Attention-weighted aggregation of neighbours, ``[N, heads * out_channels]``.

        With ``targets`` (node ids), only those nodes' outputs are computed and
        returned (``[len(targets), heads * out_channels]``), in that order.
        """
        if (
            self.lin is None
            or self.edge_dim is not None
            or not isinstance(edge_index, Tensor)
            or x.size(-1) >= self.out_channels
        ):
            out = super().forward(x, edge_index)
            return out if targets is None else out[targets]
        heads, out_ch, n = self.heads, self.out_channels, x.size(0)
        weight = self.lin.weight.view(heads, out_ch, -1)  # [H, C, in]
        v_src = torch.einsum("hci,hc->hi", weight, self.att_src[0])
        v_dst = torch.einsum("hci,hc->hi", weight, self.att_dst[0])
        if self.add_self_loops:
            edge_index, _ = remove_self_loops(edge_index)
            edge_index, _ = add_self_loops(edge_index, num_nodes=n)
        size, x_dst = n, x
        if targets is not None:
            # Keep the edges into the targets, renumbered to the targets' positions.
            position = torch.full((n,), -1, dtype=torch.long, device=x.device)
            position[targets] = torch.arange(targets.numel(), device=x.device)
            edge_index = edge_index[:, position[edge_index[1]] >= 0]
            edge_index = torch.stack([edge_index[0], position[edge_index[1]]])
            size, x_dst = targets.numel(), x[targets]
        src, dst = edge_index
        logits = (x @ v_src.t())[src] + (x_dst @ v_dst.t())[dst]  # [E, H]
        alpha = softmax(F.leaky_relu(logits, self.negative_slope), dst, num_nodes=size)
        alpha = F.dropout(alpha, p=self.dropout, training=self.training)
        msg = x[src].unsqueeze(1) * alpha.unsqueeze(-1)  # [E, H, in]
        agg = scatter(msg, dst, dim=0, dim_size=size, reduce="sum")  # [T, H, in]
        out = torch.einsum("nhi,hci->nhc", agg, weight)
        out = out.reshape(size, heads * out_ch) if self.concat else out.mean(dim=1)
        if self.res is not None:
            out = out + self.res(x_dst)
        if self.bias is not None:
            out = out + self.bias
        return out


@torch.no_grad()
def reference_gat_init(module: nn.Module) -> None:
    """Re-initialise every ``GATConv`` in ``module`` like DGL's ``GATConv``.

    Projection weights, attention vectors and residual projections are drawn from a
    Xavier normal with ReLU gain (``sqrt(2)``); biases are zero. Linear skip
    connections of a :class:`GraphEncoder` get the same Xavier normal.
    """
    gain = nn.init.calculate_gain("relu")
    for conv in module.modules():
        if not isinstance(conv, GATConv):
            continue
        for lin in (conv.lin, conv.lin_src, conv.lin_dst, conv.res):
            if lin is not None and hasattr(lin, "weight"):
                nn.init.xavier_normal_(lin.weight, gain=gain)
        for att in (conv.att_src, conv.att_dst):
            nn.init.xavier_normal_(att, gain=gain)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
    residuals = getattr(module, "residuals", None)
    if residuals is not None:
        for lin in residuals:
            if isinstance(lin, nn.Linear):
                nn.init.xavier_normal_(lin.weight, gain=gain)
