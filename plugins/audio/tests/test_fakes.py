"""audio:fsdd-deepfake: codec2 and espeak-ng fakes, the cache, speaker-disjoint splits, errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from selfsup_audio import fakes
from selfsup_audio.fakes import (
    MissingToolError,
    codec2_resynthesize,
    default_cache_dir,
    espeak,
    fsdd_deepfake,
)
from selfsup_audio.io import read_audio

needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("c2enc", "c2dec", "espeak-ng")),
    reason="codec2 / espeak-ng not installed (scripts/setup.sh installs them)",
)
VOICES = ["en-us+m3", "en-gb+f2", "en-029+m1"]


def _small(root: Path, cache: Path, **kw):
    params = dict(cache_dir=str(cache), max_per_speaker=4, voices=VOICES, tts_rates=[150],
                  tts_pitches=[50])  # fmt: skip
    params.update(kw)
    return fsdd_deepfake(str(root), **params)


@needs_tools
@pytest.mark.parametrize("mode", ["3200", "1300", "700C"])
def test_codec2_resynthesis_keeps_length_and_speech(fsdd_root, mode) -> None:
    wave, _ = read_audio(fsdd_root / "3_theo_7.wav")
    fake = codec2_resynthesize(wave, mode)
    assert fake.shape == wave.shape and not torch.equal(fake, wave)
    ratio = float(fake.pow(2).mean() / wave.pow(2).mean())
    assert 0.05 < ratio < 20  # a vocoded copy: similar energy, not silence
    # The energy envelope follows the original (the same word, about the same timing).
    env = [x[: len(x) // 80 * 80].reshape(-1, 80).pow(2).mean(1) for x in (wave, fake)]
    lagged = [torch.corrcoef(torch.stack([env[0][: len(env[0]) - k], env[1][k:]]))[0, 1]
              for k in range(4)]  # fmt: skip
    assert float(max(lagged)) > 0.75


@needs_tools
def test_espeak_words_at_8khz_per_voice() -> None:
    a = espeak("seven", "en-us+m3", 150, 50, 8000)
    b = espeak("seven", "en-gb+f2", 150, 50, 8000)
    assert 0.2 * 8000 < len(a) < 1.5 * 8000 and float(a.abs().max()) > 0.05
    assert len(a) != len(b) or not torch.equal(a, b)


@needs_tools
def test_dataset_labels_systems_and_disjoint_splits(fsdd_root, tmp_path) -> None:
    data = _small(fsdd_root, tmp_path / "cache")
    assert data.task == "detection" and data.num_classes == 2
    systems = data.meta["system_names"]
    assert {"real", "espeak-ng", "codec2-3200", "codec2-700C"} <= set(systems)
    names = data.meta["speaker_names"]
    seen: dict[str, set[str]] = {}
    for split in ("train", "val", "test"):
        ds, flags = data.split(split), data.flags[split]
        assert torch.equal(torch.tensor(ds.labels), flags["fake"])
        real = flags["system"] == systems.index("real")
        assert bool((flags["fake"][real] == 0).all() and (flags["fake"][~real] == 1).all())
        seen[split] = {names[i] for i in flags["speaker"].tolist()}
        assert 0 < int(flags["fake"].sum()) < len(ds)
    assert not (seen["train"] & seen["test"]) and not (seen["train"] & seen["val"])
    assert all(v in {"train", "val", "test"} for v in data.meta["voice_split"].values())
    x, y = data.test[len(data.test) - 1]
    assert x.dtype == torch.float32 and y == 1


@needs_tools
def test_cache_is_reused_and_keyed_by_parameters(fsdd_root, tmp_path) -> None:
    cache = tmp_path / "cache"
    _small(fsdd_root, cache, voices=[*VOICES[:2], "en-gb-scotland+f4"])
    files = sorted(cache.rglob("*.wav"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    _small(fsdd_root, cache, voices=[*VOICES[:2], "en-gb-scotland+f4"])
    assert {p: p.stat().st_mtime_ns for p in sorted(cache.rglob("*.wav"))} == stamps
    assert not list(cache.rglob("*.tmp"))
    _small(fsdd_root, cache, voices=[*VOICES[:2], "en-gb-scotland+f4"], codec2_modes=["2400"])
    assert list(cache.rglob("codec2/2400/*.wav"))


@needs_tools
def test_codec2_twins_give_each_chosen_clip_one_fake_per_mode(fsdd_root, tmp_path) -> None:
    modes = ["3200", "1300", "700C"]
    one = _small(fsdd_root, tmp_path / "cache", codec2_modes=modes, codec2_fraction=1.0)
    three = _small(
        fsdd_root, tmp_path / "cache", codec2_modes=modes, codec2_fraction=1.0, codec2_twins=3
    )
    for split in ("train", "val", "test"):
        names = three.meta["system_names"]
        sys3 = [names[i] for i in three.flags[split]["system"].tolist()]
        sys1 = [one.meta["system_names"][i] for i in one.flags[split]["system"].tolist()]
        n_real = sys3.count("real")
        assert n_real == sys1.count("real") > 0
        for mode in modes:  # every real clip has a twin at every mode, in its own split
            assert sys3.count(f"codec2-{mode}") == n_real
        assert sum(s.startswith("codec2") for s in sys1) == n_real  # one twin, modes cycled
        paths = three.split(split).paths
        reals = {Path(p).stem for p, s in zip(paths, sys3, strict=True) if s == "real"}
        sources = [
            Path(p).stem.rsplit("-", 1)[0]
            for p, s in zip(paths, sys3, strict=True)
            if s.startswith("codec2")
        ]
        assert set(sources) == reals  # the twins come from this split's real clips
        assert all(sources.count(r) == len(modes) for r in reals)


def test_default_cache_dir_honours_xdg(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "selfsup" / "audio"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "selfsup" / "audio"


def test_missing_binaries_name_the_apt_package(fsdd_root, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingToolError, match=r"'c2enc' was not found.*package 'codec2'"):
        _small(fsdd_root, tmp_path / "cache")
    with pytest.raises(
        MissingToolError, match=r"'espeak-ng' was not found.*apt-get install -y espeak-ng"
    ):
        _small(fsdd_root, tmp_path / "cache", codec2_modes=[])


def test_tool_failures_and_timeouts_are_named() -> None:
    with pytest.raises(RuntimeError, match=r"timed out after 0\.2 s"):
        fakes._run(["sleep", "5"], None, 0.2)
    with pytest.raises(RuntimeError, match="failed with exit code"):
        fakes._run(["ls", "/definitely/not/here"], None, 5.0)


def test_bad_parameters(fsdd_root, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"codec2_modes \['9600'\]"):
        _small(fsdd_root, tmp_path, codec2_modes=["9600"])
    with pytest.raises(ValueError, match="codec2_twins=3 exceeds the 2 codec2_modes"):
        _small(fsdd_root, tmp_path, codec2_modes=["3200", "700C"], codec2_twins=3)
    with pytest.raises(ValueError, match="no fakes asked for"):
        _small(fsdd_root, tmp_path, codec2_modes=[], voices=[])
    with pytest.raises(ValueError, match="cannot be split disjointly"):
        _small(fsdd_root, tmp_path, voices=["en-us+m3"], codec2_modes=[])
    with pytest.raises(FileNotFoundError, match="FSDD folder"):
        fsdd_deepfake(str(tmp_path / "none"), cache_dir=str(tmp_path))
