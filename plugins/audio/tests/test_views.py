"""Audio views: crops, gain, noise and speed per item; SpecAugment masks; batched, no in-place."""

from __future__ import annotations

import pytest
import torch
from selfsup.interfaces import Padded
from selfsup_audio.features import LogMel
from selfsup_audio.views import SpecAugmentViews, WaveViews

SR = 8000
OFF = {"gain_db": (0.0, 0.0), "noise_prob": 0.0, "speed_prob": 0.0}


def _tones(lengths=(8000, 5000, 3000)) -> Padded:
    items = [0.3 * torch.sin(2 * torch.pi * (300 + 100 * i) * torch.arange(n) / SR)
             for i, n in enumerate(lengths)]  # fmt: skip
    return Padded.from_list(items)


def test_random_crop_lengths_content_and_diversity() -> None:
    torch.manual_seed(0)
    batch = _tones()
    v1, v2 = WaveViews(crop_seconds=0.5, sample_rate=SR, **OFF)(batch)
    assert v1.values.shape == (3, 4000) and v1.lengths.tolist() == [4000, 4000, 3000]
    # The crop is a window of the item: find it in the source.
    src = batch.item(0)
    windows = src.unfold(0, 4000, 1)
    assert bool((windows - v1.item(0)).abs().amax(1).min() < 1e-6)
    assert not torch.equal(v1.values, v2.values)  # independent offsets
    assert torch.equal(v1.item(2), batch.item(2))  # shorter than the crop: kept whole


def test_gain_is_per_item_and_in_range() -> None:
    torch.manual_seed(0)
    batch = _tones()
    (view,) = WaveViews(n_views=1, gain_db=(-6.0, 6.0), noise_prob=0.0, speed_prob=0.0)(batch)
    ratio = view.values[:, 100] / batch.values[:, 100]
    db = 20 * torch.log10(ratio.abs())
    assert bool((db >= -6.01).all() and (db <= 6.01).all()) and db.unique().numel() == 3


def test_noise_hits_the_requested_snr_and_leaves_padding_zero() -> None:
    torch.manual_seed(0)
    batch = _tones()
    (view,) = WaveViews(n_views=1, gain_db=(0.0, 0.0), noise_prob=1.0, snr_db=(10.0, 10.0),
                        speed_prob=0.0)(batch)  # fmt: skip
    noise = view.values - batch.values
    for i in range(3):
        n = int(batch.lengths[i])
        snr = 10 * torch.log10(batch.values[i, :n].pow(2).mean() / noise[i, :n].pow(2).mean())
        assert abs(float(snr) - 10.0) < 0.5
    assert bool((view.values[~view.mask] == 0).all())


def test_speed_changes_length_and_pitch() -> None:
    torch.manual_seed(0)
    batch = _tones((8000, 8000))
    (view,) = WaveViews(n_views=1, gain_db=(0.0, 0.0), noise_prob=0.0, speed_prob=1.0,
                        speed=(1.25, 1.25))(batch)  # fmt: skip
    assert view.lengths.tolist() == [6400, 6400]
    spectrum = torch.fft.rfft(view.item(0)).abs()
    peak_hz = int(spectrum.argmax()) * SR / 6400
    assert abs(peak_hz - 300 * 1.25) < 5


def test_segment_shuffle_keeps_samples_and_length_and_changes_order() -> None:
    torch.manual_seed(0)
    batch = Padded.from_list([torch.arange(1, 8001).float() / 8000, torch.arange(1, 5051) / 8000])
    (view,) = WaveViews(n_views=1, sample_rate=SR, shuffle_prob=1.0, segment_seconds=0.1,
                        **OFF)(batch)  # fmt: skip
    assert view.lengths.tolist() == batch.lengths.tolist()
    for i in range(2):
        item, src = view.item(i), batch.item(i)
        assert torch.equal(item.sort().values, src.sort().values)  # same samples
        assert not torch.equal(item, src)  # in another order
        segs = item[: len(src) // 800 * 800].view(-1, 800)
        # Whole 800-sample segments move intact: each is a contiguous run of the source.
        assert bool((segs.diff(dim=1) - 1 / 8000).abs().max() < 1e-6)
    # The tail shorter than a segment (5050 = 6 * 800 + 250) stays last.
    assert torch.equal(view.item(1)[4800:], batch.item(1)[4800:])
    assert bool((view.values[~view.mask] == 0).all())


def test_segment_shuffle_probability_zero_and_per_item() -> None:
    batch = _tones((8000, 8000, 8000, 8000))
    (same,) = WaveViews(n_views=1, sample_rate=SR, shuffle_prob=0.0, **OFF)(batch)
    assert torch.equal(same.values, batch.values)
    torch.manual_seed(3)
    (view,) = WaveViews(n_views=1, sample_rate=SR, shuffle_prob=0.5, **OFF)(batch)
    changed = [not torch.equal(view.item(i), batch.item(i)) for i in range(4)]
    assert any(changed) and not all(changed)


def test_reverse_flips_real_samples_only() -> None:
    batch = _tones((8000, 3000))
    (view,) = WaveViews(n_views=1, sample_rate=SR, reverse_prob=1.0, **OFF)(batch)
    assert view.lengths.tolist() == [8000, 3000]
    for i in range(2):
        assert torch.equal(view.item(i), batch.item(i).flip(0))
    assert bool((view.values[~view.mask] == 0).all())


def test_config_rejects_bad_shuffle_params() -> None:
    """``selfsup check`` names an out-of-range shuffle/reverse value."""
    from selfsup import ConfigError, load_config_text, resolve_experiment

    for key, value in (("shuffle_prob", 1.5), ("segment_seconds", 0), ("reverse_prob", -0.1)):
        text = f"""
name: bad
data: {{id: audio:fsdd}}
encoder: {{id: audio:cnn1d}}
views: {{id: audio:wave-views, params: {{{key}: {value}}}}}
"""
        with pytest.raises(ConfigError, match=key):
            resolve_experiment(load_config_text(text))


def test_wave_views_accept_plain_tensors_and_keep_input() -> None:
    x = 0.1 * torch.randn(2, 1600)
    before = x.clone()
    views = WaveViews(sample_rate=SR)(x)
    assert torch.equal(x, before) and all(v.values.shape[0] == 2 for v in views)


def test_bad_view_params_are_named() -> None:
    with pytest.raises(ValueError, match="ranges must be"):
        WaveViews(gain_db=(6.0, -6.0))
    with pytest.raises(ValueError, match="factors must be > 0"):
        WaveViews(speed=(0.0, 1.0))
    with pytest.raises(ValueError, match="waveforms"):
        WaveViews()(torch.zeros(2, 3, 4))


@pytest.mark.parametrize("features", ["logmel", "mfcc", "lfcc"])
def test_specaugment_masks_real_frames_and_bins(features) -> None:
    torch.manual_seed(0)
    batch = _tones()
    maker = SpecAugmentViews(features=features, sample_rate=SR, n_features=20,
                             time_mask_param=10, freq_mask_param=4)  # fmt: skip
    v1, v2 = maker(batch)
    clean = maker.features(batch)
    assert v1.values.shape == clean.values.shape and v1.lengths.tolist() == clean.lengths.tolist()
    assert bool((v1.values[~v1.mask] == 0).all())
    changed = (v1.values != clean.values) & v1.mask.unsqueeze(-1)
    assert 0 < float(changed.float().mean()) < 0.8
    assert not torch.equal(v1.values, v2.values)


def test_specaugment_without_masks_is_the_features() -> None:
    batch = _tones()
    maker = SpecAugmentViews(sample_rate=SR, n_features=24, time_masks=0, freq_masks=0)
    (view, _) = maker(batch)
    torch.testing.assert_close(view.values, LogMel(sample_rate=SR, n_mels=24)(batch).values)


def test_specaugment_crop_bounds_frames() -> None:
    maker = SpecAugmentViews(sample_rate=SR, n_features=16, crop_seconds=0.3)
    (view, _) = maker(_tones())
    assert int(view.lengths.max()) == 28  # 0.3 s: 1 + (2400 - 200) // 80
