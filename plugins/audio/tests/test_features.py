"""Frame features: shapes, frame lengths, padding invariance, normalisation, bad inputs."""

from __future__ import annotations

import pytest
import torch
import torchaudio
from selfsup.interfaces import Padded
from selfsup_audio.features import LFCC, MFCC, LogMel, build_features, frame_lengths

SR = 8000
FEATURES = [
    (LogMel, {"n_mels": 40}, 40),
    (MFCC, {"n_mfcc": 20, "n_mels": 40}, 20),
    (LFCC, {"n_lfcc": 20, "n_filter": 40}, 20),
]


def _batch() -> tuple[Padded, list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    items = [0.1 * torch.randn(n, generator=gen) for n in (8000, 3210, 150)]
    return Padded.from_list(items), items


def test_frame_lengths_match_torchaudio_frames() -> None:
    spec = torchaudio.transforms.Spectrogram(n_fft=200, hop_length=80, center=False)
    for n in (200, 201, 279, 280, 8000, 12345):
        assert int(frame_lengths(torch.tensor([n]), 80, 200)) == spec(torch.zeros(n)).shape[-1]
    assert frame_lengths(torch.tensor([0, 10, 199]), 80, 200).tolist() == [1, 1, 1]


@pytest.mark.parametrize(("cls", "params", "width"), FEATURES)
def test_shapes_lengths_and_zero_padding(cls, params, width) -> None:
    feat = cls(sample_rate=SR, **params)
    batch, _ = _batch()
    out = feat(batch)
    assert feat.out_features == width
    assert out.values.shape == (3, int(out.lengths.max()), width)
    assert out.lengths.tolist() == frame_lengths(batch.lengths, feat.hop, feat.win).tolist()
    assert out.lengths.tolist() == [98, 38, 1]  # 25 ms windows, 10 ms hop at 8 kHz
    assert bool((out.values[~out.mask] == 0).all())
    assert torch.isfinite(out.values).all()


@pytest.mark.parametrize(("cls", "params", "width"), FEATURES)
@pytest.mark.parametrize("normalize", [True, False])
def test_padding_does_not_change_an_items_frames(cls, params, width, normalize) -> None:
    feat = cls(sample_rate=SR, normalize=normalize, **params)
    batch, items = _batch()
    out = feat(batch)
    more = feat(Padded(torch.nn.functional.pad(batch.values, (0, 777)), batch.lengths))
    for i, item in enumerate(items):
        alone = feat(item).values[0]
        n = int(out.lengths[i])
        assert alone.shape[0] == n
        torch.testing.assert_close(out.values[i, :n], alone, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(more.values[i, :n], alone, atol=1e-4, rtol=1e-4)


def test_normalisation_over_real_frames_only() -> None:
    feat = LogMel(sample_rate=SR, n_mels=32)
    batch, _ = _batch()
    out = feat(batch)
    for i in range(2):  # the 1-frame item has no variance to normalise
        real = out.values[i, : int(out.lengths[i])]
        torch.testing.assert_close(real.mean(0), torch.zeros(32), atol=1e-4, rtol=0)
        torch.testing.assert_close(real.std(0, unbiased=False), torch.ones(32), atol=1e-2, rtol=0)


def test_logmel_is_the_log_of_torchaudio_mel() -> None:
    wave = 0.1 * torch.randn(4000, generator=torch.Generator().manual_seed(1))
    ours = LogMel(sample_rate=SR, n_mels=40, normalize=False)(wave).values[0]
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=SR, n_fft=200, win_length=200, hop_length=80, n_mels=40, center=False
    )(wave)
    torch.testing.assert_close(ours, torch.log(mel + 1e-6).T, atol=1e-4, rtol=1e-4)


def test_mfcc_separates_tones() -> None:
    t = torch.arange(8000) / SR
    low, high = torch.sin(2 * torch.pi * 300 * t), torch.sin(2 * torch.pi * 2500 * t)
    out = MFCC(sample_rate=SR, n_mfcc=13, n_mels=40, normalize=False)(torch.stack([low, high]))
    means = out.values.mean(1)
    assert (means[0] - means[1]).abs().max() > 1.0


def test_plain_tensors_and_channel_first_inputs() -> None:
    feat = LogMel(sample_rate=SR, n_mels=16)
    assert feat(torch.zeros(2, 1, 800)).values.shape == (2, 8, 16)
    assert feat(torch.zeros(800)).lengths.tolist() == [8]


def test_bad_inputs_are_named() -> None:
    feat = LogMel(sample_rate=SR, n_mels=16)
    with pytest.raises(ValueError, match="waveform batch"):
        feat(Padded(torch.zeros(2, 10, 16), torch.tensor([10, 5])))
    with pytest.raises(TypeError, match="Padded or a Tensor"):
        feat([0.0, 1.0])
    with pytest.raises(ValueError, match="n_mfcc=50 must be <= n_mels=40"):
        MFCC(sample_rate=SR, n_mfcc=50, n_mels=40)
    with pytest.raises(ValueError, match="sample_rate=0"):
        LogMel(sample_rate=0)
    with pytest.raises(ValueError, match="features='cqt'"):
        build_features("cqt", SR)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_the_inputs_device() -> None:
    batch, _ = _batch()
    out = MFCC(sample_rate=SR)(batch.to("cuda"))
    assert out.values.device.type == "cuda"
