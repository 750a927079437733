"""The defender's clean probe: a linear head on frozen features, and encoder + head.

Every security evaluator scores the encoder the way a downstream user would use it: a
linear classifier fit on clean labelled data (selected on validation data), then the
encoder and that head as one model (:class:`ProbedEncoder`, inputs in ``[0, 1]`` with
the normalisation inside the encoder, as torchattacks and ART expect).

Example:
    >>> import torch
    >>> x = torch.cat([torch.randn(50, 4) + 3, torch.randn(50, 4) - 3])
    >>> y = torch.cat([torch.zeros(50), torch.ones(50)]).long()
    >>> head = fit_linear_head(x, y, x, y, num_classes=2, seed=0)
    >>> float((head(x).argmax(1) == y).float().mean())
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from selfsup.evaluation import cpu_threads_for
from torch import Tensor, nn

__all__ = ["DEFAULT_WEIGHT_DECAYS", "ProbedEncoder", "fit_linear_head", "predict"]

#: The weight-decay grid chosen from on validation data.
DEFAULT_WEIGHT_DECAYS: tuple[float, ...] = (1e-6, 1e-4, 1e-2, 1.0)


class _Standardize(nn.Module):
    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def _fit(x: Tensor, y: Tensor, num_classes: int, weight_decay: float, seed: int) -> nn.Linear:
    torch.manual_seed(seed)
    linear = nn.Linear(x.shape[1], num_classes)
    # Zero start (the problem is convex): a feature that never varies on the fitting data
    # keeps a zero weight, so a dead ReLU channel cannot turn a tiny input change into a
    # large logit change (robust accuracy would then measure the probe, not the encoder).
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    opt = torch.optim.LBFGS(
        linear.parameters(), lr=1.0, max_iter=200, line_search_fn="strong_wolfe"
    )

    def closure() -> Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(linear(x), y)
        loss = loss + weight_decay * linear.weight.pow(2).sum() / 2
        loss.backward()
        return loss

    opt.step(closure)
    return linear


def fit_linear_head(
    train_x: Tensor,
    train_y: Tensor,
    val_x: Tensor,
    val_y: Tensor,
    num_classes: int,
    seed: int,
    weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
) -> nn.Sequential:
    """A standardising linear head, weight decay chosen on ``(val_x, val_y)``.

    Returns:
        ``nn.Sequential(standardize, linear)`` on CPU, in eval mode, frozen.
    """
    train_x, val_x = train_x.float().cpu(), val_x.float().cpu()
    train_y, val_y = train_y.long().cpu(), val_y.long().cpu()
    mean, std = train_x.mean(0), train_x.std(0)
    # Constant features (a dead ReLU channel) are centred, not scaled, as
    # selfsup.evaluation.standardize does: dividing by a clamped 1e-6 would turn an input
    # change that wakes the channel into a logit change of millions.
    std = torch.where(std < 1e-6, torch.ones_like(std), std)
    norm = _Standardize(mean, std)
    # One thread for small problems: L-BFGS on a few thousand rows is hundreds of tiny ops,
    # and on a busy machine thread synchronisation makes them many times slower.
    with torch.enable_grad(), cpu_threads_for(torch.device("cpu"), train_x.numel()):
        best, best_acc = None, -1.0
        for wd in weight_decays:
            linear = _fit(norm(train_x), train_y, num_classes, wd, seed)
            with torch.no_grad():
                acc = float((linear(norm(val_x)).argmax(1) == val_y).float().mean())
            if acc > best_acc:
                best, best_acc = linear, acc
    assert best is not None
    head = nn.Sequential(norm, best).eval()
    for p in head.parameters():
        p.requires_grad_(False)
    return head


@torch.no_grad()
def predict(head: nn.Module, features: Tensor) -> Tensor:
    """Class predictions of ``head`` on frozen features."""
    return head(features.float().cpu()).argmax(1)


class ProbedEncoder(nn.Module):
    """Encoder + clean head as one classifier: ``x in [0, 1] -> logits``.

    Args:
        encoder: The frozen SSL encoder (its own normalisation inside).
        head: The linear head from :func:`fit_linear_head`.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        """Logits of the probe on the encoder's pooled embedding."""
        pooled = self.encoder(x).pooled.float()
        head = self.head.to(pooled.device)
        return head(pooled)
