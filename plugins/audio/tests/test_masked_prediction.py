"""audio:masked-prediction: masks, alignment, tokenizers, bad inputs, and learning on FSDD."""

from __future__ import annotations

import pytest
import torch
from selfsup.interfaces import Padded
from selfsup.testing import check_objective
from selfsup_audio.encoders.cnn1d import CNN1d
from selfsup_audio.encoders.wav2vec2 import Wav2Vec2Encoder
from selfsup_audio.objectives.masked_prediction import (
    MaskedPrediction,
    align_tokens,
    span_mask,
)
from selfsup_audio.objectives.tokenizers import (
    MFCCKMeansTokenizer,
    RandomProjectionTokenizer,
    build_tokenizer,
)

SR = 8000


def small_wav2vec2(seed: int = 0) -> Wav2Vec2Encoder:
    """A wav2vec2 encoder small enough for CPU tests (5 conv layers: 10 ms frames at 8 kHz)."""
    torch.manual_seed(seed)
    return Wav2Vec2Encoder(
        sample_rate=SR, conv_dim=64, conv_layers=5, embed_dim=96, num_layers=2, num_heads=4,
        ff_dim=192, pos_conv_kernel=16, pos_conv_groups=8, dropout=0.0,
    )  # fmt: skip


def waves(seed: int = 0, lengths: tuple[int, ...] = (4000, 2600, 1800, 3300)) -> Padded:
    gen = torch.Generator().manual_seed(seed)
    return Padded.from_list([0.1 * torch.randn(n, generator=gen) for n in lengths])


# --------------------------------------------------------------------------- pieces


def test_span_mask_covers_only_real_frames_and_is_seeded() -> None:
    lengths = torch.tensor([50, 7, 1, 0])
    gen = torch.Generator().manual_seed(3)
    mask = span_mask(lengths, 60, mask_prob=0.1, mask_length=5, generator=gen)
    assert mask.shape == (4, 60)
    real = torch.arange(60)[None, :] < lengths[:, None]
    assert not bool((mask & ~real).any()), "a span covers padding"
    assert mask[:3].any(1).all(), "every item with frames gets at least one span"
    assert not mask[3].any()
    again = span_mask(lengths, 60, 0.1, 5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(mask, again)
    # more spans on longer items: p * L starts of l frames (expected ~ 1 - (1-p)^l coverage)
    long = span_mask(torch.full((200,), 400), 400, 0.08, 10, generator=gen).float().mean()
    assert 0.4 < float(long) < 0.65


def test_align_tokens_interpolates_within_each_item() -> None:
    # item 0: 4 tokens 0,1,2,3 onto 8 frames; item 1: 2 real tokens then padding (1e6)
    tokens = torch.tensor([[0.0, 1.0, 2.0, 3.0], [10.0, 20.0, 1e6, 1e6]])[..., None]
    out = align_tokens(tokens, torch.tensor([4, 2]), torch.tensor([8, 2]), 8)[..., 0]
    expected0 = torch.tensor([0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0])
    assert torch.allclose(out[0], expected0)
    assert torch.allclose(out[1, :2], torch.tensor([10.0, 20.0]))
    assert float(out[1].max()) <= 20.0, "padding tokens leaked into the aligned frames"
    same = align_tokens(tokens, torch.tensor([4, 4]), torch.tensor([4, 4]), 4)
    assert torch.allclose(same, tokens)


def test_random_projection_tokenizer_is_seeded_and_masks_padding() -> None:
    wave = waves()
    a = RandomProjectionTokenizer(SR, num_codes=32, seed=5)
    b = RandomProjectionTokenizer(SR, num_codes=32, seed=5)
    c = RandomProjectionTokenizer(SR, num_codes=32, seed=6)
    codes, mask = a(wave)
    assert torch.equal(codes, b(wave)[0])
    assert not torch.equal(codes, c(wave)[0])
    assert codes.dtype == torch.long and int(codes.max()) < 32 and int(codes.min()) >= 0
    assert mask.sum(1).tolist() == a.logmel.frame_lengths(wave.lengths).tolist()
    assert bool((codes[~mask] == 0).all())
    # an item's codes do not depend on the padding of its batch
    alone, _ = a(Padded.from_list([wave.item(2)]))
    assert torch.equal(alone[0], codes[2, : alone.shape[1]])


def test_mfcc_kmeans_tokenizer_fits_on_batches_deterministically() -> None:
    wave = waves(lengths=(8000,) * 6)
    tok = MFCCKMeansTokenizer(SR, num_clusters=10, fit_batches=2, seed=1)
    with pytest.raises(RuntimeError, match="before its codebook was fitted"):
        tok(wave)
    frames = tok.frames(wave)
    assert frames.values.shape[-1] == 39  # 13 MFCC + deltas + delta-deltas
    tok.observe(frames)
    twin = MFCCKMeansTokenizer(SR, num_clusters=10, fit_batches=2, seed=1)
    twin.observe(twin.frames(wave))
    assert torch.allclose(tok.centroids, twin.centroids)
    first = tok.centroids.clone()
    tok.observe(tok.frames(waves(seed=1, lengths=(8000,) * 6)))
    assert int(tok.fitted_batches) == 2 and not torch.equal(first, tok.centroids)
    frozen = tok.centroids.clone()
    tok.observe(tok.frames(waves(seed=2, lengths=(8000,) * 6)))  # past fit_batches: no change
    assert torch.equal(frozen, tok.centroids)
    codes, mask = tok(wave)
    assert int(codes.max()) < 10 and bool(mask.all())


def test_mfcc_kmeans_needs_enough_frames() -> None:
    tok = MFCCKMeansTokenizer(SR, num_clusters=500, seed=0)
    with pytest.raises(ValueError, match="fewer than num_clusters=500"):
        tok.observe(tok.frames(waves()))


# --------------------------------------------------------------------------- objective


@pytest.mark.parametrize("tokenizer", ["mfcc-kmeans", "random-projection"])
def test_contract_with_wav2vec2_forward_masked(tokenizer: str, selfsup_pm) -> None:
    spec = selfsup_pm.get("objective", "audio:masked-prediction")
    encoder = small_wav2vec2()
    params = {"tokenizer": tokenizer, "sample_rate": SR, "num_codes": 16, "proj_dim": 16,
              "mask_length": 3, "seed": 0}  # fmt: skip
    objective, out = check_objective(spec, encoder, [waves()], **params)
    assert 0 < float(out.metrics["mask_ratio"]) < 1
    if tokenizer == "mfcc-kmeans":  # the fitted codebook travels in the state dict
        fresh = spec.create(embed_dim=encoder.embed_dim, **params)
        fresh.load_state_dict(objective.state_dict())
        assert torch.equal(fresh.tokenizer.centroids, objective.tokenizer.centroids)
        assert fresh.tokenizer.ready


def test_input_masking_zeroes_masked_frames_only() -> None:
    encoder = CNN1d(sample_rate=SR, n_mels=16, channels=(8, 8))
    seen: list[Padded] = []
    original = encoder.forward

    def spy(x):
        seen.append(x)
        return original(x)

    encoder.forward = spy  # type: ignore[method-assign]
    obj = MaskedPrediction(encoder.embed_dim, tokenizer="random-projection", sample_rate=SR,
                           num_codes=8, proj_dim=8, mask_length=3, seed=0)  # fmt: skip
    wave = waves()
    out = obj(encoder, wave)
    masked = seen[0].values
    zeroed = (masked == 0) & (wave.values != 0)
    assert zeroed.any() and bool((zeroed & ~wave.mask).sum() == 0)
    assert float(zeroed.float().sum() / wave.mask.sum()) < 0.95
    assert torch.isfinite(out.loss)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"tokenizer='kmeans'.*mfcc-kmeans"):
        build_tokenizer("kmeans", SR, 8, seed=0)
    with pytest.raises(ValueError, match="mask_prob"):
        MaskedPrediction(16, mask_prob=0.0)
    with pytest.raises(ValueError, match="masking"):
        MaskedPrediction(16, masking="frames")  # type: ignore[arg-type]
    encoder = CNN1d(sample_rate=SR, n_mels=16, channels=(8, 8))
    obj = MaskedPrediction(encoder.embed_dim, tokenizer="random-projection", sample_rate=SR,
                           num_codes=8, proj_dim=8, masking="encoder")  # fmt: skip
    with pytest.raises(TypeError, match="forward_masked"):
        obj(encoder, waves())
    feats = Padded(torch.randn(2, 30, 16), torch.tensor([30, 20]))
    with pytest.raises(TypeError, match="waveform batch"):
        obj(encoder, [feats])


# ------------------------------------- learning (fsdd_probe, pretrain: conftest.py)


#: The tokenizers as the examples configure them (hubert_fsdd.yaml, beats_fsdd.yaml).
TOKENIZERS = {
    "hubert": {"tokenizer": "mfcc-kmeans", "num_codes": 50},
    "beats": {"tokenizer": "random-projection", "num_codes": 128, "code_dim": 16, "n_mels": 64},
}


@pytest.mark.heavy
@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_masked_prediction_beats_random_init_on_fsdd(
    name: str, fsdd_digits, fsdd_probe, pretrain
) -> None:
    """HuBERT and BEATs iteration 1 each lift the digit and speaker probes over random init."""
    data, train_idx = fsdd_digits
    encoder = small_wav2vec2(seed=0)
    before = fsdd_probe(encoder, data, train_idx)
    torch.manual_seed(0)
    params = TOKENIZERS[name]
    objective = MaskedPrediction(encoder.embed_dim, sample_rate=SR, mask_prob=0.15,
                                 mask_length=3, proj_dim=64, unmasked_weight=0.5, seed=0,
                                 **params)  # fmt: skip
    out = pretrain(encoder, objective, data, train_idx, steps=60)
    after = fsdd_probe(encoder, data, train_idx)
    print(f"{name}: random init {before} -> pretrained {after}")
    chance = 1 / params["num_codes"]
    assert float(out.metrics["acc_masked"]) > 2 * chance, out.metrics
    assert after["digit"] > before["digit"] + 0.05, (before, after)
    assert after["speaker"] > before["speaker"] + 0.02, (before, after)
