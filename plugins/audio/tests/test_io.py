"""Reading audio: decode, mono mix-down, resampling, crops, and every kind of bad file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from selfsup_audio.io import AudioFileError, audio_info, crop, read_audio, resample, write_wav


def test_reads_float_mono_in_range(tmp_path, tone_writer) -> None:
    path = tone_writer(tmp_path / "a.wav", 440.0, 0.5, 8000)
    wave, rate = read_audio(path)
    assert rate == 8000 and wave.dtype == torch.float32 and wave.shape == (4000,)
    assert 0.25 < float(wave.abs().max()) <= 1.0
    assert audio_info(path) == (8000, 4000, 1)


def test_stereo_is_mixed_down_and_flac_reads(tmp_path) -> None:
    left = np.full(800, 0.5, dtype=np.float32)
    right = np.full(800, -0.1, dtype=np.float32)
    path = tmp_path / "st.flac"
    sf.write(str(path), np.stack([left, right], 1), 16000, subtype="PCM_16")
    mono, _ = read_audio(path)
    assert mono.shape == (800,) and torch.allclose(mono, torch.full((800,), 0.2), atol=1e-3)
    both, _ = read_audio(path, mono=False)
    assert both.shape == (2, 800)


def test_resampling_keeps_duration_and_frequency(tmp_path, tone_writer) -> None:
    path = tone_writer(tmp_path / "a.wav", 500.0, 1.0, 8000)
    wave, rate = read_audio(path, sample_rate=16000)
    assert rate == 16000 and wave.shape == (16000,)
    peak = int(torch.fft.rfft(wave).abs().argmax())  # 1 Hz bins over 1 s
    assert abs(peak - 500) <= 1
    assert resample(wave, 16000, 16000) is wave
    with pytest.raises(ValueError, match="> 0 Hz"):
        resample(wave, 0, 8000)


def test_partial_read_for_streaming(tmp_path, tone_writer) -> None:
    path = tone_writer(tmp_path / "a.wav", 300.0, 1.0, 8000)
    full, _ = read_audio(path)
    part, _ = read_audio(path, start=1000, frames=500)
    assert torch.equal(part, full[1000:1500])


def test_crop_random_and_centre() -> None:
    wave = torch.arange(100.0)
    assert torch.equal(crop(wave, 40), wave[30:70])
    assert crop(wave, 200) is wave
    gen = torch.Generator().manual_seed(0)
    starts = {int(crop(wave, 10, gen)[0]) for _ in range(20)}
    assert len(starts) > 1


def test_write_wav_is_atomic_and_readable(tmp_path) -> None:
    out = write_wav(tmp_path / "sub" / "x.wav", torch.linspace(-0.5, 0.5, 100), 8000)
    assert out.is_file() and not list(out.parent.glob(".*.tmp"))
    wave, rate = read_audio(out)
    assert rate == 8000 and torch.allclose(wave, torch.linspace(-0.5, 0.5, 100), atol=1e-4)


def test_missing_file_names_it(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.wav"):
        read_audio(tmp_path / "nope.wav")


def test_empty_file_names_it(tmp_path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioFileError, match=r"empty\.wav: empty file"):
        read_audio(path)
    with pytest.raises(AudioFileError, match="empty file"):
        audio_info(path)


def test_text_file_named_wav_names_it(tmp_path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n")
    with pytest.raises(AudioFileError, match=r"notes\.wav: not a readable audio file"):
        read_audio(path)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_wav_names_it(tmp_path, tone_writer, keep) -> None:
    path = tone_writer(tmp_path / "cut.wav", 440.0, 0.5, 8000)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(AudioFileError, match=r"cut\.wav: truncated WAV"):
        read_audio(path)


def test_header_only_wav_names_it(tmp_path, tone_writer) -> None:
    path = tone_writer(tmp_path / "hdr.wav", 440.0, 0.5, 8000)
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(AudioFileError, match=r"hdr\.wav"):
        read_audio(path)


def test_wav_without_samples_names_it(tmp_path) -> None:
    path = tmp_path / "silent.wav"
    sf.write(str(path), np.zeros(0, dtype=np.float32), 8000, subtype="PCM_16")
    with pytest.raises(AudioFileError, match=r"silent\.wav: the file holds no samples"):
        read_audio(path)
