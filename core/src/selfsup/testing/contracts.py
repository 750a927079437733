"""Contract checks: build a registered component and assert what the core relies on.

Plain functions, usable from parametrized tests (see :func:`contract_cases`). Each
assertion message names the component's id. torch is imported inside the functions,
so importing this module stays light.
"""

from __future__ import annotations

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
    from selfsup.specs import KINDS

    kind = kind[:-1] if kind not in KINDS and kind[:-1] in KINDS else kind
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    pm = pm or PluginManager()
    specs = [s for s in pm.registry.list(kind) if s.plugin == plugin_name]
    return [pytest.param(s, id=s.id) for s in specs]


def _batch_size(x: Any) -> int | None:
    import torch

    if isinstance(x, torch.Tensor):
        return int(x.shape[0])
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
    if callable(getattr(x, "to_dict", None)):
        return _tensors(dict(x.to_dict()))
    return []


def _finite(name: str, t: Any) -> None:
    import torch

    assert isinstance(t, torch.Tensor), f"{name} must be a tensor, got {type(t).__name__}"
    assert torch.isfinite(t).all(), f"{name} has NaN or infinite values"


def _roundtrip(spec: ComponentSpec, module: Any, params: dict[str, Any]) -> None:
    """The state dict saves and loads with ``weights_only=True`` into a fresh build."""
    import torch

    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    fresh = spec.create(**params)
    fresh.load_state_dict(state)


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
    ``hidden_states`` (if any) is a tuple of tensors; a backward pass from ``pooled``
    reaches the parameters with finite gradients; the state dict reloads with
    ``torch.load(weights_only=True)``.

    Args:
        spec: The encoder's spec.
        example_input: A batch the encoder accepts (see :func:`make_batch`).
        expected_batch: ``B``; inferred from the input when ``None``.
        **params: Factory parameters.
    """
    from torch import nn

    from selfsup.interfaces import EncoderOutput

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
    if out.hidden_states is not None:
        assert isinstance(out.hidden_states, tuple) and out.hidden_states, (
            f"{spec.id}: hidden_states must be a non-empty tuple of tensors"
        )
    loss = out.pooled.float().pow(2).mean()
    if out.tokens is not None:
        loss = loss + out.tokens.float().pow(2).mean()
    n_params, n_grads = _grads(encoder)
    if n_params:
        loss.backward()
        _, n_grads = _grads(encoder)
        assert n_grads > 0, f"{spec.id}: no parameter received a gradient from pooled"
    _roundtrip(spec, encoder, params)
    return encoder, out


def check_objective(spec: ComponentSpec, encoder: Any, views: Any, **params: Any) -> Any:
    """Build an objective for ``encoder`` and check one training step's contract.

    Checks: built with ``embed_dim=encoder.embed_dim``; an ``nn.Module`` whose
    ``forward(encoder, views)`` returns an :class:`~selfsup.interfaces.ObjectiveOutput`
    with a finite scalar loss and float-convertible metrics; backward reaches the
    encoder; ``on_step_end`` runs; the state dict reloads with ``weights_only=True``.

    Returns:
        ``(objective, output)``.
    """
    from torch import nn

    from selfsup.interfaces import ObjectiveOutput

    params = {"embed_dim": encoder.embed_dim, **params}
    objective = spec.create(**params)
    assert isinstance(objective, nn.Module), f"{spec.id}: build must return an nn.Module"
    encoder.train()
    objective.train()
    encoder.zero_grad(set_to_none=True)
    out = objective(encoder, views)
    assert isinstance(out, ObjectiveOutput), f"{spec.id}: forward must return ObjectiveOutput"
    _finite(f"{spec.id}: loss", out.loss)
    assert out.loss.dim() == 0, f"{spec.id}: loss must be a scalar, got {tuple(out.loss.shape)}"
    scalars = out.scalars()
    assert all(math.isfinite(v) for v in scalars.values()), f"{spec.id}: non-finite {scalars}"
    out.loss.backward()
    _, n_grads = _grads(encoder)
    assert n_grads > 0, f"{spec.id}: the loss does not reach the encoder's parameters"
    objective.on_step_end(1, 10)
    _roundtrip(spec, objective, params)
    return objective, out


def check_views(spec: ComponentSpec, batch: Any, **params: Any) -> Any:
    """Build a view maker and check it on ``batch``; returns the views.

    Checks: callable; does not modify the batch in place; returns a non-empty list or
    tuple of views (each with the batch's size, finite when a tensor) or a non-empty
    dict (masked objectives).
    """
    import torch

    maker = spec.create(**params)
    assert callable(maker), f"{spec.id}: build must return a callable view maker"
    before = [t.clone() for t in _tensors(batch)]
    views = maker(batch)
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


def check_dataset(spec: ComponentSpec, **params: Any) -> Any:
    """Build a dataset and check its splits; returns the :class:`DataSplits`.

    Checks: a ``DataSplits`` with a non-empty ``train``; map-style splits yield
    ``(x, y)`` pairs with an integer ``y`` in ``[-1, num_classes)``; single-object
    splits (a whole graph) are accepted as they are.
    """
    from selfsup.interfaces import DataSplits

    data = spec.create(**params)
    assert isinstance(data, DataSplits), f"{spec.id}: build must return DataSplits"
    assert isinstance(data.num_classes, int) and data.num_classes >= 0
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
        y = int(item[1])
        if data.num_classes:
            assert -1 <= y < data.num_classes, f"{spec.id}: label {y} out of range"
    return data


def check_evaluator(
    spec: ComponentSpec, encoder: Any, data: Any, seed: int = 0, views: Any = None, **params: Any
) -> dict[str, float]:
    """Build an evaluator, run it on CPU and check it returns finite named floats.

    ``views`` (a view maker) is passed to evaluators that take one, as the runner does.
    """
    import torch

    from selfsup.engine.runtime import Runtime
    from selfsup.interfaces import call_evaluator

    evaluator = spec.create(**params)
    assert hasattr(evaluator, "evaluate"), f"{spec.id}: build must return an Evaluator"
    encoder.eval()
    runtime = Runtime(device=torch.device("cpu"))
    metrics = call_evaluator(evaluator, encoder, data, runtime, seed=seed, views=views)
    assert isinstance(metrics, dict) and metrics, f"{spec.id}: evaluate must return a dict"
    for key, value in metrics.items():
        assert isinstance(key, str), f"{spec.id}: metric names must be str"
        assert math.isfinite(float(value)), f"{spec.id}: metric {key}={value!r} is not finite"
    return {k: float(v) for k, v in metrics.items()}
