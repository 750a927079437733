"""Projector, predictor and DINO heads shared by the core objectives.

Sizes are parameters. The papers' heads are wide (SimCLR 2048-128, Barlow Twins and
VICReg 8192x3, BYOL 4096-256, DINO 2048-256-65536); the objectives default to
scaled-down widths that train on a CPU and take the paper's widths as parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DINOHead", "MLPHead", "NormalizedLinear"]


def _positive(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class MLPHead(nn.Module):
    """A multi-layer perceptron head: ``(Linear -> [BN] -> act) x (L-1) -> Linear [-> BN]``.

    Args:
        in_dim: Input width (the encoder's ``embed_dim`` for a projector).
        hidden_dim: Width of the hidden layers.
        out_dim: Output width.
        num_layers: Number of linear layers (``1`` is a single linear map).
        batch_norm: Batch normalisation after each hidden linear layer.
        last_batch_norm: Batch normalisation (without affine parameters) after the
            last layer, as in SimSiam's projector.
        last_bias: Whether the last linear layer has a bias (Barlow Twins: no).
        activation: ``"relu"`` or ``"gelu"``.

    Example:
        >>> MLPHead(32, 64, 16, num_layers=3)(torch.randn(4, 32)).shape
        torch.Size([4, 16])
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        batch_norm: bool = True,
        last_batch_norm: bool = False,
        last_bias: bool = True,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        _positive("in_dim", in_dim)
        _positive("hidden_dim", hidden_dim)
        _positive("out_dim", out_dim)
        _positive("num_layers", num_layers)
        acts = {"relu": nn.ReLU, "gelu": nn.GELU}
        if activation not in acts:
            raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(width, hidden_dim, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(acts[activation]())
            width = hidden_dim
        layers.append(nn.Linear(width, out_dim, bias=last_bias and not last_batch_norm))
        if last_batch_norm:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        """Map ``[B, in_dim]`` to ``[B, out_dim]``."""
        return self.net(x)


class NormalizedLinear(nn.Module):
    """A bias-free linear layer whose weight rows are L2-normalised (weight norm).

    With ``learn_scale=False`` the norm of each row is fixed to 1, which is DINO's
    ``norm_last_layer=True`` (the paper's stabilising choice); otherwise a learned
    per-output gain ``g`` multiplies the normalised rows (weight norm proper).
    """

    def __init__(self, in_dim: int, out_dim: int, learn_scale: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        nn.init.trunc_normal_(self.weight, std=0.02)
        self.scale = nn.Parameter(torch.ones(out_dim, 1)) if learn_scale else None

    def forward(self, x: Tensor) -> Tensor:
        """``x @ normalize(W).T`` (times the learned gain, if any)."""
        w = F.normalize(self.weight, dim=1)
        if self.scale is not None:
            w = w * self.scale
        return F.linear(x, w)


class DINOHead(nn.Module):
    """DINO's head: MLP -> bottleneck -> L2 normalisation -> weight-normed prototypes.

    Args:
        in_dim: Input width.
        hidden_dim: MLP hidden width (paper: 2048).
        bottleneck_dim: Width before the prototypes (paper: 256).
        out_dim: Number of prototypes, the softmax width (paper: 65536).
        num_layers: Linear layers of the MLP before the bottleneck output.
        norm_last_layer: Fix the prototypes' norm to 1 (paper default, more stable).
        batch_norm: Batch normalisation in the MLP (the paper uses none for ViTs).

    Example:
        >>> DINOHead(32, 64, 16, 128)(torch.randn(4, 32)).shape
        torch.Size([4, 128])
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 512,
        bottleneck_dim: int = 128,
        out_dim: int = 4096,
        num_layers: int = 3,
        norm_last_layer: bool = True,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.mlp = MLPHead(
            in_dim,
            hidden_dim,
            bottleneck_dim,
            num_layers,
            batch_norm=batch_norm,
            activation="gelu",
        )
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.last_layer = NormalizedLinear(
            _positive("bottleneck_dim", bottleneck_dim),
            _positive("out_dim", out_dim),
            learn_scale=not norm_last_layer,
        )
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        """Map ``[B, in_dim]`` to prototype logits ``[B, out_dim]``."""
        z = F.normalize(self.mlp(x), dim=-1)
        return self.last_layer(z)
