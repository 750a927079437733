"""Encoder checks for variable-length inputs and spatial outputs.

:func:`check_padding_invariance` asserts that an encoder given a
:class:`~selfsup.interfaces.Padded` batch embeds every item as it would alone, whatever
the padding, and that ``out.mask`` marks exactly the padded tokens.
:func:`check_feature_maps` and :func:`check_token_mask` check the ``feature_maps`` and
``mask`` fields of an :class:`~selfsup.interfaces.EncoderOutput` (``check_encoder``
calls both). torch is imported inside the functions, so importing this module stays
light.

Example:
    >>> from selfsup.testing import check_padding_invariance, make_batch
    >>> batch = make_batch("sequence", lengths=[3, 7, 5], features=8)  # doctest: +SKIP
    >>> items = [batch.item(i) for i in range(batch.batch_size)]  # doctest: +SKIP
    >>> check_padding_invariance(spec, items, in_dim=8)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor, nn

    from selfsup.interfaces import EncoderOutput, Padded

__all__ = ["check_feature_maps", "check_padding_invariance", "check_token_mask"]


def check_feature_maps(out: EncoderOutput, batch_size: int | None, name: str = "encoder") -> None:
    """Check ``out.feature_maps``: ``None``, or a non-empty tuple of ``[B, C_i, *spatial]``.

    Each map is a finite 4-D (2-D features) or 5-D (3-D features) tensor with the
    batch's ``B``; all maps have the same spatial rank.

    Args:
        out: An encoder's output.
        batch_size: ``B``, or ``None`` to skip the batch-size check.
        name: What to call the encoder in messages (its id).

    Raises:
        AssertionError: A map breaks the contract.
    """
    import torch

    maps = out.feature_maps
    if maps is None:
        return
    assert isinstance(maps, tuple) and maps, (
        f"{name}: feature_maps must be a non-empty tuple of tensors [B, C_i, *spatial] "
        f"(finest first) or None, got {type(maps).__name__} of length {_len(maps)}"
    )
    ranks = set()
    for i, fmap in enumerate(maps):
        assert isinstance(fmap, torch.Tensor), (
            f"{name}: feature_maps[{i}] must be a tensor, got {type(fmap).__name__}"
        )
        assert fmap.dim() in (4, 5), (
            f"{name}: feature_maps[{i}] must be [B, C, H, W] or [B, C, D, H, W], "
            f"got shape {tuple(fmap.shape)}"
        )
        if batch_size is not None:
            assert fmap.shape[0] == batch_size, (
                f"{name}: feature_maps[{i}] has batch size {fmap.shape[0]} for a batch of "
                f"{batch_size} (shape {tuple(fmap.shape)})"
            )
        assert torch.isfinite(fmap).all(), f"{name}: feature_maps[{i}] has NaN or infinite values"
        ranks.add(fmap.dim())
    assert len(ranks) == 1, (
        f"{name}: feature_maps mix 2-D and 3-D maps: {[tuple(m.shape) for m in maps]}"
    )


def check_token_mask(out: EncoderOutput, name: str = "encoder", batch: Any = None) -> None:
    """Check ``out.mask``: ``None``, or a bool ``[B, T]`` matching ``tokens``' first dims.

    When ``batch`` is a :class:`~selfsup.interfaces.Padded` of unequal lengths, every
    item must keep at least one real token, and tokens ``[B, T, D]`` with one token per
    padded step (``T`` equal to the batch's padded length) need the mask: some of them
    are padding. (Other token counts, such as a strided front end's, are checked
    precisely by :func:`check_padding_invariance`.)

    Raises:
        AssertionError: The mask breaks the contract.
    """
    import torch

    from selfsup.interfaces import Padded

    mask, tokens = out.mask, out.tokens
    padded = isinstance(batch, Padded) and bool((batch.lengths != batch.lengths.max()).any())
    if mask is None:
        aligned = (
            padded
            and tokens is not None
            and tokens.dim() == 3
            and tokens.shape[1] == batch.values.shape[1]
        )
        assert not aligned, (
            f"{name}: returned tokens {tuple(tokens.shape)} for a Padded batch of lengths "
            f"{batch.lengths.tolist()} without out.mask; set mask=[B, T] (True on real "
            "tokens, False on padding), e.g. from Padded.mask"
        )
        return
    assert isinstance(mask, torch.Tensor) and mask.dtype == torch.bool, (
        f"{name}: mask must be a bool tensor [B, T], got "
        f"{getattr(mask, 'dtype', type(mask).__name__)}"
    )
    assert tokens is not None and tokens.dim() == 3, (
        f"{name}: mask is set but tokens is "
        f"{'None' if tokens is None else tuple(tokens.shape)}; a mask needs tokens [B, T, D]"
    )
    assert tuple(mask.shape) == tuple(tokens.shape[:2]), (
        f"{name}: mask has shape {tuple(mask.shape)}, tokens {tuple(tokens.shape)}; the mask "
        f"must be [B, T] = {tuple(tokens.shape[:2])}"
    )
    if padded:
        empty = (~mask.any(1)).nonzero().flatten().tolist()
        assert not empty, f"{name}: items {empty} have no real token (mask all False)"


def check_padding_invariance(
    encoder: Any,
    items: Sequence[Tensor],
    atol: float = 1e-5,
    *,
    extra_padding: int = 3,
    pad_value: float = 0.0,
    compare_tokens: bool = True,
    **params: Any,
) -> nn.Module:
    """Assert that padding does not change what an encoder says about each item.

    In eval mode and without gradients, encodes each item alone (a ``Padded`` of one),
    then all items together padded to the longest, then padded ``extra_padding`` steps
    beyond the longest (same lengths). For every item and both padded batches:

    * ``pooled`` equals the item's ``pooled`` alone within ``atol``;
    * if the encoder returns ``[B, T, D]`` tokens: ``out.mask`` is a bool ``[B, T]``
      that is True on exactly the item's real tokens (those it has alone) and False on
      every padded position (it may be ``None`` only if no token is padding), and with
      ``compare_tokens`` the real tokens equal the item's tokens alone within ``atol``.

    Args:
        encoder: An encoder module, or its spec (built with ``**params``).
        items: At least two items ``[T_i, ...]`` of different lengths (see
            ``make_batch("sequence")`` and :meth:`Padded.item`).
        atol: Largest absolute difference allowed.
        extra_padding: Steps of padding added beyond the longest item in the third pass.
        pad_value: The value padded positions hold.
        compare_tokens: Also compare the real tokens, not only ``pooled``.
        **params: Factory parameters when ``encoder`` is a spec.

    Returns:
        The encoder module (its train/eval mode restored).

    Raises:
        AssertionError: The encoder depends on padding; the message names the encoder,
            the item, its length and the largest difference.
        ValueError: ``items`` are fewer than two or all of one length.
    """
    import torch

    from selfsup.interfaces import Padded

    module, name = _build(encoder, params)
    items = [torch.as_tensor(t) for t in items]
    if len(items) < 2 or len({int(t.shape[0]) for t in items}) < 2:
        raise ValueError(
            "check_padding_invariance needs at least two items of different lengths, got "
            f"lengths {[int(t.shape[0]) for t in items]}; use make_batch('sequence', lengths=...)"
        )
    batch = Padded.from_list(items, pad_value=pad_value)
    extra = torch.full(
        (batch.batch_size, extra_padding, *batch.values.shape[2:]),
        pad_value,
        dtype=batch.values.dtype,
    )
    longer = Padded(torch.cat([batch.values, extra], 1), batch.lengths.clone())
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            alone = [_encode(module, name, Padded.from_list([t], pad_value)) for t in items]
            passes = {
                "padded to the longest": batch,
                f"padded {extra_padding} steps beyond the longest": longer,
            }
            for how, padded in passes.items():
                out = _encode(module, name, padded)
                assert out.pooled.shape[0] == len(items), (
                    f"{name}: pooled has {out.pooled.shape[0]} rows for a Padded batch of "
                    f"{len(items)} ({how})"
                )
                check_token_mask(out, name, padded)
                for i, single in enumerate(alone):
                    where = f"item {i} (length {int(items[i].shape[0])}) {how}"
                    _close(name, where, "pooled", out.pooled[i], single.pooled[0], atol)
                    _check_tokens(name, where, out, i, single, atol, compare_tokens)
    finally:
        module.train(was_training)
    return module


# --------------------------------------------------------------------------- helpers


def _len(x: Any) -> int | str:
    return len(x) if hasattr(x, "__len__") else "?"


def _build(encoder: Any, params: dict[str, Any]) -> tuple[nn.Module, str]:
    from torch import nn

    from selfsup.specs import ComponentSpec

    if isinstance(encoder, ComponentSpec):
        module = encoder.create(**params)
        name = f"{encoder.id} ({type(module).__name__})"
    else:
        if params:
            raise TypeError(
                f"factory parameters {sorted(params)} were given with a built encoder "
                f"{type(encoder).__name__}; pass its spec instead, or drop them"
            )
        module, name = encoder, type(encoder).__name__
    assert isinstance(module, nn.Module), f"{name}: the encoder must be an nn.Module"
    return module, name


def _encode(module: nn.Module, name: str, batch: Padded) -> EncoderOutput:
    from selfsup.interfaces import EncoderOutput

    out = module(batch)
    assert isinstance(out, EncoderOutput), (
        f"{name}: forward(Padded) must return an EncoderOutput, got {type(out).__name__}"
    )
    assert out.pooled.dim() == 2 and out.pooled.shape[0] == batch.batch_size, (
        f"{name}: pooled must be [B={batch.batch_size}, D] for a Padded batch, "
        f"got {tuple(out.pooled.shape)}"
    )
    return out


def _close(name: str, where: str, what: str, got: Tensor, want: Tensor, atol: float) -> None:
    assert got.shape == want.shape, (
        f"{name}: {where}: {what} has shape {tuple(got.shape)}, alone {tuple(want.shape)}"
    )
    diff = float((got.float() - want.float()).abs().max()) if got.numel() else 0.0
    assert diff <= atol, (
        f"{name}: {where}: {what} differs from the item encoded alone by max abs "
        f"{diff:.3g} (atol={atol}); the encoder must ignore padded positions (use "
        "Padded.lengths / Padded.mask when mixing or pooling over time)"
    )


def _check_tokens(
    name: str,
    where: str,
    out: EncoderOutput,
    i: int,
    single: EncoderOutput,
    atol: float,
    compare: bool,
) -> None:
    """Item ``i``'s real tokens in ``out`` are those it has alone; the rest are masked."""
    import torch

    if out.tokens is None or out.tokens.dim() != 3 or single.tokens is None:
        return
    real_alone = (
        single.mask[0]
        if single.mask is not None
        else torch.ones(single.tokens.shape[1], dtype=torch.bool)
    )
    n = real_alone.numel()
    width = out.tokens.shape[1]
    assert width >= n, f"{name}: {where}: {width} tokens in the batch but {n} when encoded alone"
    if out.mask is None:
        assert width == n and bool(real_alone.all()), (
            f"{name}: {where}: tokens have padding but out.mask is None"
        )
    else:
        row = out.mask[i].cpu()
        want = torch.cat([real_alone.cpu(), torch.zeros(width - n, dtype=torch.bool)])
        wrong = (row != want).nonzero().flatten().tolist()
        assert not wrong, (
            f"{name}: {where}: out.mask is wrong at token positions {wrong[:10]} "
            f"(want True on the {int(want.sum())} real tokens the item has alone, False on "
            f"padding); got {row.int().tolist()}"
        )
    if compare:
        got = out.tokens[i, :n][real_alone.to(out.tokens.device)]
        _close(name, where, "tokens", got, single.tokens[0][real_alone], atol)
