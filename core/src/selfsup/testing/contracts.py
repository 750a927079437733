"""Contract checks: build a registered component and assert what the core relies on.

Plain functions, usable from parametrized tests (see :func:`contract_cases`). Each
assertion message names the component's id. torch is imported inside the functions,
so importing this module stays light.
"""

from __future__ import annotations

import dataclasses
import io
import math
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from selfsup.plugins import PluginManager
    from selfsup.specs import ComponentSpec

__all__ = [
    "check_dataset",
    "check_encoder",
    "check_evaluator",
    "check_objective",
    "check_views",
    "contract_cases",
]


def contract_cases(pm: PluginManager | None, plugin_name: str, kind: str) -> list[Any]:
    """A plugin's specs of one kind as ``pytest.param`` values (ids are spec ids).

    Call at collection time: ``@pytest.mark.parametrize("spec", contract_cases(None,
    "ecg", "encoder"))``. ``pm=None`` uses a fresh manager with the installed entry
    points. ``kind`` accepts plurals (``"encoders"``).
    """
    from selfsup.plugins import PluginManager

    pm = pm or PluginManager()
    kinds = pm.kinds()  # the core's and those that plugins open
    kind = kind[:-1] if kind not in kinds and kind[:-1] in kinds else kind
    if kind not in kinds:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(sorted(kinds))}")
    specs = [s for s in pm.registry.list(kind) if s.plugin == plugin_name]
    return [pytest.param(s, id=s.id) for s in specs]


def _batch_size(x: Any) -> int | None:
    import torch

    from selfsup.interfaces import Padded

    if isinstance(x, torch.Tensor):
        return int(x.shape[0])
    if isinstance(x, Padded):
        return x.batch_size
    if hasattr(x, "num_graphs"):
        return int(x.num_graphs)
    if isinstance(x, dict):
        return next((b for b in map(_batch_size, x.values()) if b is not None), None)
    if isinstance(x, list | tuple) and x:
        return _batch_size(x[0])
    return None


def _tensors(x: Any) -> list[Any]:
    """Every tensor in a batch: a tensor, a list/tuple/dict of them, or a PyG-like batch."""
    import torch

    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, dict):
        return [t for v in x.values() for t in _tensors(v)]
    if isinstance(x, list | tuple):
        return [t for v in x for t in _tensors(v)]
    if dataclasses.is_dataclass(x) and not isinstance(x, type):  # Padded, BatchMeta
        return _tensors([getattr(x, f.name) for f in dataclasses.fields(x)])
    if callable(getattr(x, "to_dict", None)):
        return _tensors(dict(x.to_dict()))
    return []


def _finite(name: str, t: Any) -> None:
    import torch

    assert isinstance(t, torch.Tensor), f"{name} must be a tensor, got {type(t).__name__}"
    assert torch.isfinite(t).all(), f"{name} has NaN or infinite values"


def _roundtrip(
    spec: ComponentSpec, module: Any, params: dict[str, Any], attach_to: Any = None
) -> None:
    """The state dict saves and loads with ``weights_only=True`` into a fresh build.

    ``attach_to``: an encoder the fresh objective is attached to before loading.
    """
    import torch

    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    fresh = spec.create(**params)
    if attach_to is not None:
        fresh.attach(attach_to)
    fresh.load_state_dict(state)


def _accepts(spec: ComponentSpec, fn: Any, args: tuple[Any, ...], declared: str) -> None:
    """Assert that ``fn`` can be called with ``args`` (the signature the engine uses)."""
    import inspect

    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to check
        return
    try:
        signature.bind(*args)
    except TypeError as exc:
        raise AssertionError(
            f"{spec.id}: cannot be called with {len(args)} argument(s) ({exc}); "
            f"declare {declared} as selfsup.interfaces documents"
        ) from None


def _meta(batch: Any) -> Any:
    """A :class:`~selfsup.interfaces.BatchMeta` for a test batch: ``arange(B)``, no flags.

    ``B`` is the size of the batch (of its first view, for a list of views): the
    graphs of a graph batch, the seed nodes of a sampled subgraph (``batch_size``),
    the nodes of a single graph, else the leading dimension; 1 when it cannot be told.
    """
    import torch

    from selfsup.interfaces import BatchMeta

    first = batch[0] if isinstance(batch, list | tuple) and batch else batch
    size: Any = None
    for attr in ("num_graphs", "batch_size", "num_nodes"):
        value = getattr(first, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            size = value
            break
    if size is None:
        size = _batch_size(first)
    return BatchMeta(index=torch.arange(size if size is not None else 1))


def _grads(module: Any) -> tuple[int, int]:
    params = [p for p in module.parameters() if p.requires_grad]
    with_grad = [p for p in params if p.grad is not None]
    for p in with_grad:
        _finite("a gradient", p.grad)
    return len(params), len(with_grad)


# --------------------------------------------------------------------------- contracts


def check_encoder(
    spec: ComponentSpec, example_input: Any, expected_batch: int | None = None, **params: Any
) -> Any:
    """Build an encoder and check its contract; returns ``(encoder, output)``.

    Checks: an ``nn.Module`` with a positive int ``embed_dim``; ``forward`` returns an
    :class:`~selfsup.interfaces.EncoderOutput` whose ``pooled`` is ``[B, embed_dim]``
    and finite; ``tokens`` (if any) is ``[B, T, embed_dim]`` or ``[N, embed_dim]``;
    ``mask`` (if any) is a bool ``[B, T]`` matching ``tokens`` and is required for
    ``[B, T, D]`` tokens of a :class:`~selfsup.interfaces.Padded` batch of unequal
    lengths (:func:`check_token_mask`); ``feature_maps`` (if any) is a non-empty tuple
    of finite ``[B, C_i, *spatial]`` tensors, all 4-D or all 5-D
    (:func:`check_feature_maps`); ``hidden_states`` (if any) is a tuple of tensors; a
    backward pass from ``pooled`` reaches the parameters with finite gradients; the
    state dict reloads with ``torch.load(weights_only=True)``. Padding invariance of a
    variable-length encoder is a separate check: :func:`check_padding_invariance`.

    Args:
        spec: The encoder's spec.
        example_input: A batch the encoder accepts (see :func:`make_batch`); ``B`` of a
            ``Padded`` batch is its ``batch_size``.
        expected_batch: ``B``; inferred from the input when ``None``.
        **params: Factory parameters.
    """
    from torch import nn

    from selfsup.interfaces import EncoderOutput
    from selfsup.testing.encoders import check_feature_maps, check_token_mask

    encoder = spec.create(**params)
    assert isinstance(encoder, nn.Module), f"{spec.id}: build must return an nn.Module"
    dim = getattr(encoder, "embed_dim", None)
    assert isinstance(dim, int) and dim > 0, f"{spec.id}: embed_dim must be a positive int"
    encoder.train()
    out = encoder(example_input)
    assert isinstance(out, EncoderOutput), f"{spec.id}: forward must return an EncoderOutput"
    batch = expected_batch if expected_batch is not None else _batch_size(example_input)
    _finite(f"{spec.id}: pooled", out.pooled)
    assert out.pooled.dim() == 2 and out.pooled.shape[1] == dim, (
        f"{spec.id}: pooled must be [B, embed_dim={dim}], got {tuple(out.pooled.shape)}"
    )
    if batch is not None:
        assert out.pooled.shape[0] == batch, (
            f"{spec.id}: pooled has {out.pooled.shape[0]} rows for a batch of {batch}"
        )
    if out.tokens is not None:
        _finite(f"{spec.id}: tokens", out.tokens)
        assert out.tokens.dim() in (2, 3) and out.tokens.shape[-1] == dim, (
            f"{spec.id}: tokens must be [B, T, {dim}] or [N, {dim}], got {tuple(out.tokens.shape)}"
        )
        if out.tokens.dim() == 3 and batch is not None:
            assert out.tokens.shape[0] == batch, f"{spec.id}: tokens batch size differs"
    check_token_mask(out, spec.id, example_input)
    check_feature_maps(out, batch, spec.id)
    if out.hidden_states is not None:
        assert isinstance(out.hidden_states, tuple) and out.hidden_states, (
            f"{spec.id}: hidden_states must be a non-empty tuple of tensors"
        )
    loss = out.pooled.float().pow(2).mean()
    if out.tokens is not None:
        loss = loss + out.tokens.float().pow(2).mean()
    for fmap in out.feature_maps or ():
        loss = loss + fmap.float().pow(2).mean()
    n_params, n_grads = _grads(encoder)
    if n_params:
        loss.backward()
        _, n_grads = _grads(encoder)
        assert n_grads > 0, f"{spec.id}: no parameter received a gradient from pooled"
    _roundtrip(spec, encoder, params)
    return encoder, out


def check_objective(spec: ComponentSpec, encoder: Any, views: Any, **params: Any) -> Any:
    """Build an objective for ``encoder`` and check one training step's contract.

    Checks: built with ``embed_dim=encoder.embed_dim``; an
    :class:`~selfsup.interfaces.Objective` whose ``attach(encoder)`` runs and whose
    ``forward(encoder, views, meta)`` (``meta``: a :class:`~selfsup.interfaces.BatchMeta`
    with indices ``arange(B)`` and no flags) returns an
    :class:`~selfsup.interfaces.ObjectiveOutput` with a finite scalar loss and
    float-convertible metrics; backward reaches the encoder; ``on_step_end`` runs; the
    state dict reloads with ``weights_only=True`` (into a fresh build attached to the
    same encoder, as the engine restores a checkpoint).

    Returns:
        ``(objective, output)``.
    """
    from selfsup.interfaces import Objective, ObjectiveOutput

    params = {"embed_dim": encoder.embed_dim, **params}
    objective = spec.create(**params)
    assert isinstance(objective, Objective), (
        f"{spec.id}: build must return a selfsup.interfaces.Objective (an nn.Module with "
        f"forward(encoder, views, meta=None)), got {type(objective).__name__}"
    )
    meta = _meta(views)
    _accepts(
        spec, objective.forward, (encoder, views, meta),
        "forward(self, encoder, views, meta=None)",
    )  # fmt: skip
    objective.attach(encoder)
    encoder.train()
    objective.train()
    encoder.zero_grad(set_to_none=True)
    out = objective(encoder, views, meta)
    assert isinstance(out, ObjectiveOutput), f"{spec.id}: forward must return ObjectiveOutput"
    _finite(f"{spec.id}: loss", out.loss)
    assert out.loss.dim() == 0, f"{spec.id}: loss must be a scalar, got {tuple(out.loss.shape)}"
    scalars = out.scalars()
    assert all(math.isfinite(v) for v in scalars.values()), f"{spec.id}: non-finite {scalars}"
    out.loss.backward()
    _, n_grads = _grads(encoder)
    assert n_grads > 0, f"{spec.id}: the loss does not reach the encoder's parameters"
    objective.on_step_end(1, 10)
    _roundtrip(spec, objective, params, attach_to=encoder)
    return objective, out


def check_views(spec: ComponentSpec, batch: Any, **params: Any) -> Any:
    """Build a view maker and check it on ``batch``; returns the views.

    Checks: callable as ``maker(batch, meta)`` (``meta``: a
    :class:`~selfsup.interfaces.BatchMeta` with indices ``arange(B)`` and no flags) and
    as ``maker(batch)`` (evaluators call it without one); does not modify the batch
    in place; returns a non-empty list or tuple of views (each with the batch's size,
    finite when a tensor) or a non-empty dict (masked objectives).
    """
    import torch

    maker = spec.create(**params)
    assert callable(maker), f"{spec.id}: build must return a callable view maker"
    meta = _meta(batch)
    declared = "__call__(self, batch, meta=None)"
    _accepts(spec, maker, (batch,), declared)  # evaluators call it without meta
    _accepts(spec, maker, (batch, meta), declared)
    before = [t.clone() for t in _tensors(batch)]
    maker(batch)
    views = maker(batch, meta)
    after = _tensors(batch)
    unchanged = len(before) == len(after) and all(
        a.shape == b.shape and torch.equal(a, b) for a, b in zip(before, after, strict=False)
    )
    assert unchanged, f"{spec.id}: the view maker modified its input"
    size = _batch_size(batch)
    if isinstance(views, dict):
        assert views, f"{spec.id}: returned an empty dict"
        return views
    assert isinstance(views, list | tuple) and views, (
        f"{spec.id}: must return a non-empty list of views (or a dict), got {type(views).__name__}"
    )
    for i, view in enumerate(views):
        if isinstance(view, torch.Tensor):
            _finite(f"{spec.id}: view {i}", view)
        if size is not None and _batch_size(view) is not None:
            assert _batch_size(view) == size, f"{spec.id}: view {i} changes the batch size"
    return views


def _label(sid: str, name: str, data: Any, y: Any) -> None:
    """Check the ``y`` of one item against :attr:`DataSplits.task` and ``label_shape``."""
    import torch

    from selfsup.interfaces import DataSplits

    task, n_cls, shape = data.task, data.num_classes, tuple(data.label_shape)
    where = f"{sid}: the first item of the {name!r} split (task {task!r})"
    if task == "none" and y is None:
        assert type(data).collate is not DataSplits.collate, (
            f"{where} has y=None, which the default collate cannot batch; yield -1 for "
            "'no label', or override DataSplits.collate"
        )
        return
    try:
        t = torch.as_tensor(y)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise AssertionError(f"{where}: y={y!r} is not a number or a tensor ({exc})") from exc
    if task == "none":
        assert t.numel() == 1 and float(t) == -1, (
            f"{where}: y must be -1 (no label), got {y!r}; declare a task (and num_classes) "
            "if the items are labelled"
        )
    elif task == "multilabel":
        assert n_cls > 0 and tuple(t.shape) == (n_cls,), (
            f"{where}: y must be a {{0, 1}} vector of num_classes={n_cls}, got shape "
            f"{tuple(t.shape)}"
        )
        assert bool(((t == 0) | (t == 1)).all()), f"{where}: y must hold only 0 and 1"
    elif task == "segmentation":
        assert shape, f"{sid}: task 'segmentation' needs label_shape, e.g. (D, H, W)"
        assert tuple(t.shape) == shape, (
            f"{where}: y has shape {tuple(t.shape)} but the dataset declares label_shape={shape}"
        )
        assert not t.is_floating_point() and not t.is_complex(), (
            f"{where}: y must be an integer label map (a class per position), got {t.dtype}"
        )
        assert n_cls > 0, f"{sid}: task 'segmentation' needs num_classes > 0, got {n_cls}"
        low, high = int(t.min()), int(t.max())
        assert low >= -1 and high < n_cls, (
            f"{where}: label map values in [{low}, {high}], outside [-1, num_classes={n_cls}) "
            "(-1 marks unlabelled positions)"
        )
    elif task == "regression":
        ok = tuple(t.shape) == shape or (shape == () and t.numel() == 1)
        assert ok, f"{where}: y has shape {tuple(t.shape)}, label_shape is {shape}"
        assert bool(torch.isfinite(t.double()).all()), f"{where}: y={y!r} is not finite"
    else:  # one integer class per item: classification, verification, detection
        assert t.numel() == 1, (
            f"{where}: y must be one class index, got shape {tuple(t.shape)}; a label map "
            "or vector needs task 'segmentation', 'multilabel' or 'regression'"
        )
        value = float(t)
        assert value == int(value), f"{where}: label {y!r} is not an integer class index"
        label = int(value)
        if task == "detection":
            assert label in (-1, 0, 1), (
                f"{where}: label {label} out of range: detection labels are 1 (positive), "
                "0 (negative) or -1 (unknown)"
            )
        if n_cls:
            assert -1 <= label < n_cls, f"{sid}: label {label} out of range [-1, {n_cls})"


def _trials(sid: str, data: Any) -> None:
    """Check ``meta["trials"]`` of a verification dataset: ``(i, j, same)`` over ``test``."""
    import torch

    trials = data.meta.get("trials")
    assert trials is not None and len(trials) > 0, (
        f"{sid}: task 'verification' needs meta['trials'], a non-empty list of (i, j, same) "
        "over the test split (indices of its items, same = 1 for the same identity)"
    )
    assert data.test is not None, f"{sid}: task 'verification' needs a test split for its trials"
    if isinstance(trials, torch.Tensor):
        table = trials
    else:
        table = torch.as_tensor([tuple(int(v) for v in trial) for trial in trials])
    assert table.dim() == 2 and table.shape[1] == 3, (
        f"{sid}: meta['trials'] must be (i, j, same) triples, got shape {tuple(table.shape)}"
    )
    n = len(data.test)
    pairs = table[:, :2]
    assert bool(((pairs >= 0) & (pairs < n)).all()), (
        f"{sid}: meta['trials'] has item indices outside the test split [0, {n})"
    )
    assert bool(((table[:, 2] == 0) | (table[:, 2] == 1)).all()), (
        f"{sid}: meta['trials'] 'same' entries must be 0 or 1"
    )


def check_dataset(spec: ComponentSpec, **params: Any) -> Any:
    """Build a dataset and check its splits against its task; returns the :class:`DataSplits`.

    Checks: a ``DataSplits`` with a non-empty ``train``, a task of
    :data:`~selfsup.interfaces.TASKS` and a ``label_shape`` of positive ints; map-style
    splits yield ``(x, y)`` pairs, and the first item's ``y`` fits the task:

    * ``classification`` / ``verification``: one integer in ``[-1, num_classes)``;
    * ``detection``: ``1`` (positive), ``0`` or ``-1`` (unknown);
    * ``multilabel``: a ``{0, 1}`` vector of ``num_classes``;
    * ``segmentation``: an integer map of ``label_shape`` (declared, non-empty) with
      values in ``[-1, num_classes)`` (``-1``: unlabelled position);
    * ``regression``: finite floats of ``label_shape``;
    * ``none``: ``-1`` (or ``None`` when the dataset overrides ``collate``).

    A ``verification`` dataset also needs ``meta["trials"]``: ``(i, j, same)`` triples
    over the test split (indices in range, ``same`` 0 or 1). Single-object splits (a
    whole graph, its masks in ``meta``) are accepted as they are.
    """
    from selfsup.interfaces import TASKS, DataSplits

    data = spec.create(**params)
    assert isinstance(data, DataSplits), f"{spec.id}: build must return DataSplits"
    assert isinstance(data.num_classes, int) and data.num_classes >= 0
    assert data.task in TASKS, f"{spec.id}: task={data.task!r} is not one of {', '.join(TASKS)}"
    shape = data.label_shape
    assert isinstance(shape, tuple) and all(isinstance(d, int) and d > 0 for d in shape), (
        f"{spec.id}: label_shape={shape!r} must be a tuple of positive ints (() for a class)"
    )
    for name in ("train", "val", "test"):
        split = getattr(data, name)
        if split is None:
            assert name != "train", f"{spec.id}: the train split is missing"
            continue
        if not (hasattr(split, "__len__") and hasattr(split, "__getitem__")):
            continue
        if getattr(split, "num_nodes", None) is not None:
            continue  # a whole graph: its masks live in meta
        assert len(split) > 0, f"{spec.id}: the {name} split is empty"
        item = split[0]
        assert isinstance(item, tuple | list) and len(item) == 2, (
            f"{spec.id}: {name} items must be (x, y) pairs, got {type(item).__name__}"
        )
        _label(spec.id, name, data, item[1])
    if data.task == "verification":
        _trials(spec.id, data)
    return data


def check_evaluator(
    spec: ComponentSpec,
    encoder: Any,
    data: Any,
    seed: int = 0,
    views: Any = None,
    run_dir: Any = None,
    **params: Any,
) -> dict[str, float]:
    """Build an evaluator, run it on CPU as the runner does and check what it returns.

    The evaluator gets an :class:`~selfsup.interfaces.EvalContext` (CPU runtime,
    ``seed``, ``views``, ``run_dir``, the spec's name). Checks: ``evaluate(encoder,
    data, ctx)`` returns a non-empty mapping of ``str`` to finite numbers; every
    artefact it recorded with ``ctx.add_artefact`` is a file under the run directory.

    Args:
        spec: The evaluator's spec.
        encoder: The encoder to score.
        data: The :class:`~selfsup.interfaces.DataSplits`.
        seed: ``ctx.seed``.
        views: ``ctx.views`` (a view maker), for evaluators that need one.
        run_dir: ``ctx.run_dir``; a temporary folder (removed afterwards) when
            ``None``, so that artefacts are written and checked as in a run.
        **params: Factory parameters.
    """
    import tempfile
    from collections.abc import Mapping
    from pathlib import Path

    import torch

    from selfsup.interfaces import EvalContext
    from selfsup.runtime import Runtime

    evaluator = spec.create(**params)
    assert callable(getattr(evaluator, "evaluate", None)), (
        f"{spec.id}: build must return an Evaluator (an object with evaluate(encoder, data, ctx))"
    )
    encoder.eval()
    runtime = Runtime(device=torch.device("cpu"))
    with tempfile.TemporaryDirectory(prefix="selfsup-check-") as tmp:
        root = Path(run_dir) if run_dir is not None else Path(tmp)
        ctx = EvalContext(runtime=runtime, seed=seed, views=views, run_dir=root, name=spec.name)
        metrics = evaluator.evaluate(encoder, data, ctx)
        assert isinstance(metrics, Mapping) and metrics, (
            f"{spec.id}: evaluate must return a non-empty dict of metric name -> float, "
            f"got {metrics!r}"
        )
        for entry in ctx.artefacts:
            path = root / entry["path"]
            assert path.is_file(), (
                f"{spec.id}: artefact {entry['path']!r} was recorded but no file exists at "
                f"{path}; write it to ctx.artefact_path(name) before ctx.add_artefact(path)"
            )
    for key, value in metrics.items():
        assert isinstance(key, str), f"{spec.id}: metric names must be str"
        assert math.isfinite(float(value)), f"{spec.id}: metric {key}={value!r} is not finite"
    return {k: float(v) for k, v in metrics.items()}
