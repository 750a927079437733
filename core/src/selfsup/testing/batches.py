"""Small random batches per modality, for shape and contract tests (never for quality).

Fixed-size tensors for most modalities, :class:`~selfsup.interfaces.Padded` batches
of distinct lengths for variable-length ones, 3-D volumes ``[B, C, D, H, W]``, and PyG
graph batches.

Example:
    >>> make_batch("volume", batch_size=2, size=8).shape  # doctest: +SKIP
    torch.Size([2, 1, 8, 8, 8])
    >>> make_batch("sequence", lengths=[3, 5]).mask.sum(1).tolist()  # doctest: +SKIP
    [3, 5]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["LENGTHS", "SHAPES", "make_batch"]

#: Default item shapes per modality (without the batch dimension).
SHAPES: dict[str, tuple[int, ...]] = {
    "image": (3, 32, 32),
    "audio": (16000,),
    "signal": (1, 256),
    "ecg": (12, 250),
    "volume": (1, 16, 16, 16),
    "tabular": (16,),
    "any": (16,),
}

#: Default ``(min_len, max_len)`` of variable-length items: ``"sequence"`` batches
#: (items ``[T_i, features]``) and ``make_batch("audio", variable_length=True)``
#: (waveforms ``[T_i]``).
LENGTHS: dict[str, tuple[int, int]] = {"sequence": (4, 16), "audio": (4000, 16000)}

#: Spatial rank of the modalities that accept ``size=`` and ``channels=``.
_SPATIAL: dict[str, int] = {"image": 2, "volume": 3}

_GRAPH_OPTIONS = ("num_nodes", "num_features")
_VARIABLE_OPTIONS = ("lengths", "min_len", "max_len", "features")
_SPATIAL_OPTIONS = ("size", "channels")


def make_batch(
    modality: str,
    batch_size: int | None = None,
    seed: int = 0,
    *,
    shape: Sequence[int] | None = None,
    size: int | Sequence[int] | None = None,
    channels: int | None = None,
    variable_length: bool = False,
    lengths: Sequence[int] | None = None,
    min_len: int | None = None,
    max_len: int | None = None,
    features: int | Sequence[int] | None = None,
    num_nodes: int | None = None,
    num_features: int | None = None,
) -> Any:
    """A small random batch for a modality (synthetic: for shape tests only).

    * A key of :data:`SHAPES`: a tensor ``[B, *shape]``. ``"volume"`` gives 3-D volumes
      ``[B, C, D, H, W]``; ``"image"`` gives ``[B, C, H, W]``.
    * ``"sequence"``: a :class:`~selfsup.interfaces.Padded` of items
      ``[T_i, features]``; ``"audio"`` with ``variable_length=True``: a ``Padded`` of
      waveforms ``[T_i]``. Lengths are distinct when ``[min_len, max_len]`` holds
      enough of them (drawn from ``seed``), so the batch always has padding.
    * ``"graph"``: a PyG ``Batch`` of small random graphs (needs torch-geometric).

    The same arguments and seed give the same batch.

    Args:
        modality: A key of :data:`SHAPES`, ``"sequence"`` or ``"graph"``.
        batch_size: Items (graphs) in the batch; default ``len(lengths)`` or 4.
        seed: Seed of the generator.
        shape: Overrides the item shape of a fixed-size modality (``(C, D, H, W)`` for
            a volume, ``(C, H, W)`` for an image).
        size: Image or volume spatial size: an int (square/cubic) or ``(H, W)`` /
            ``(D, H, W)``.
        channels: Image or volume channels (default from :data:`SHAPES`).
        variable_length: For ``"audio"``: waveforms of several lengths as ``Padded``.
        lengths: Exact item lengths (variable-length modalities); sets the batch size.
        min_len: Shortest length drawn (default from :data:`LENGTHS`).
        max_len: Longest length drawn (default from :data:`LENGTHS`).
        features: ``"sequence"`` features per step: an int or a shape (default 8).
        num_nodes: Nodes per graph (``"graph"``, default 10).
        num_features: Node features (``"graph"``, default 8).

    Raises:
        ValueError: An unknown modality, an option that does not apply to it, or
            inconsistent lengths or shapes.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    options = {
        "lengths": lengths,
        "min_len": min_len,
        "max_len": max_len,
        "features": features,
        "size": size,
        "channels": channels,
        "num_nodes": num_nodes,
        "num_features": num_features,
    }
    given = [k for k, v in options.items() if v is not None]
    if modality == "graph":
        _only(modality, given, _GRAPH_OPTIONS)
        return _graphs(batch_size or 4, num_nodes or 10, num_features or 8, gen)
    if modality == "sequence" or (modality == "audio" and variable_length):
        allowed = _VARIABLE_OPTIONS if modality == "sequence" else _VARIABLE_OPTIONS[:3]
        _only(modality, given, allowed)
        return _padded(modality, batch_size, lengths, min_len, max_len, features or 8, gen)
    if variable_length:
        raise ValueError(
            f"make_batch({modality!r}, variable_length=True): variable-length batches exist "
            f"for {', '.join(LENGTHS)}; use make_batch('sequence', features=...) for others"
        )
    _only(modality, given, _SPATIAL_OPTIONS if modality in _SPATIAL else ())
    item = _item_shape(modality, shape, size, channels)
    return torch.randn(batch_size or 4, *item, generator=gen)


def _only(modality: str, given: list[str], allowed: Sequence[str]) -> None:
    wrong = [k for k in given if k not in allowed]
    if wrong:
        hint = f"it takes {', '.join(allowed)}" if allowed else "it takes shape= only"
        raise ValueError(f"make_batch({modality!r}) does not take {', '.join(wrong)}; {hint}")


def _item_shape(
    modality: str,
    shape: Sequence[int] | None,
    size: int | Sequence[int] | None,
    channels: int | None,
) -> tuple[int, ...]:
    default = SHAPES.get(modality)
    if shape is None and default is None:
        raise ValueError(
            f"no default shape for modality {modality!r}; pass shape=(...) or use one of "
            f"{', '.join([*SHAPES, 'sequence', 'graph'])}"
        )
    rank = _SPATIAL.get(modality)
    if shape is not None:
        if size is not None or channels is not None:
            raise ValueError(f"make_batch({modality!r}): pass shape= or size=/channels=, not both")
        item = tuple(int(d) for d in shape)
        if rank is not None and len(item) != rank + 1:
            dims = "(C, D, H, W)" if rank == 3 else "(C, H, W)"
            raise ValueError(
                f"make_batch({modality!r}, shape={item}): {modality} items are {dims}; "
                f"or pass size= and channels="
            )
        return item
    assert default is not None
    if rank is None:
        return default
    spatial = default[1:] if size is None else _spatial(modality, size, rank)
    return (int(channels) if channels is not None else default[0], *spatial)


def _spatial(modality: str, size: int | Sequence[int], rank: int) -> tuple[int, ...]:
    dims = (int(size),) * rank if isinstance(size, int) else tuple(int(s) for s in size)
    if len(dims) != rank:
        raise ValueError(
            f"make_batch({modality!r}, size={size!r}): give an int or {rank} sizes "
            f"({'(D, H, W)' if rank == 3 else '(H, W)'})"
        )
    return dims


def _padded(
    modality: str,
    batch_size: int | None,
    lengths: Sequence[int] | None,
    min_len: int | None,
    max_len: int | None,
    features: int | Sequence[int],
    gen: Any,
) -> Any:
    import torch

    from selfsup.interfaces import Padded

    if lengths is not None:
        sizes = [int(n) for n in lengths]
        if batch_size is not None and batch_size != len(sizes):
            raise ValueError(
                f"make_batch({modality!r}): batch_size={batch_size} but {len(sizes)} lengths; "
                "drop batch_size (the lengths set it)"
            )
    else:
        lo, hi = LENGTHS[modality]
        lo, hi = min_len if min_len is not None else lo, max_len if max_len is not None else hi
        if not 1 <= lo <= hi:
            raise ValueError(
                f"make_batch({modality!r}): need 1 <= min_len <= max_len, got {lo}, {hi}"
            )
        n, span = batch_size or 4, hi - lo + 1
        draw = torch.randperm(span, generator=gen)[:n] if span >= n else None
        if draw is None:
            draw = torch.randint(0, span, (n,), generator=gen)
        sizes = (draw + lo).tolist()
    if not sizes or min(sizes) < 1:
        raise ValueError(f"make_batch({modality!r}): lengths must be >= 1, got {sizes}")
    feat = () if modality == "audio" else _feature_shape(features)
    items = [torch.randn(t, *feat, generator=gen) for t in sizes]
    return Padded.from_list(items)


def _feature_shape(features: int | Sequence[int]) -> tuple[int, ...]:
    return (int(features),) if isinstance(features, int) else tuple(int(f) for f in features)


def _graphs(batch_size: int, num_nodes: int, num_features: int, gen: Any) -> Any:
    import torch
    from torch_geometric.data import Batch, Data

    graphs = []
    for _ in range(batch_size):
        edges = torch.randint(0, num_nodes, (2, 3 * num_nodes), generator=gen)
        edges = torch.cat([edges, edges.flip(0)], 1)
        x = torch.randn(num_nodes, num_features, generator=gen)
        graphs.append(Data(x=x, edge_index=edges))
    return Batch.from_data_list(graphs)
