"""selfsup.testing for variable-length and 3-D inputs.

``make_batch`` makes seeded ``Padded`` sequences and volumes; ``check_padding_invariance``
passes a masked-mean encoder and catches one that averages over padding or mislabels
its mask; ``check_encoder`` checks ``mask`` and ``feature_maps``.
"""

from __future__ import annotations

import pytest
import torch
from selfsup import Encoder, EncoderOutput, EncoderSpec, Padded, ViewSpec
from selfsup.testing import (
    LENGTHS,
    check_encoder,
    check_feature_maps,
    check_padding_invariance,
    check_views,
    make_batch,
)
from torch import nn

# --------------------------------------------------------------------------- encoders


class MaskedMean(Encoder):
    """Reference variable-length encoder: a Linear per frame, then a masked mean.

    ``stride`` keeps every ``stride``-th frame (fewer tokens than frames, as a strided
    front end does); ``mask`` chooses what ``out.mask`` says (``"right"``, ``"none"``,
    ``"all"``); ``ignore_mask`` averages over every frame, padding included (the bug
    the padding check exists for).
    """

    modality = "sequence"

    def __init__(
        self,
        in_dim: int = 6,
        dim: int = 8,
        stride: int = 1,
        mask: str = "right",
        ignore_mask: bool = False,
    ):
        super().__init__()
        self.embed_dim = dim
        self.frame = nn.Linear(in_dim, dim)
        self.stride, self.mask, self.ignore_mask = stride, mask, ignore_mask

    def forward(self, batch: Padded) -> EncoderOutput:
        tokens = self.frame(batch.values)[:, :: self.stride]
        steps = torch.arange(tokens.shape[1])
        real = steps[None, :] < (batch.lengths[:, None] + self.stride - 1) // self.stride
        if self.ignore_mask:
            pooled = tokens.mean(1)
        else:
            pooled = (tokens * real[..., None]).sum(1) / real.sum(1, keepdim=True)
        mask = {"right": real, "none": None, "all": torch.ones_like(real)}[self.mask]
        return EncoderOutput(pooled=pooled, tokens=tokens, mask=mask)


class Conv3d(Encoder):
    """A tiny 3-D conv encoder with two feature maps (finest first)."""

    modality = "volume"

    def __init__(self, channels: int = 1, dim: int = 8, wrong: str = ""):
        super().__init__()
        self.embed_dim = dim
        self.c1 = nn.Conv3d(channels, 4, 3, stride=2, padding=1)
        self.c2 = nn.Conv3d(4, dim, 3, stride=2, padding=1)
        self.wrong = wrong

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        f1 = torch.relu(self.c1(x))
        f2 = torch.relu(self.c2(f1))
        maps: tuple[torch.Tensor, ...] = (f1, f2)
        if self.wrong == "batch":
            maps = (f1[:1], f2)
        elif self.wrong == "rank":
            maps = (f1, f2.flatten(2))  # [B, C, N]: not a spatial map
        elif self.wrong == "2d3d":
            maps = (f1, f2[:, :, 0])
        elif self.wrong == "nan":
            maps = (f1, f2 * float("nan"))
        elif self.wrong == "empty":
            maps = ()
        return EncoderOutput(pooled=f2.mean((2, 3, 4)), feature_maps=maps)


def spec(build, name="x"):
    return EncoderSpec(name=name, build=build, plugin="t")


def items(lengths=(3, 7, 5, 6), features=6, seed=0):
    batch = make_batch("sequence", lengths=list(lengths), features=features, seed=seed)
    return [batch.item(i) for i in range(batch.batch_size)]


# --------------------------------------------------------------------------- make_batch


def test_sequence_batches_are_padded_with_distinct_seeded_lengths() -> None:
    batch = make_batch("sequence", batch_size=6, seed=1)
    assert isinstance(batch, Padded) and batch.batch_size == 6
    lengths = batch.lengths.tolist()
    lo, hi = LENGTHS["sequence"]
    assert len(set(lengths)) == 6 and all(lo <= n <= hi for n in lengths)
    assert batch.values.shape == (6, max(lengths), 8)
    assert batch.mask.sum(1).tolist() == lengths
    assert not batch.values[~batch.mask].any(), "padding must be zeros"
    assert batch.values[batch.mask].abs().min() > 0
    again = make_batch("sequence", batch_size=6, seed=1)
    assert torch.equal(again.values, batch.values) and torch.equal(again.lengths, batch.lengths)
    other = make_batch("sequence", batch_size=6, seed=2)
    assert not torch.equal(other.lengths, batch.lengths)


def test_sequence_batch_options() -> None:
    exact = make_batch("sequence", lengths=[2, 9, 4], features=(3, 5))
    assert exact.batch_size == 3 and exact.lengths.tolist() == [2, 9, 4]
    assert exact.values.shape == (3, 9, 3, 5)
    narrow = make_batch("sequence", batch_size=5, min_len=10, max_len=14)
    assert sorted(narrow.lengths.tolist()) == [10, 11, 12, 13, 14]
    crowded = make_batch("sequence", batch_size=5, min_len=2, max_len=3)  # repeats allowed
    assert set(crowded.lengths.tolist()) <= {2, 3}
    with pytest.raises(ValueError, match="batch_size=4 but 2 lengths"):
        make_batch("sequence", batch_size=4, lengths=[2, 3])
    with pytest.raises(ValueError, match="min_len <= max_len"):
        make_batch("sequence", min_len=5, max_len=4)


def test_variable_length_audio() -> None:
    batch = make_batch("audio", batch_size=3, variable_length=True, min_len=100, max_len=400)
    assert isinstance(batch, Padded) and batch.values.dim() == 2
    assert batch.values.shape[1] == max(batch.lengths.tolist()) <= 400
    assert len(set(batch.lengths.tolist())) == 3
    assert make_batch("audio", batch_size=2).shape == (2, 16000)  # fixed length still
    with pytest.raises(ValueError, match="variable-length batches exist for sequence, audio"):
        make_batch("ecg", variable_length=True)
    with pytest.raises(ValueError, match=r"make_batch\('audio'\) does not take features"):
        make_batch("audio", variable_length=True, features=3)


def test_volume_batches() -> None:
    assert make_batch("volume", batch_size=2).shape == (2, 1, 16, 16, 16)
    assert make_batch("volume", batch_size=2, size=8, channels=3).shape == (2, 3, 8, 8, 8)
    assert make_batch("volume", size=(4, 6, 8)).shape == (4, 1, 4, 6, 8)
    assert make_batch("volume", shape=(2, 4, 4, 4)).shape == (4, 2, 4, 4, 4)
    assert make_batch("image", size=(8, 10), channels=1).shape == (4, 1, 8, 10)
    assert torch.equal(make_batch("volume", seed=5), make_batch("volume", seed=5))
    with pytest.raises(ValueError, match=r"volume items are \(C, D, H, W\)"):
        make_batch("volume", shape=(16, 16, 16))
    with pytest.raises(ValueError, match=r"give an int or 3 sizes"):
        make_batch("volume", size=(8, 8))
    with pytest.raises(ValueError, match="shape= or size=/channels=, not both"):
        make_batch("volume", shape=(1, 4, 4, 4), size=4)
    with pytest.raises(ValueError, match=r"make_batch\('tabular'\) does not take size"):
        make_batch("tabular", size=4)


# --------------------------------------------------------------------------- padding


def test_masked_mean_encoder_is_padding_invariant() -> None:
    encoder = MaskedMean()
    encoder.train()
    assert check_padding_invariance(encoder, items()) is encoder
    assert encoder.training, "the encoder's mode must be restored"
    check_padding_invariance(spec(MaskedMean), items(features=4), in_dim=4, extra_padding=5)


def test_strided_encoder_with_fewer_tokens_than_frames_passes() -> None:
    check_padding_invariance(spec(MaskedMean), items(), stride=2)


def test_mean_over_padding_fails() -> None:
    with pytest.raises(AssertionError) as err:
        check_padding_invariance(spec(MaskedMean, "plain-mean"), items(), ignore_mask=True)
    message = str(err.value)
    assert "t:plain-mean (MaskedMean)" in message
    assert "item 0 (length 3) padded to the longest: pooled differs" in message
    assert "max abs" in message and "atol=1e-05" in message


def test_the_check_pads_beyond_the_longest_item() -> None:
    class Spy(MaskedMean):
        def __init__(self):
            super().__init__()
            self.seen: list[tuple[int, list[int]]] = []

        def forward(self, batch):
            self.seen.append((batch.values.shape[1], batch.lengths.tolist()))
            return super().forward(batch)

    encoder = Spy()
    check_padding_invariance(encoder, items((3, 7, 5)), extra_padding=4)
    alone = [(3, [3]), (7, [7]), (5, [5])]
    assert encoder.seen == [*alone, (7, [3, 7, 5]), (11, [3, 7, 5])]


def test_a_wrong_mask_fails() -> None:
    with pytest.raises(AssertionError, match=r"mask is wrong at token positions \[3, 4, 5, 6\]"):
        check_padding_invariance(MaskedMean(mask="all"), items())
    with pytest.raises(AssertionError, match=r"without out\.mask"):
        check_padding_invariance(MaskedMean(mask="none"), items())
    with pytest.raises(AssertionError, match=r"tokens have padding but out\.mask is None"):
        check_padding_invariance(MaskedMean(mask="none", stride=2), items())


def test_padding_invariance_needs_items_of_several_lengths() -> None:
    with pytest.raises(ValueError, match="two items of different lengths"):
        check_padding_invariance(MaskedMean(), items((4, 4)))
    with pytest.raises(TypeError, match="pass its spec instead"):
        check_padding_invariance(MaskedMean(), items(), in_dim=6)


# --------------------------------------------------------------------------- check_encoder


def test_check_encoder_on_a_padded_batch() -> None:
    batch = make_batch("sequence", batch_size=4, features=6)
    _, out = check_encoder(spec(MaskedMean), batch)
    assert out.mask.shape == out.tokens.shape[:2]
    with pytest.raises(AssertionError, match=r"without out\.mask"):
        check_encoder(spec(MaskedMean), batch, mask="none")

    class Float(MaskedMean):
        def forward(self, batch):
            out = super().forward(batch)
            return EncoderOutput(pooled=out.pooled, tokens=out.tokens, mask=out.mask.float())

    class Short(MaskedMean):
        def forward(self, batch):
            out = super().forward(batch)
            return EncoderOutput(pooled=out.pooled, tokens=out.tokens, mask=out.mask[:, :-1])

    class Dropped(MaskedMean):  # B inferred from the Padded batch: one row missing
        def forward(self, batch):
            out = super().forward(batch)
            return EncoderOutput(pooled=out.pooled[1:])

    with pytest.raises(AssertionError, match=r"mask must be a bool tensor \[B, T\]"):
        check_encoder(spec(Float), batch)
    with pytest.raises(AssertionError, match=r"mask has shape \(4, \d+\), tokens"):
        check_encoder(spec(Short), batch)
    with pytest.raises(AssertionError, match="pooled has 3 rows for a batch of 4"):
        check_encoder(spec(Dropped), batch)


def test_check_encoder_with_feature_maps() -> None:
    volume = make_batch("volume", batch_size=2, size=8)
    _, out = check_encoder(spec(Conv3d), volume)
    assert [tuple(m.shape) for m in out.feature_maps] == [(2, 4, 4, 4, 4), (2, 8, 2, 2, 2)]
    cases = {
        "batch": r"feature_maps\[0\] has batch size 1 for a batch of 2",
        "rank": r"feature_maps\[1\] must be \[B, C, H, W\] or \[B, C, D, H, W\]",
        "2d3d": "feature_maps mix 2-D and 3-D maps",
        "nan": r"feature_maps\[1\] has NaN",
        "empty": "feature_maps must be a non-empty tuple",
    }
    for wrong, match in cases.items():
        with pytest.raises(AssertionError, match=match):
            check_encoder(spec(Conv3d), volume, wrong=wrong)


def test_check_feature_maps_directly() -> None:
    out = EncoderOutput(pooled=torch.zeros(2, 3), feature_maps=(torch.zeros(2, 3, 4, 4),))
    check_feature_maps(out, 2)
    check_feature_maps(EncoderOutput(pooled=torch.zeros(2, 3)), 2)  # None is fine
    with pytest.raises(AssertionError, match="got list"):
        check_feature_maps(EncoderOutput(pooled=torch.zeros(2, 3), feature_maps=[]), 2)


def test_check_views_sees_in_place_changes_to_a_padded_batch() -> None:
    def scales(**_):
        def make(batch, meta=None):
            batch.values.mul_(2)
            return [batch]

        return make

    with pytest.raises(AssertionError, match="modified its input"):
        check_views(ViewSpec(name="v", build=scales, plugin="t"), make_batch("sequence"))
