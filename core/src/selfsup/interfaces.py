"""The interfaces of what flows through a run: thin base classes, protocols and records.

A run wires these components together::

    Dataset -> DataSplits -> Transforms (poison, subsample, label noise) -> DataSplits
    train items --(batch, BatchMeta)--> ViewMaker --(views)--> Objective(encoder, views, meta)
    Routine drives the optimisation; Evaluators then score the trained Encoder with an
    EvalContext (runtime, seed, views, run directory for artefacts, rank).

Plugins subclass :class:`Encoder`, :class:`Objective` and :class:`Transform` and
implement the small :class:`ViewMaker`, :class:`Evaluator` and :class:`Routine`
protocols. :class:`DataSplits`, :class:`Padded`, :class:`BatchMeta` and
:class:`EvalContext` are concrete records. This module is part of the contract: it
imports nothing from the engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from selfsup.runtime import Runtime, to_device

if TYPE_CHECKING:
    from selfsup.training import RunContext

__all__ = [
    "TASKS",
    "BatchMeta",
    "DataSplits",
    "Encoder",
    "EncoderOutput",
    "EvalContext",
    "Evaluator",
    "Objective",
    "ObjectiveOutput",
    "Padded",
    "Routine",
    "StampedItems",
    "Transform",
    "ViewMaker",
]

#: What a dataset's labels mean (:attr:`DataSplits.task`).
#:
#: * ``"none"``: unlabelled (``y`` is ``-1``).
#: * ``"classification"``: ``y`` is a class index in ``[0, num_classes)`` (``-1``: none).
#: * ``"multilabel"``: ``y`` is a ``{0, 1}`` vector of ``num_classes``.
#: * ``"regression"``: ``y`` is a float (or float vector of ``label_shape``).
#: * ``"segmentation"``: ``y`` is a label map of ``label_shape`` (class per voxel/pixel).
#: * ``"verification"``: items carry an identity label (``y``: speaker/face id); trial
#:   pairs live in ``meta["trials"]`` as ``[(i, j, same), ...]`` over the test split.
#: * ``"detection"``: ``y`` is ``1`` for the positive class (a fake, an attack), ``0``.
TASKS: tuple[str, ...] = (
    "none",
    "classification",
    "multilabel",
    "regression",
    "segmentation",
    "verification",
    "detection",
)

#: Tasks whose ``y`` is one integer class per item (linear probes, kNN, k-means apply).
CLASS_TASKS: tuple[str, ...] = ("classification", "verification", "detection")


# --------------------------------------------------------------------------- inputs


@dataclass
class Padded:
    """A batch of variable-length items, padded to the longest, with their lengths.

    Audio clips, token sequences and graphs of several sizes travel as one ``Padded``:
    ``values`` is ``[B, T, ...]`` (time second), ``lengths`` is ``[B]``. Encoders that
    accept it must give every item the same ``pooled`` embedding whatever the padding
    (``selfsup.testing.check_padding_invariance`` asserts it).

    Example:
        >>> batch = Padded.from_list([torch.ones(3), torch.ones(5)])
        >>> batch.values.shape, batch.mask.tolist()[0]
        (torch.Size([2, 5]), [True, True, True, False, False])
    """

    values: Tensor
    lengths: Tensor

    @classmethod
    def from_list(cls, items: Sequence[Tensor], pad_value: float = 0.0) -> Padded:
        """Pad items ``[T_i, ...]`` along their first dimension into one batch."""
        if not items:
            raise ValueError("Padded.from_list needs at least one item")
        lengths = torch.tensor([int(t.shape[0]) for t in items], dtype=torch.long)
        values = torch.nn.utils.rnn.pad_sequence(
            list(items), batch_first=True, padding_value=pad_value
        )
        return cls(values=values, lengths=lengths)

    @property
    def mask(self) -> Tensor:
        """``[B, T]`` booleans: ``True`` where a position is real, ``False`` on padding."""
        steps = torch.arange(self.values.shape[1], device=self.values.device)
        return steps[None, :] < self.lengths.to(self.values.device)[:, None]

    @property
    def batch_size(self) -> int:
        """The number of items ``B``."""
        return int(self.values.shape[0])

    def __len__(self) -> int:
        return self.batch_size

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Padded:
        """Both tensors on ``device``."""
        return Padded(
            self.values.to(device, non_blocking=non_blocking),
            self.lengths.to(device, non_blocking=non_blocking),
        )

    def item(self, index: int) -> Tensor:
        """Item ``index`` without its padding."""
        return self.values[index, : int(self.lengths[index])]


@dataclass
class BatchMeta:
    """What is known about the items of a training batch besides their content.

    The engine builds one per batch for the view maker and the objective: the items'
    indices in the train split, their labels (``None`` where unlabelled; SSL
    objectives must not train on them, but view makers and analyses may), and the
    per-item flags of :attr:`DataSplits.flags` (``"poisoned"``, ``"triggered"``)
    sliced to the batch.

    Attributes:
        index: ``[B]`` indices into the train split (or node indices of a graph).
        labels: ``[B]`` labels, or ``None``.
        flags: Flag name -> ``[B]`` tensor.
    """

    index: Tensor
    labels: Tensor | None = None
    flags: dict[str, Tensor] = field(default_factory=dict)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> BatchMeta:
        """Every tensor on ``device``."""
        return BatchMeta(
            index=self.index.to(device, non_blocking=non_blocking),
            labels=None if self.labels is None else self.labels.to(device),
            flags={k: v.to(device, non_blocking=non_blocking) for k, v in self.flags.items()},
        )


# --------------------------------------------------------------------------- encoders


@dataclass
class EncoderOutput:
    """What an encoder returns.

    Attributes:
        pooled: One embedding per item, ``[B, D]`` with ``D == encoder.embed_dim``.
        tokens: Per-position embeddings, ``[B, T, D]`` (patches, frames, voxels), or
            ``[N, D]`` node embeddings for a graph batch; ``None`` if not available.
        mask: ``[B, T]`` booleans for ``tokens``: ``True`` where a token is real,
            ``False`` on padding (variable-length inputs, see :class:`Padded`);
            ``None`` when every token is real.
        feature_maps: Multi-scale spatial features, finest first, each
            ``[B, C_i, *spatial_i]`` (2-D or 3-D), for segmentation decoders; ``None``
            if the encoder has no spatial structure.
        hidden_states: The outputs of every layer, first to last, for layer-aware
            heads; ``None`` if the encoder does not expose them.
    """

    pooled: Tensor
    tokens: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    mask: Tensor | None = None
    feature_maps: tuple[Tensor, ...] | None = None


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


# --------------------------------------------------------------------------- objectives


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
    predictor, decoder, EMA teacher) and computes the loss from the encoder, a batch
    of views and the batch's :class:`BatchMeta`. Three hooks complete it, each called
    by the engine for every routine:

    * :meth:`attach` once, with the encoder, before the model is wrapped for DDP and
      before a checkpoint is restored (EMA teachers copy the encoder here);
    * :meth:`on_step_end` after every optimiser step (EMA updates, schedules);
    * :meth:`student_parameters` for the optimiser.

    The defaults forward each hook to the objectives this one holds, so an objective
    that wraps others (a multi-task sum, a defence around any objective) works by
    holding them as sub-modules; an override should call ``super()``.

    Example:
        >>> class Align(Objective):
        ...     def forward(self, encoder, views, meta=None):
        ...         a, b = (encoder(v).pooled for v in views)
        ...         return ObjectiveOutput(loss=(a - b).pow(2).mean())
    """

    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:  # pragma: no cover - abstract
        """Compute the loss for one batch of views."""
        raise NotImplementedError

    def sub_objectives(self) -> Iterator[Objective]:
        """The objectives this one holds directly (not their own sub-objectives)."""
        stack = list(self.children())
        while stack:
            module = stack.pop(0)
            if isinstance(module, Objective):
                yield module
            else:
                stack[:0] = list(module.children())

    def attach(self, encoder: nn.Module) -> None:
        """See the encoder once before training (the default attaches sub-objectives)."""
        for sub in self.sub_objectives():
            sub.attach(encoder)

    def on_step_end(self, step: int, total_steps: int) -> None:
        """Called after each optimiser step (the default forwards to sub-objectives)."""
        for sub in self.sub_objectives():
            sub.on_step_end(step, total_steps)

    def student_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters the optimiser trains.

        Every parameter that requires grad, except that each sub-objective decides
        for its own.
        """
        subs = list(self.sub_objectives())
        owned = {id(p) for sub in subs for p in sub.parameters()}
        seen: set[int] = set()
        for p in self.parameters():
            if p.requires_grad and id(p) not in owned and id(p) not in seen:
                seen.add(id(p))
                yield p
        for sub in subs:
            for p in sub.student_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield p


@runtime_checkable
class ViewMaker(Protocol):
    """Turns a batch of raw items (already on the run's device) into views.

    Called as ``views(batch, meta)`` with the batch's :class:`BatchMeta` (``None``
    outside training). Returns whatever the paired objective consumes: usually a list
    of tensors (two augmented views, or global + local crops), or a dict such as
    ``{"input": x, "mask": m}`` for masked objectives. View makers run on the device,
    batched, so that augmentation keeps up with a GPU.

    Example:
        >>> class Noise:
        ...     def __call__(self, x, meta=None):
        ...         return [x + 0.1 * torch.randn_like(x) for _ in range(2)]
    """

    def __call__(self, batch: Any, meta: BatchMeta | None = None) -> Any:
        """Make views of ``batch``."""
        ...


# --------------------------------------------------------------------------- data


class Transform:
    """Changes a dataset after loading and before views: ``(DataSplits, seed) -> DataSplits``.

    Listed in a config under ``data.transforms`` (per arm too) and applied in order,
    each with the run's seed; poisoning, label noise and subsampling are transforms.
    A transform returns new splits (never mutates the input: the engine caches the
    loaded dataset across arms) and may flag the items it touched with
    :meth:`DataSplits.with_flags` so that objectives (through :class:`BatchMeta`) and
    evaluators can tell them apart. :meth:`summary` is recorded in the run directory
    (``transforms.json``) and in ``results.json``.

    Example:
        >>> class Subsample(Transform):
        ...     def __init__(self, fraction: float = 0.5):
        ...         self.fraction = fraction
        ...     def __call__(self, data, seed):
        ...         n = len(data.train)
        ...         keep = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        ...         keep = keep[: int(n * self.fraction)].tolist()
        ...         return data.replace(train=torch.utils.data.Subset(data.train, keep))
    """

    def __call__(self, data: DataSplits, seed: int) -> DataSplits:  # pragma: no cover
        """Return the transformed splits."""
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        """Plain-data facts about what the last call did (counts, rates), for the record."""
        return {}


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
        meta: Anything else (class names, sample rate, graph masks, trial pairs).
        task: What ``y`` means, one of :data:`TASKS`; ``None`` infers
            ``"classification"`` when ``num_classes > 0``, else ``"none"``.
        label_shape: The shape of one item's ``y``: ``()`` for a class index,
            ``(D, H, W)`` for a segmentation map, ``(num_classes,)`` for multi-label.
        flags: Per-item metadata: split name -> flag name -> tensor with one entry
            per item of that split (``flags["train"]["poisoned"]``). The engine slices
            the train flags into each batch's :class:`BatchMeta`.
    """

    train: Any
    val: Any = None
    test: Any = None
    num_classes: int = 0
    modality: str = "any"
    meta: dict[str, Any] = field(default_factory=dict)
    task: str | None = None
    label_shape: tuple[int, ...] = ()
    flags: dict[str, dict[str, Tensor]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task is None:
            self.task = "classification" if self.num_classes > 0 else "none"
        if self.task not in TASKS:
            raise ValueError(f"DataSplits.task={self.task!r}; choose one of: {', '.join(TASKS)}")

    @property
    def has_class_labels(self) -> bool:
        """Whether ``y`` is one integer class per item (probes, kNN and k-means apply)."""
        return self.task in CLASS_TASKS and self.num_classes > 0

    def describe(self) -> dict[str, Any]:
        """Plain-data facts about the splits, recorded as ``dataset`` in ``results.json``.

        Returns:
            ``{"modality", "task", "num_classes", "label_shape", "sizes"}`` where
            ``sizes`` maps each present split to its number of items (a graph's
            ``train`` counts the graph's nodes); a streamed split without a length
            is left out of ``sizes``.

        Example:
            >>> import torch
            >>> from torch.utils.data import TensorDataset
            >>> x, y = torch.zeros(6, 2), torch.tensor([0, 1, 0, 1, 0, 1])
            >>> DataSplits(TensorDataset(x, y), test=TensorDataset(x[:2], y[:2]),
            ...            num_classes=2).describe()["sizes"]
            {'train': 6, 'test': 2}
        """
        sizes = {}
        for name in ("train", "val", "test"):
            value = getattr(self, name)
            try:
                size = _split_len(value) if value is not None else None
            except TypeError:  # a __len__ that refuses (an unsized stream)
                size = None
            if size is not None:
                sizes[name] = size
        return {
            "modality": self.modality,
            "task": self.task,
            "num_classes": self.num_classes,
            "label_shape": list(self.label_shape),
            "sizes": sizes,
        }

    def split(self, name: str) -> Any:
        """Return a split by name (``train``, ``val`` or ``test``).

        Raises:
            KeyError: The split does not exist or is empty.
        """
        value = getattr(self, name, None) if name in ("train", "val", "test") else None
        if value is None:
            raise KeyError(f"dataset has no {name!r} split")
        return value

    def replace(self, **changes: Any) -> DataSplits:
        """A shallow copy with some fields changed (keeps the subclass and its extra state).

        Subclasses with their own ``__init__`` (graph datasets) are copied, not rebuilt;
        one that caches something derived from its splits overrides this to drop it.

        Raises:
            TypeError: A name that is not a field of :class:`DataSplits`.
        """
        import copy
        import dataclasses

        names = {f.name for f in dataclasses.fields(DataSplits)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise TypeError(
                f"DataSplits.replace: unknown field(s) {unknown}; fields: {sorted(names)}"
            )
        out = copy.copy(self)
        for name, value in changes.items():
            setattr(out, name, value)
        out.__post_init__()
        return out

    def flag(self, split: str, name: str) -> Tensor | None:
        """The per-item flag ``name`` of ``split``, or ``None`` if it was never set."""
        return self.flags.get(split, {}).get(name)

    def with_flags(self, split: str, **values: Tensor | Sequence[Any]) -> DataSplits:
        """A copy with per-item flags set on ``split`` (one value per item).

        Raises:
            ValueError: A flag's length differs from the split's length.
        """
        size = _split_len(self.split(split))
        table = {k: dict(v) for k, v in self.flags.items()}
        for name, value in values.items():
            tensor = torch.as_tensor(value)
            if size is not None and tensor.shape[:1] != (size,):
                raise ValueError(
                    f"flag {name!r} of split {split!r} has {tuple(tensor.shape)} entries; "
                    f"the split has {size} items"
                )
            table.setdefault(split, {})[name] = tensor
        return self.replace(flags=table)

    def batch_meta(self, split: str, index: Tensor, labels: Tensor | None = None) -> BatchMeta:
        """The :class:`BatchMeta` of the items ``index`` of ``split`` (flags sliced)."""
        index = torch.as_tensor(index, dtype=torch.long)
        flags = {k: v[index] for k, v in self.flags.get(split, {}).items()}
        return BatchMeta(index=index, labels=labels, flags=flags)

    def collate(self, items: list[Any]) -> Any:
        """Collate items into a batch; the default stacks ``(x, y)`` pairs."""
        return torch.utils.data.default_collate(items)

    def embed_dataset(self, split: str) -> Any:
        """The dataset :meth:`embed` reads for ``split``; the default is :meth:`split`.

        Override to read a split differently when embedding, e.g. decoded on the CPU
        by loader workers rather than on the device.
        """
        return self.split(split)

    def embed_loader_options(self, runtime: Runtime) -> dict[str, Any]:
        """Extra ``DataLoader`` keyword arguments for :meth:`embed` (default none).

        Example:
            A split that decodes files can embed with worker processes::

                def embed_loader_options(self, runtime):
                    return {"num_workers": 4, "pin_memory": runtime.device.type == "cuda"}
        """
        return {}

    @torch.no_grad()
    def embed(
        self, encoder: nn.Module, split: str, runtime: Runtime, batch_size: int = 512
    ) -> tuple[Tensor, Tensor]:
        """Frozen pooled embeddings and labels of a split, as CPU tensors.

        In a distributed run every rank embeds the whole split (evaluation data is
        small next to pretraining data), so the result is identical on each rank.
        """
        loader = torch.utils.data.DataLoader(
            self.embed_dataset(split),
            batch_size=batch_size,
            shuffle=False,
            collate_fn=self.collate,
            **self.embed_loader_options(runtime),
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


def _split_len(split: Any) -> int | None:
    if getattr(split, "num_nodes", None) is not None:
        return int(split.num_nodes)
    return len(split) if hasattr(split, "__len__") else None


# --------------------------------------------------------------------------- evaluation


@dataclass
class EvalContext:
    """What an evaluator gets besides the encoder and the data.

    Attributes:
        runtime: Device, precision, rank and world size.
        seed: The run's seed (probes, splits and attacks draw from it).
        views: The arm's view maker, or ``None`` (alignment, BEYOND use it).
        run_dir: The run directory, or ``None`` outside a run (artefacts then go to a
            temporary folder).
        name: The evaluator's short name (its artefacts' folder).
        artefacts: What :meth:`add_artefact` recorded: ``{"path", "kind", "caption"}``
            with ``path`` relative to ``run_dir``; the runner copies it into
            ``results.json`` and ``selfsup report`` links to each file.
        facts: What :meth:`record` recorded: plain data that is not a metric (a threat
            model, the protocol followed, chosen hyper-parameters); the runner writes
            it to ``results.json`` under ``"facts"`` by evaluator name.
    """

    runtime: Runtime
    seed: int = 0
    views: ViewMaker | None = None
    run_dir: Path | None = None
    name: str = "evaluator"
    artefacts: list[dict[str, str]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def record(self, **facts: Any) -> None:
        """Record plain-data facts about this evaluation (strings, numbers, lists, dicts).

        Example:
            >>> ctx = EvalContext(runtime=Runtime(torch.device("cpu")))
            >>> ctx.record(threat_model={"knowledge": "white-box", "eps": 8 / 255})
            >>> ctx.facts["threat_model"]["knowledge"]
            'white-box'
        """
        self.facts.update(facts)

    @property
    def rank(self) -> int:
        """This process's rank."""
        return self.runtime.rank

    @property
    def world_size(self) -> int:
        """The number of processes."""
        return self.runtime.world_size

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the rank that writes artefacts)."""
        return self.runtime.is_main

    @property
    def device(self) -> torch.device:
        """The device to compute on."""
        return self.runtime.device

    def artefact_path(self, filename: str) -> Path:
        """Where to write an artefact: ``<run_dir>/artefacts/<name>/<filename>``."""
        if self.run_dir is None:
            import tempfile

            self.run_dir = Path(tempfile.mkdtemp(prefix="selfsup-eval-"))
        folder = self.run_dir / "artefacts" / self.name
        folder.mkdir(parents=True, exist_ok=True)
        return folder / filename

    def add_artefact(self, path: str | Path, kind: str = "file", caption: str = "") -> None:
        """Record a written artefact so that results and the report link to it.

        ``kind`` is ``"image"``, ``"nifti"``, ``"table"``, ``"curve"`` or ``"file"``.
        """
        p = Path(path)
        if self.run_dir is not None and p.is_absolute() and p.is_relative_to(self.run_dir):
            p = p.relative_to(self.run_dir)
        self.artefacts.append({"path": p.as_posix(), "kind": kind, "caption": caption})


@runtime_checkable
class Evaluator(Protocol):
    """Scores an encoder on a dataset: ``evaluate(encoder, data, ctx) -> {metric: value}``.

    Evaluators select hyper-parameters on validation data only and report test
    figures once. Higher is better unless the metric name says otherwise
    (``eer``, ``loss``). Whether it runs on the main rank only (the default) or on
    every rank (sharded work such as sliding-window inference) is declared by
    :attr:`selfsup.specs.EvaluatorSpec.ranks`; a label-based evaluator checks
    :attr:`DataSplits.task` first.

    Example:
        >>> class Dim:
        ...     def evaluate(self, encoder, data, ctx):
        ...         return {"embed_dim": float(encoder.embed_dim)}
    """

    def evaluate(
        self, encoder: nn.Module, data: DataSplits, ctx: EvalContext
    ) -> Mapping[str, float]:
        """Return named metrics."""
        ...


@runtime_checkable
class Routine(Protocol):
    """How training proceeds: the mini-batch loop, a full-graph loop, and so on.

    ``fit`` receives the :class:`selfsup.RunContext` (components, runtime, training
    settings, checkpointing, event hooks) and trains in place, resuming from
    ``ctx.resume_state`` when it is set. Most routines only say where their
    micro-batches come from and call :func:`selfsup.train_epochs`.
    """

    def fit(self, ctx: RunContext) -> None:
        """Train ``ctx.encoder`` and ``ctx.objective``."""
        ...


class StampedItems(torch.utils.data.Dataset):
    """A map-style split whose items ``index`` are changed by ``stamp`` when read.

    What a trigger's ``apply`` returns for map-style data of any modality (clips of
    their own lengths, volumes): the original split is never modified, the labels are
    kept, and each stamped item gets its own generator, seeded from ``seed`` and its
    position only, so its stamp does not depend on batch order or worker. Attributes of
    the wrapped split (labels, sample rate) stay reachable.

    Args:
        items: The original split (``(x, y)`` items).
        index: Positions of the items to stamp.
        stamp: ``stamp(x, generator=...) -> x`` (picklable, for loader workers: a
            method or a ``functools.partial``, not a lambda).
        seed: The seed of the stamps.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> def add_one(x, generator):
        ...     return x + 1
        >>> split = StampedItems(TensorDataset(torch.zeros(3, 2), torch.arange(3)),
        ...                      torch.tensor([1]), add_one, seed=0)
        >>> split[1][0].tolist(), split[0][0].tolist(), int(split[1][1])
        ([1.0, 1.0], [0.0, 0.0], 1)
    """

    def __init__(self, items: Any, index: Tensor, stamp: Any, seed: int) -> None:
        self.items = items
        self.stamped = {int(i) for i in torch.as_tensor(index).reshape(-1).tolist()}
        self.stamp = stamp
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> Any:
        x, y = self.items[position]
        if int(position) not in self.stamped:
            return x, y
        gen = torch.Generator().manual_seed((self.seed * 1_000_003 + int(position)) % 2**62)
        return self.stamp(torch.as_tensor(x), generator=gen), y

    def __getitems__(self, positions: list[int]) -> list[Any]:
        # Defined so that a DataLoader never reaches the wrapped split's own
        # ``__getitems__`` through ``__getattr__`` (it would return unstamped items).
        return [self[int(p)] for p in positions]

    def __getattr__(self, name: str) -> Any:  # the wrapped split's own attributes
        if name in ("items", "stamped", "stamp", "seed") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.items, name)
