"""A downstream-agnostic universal perturbation of an encoder (AdvEncoder-style).

One perturbation ``delta`` (the shape of one input, L-inf bounded) is fitted on
training inputs to push the encoder's embeddings away from the clean ones, without any
label or downstream head: it maximises ``1 - cos(f(x + delta), f(x))`` (or the L2
deviation, relative to the clean embedding's norm) by signed-gradient ascent over
random mini-batches, from a uniform random start (the deviation has zero gradient at
``delta = 0``). It is then scored through probes it never saw: the robustness
evaluator fits its clean probe independently and adds ``delta`` to test inputs.

AdvEncoder (Zhou et al., ICCV 2023) trains a generator of such perturbations with a
frequency-domain term; this is the direct optimisation of a single perturbation with
the same downstream-agnostic objective (embedding deviation), which is the threat model
the issue asks for, not a reproduction of their generator.

Example:
    >>> import torch
    >>> from selfsup.interfaces import EncoderOutput
    >>> class Enc(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.lin = torch.nn.Linear(4, 3)
    ...     def forward(self, x):
    ...         return EncoderOutput(pooled=self.lin(x.flatten(1)))
    >>> atk = UniversalPerturbation(eps=0.05, steps=5, batch_size=8)
    >>> delta = atk.fit(Enc(), torch.rand(16, 1, 2, 2))
    >>> tuple(delta.shape), bool(delta.abs().max() <= 0.05 + 1e-6)
    ((1, 2, 2), True)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn
from torch.nn import functional as F

from selfsup_security.attacks.base import Attack, check_unit_range, frozen_eval

__all__ = ["UniversalPerturbation", "collect_inputs"]


def collect_inputs(source: Tensor | Iterable[Any], max_items: int | None = None) -> Tensor:
    """Inputs in ``[0, 1]`` from a tensor or an iterable of batches (labels ignored).

    ``uint8`` images are divided by 255; a batch may be ``x`` or ``(x, y, ...)``.

    Raises:
        ValueError: Nothing was collected.
    """
    if isinstance(source, Tensor):
        chunks = [source]
    else:
        chunks, count = [], 0
        for batch in source:
            x = batch[0] if isinstance(batch, list | tuple) else batch
            chunks.append(torch.as_tensor(x))
            count += len(chunks[-1])
            if max_items is not None and count >= max_items:
                break
    if not chunks or sum(len(c) for c in chunks) == 0:
        raise ValueError("security:universal: fit got no inputs; pass the train split's inputs")
    x = torch.cat([c if c.dtype != torch.uint8 else c.float() / 255 for c in chunks])
    return x[:max_items] if max_items is not None else x


class UniversalPerturbation(Attack):
    """One L-inf perturbation for all inputs that maximises embedding deviation.

    Args:
        eps: L-inf budget on the 0-1 input scale (write 8/255 as ``0.031373``).
        steps: Optimisation steps, one random mini-batch each.
        alpha: Step size of the signed-gradient ascent; ``None``: ``eps / 10``.
        batch_size: Inputs per step.
        loss: ``"cosine"`` (``1 - cos``) or ``"l2"`` (``||f(x+d) - f(x)|| / ||f(x)||``).
        max_fit_items: At most this many training inputs are used (a seeded subset).
        seed: Seed of the random start, the subset and the mini-batches.
    """

    name = "universal_linf"
    norm = "linf"
    downstream = "agnostic"
    state_keys = ("delta", "fit_items", "fit_deviation")

    def __init__(
        self,
        eps: Annotated[float, Field(gt=0, le=1)] = 8 / 255,
        steps: Annotated[int, Field(ge=1)] = 100,
        alpha: Annotated[float, Field(gt=0)] | None = None,
        batch_size: Annotated[int, Field(ge=1)] = 128,
        loss: Literal["cosine", "l2"] = "cosine",
        max_fit_items: Annotated[int, Field(ge=1)] = 2000,
        seed: int = 0,
    ) -> None:
        def bad(key: str, value: Any, allowed: str) -> ValueError:
            return ValueError(
                f"security:universal: {key}={value!r} is not allowed; it must be {allowed}"
            )

        if isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps <= 1:
            raise bad("eps", eps, "a number in (0, 1] (the 0-1 input scale)")
        if alpha is not None and (isinstance(alpha, bool) or not alpha > 0):
            raise bad("alpha", alpha, "a number > 0, or null for eps / 10")
        counts = {"steps": steps, "batch_size": batch_size, "max_fit_items": max_fit_items}
        for key, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(key, value, "an integer >= 1")
        if loss not in ("cosine", "l2"):
            raise bad("loss", loss, "'cosine' or 'l2'")
        self.eps, self.steps, self.batch_size = float(eps), steps, batch_size
        self.alpha = None if alpha is None else float(alpha)
        self.loss, self.max_fit_items, self.seed = loss, max_fit_items, int(seed)
        self.delta: Tensor | None = None
        self.fit_items = 0
        self.fit_deviation = float("nan")

    def with_eps(self, eps: float) -> UniversalPerturbation:
        """A copy at another budget, not fitted (fit it again)."""
        other = super().with_eps(eps)
        assert isinstance(other, UniversalPerturbation)
        other.delta, other.fit_items, other.fit_deviation = None, 0, float("nan")
        return other

    def _deviation(self, z: Tensor, z0: Tensor) -> Tensor:
        if self.loss == "cosine":
            return 1 - F.cosine_similarity(z, z0, dim=1)
        return (z - z0).norm(dim=1) / z0.norm(dim=1).clamp_min(1e-8)

    def fit(
        self,
        encoder: nn.Module,
        inputs: Tensor | Iterable[Any],
        eps: float | None = None,
        steps: int | None = None,
    ) -> Tensor:
        """Fit ``delta`` on unlabelled ``inputs`` (a tensor in ``[0, 1]`` or a loader).

        Args:
            encoder: The frozen encoder (``encoder(x).pooled``); its mode and
                parameters are left as they were.
            inputs: Training inputs, ``[N, ...]`` in ``[0, 1]`` (or ``uint8``), or an
                iterable of batches (``x`` or ``(x, y)``; labels are never used).
            eps: Budget for this fit (default: the attack's ``eps``, which it replaces).
            steps: Steps for this fit (default: the attack's ``steps``).

        Returns:
            ``delta`` of the shape of one input, ``|delta| <= eps`` (also kept for
            :meth:`perturb`).
        """
        if eps is not None:
            self.eps = float(eps)
        steps = self.steps if steps is None else steps
        x_all = collect_inputs(inputs, None)
        gen = torch.Generator().manual_seed(self.seed)
        if len(x_all) > self.max_fit_items:
            x_all = x_all[torch.randperm(len(x_all), generator=gen)[: self.max_fit_items]]
        check_unit_range("security:universal", x_all)
        device = next((p.device for p in encoder.parameters()), torch.device("cpu"))
        eps, alpha = self.eps, self.alpha if self.alpha is not None else self.eps / 10
        assert eps is not None
        delta = ((torch.rand(x_all.shape[1:], generator=gen) * 2 - 1) * eps).to(device)
        with frozen_eval(encoder):
            with torch.no_grad():
                z0_all = torch.cat([
                    encoder(x_all[i : i + 512].to(device)).pooled.float()
                    for i in range(0, len(x_all), 512)
                ])  # fmt: skip
            with torch.enable_grad():
                for _ in range(steps):
                    size = (min(self.batch_size, len(x_all)),)
                    idx = torch.randint(len(x_all), size, generator=gen)
                    x, z0 = x_all[idx].to(device), z0_all[idx.to(z0_all.device)]
                    d = delta.detach().requires_grad_(True)
                    z = encoder((x + d).clamp(0, 1)).pooled.float()
                    grad = torch.autograd.grad(self._deviation(z, z0).mean(), d)[0]
                    delta = (delta + alpha * grad.sign()).clamp(-eps, eps)
            with torch.no_grad():
                dev = torch.cat([
                    self._deviation(encoder((x_all[i : i + 512].to(device) + delta).clamp(0, 1))
                                    .pooled.float(), z0_all[i : i + 512])
                    for i in range(0, len(x_all), 512)
                ])  # fmt: skip
        self.delta = delta.detach()
        self.fit_items, self.fit_deviation = len(x_all), float(dev.mean())
        return self.delta

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """``clip(x + delta, 0, 1)``; ``model`` and ``y`` are not used (agnostic attack)."""
        if self.delta is None:
            raise ValueError(
                "security:universal: perturb called before fit; fit the perturbation on "
                "training inputs first (UniversalPerturbation.fit(encoder, inputs))"
            )
        check_unit_range("security:universal", x)
        if tuple(x.shape[1:]) != tuple(self.delta.shape):
            raise ValueError(
                f"security:universal: inputs of shape {tuple(x.shape[1:])} but the "
                f"perturbation was fitted on {tuple(self.delta.shape)}; fit it on inputs "
                "of the attacked data"
            )
        return (x + self.delta.to(x.device, x.dtype)).clamp(0, 1)
