"""Reading audio files: soundfile decode, truncation checks, mono mix-down, resampling.

Every failure raises :class:`AudioFileError` (a ``ValueError``) that names the file and
says what to do, so that one bad clip in a 1,000-hour corpus is found at once:

* an empty file, a file that is not audio (a text file named ``.wav``), an unreadable
  header;
* a truncated WAV (its ``data`` chunk declares more bytes than the file holds;
  libsndfile would silently return the part that is there) or a truncated FLAC (fewer
  frames decoded than its header declares);
* a clip with no samples, or non-finite samples.

Example:
    >>> wave, sr = read_audio("0_george_0.wav", sample_rate=16000)  # doctest: +SKIP
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "AUDIO_SUFFIXES",
    "AudioFileError",
    "audio_info",
    "crop",
    "read_audio",
    "resample",
    "write_wav",
]

#: File suffixes the folder and corpus datasets pick up.
AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


class AudioFileError(ValueError):
    """A file that cannot be read as complete audio; the message names it and the fix."""


def _fail(path: Path, what: str) -> AudioFileError:
    return AudioFileError(
        f"{path}: {what}; re-copy or re-encode the file (e.g. `ffmpeg -i IN -ar 16000 "
        "OUT.wav`), or remove it from the dataset folder / manifest"
    )


def _check_wav_complete(path: Path, size: int) -> None:
    """Raise when a RIFF/WAVE file's ``data`` chunk runs past the end of the file."""
    with path.open("rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return  # not RIFF/WAVE (RF64, W64, ...): libsndfile decides
        endian = "<" if head[:4] == b"RIFF" else ">"
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            chunk = fh.read(8)
            if len(chunk) < 8:
                return
            cid, csize = chunk[:4], struct.unpack(endian + "I", chunk[4:])[0]
            if cid == b"data":
                if csize in (0, 0xFFFFFFFF):  # streamed writers leave the size unset
                    return
                have = size - (pos + 8)
                if have < csize:
                    raise _fail(
                        path,
                        f"truncated WAV: its data chunk declares {csize} bytes but only "
                        f"{have} are in the file",
                    )
                return
            pos += 8 + csize + (csize & 1)


def audio_info(path: str | Path) -> tuple[int, int, int]:
    """``(sample_rate, frames, channels)`` of a file from its header, without decoding.

    Raises:
        FileNotFoundError: The file does not exist.
        AudioFileError: The file is empty or not audio.
    """
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such audio file")
    if p.stat().st_size == 0:
        raise _fail(p, "empty file (0 bytes)")
    try:
        info = sf.info(str(p))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise _fail(p, f"not a readable audio file ({exc})") from exc
    return int(info.samplerate), int(info.frames), int(info.channels)


def read_audio(
    path: str | Path,
    sample_rate: int | None = None,
    mono: bool = True,
    start: int = 0,
    frames: int = -1,
) -> tuple[Tensor, int]:
    """Read an audio file as float32 in ``[-1, 1]``.

    Args:
        path: A wav/flac/ogg/... file that libsndfile reads.
        sample_rate: Resample to this rate (Hz); ``None`` keeps the file's rate.
        mono: Average the channels into one: returns ``[T]``; otherwise ``[C, T]``.
        start: First frame to read (at the file's rate), for streaming crops.
        frames: How many frames to read (``-1``: to the end).

    Returns:
        ``(waveform, sample_rate)``.

    Raises:
        FileNotFoundError: The file does not exist.
        AudioFileError: An empty, truncated, non-audio or sample-less file, or
            non-finite samples; the message names the file.
    """
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such audio file")
    size = p.stat().st_size
    if size == 0:
        raise _fail(p, "empty file (0 bytes)")
    _check_wav_complete(p, size)
    try:
        with sf.SoundFile(str(p)) as fh:
            declared, rate = int(fh.frames), int(fh.samplerate)
            if start:
                fh.seek(min(start, declared))
            data = fh.read(frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise _fail(p, f"not a readable audio file ({exc})") from exc
    expected = max(0, declared - start) if frames < 0 else min(frames, max(0, declared - start))
    if data.shape[0] < expected:
        raise _fail(
            p, f"truncated audio: {data.shape[0]} frames decoded, the header declares {expected}"
        )
    if data.shape[0] == 0:
        raise _fail(p, "the file holds no samples")
    if not np.isfinite(data).all():
        raise _fail(p, "non-finite samples (NaN or inf)")
    wave = torch.from_numpy(np.ascontiguousarray(data.T))  # [C, T]
    if mono:
        wave = wave.mean(0)
    if sample_rate is not None and sample_rate != rate:
        wave = resample(wave, rate, sample_rate)
        rate = int(sample_rate)
    return wave, rate


def resample(wave: Tensor, orig_rate: int, new_rate: int) -> Tensor:
    """Band-limited resampling (``torchaudio.functional.resample``) along the last dim.

    Raises:
        ValueError: A non-positive rate.
    """
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"sample rates must be > 0 Hz, got {orig_rate} -> {new_rate}")
    if orig_rate == new_rate:
        return wave
    import torchaudio

    return torchaudio.functional.resample(wave, int(orig_rate), int(new_rate))


def crop(wave: Tensor, max_samples: int | None, generator: torch.Generator | None = None) -> Tensor:
    """Crop ``wave [..., T]`` to at most ``max_samples``.

    A random window when ``generator`` is given (training), else the centre window
    (deterministic evaluation). Shorter clips are returned as they are.
    """
    if max_samples is None or wave.shape[-1] <= max_samples:
        return wave
    excess = wave.shape[-1] - max_samples
    if generator is None:
        offset = excess // 2
    else:
        offset = int(torch.randint(0, excess + 1, (1,), generator=generator))
    return wave[..., offset : offset + max_samples]


def write_wav(path: str | Path, wave: Tensor | np.ndarray, sample_rate: int) -> Path:
    """Write a 16-bit PCM WAV atomically (a temporary file renamed into place).

    Args:
        path: Destination.
        wave: ``[T]`` or ``[C, T]`` samples in ``[-1, 1]``.
        sample_rate: Rate in Hz.

    Returns:
        The path written.
    """
    import os
    import tempfile

    import soundfile as sf

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = wave.detach().cpu().numpy() if isinstance(wave, Tensor) else np.asarray(wave)
    if data.ndim == 2:
        data = data.T
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    os.close(fd)
    try:
        sf.write(tmp, np.clip(data, -1.0, 1.0), int(sample_rate), subtype="PCM_16", format="WAV")
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p
