"""``audio:fsdd-deepfake``: real FSDD speech against fakes made from it, speaker-disjoint.

Two kinds of fake, both made offline by Debian tools run through ``subprocess`` with a
timeout, cached on disk and written atomically:

* **codec2 resynthesis**: a real clip encoded and decoded by the ``codec2`` vocoder
  (``c2enc``/``c2dec``, 8 kHz 16-bit raw) at one of several bitrates; it keeps the
  speaker's words and prosody but is synthetic speech (a vocoder artefact detector's
  task);
* **espeak-ng text-to-speech**: the same digit words ("zero" ... "nine") spoken by
  several espeak-ng voices at several rates and pitches, resampled to 8 kHz.

Real speakers are split disjointly (train/val/test), a codec2 fake follows the split
of the clip it came from, and the espeak-ng voices are split disjointly too, so a
detector cannot succeed by recognising voices. ``y`` is ``1`` for a fake (task
``detection``); flags ``fake``, ``speaker``, ``digit`` and ``system`` (index into
``meta["system_names"]``: ``real``, ``codec2-<mode>``, ``espeak-ng``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from pydantic import Field

from selfsup_audio.datasets import FSDD_PATTERN, AudioSplits, _from_pattern, make_splits
from selfsup_audio.io import read_audio, resample, write_wav

__all__ = [
    "MissingToolError",
    "codec2_resynthesize",
    "default_cache_dir",
    "espeak",
    "fsdd_deepfake",
]

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CODEC2_MODES = ("3200", "2400", "1600", "1400", "1300", "1200", "700C", "450")
CODEC2_RATE = 8000
#: Samples the codec2 encode/decode chain delays speech by (measured on FSDD at 8 kHz:
#: 100-250 for 3200-1200 bit/s); removed so that a fake's onset cannot give it away.
CODEC2_DELAY = 160
_TOOLS = {"c2enc": "codec2", "c2dec": "codec2", "espeak-ng": "espeak-ng"}
_VERSION = "v2"  # bump when the generation recipe changes (invalidates the cache)


class MissingToolError(RuntimeError):
    """A command-line tool the dataset needs is not installed."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/selfsup/audio`` (``~/.cache/selfsup/audio`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "selfsup" / "audio"


def require_tool(name: str) -> str:
    """The path of ``name`` on ``PATH``.

    Raises:
        MissingToolError: Naming the binary and the Debian package that provides it.
    """
    path = shutil.which(name)
    if path is None:
        package = _TOOLS.get(name, name)
        raise MissingToolError(
            f"'{name}' was not found on PATH; install the Debian package '{package}' "
            f"(apt-get install -y {package}, as scripts/setup.sh does) or drop the fakes "
            "that need it (codec2_modes: [] / voices: [])"
        )
    return path


def _run(cmd: list[str], data: bytes | None, timeout: float) -> bytes:
    try:
        out = subprocess.run(cmd, input=data, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{' '.join(cmd)} timed out after {timeout} s") from exc
    if out.returncode != 0:
        tail = out.stderr.decode(errors="replace")[-400:]
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {out.returncode}: {tail}")
    return out.stdout


def codec2_resynthesize(wave: torch.Tensor, mode: str, timeout: float = 30.0) -> torch.Tensor:
    """Encode and decode an 8 kHz clip through codec2 at ``mode``; same length out.

    Args:
        wave: ``[T]`` float samples in ``[-1, 1]`` at 8000 Hz.
        mode: A codec2 bitrate mode (``"3200"`` ... ``"450"``, ``"700C"``).
        timeout: Seconds allowed per tool call.

    Raises:
        MissingToolError: ``c2enc`` or ``c2dec`` is not installed.
        ValueError: An unknown mode.
    """
    if mode not in CODEC2_MODES:
        raise ValueError(f"codec2 mode {mode!r} is not one of {list(CODEC2_MODES)}")
    enc, dec = require_tool("c2enc"), require_tool("c2dec")
    n = wave.shape[-1]
    padded = -(-(n + CODEC2_DELAY) // 320) * 320 + 320  # whole 40 ms frames past the delay
    pcm = np.zeros(padded, dtype="<i2")
    pcm[:n] = (wave.clamp(-1, 1).numpy() * 32767.0).round().astype("<i2")
    bits = _run([enc, mode, "-", "-"], pcm.tobytes(), timeout)
    raw = _run([dec, mode, "-", "-"], bits, timeout)
    out = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    out = out[CODEC2_DELAY : CODEC2_DELAY + n]  # undo the codec's delay: same timing as the source
    out = np.pad(out, (0, n - out.shape[0]))
    return torch.from_numpy(out.copy())


def _trim(wave: torch.Tensor, sample_rate: int, db: float = 40.0) -> torch.Tensor:
    """Cut leading/trailing frames more than ``db`` below the peak frame energy."""
    hop = max(1, sample_rate // 100)
    frames = wave[: wave.shape[0] // hop * hop].reshape(-1, hop)
    if frames.shape[0] == 0:
        return wave
    energy = 10 * torch.log10(frames.pow(2).mean(1) + 1e-10)
    keep = torch.nonzero(energy > energy.max() - db).flatten()
    return wave[int(keep[0]) * hop : (int(keep[-1]) + 1) * hop]


def espeak(
    word: str, voice: str, speed: int, pitch: int, sample_rate: int, timeout: float = 30.0
) -> torch.Tensor:
    """``word`` spoken by espeak-ng, trimmed of silence and resampled to ``sample_rate``.

    Raises:
        MissingToolError: ``espeak-ng`` is not installed.
    """
    exe = require_tool("espeak-ng")
    with tempfile.TemporaryDirectory(prefix="selfsup-espeak-") as tmp:
        out = Path(tmp) / "say.wav"
        _run(
            [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), word],
            None,
            timeout,
        )
        wave, rate = read_audio(out)
    return resample(_trim(wave, rate), rate, sample_rate)


def _cached(path: Path, make: callable) -> Path:  # type: ignore[valid-type]
    if not path.is_file():
        wave, rate = make()
        write_wav(path, wave, rate)
    return path


def _split_voices(voices: list[str], counts: tuple[int, int, int], seed: int) -> dict[str, str]:
    """Assign voices to splits in proportion to the real speakers (each split >= 1)."""
    order = torch.randperm(len(voices), generator=torch.Generator().manual_seed(seed + 1)).tolist()
    total = sum(counts)
    n_test = max(1, round(len(voices) * counts[2] / total)) if counts[2] else 0
    n_val = max(1, round(len(voices) * counts[1] / total)) if counts[1] else 0
    if n_test + n_val >= len(voices):
        raise ValueError(
            f"{len(voices)} espeak-ng voice(s) cannot be split disjointly into train/val/test; "
            "give at least 3 voices (or n_val_speakers: 0 and 2 voices)"
        )
    names = ["test"] * n_test + ["val"] * n_val
    names += ["train"] * (len(voices) - len(names))
    return {voices[k]: names[i] for i, k in enumerate(order)}


def fsdd_deepfake(
    root: str = "../shared/data/fsdd/recordings",
    cache_dir: str | None = None,
    codec2_modes: list[str] = ["3200", "1600", "1300", "700C"],  # noqa: B006
    codec2_fraction: Annotated[float, Field(ge=0, le=1)] = 0.5,
    codec2_twins: Annotated[int, Field(ge=1)] = 1,
    voices: list[str] = [  # noqa: B006
        "en-us+m3",
        "en-us+f2",
        "en-gb+m1",
        "en-gb-scotland+f4",
        "en-029+m5",
        "en-gb-x-rp+f1",
    ],
    tts_rates: list[int] = [120, 150, 180],  # noqa: B006
    tts_pitches: list[int] = [35, 50, 65],  # noqa: B006
    n_val_speakers: Annotated[int, Field(ge=0)] = 1,
    n_test_speakers: Annotated[int, Field(ge=1)] = 2,
    test_speakers: list[str] | None = None,
    max_per_speaker: Annotated[int, Field(ge=1)] | None = None,
    sample_rate: Annotated[int, Field(gt=0)] = 8000,
    timeout_s: Annotated[float, Field(gt=0)] = 30.0,
    workers: Annotated[int, Field(ge=1)] = 2,
    seed: int = 0,
) -> AudioSplits:
    """FSDD real clips (``y = 0``) vs codec2 and espeak-ng fakes (``y = 1``).

    Args:
        root: The FSDD ``recordings`` folder (``$SELFSUP_SHARED_DATA`` honoured).
        cache_dir: Where generated fakes are kept (default :func:`default_cache_dir`);
            files are keyed by source content hash, mode, voice, rate and pitch.
        codec2_modes: Bitrate modes; the resynthesised clips cycle through them.
        codec2_fraction: Share of the real clips that get codec2 twins.
        codec2_twins: codec2 twins per chosen clip, each at the next mode of
            ``codec2_modes`` (``len(codec2_modes)``: one per mode; more fakes per
            real clip, so a larger, finer-grained test set from the same speakers).
        voices: espeak-ng voices (``voice+variant``), split disjointly across splits.
        tts_rates: espeak-ng speaking rates (words per minute) per word and voice.
        tts_pitches: espeak-ng pitches (0-99) per word and voice.
        n_val_speakers: Real speakers held out for validation.
        n_test_speakers: Real speakers held out for test.
        test_speakers: Fix the test speakers by name.
        max_per_speaker: Keep at most this many real clips per speaker (quick runs).
        sample_rate: Output rate (codec2 runs at 8 kHz; other rates resample).
        timeout_s: Seconds allowed per tool call.
        workers: Tool calls run in parallel while filling the cache.
        seed: Seed of the speaker and voice splits and the clip subsets.

    Raises:
        MissingToolError: ``c2enc``/``c2dec``/``espeak-ng`` is missing (naming the
            Debian package) while fakes that need it are asked for.
        FileNotFoundError: The FSDD folder is missing.
    """
    from selfsup_audio.datasets import _speaker_split

    env = os.environ.get("SELFSUP_SHARED_DATA")
    if env and root == "../shared/data/fsdd/recordings":
        root = str(Path(env) / "fsdd" / "recordings")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(f"FSDD folder {base} does not exist (files like 0_george_0.wav)")
    bad = [m for m in codec2_modes if m not in CODEC2_MODES]
    if bad:
        raise ValueError(
            f"codec2_modes {bad} are not codec2 modes; choose from {list(CODEC2_MODES)}"
        )
    if codec2_modes and codec2_twins > len(codec2_modes):
        raise ValueError(
            f"codec2_twins={codec2_twins} exceeds the {len(codec2_modes)} codec2_modes "
            "given; a clip has at most one twin per mode"
        )
    if not codec2_modes and not voices:
        raise ValueError("no fakes asked for: give codec2_modes and/or voices")
    if codec2_modes and codec2_fraction > 0:
        require_tool("c2enc"), require_tool("c2dec")
    if voices:
        require_tool("espeak-ng")
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cache = cache / f"fsdd-deepfake-{_VERSION}"

    gen = torch.Generator().manual_seed(seed)
    real = _from_pattern(base, FSDD_PATTERN, recursive=False)
    if max_per_speaker is not None:
        by: dict[str, list[dict[str, str]]] = {}
        for r in real:
            by.setdefault(r["speaker"], []).append(r)
        real = []
        for spk in sorted(by):
            keep = torch.randperm(len(by[spk]), generator=gen)[:max_per_speaker].sort().values
            real += [by[spk][k] for k in keep.tolist()]
    spk_split = _speaker_split(
        [r["speaker"] for r in real], n_val_speakers, n_test_speakers, test_speakers, seed
    )
    split_of = {r["speaker"]: s for r, s in zip(real, spk_split, strict=True)}

    jobs: list[tuple[dict[str, str], Path, object]] = []
    records = [
        {
            "path": r["path"],
            "speaker": r["speaker"],
            "digit": r["digit"],
            "fake": "0",
            "system": "real",
        }
        for r in real
    ]
    assign = list(spk_split)
    n_codec = round(len(real) * codec2_fraction) if codec2_modes else 0
    chosen = torch.randperm(len(real), generator=gen)[:n_codec].sort().values.tolist()
    pairs = [
        (i, codec2_modes[(k * codec2_twins + j) % len(codec2_modes)])
        for k, i in enumerate(chosen)
        for j in range(codec2_twins)
    ]
    for i, mode in pairs:
        src = real[i]
        digest = hashlib.sha1(Path(src["path"]).read_bytes()).hexdigest()[:12]
        out = cache / "codec2" / mode / f"{Path(src['path']).stem}-{digest}.wav"

        def make(src: dict[str, str] = src, mode: str = mode) -> tuple[torch.Tensor, int]:
            wave, _ = read_audio(src["path"], sample_rate=CODEC2_RATE)
            return codec2_resynthesize(wave, mode, timeout_s), CODEC2_RATE

        rec = {
            "path": str(out),
            "speaker": src["speaker"],
            "digit": src["digit"],
            "fake": "1",
            "system": f"codec2-{mode}",
        }
        jobs.append((rec, out, make))
        assign.append(split_of[src["speaker"]])
    counts = tuple(spk_split.count(s) for s in ("train", "val", "test"))
    voice_split = _split_voices(list(voices), counts, seed) if voices else {}  # type: ignore[arg-type]
    for voice in voices:
        for digit, word in enumerate(WORDS):
            for rate in tts_rates:
                for pitch in tts_pitches:
                    out = cache / "espeak-ng" / voice / f"{word}-s{rate}-p{pitch}.wav"

                    def make(
                        w: str = word, v: str = voice, s: int = rate, p: int = pitch
                    ) -> tuple[torch.Tensor, int]:
                        return espeak(w, v, s, p, CODEC2_RATE, timeout_s), CODEC2_RATE

                    rec = {
                        "path": str(out),
                        "speaker": f"espeak:{voice}",
                        "digit": str(digit),
                        "fake": "1",
                        "system": "espeak-ng",
                    }
                    jobs.append((rec, out, make))
                    assign.append(voice_split[voice])
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda job: _cached(job[1], job[2]), jobs))
    records += [rec for rec, _, _ in jobs]
    data = make_splits(records, assign, "fake", sample_rate, None, True, str(base))
    data.task = "detection"
    data.meta.update(
        class_names=["real", "fake"],
        cache_dir=str(cache),
        voice_split=voice_split,
        codec2_modes=list(codec2_modes),
    )
    return data
