"""GraphMAE: masked node-feature reconstruction with a GNN decoder (Hou et al., KDD 2022).

One step:

1. Mask ``mask_rate`` of the nodes. Of the masked nodes, a ``1 - replace_rate``
   share get their features replaced by a learnable ``[MASK]`` token and a
   ``replace_rate`` share get the features of random other nodes (so the encoder
   cannot rely on the token alone).
2. Encode the corrupted graph, project the codes (``encoder_to_decoder``, no bias) and
   **re-mask** them: the masked nodes' codes are zeroed, so the decoder must rebuild
   their features from their neighbours' codes.
3. Decode with a one-layer GNN (GAT by default) to the input width and score the
   masked nodes with the scaled cosine error
   ``mean((1 - cos(x_rec, x)) ** alpha)`` (``gamma`` in the paper, ``alpha_l`` in its code).

On a neighbour-sampled subgraph the loss counts the masked seed nodes only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from selfsup.interfaces import BatchMeta, Objective, ObjectiveOutput
from torch import Tensor, nn

from selfsup_graph.encoders import GAT, GCN, GIN
from selfsup_graph.objectives.common import check_rate, graph_of, seed_count
from selfsup_graph.views import Rate, drop_edges, replace_graph

__all__ = ["GraphMAE", "mask_nodes", "sce_loss"]

_OWNER = "graph:graphmae"
DECODERS = ("gat", "gcn", "gin", "linear")


def sce_loss(x_rec: Tensor, x: Tensor, alpha: float = 3.0) -> Tensor:
    """Scaled cosine error: ``mean((1 - cos(x_rec, x)) ** alpha)`` over rows."""
    cos = (F.normalize(x_rec, p=2, dim=-1) * F.normalize(x, p=2, dim=-1)).sum(-1)
    return (1 - cos).pow(alpha).mean()


def mask_nodes(
    num_nodes: int, mask_rate: float, replace_rate: float, device: torch.device
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Choose masked nodes and split them into token and random-replacement nodes.

    Returns:
        ``(masked, token, noise, noise_source)``: all masked nodes, those that get the
        ``[MASK]`` token, those that get another node's features, and those other nodes.
    """
    perm = torch.randperm(num_nodes, device=device)
    n_mask = int(mask_rate * num_nodes)
    masked = perm[:n_mask]
    n_noise = int(replace_rate * n_mask)
    if n_noise == 0:
        empty = masked[:0]
        return masked, masked, empty, empty
    order = torch.randperm(n_mask, device=device)
    token = masked[order[: int((1 - replace_rate) * n_mask)]]
    noise = masked[order[-n_noise:]]
    source = torch.randperm(num_nodes, device=device)[:n_noise]
    return masked, token, noise, source


class GraphMAE(Objective):
    """GraphMAE objective: ``[MASK]`` token, re-masking, GNN decoder, scaled cosine error.

    The defaults are the reference settings for Cora (mask 0.5, replace 0.05,
    alpha 3, a one-head GAT decoder with input dropout 0.2 and attention dropout 0.1).

    Args:
        embed_dim: The encoder's embedding width (passed by the engine).
        in_dim: Number of node features to reconstruct (the encoder's ``in_dim``).
        mask_rate: Share of nodes masked per step.
        replace_rate: Share of the masked nodes given random other nodes' features.
        alpha: Exponent of the scaled cosine error (``>= 1``).
        decoder: ``gat``, ``gcn``, ``gin`` or ``linear`` (no re-masking for ``linear``).
        decoder_heads: Attention heads of a GAT decoder.
        decoder_dropout: Feature dropout at the decoder input.
        decoder_attn_dropout: Attention dropout of a GAT decoder.
        remask: Zero the masked nodes' codes before decoding.
        drop_edge_rate: Drop this share of edges from the encoder's and decoder's graph.
        init: GAT decoder initialisation (``xavier-relu`` or ``pyg``).

    Example:
        >>> obj = GraphMAE(embed_dim=16, in_dim=8)
        >>> obj.mask_token.shape
        torch.Size([1, 8])
    """

    def __init__(
        self,
        embed_dim: int,
        in_dim: PositiveInt,
        mask_rate: Annotated[float, Field(gt=0, lt=1)] = 0.5,
        replace_rate: Rate = 0.05,
        alpha: Annotated[float, Field(ge=1)] = 3.0,
        decoder: Literal["gat", "gcn", "gin", "linear"] = "gat",
        decoder_heads: PositiveInt = 1,
        decoder_dropout: Rate = 0.2,
        decoder_attn_dropout: Rate = 0.1,
        remask: bool = True,
        drop_edge_rate: Rate = 0.0,
        init: Literal["xavier-relu", "pyg"] = "xavier-relu",
    ) -> None:
        super().__init__()
        if isinstance(in_dim, bool) or not isinstance(in_dim, int) or in_dim < 1:
            raise ValueError(
                f"{_OWNER}: in_dim={in_dim!r} must be the number of node features to "
                "reconstruct (the encoder's in_dim, e.g. 1433 for Cora)"
            )
        if decoder not in DECODERS:
            raise ValueError(f"{_OWNER}: decoder={decoder!r} is not one of {', '.join(DECODERS)}")
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or alpha < 1:
            raise ValueError(f"{_OWNER}: alpha={alpha!r} must be a number >= 1")
        self.in_dim = in_dim
        self.mask_rate = check_rate(_OWNER, "mask_rate", mask_rate)
        if self.mask_rate == 0:
            raise ValueError(f"{_OWNER}: mask_rate must be > 0 (nothing to reconstruct)")
        self.replace_rate = check_rate(_OWNER, "replace_rate", replace_rate)
        self.alpha = float(alpha)
        self.drop_edge_rate = check_rate(_OWNER, "drop_edge_rate", drop_edge_rate)
        self.decoder_kind = decoder
        self.remask = bool(remask) and decoder != "linear"
        self.mask_token = nn.Parameter(torch.zeros(1, in_dim))
        self.encoder_to_decoder = nn.Linear(embed_dim, embed_dim, bias=False)
        common = {"in_dim": embed_dim, "hidden_dim": in_dim, "num_layers": 1}
        common.update(last_activation=False, dropout=decoder_dropout)
        self.decoder: nn.Module
        if decoder == "gat":
            self.decoder = GAT(
                heads=decoder_heads, attn_dropout=decoder_attn_dropout, init=init, **common
            )
        elif decoder == "gcn":
            self.decoder = GCN(**common)
        elif decoder == "gin":
            self.decoder = GIN(**common)
        else:
            self.decoder = nn.Sequential(nn.Dropout(decoder_dropout), nn.Linear(embed_dim, in_dim))

    def corrupt(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Masked input features and the indices of the masked nodes."""
        masked, token, noise, source = mask_nodes(
            x.size(0), self.mask_rate, self.replace_rate, x.device
        )
        out = x.clone()
        if noise.numel():
            out[noise] = x[source]
        is_token = torch.zeros(x.size(0), 1, dtype=torch.bool, device=x.device)
        is_token[token] = True
        out = torch.where(is_token, self.mask_token.to(out.dtype).expand_as(out), out)
        return out, masked

    def decode(self, rep: Tensor, edge_index: Tensor, data: Any, nodes: Tensor) -> Tensor:
        """Reconstructed features of ``nodes`` from the (re-masked) codes ``rep``.

        A GAT decoder computes the scored nodes' rows only (the same values as decoding
        every node and indexing, at about half the cost with mask rate 0.5).
        """
        if self.decoder_kind == "linear":
            return self.decoder(rep[nodes])
        if self.decoder_kind == "gat":
            dec = self.decoder
            h = F.dropout(rep, p=dec.dropout, training=self.training)
            return dec.convs[0](h, edge_index, targets=nodes)
        return self.decoder(replace_graph(data, x=rep, edge_index=edge_index)).tokens[nodes]

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """Mask, encode, re-mask, decode and score the masked nodes."""
        data = graph_of(views, _OWNER)
        x = data.x if data.x.is_floating_point() else data.x.float()
        if x.size(1) != self.in_dim:
            raise ValueError(
                f"{_OWNER}: the graph has {x.size(1)} node features but the objective was "
                f"built with in_dim={self.in_dim}; set objective.params.in_dim: {x.size(1)}"
            )
        x_in, masked = self.corrupt(x)
        edge_index = drop_edges(data.edge_index, self.drop_edge_rate)
        codes = encoder(replace_graph(data, x=x_in, edge_index=edge_index)).tokens
        rep = self.encoder_to_decoder(codes)
        if self.remask:
            keep = torch.ones(rep.size(0), 1, dtype=rep.dtype, device=rep.device)
            keep[masked] = 0
            rep = rep * keep
        seeds = seed_count(data)
        scored = masked if seeds is None else masked[masked < seeds]
        if scored.numel() == 0:
            scored = masked
        loss = sce_loss(self.decode(rep, edge_index, data, scored), x[scored], self.alpha)
        return ObjectiveOutput(loss=loss, metrics={"masked_nodes": float(scored.numel())})
