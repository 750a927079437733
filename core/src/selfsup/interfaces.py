"""The interfaces of what flows through a run: thin base classes and protocols.

A run wires six components together::

    DataSplits --(train items)--> ViewMaker --(views)--> Objective(encoder, views) -> loss
        Routine drives the optimisation; Evaluators then score the trained Encoder.

Plugins subclass :class:`Encoder` and :class:`Objective` (both ``torch.nn.Module``) and
implement the small :class:`ViewMaker`, :class:`Evaluator` and :class:`Routine`
protocols. :class:`DataSplits` is a concrete container that datasets return.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from selfsup.engine.runtime import to_device

if TYPE_CHECKING:
    from selfsup.engine.context import RunContext
    from selfsup.engine.runtime import Runtime

__all__ = [
    "DataSplits",
    "Encoder",
    "EncoderOutput",
    "Evaluator",
    "Objective",
    "ObjectiveOutput",
    "Routine",
    "ViewMaker",
    "call_evaluator",
]


@dataclass
class EncoderOutput:
    """What an encoder returns.

    Attributes:
        pooled: One embedding per item, ``[B, D]`` with ``D == encoder.embed_dim``.
        tokens: Per-position embeddings, ``[B, T, D]`` (patches, frames, voxels), or
            ``[N, D]`` node embeddings for a graph batch; ``None`` if not available.
        hidden_states: The outputs of every layer, first to last, for layer-aware
            heads; ``None`` if the encoder does not expose them.
    """

    pooled: Tensor
    tokens: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None


class Encoder(nn.Module):
    """Base class of encoders: a modality batch in, an :class:`EncoderOutput` out.

    Subclasses set :attr:`embed_dim` (the width of ``pooled``) and :attr:`modality`,
    and put their own input preprocessing (normalisation, feature extraction) inside
    ``forward`` so that evaluators can feed raw dataset items.

    Example:
        >>> class Flat(Encoder):
        ...     modality = "image"
        ...     def __init__(self, in_dim: int = 64, dim: int = 32):
        ...         super().__init__()
        ...         self.embed_dim = dim
        ...         self.net = nn.Linear(in_dim, dim)
        ...     def forward(self, x):
        ...         return EncoderOutput(pooled=self.net(x.flatten(1)))
        >>> Flat()(torch.zeros(2, 8, 8)).pooled.shape
        torch.Size([2, 32])
    """

    embed_dim: int
    modality: str = "any"

    def forward(self, x: Any) -> EncoderOutput:  # pragma: no cover - abstract
        """Encode a batch."""
        raise NotImplementedError


@dataclass
class ObjectiveOutput:
    """What an objective returns: the loss to minimise and named scalars to log."""

    loss: Tensor
    metrics: dict[str, float | Tensor] = field(default_factory=dict)

    def scalars(self) -> dict[str, float]:
        """The loss and metrics as plain floats (for logging)."""
        out = {"loss": float(self.loss.detach())}
        for key, value in self.metrics.items():
            out[key] = float(value.detach()) if isinstance(value, Tensor) else float(value)
        return out


class Objective(nn.Module):
    """Base class of self-supervised objectives.

    An objective owns every trainable piece besides the encoder (projector,
    predictor, decoder, EMA teacher) and computes the loss from the encoder and a
    batch of views. Objectives that keep a teacher update it in :meth:`on_step_end`,
    which the routine calls after every optimiser step.

    Example:
        >>> class Align(Objective):
        ...     def forward(self, encoder, views):
        ...         a, b = (encoder(v).pooled for v in views)
        ...         return ObjectiveOutput(loss=(a - b).pow(2).mean())
    """

    def forward(self, encoder: nn.Module, views: Any) -> ObjectiveOutput:  # pragma: no cover
        """Compute the loss for one batch of views."""
        raise NotImplementedError

    def on_step_end(self, step: int, total_steps: int) -> None:
        """Called after each optimiser step (EMA teachers, schedules). No-op by default."""

    def student_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters the optimiser trains (all that require grad, by default)."""
        return (p for p in self.parameters() if p.requires_grad)


@runtime_checkable
class ViewMaker(Protocol):
    """Turns a batch of raw items (already on the run's device) into views.

    Returns whatever the paired objective consumes: usually a list of tensors (two
    augmented views, or global + local crops), or a dict such as
    ``{"input": x, "mask": m}`` for masked objectives. View makers run on the
    device, batched, so that augmentation keeps up with a GPU.

    Example:
        >>> class Noise:
        ...     def __call__(self, x):
        ...         return [x + 0.1 * torch.randn_like(x) for _ in range(2)]
    """

    def __call__(self, batch: Any) -> Any:
        """Make views of ``batch``."""
        ...


@runtime_checkable
class Evaluator(Protocol):
    """Scores an encoder on a dataset: ``evaluate(...) -> {metric: value}``.

    Evaluators select hyper-parameters on validation data only and report test
    figures once. Higher is better unless the metric name says otherwise
    (``eer``, ``loss``).

    Example:
        >>> class Dim:
        ...     def evaluate(self, encoder, data, runtime, seed=0):
        ...         return {"embed_dim": float(encoder.embed_dim)}
    """

    def evaluate(
        self, encoder: nn.Module, data: DataSplits, runtime: Runtime, seed: int = 0
    ) -> dict[str, float]:
        """Return named metrics."""
        ...


def call_evaluator(
    evaluator: Evaluator,
    encoder: nn.Module,
    data: DataSplits,
    runtime: Runtime,
    seed: int = 0,
    views: ViewMaker | None = None,
) -> dict[str, float]:
    """Run ``evaluator.evaluate``, passing ``views=`` when its signature accepts it.

    Evaluators that need positive pairs (alignment/uniformity) declare a ``views``
    parameter and receive the arm's view maker; the others never see it.
    """
    import inspect

    kwargs: dict[str, Any] = {"seed": seed}
    if "views" in inspect.signature(evaluator.evaluate).parameters:
        kwargs["views"] = views
    return evaluator.evaluate(encoder, data, runtime, **kwargs)


@runtime_checkable
class Routine(Protocol):
    """How training proceeds: the mini-batch loop, a full-graph loop, and so on.

    ``fit`` receives the :class:`~selfsup.engine.context.RunContext` (components,
    runtime, training settings, checkpointing, event hooks) and trains in place,
    resuming from ``ctx.resume_state`` when it is set.
    """

    def fit(self, ctx: RunContext) -> None:
        """Train ``ctx.encoder`` and ``ctx.objective``."""
        ...


@dataclass
class DataSplits:
    """The splits of a dataset and what is known about them.

    Map-style splits yield ``(x, y)`` pairs (``y`` is ``-1`` where there is no
    label). Graph datasets keep a single graph in ``train`` and put the split masks
    in ``meta``; they override :meth:`embed` so that every frozen-feature evaluator
    works on nodes unchanged.

    Attributes:
        train: Training split (what pretraining sees).
        val: Validation split for model selection, or ``None``.
        test: Test split, reported once, or ``None``.
        num_classes: Number of label classes (0 if unlabelled).
        modality: The modality of the items.
        meta: Anything else (class names, sample rate, graph masks).
    """

    train: Any
    val: Any = None
    test: Any = None
    num_classes: int = 0
    modality: str = "any"
    meta: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> Any:
        """Return a split by name (``train``, ``val`` or ``test``).

        Raises:
            KeyError: The split does not exist or is empty.
        """
        value = getattr(self, name, None) if name in ("train", "val", "test") else None
        if value is None:
            raise KeyError(f"dataset has no {name!r} split")
        return value

    def collate(self, items: list[Any]) -> Any:
        """Collate items into a batch; the default stacks ``(x, y)`` pairs."""
        return torch.utils.data.default_collate(items)

    @torch.no_grad()
    def embed(
        self, encoder: nn.Module, split: str, runtime: Runtime, batch_size: int = 512
    ) -> tuple[Tensor, Tensor]:
        """Frozen pooled embeddings and labels of a split, as CPU tensors.

        In a distributed run every rank embeds the whole split (evaluation data is
        small next to pretraining data), so the result is identical on each rank.
        """
        dataset = self.split(split)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=False, collate_fn=self.collate
        )
        was_training = encoder.training
        encoder.eval()
        feats, labels = [], []
        for x, y in loader:
            x = to_device(x, runtime.device)
            with runtime.autocast():
                out = encoder(x)
            feats.append(out.pooled.float().cpu())
            labels.append(torch.as_tensor(y).cpu())
        encoder.train(was_training)
        return torch.cat(feats), torch.cat(labels)
