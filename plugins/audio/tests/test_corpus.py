"""audio:corpus: speaker folders, streaming per item, crops, speaker splits, bad inputs."""

from __future__ import annotations

import pytest
import torch
from selfsup_audio.corpus import corpus, scan_corpus
from selfsup_audio.io import AudioFileError


def test_scan_finds_nested_files_per_speaker(corpus_folder) -> None:
    root = corpus_folder()
    (root / "100" / "notes.txt").write_text("not audio")
    records = scan_corpus(root, (".wav", ".flac"))
    assert len(records) == 12 and {r["speaker"] for r in records} == {"100", "107", "114", "121"}


def test_streams_with_bounded_crops(corpus_folder) -> None:
    data = corpus(str(corpus_folder(seconds=1.0)), sample_rate=8000, max_seconds=0.25,
                  n_val_speakers=1, n_test_speakers=2)  # fmt: skip
    assert data.train._cache is None  # nothing decoded at load time
    assert all(len(data.train[k][0]) == 2000 for k in range(len(data.train)))
    torch.manual_seed(0)
    starts = {float(data.train[0][0][0]) for _ in range(8)}
    assert len(starts) > 1  # a random window per read at train time
    assert torch.equal(data.test[0][0], data.test[0][0])  # the centre window at eval


def test_speaker_split_is_disjoint_with_trials(corpus_folder) -> None:
    data = corpus(str(corpus_folder(speakers=6)), sample_rate=8000, n_val_speakers=1,
                  n_test_speakers=2)  # fmt: skip
    sets = [set(data.flags[s]["speaker"].tolist()) for s in ("train", "val", "test")]
    assert [len(s) for s in sets] == [3, 1, 2] and not (sets[0] & sets[2])
    assert data.task == "verification" and data.meta["trials"]
    # Numeric speaker ids become dense indices (not 0..max id), named in meta.
    assert data.num_classes == 6 and data.meta["speaker_names"][0] == "100"


def test_random_split_for_speaker_identification(corpus_folder) -> None:
    data = corpus(str(corpus_folder(per=10)), sample_rate=16000, split="random",
                  val_fraction=0.2, test_fraction=0.2)  # fmt: skip
    assert data.task == "classification" and data.num_classes == 4
    assert set(data.flags["test"]["speaker"].tolist()) == {0, 1, 2, 3}
    x, _ = data.test[0]
    assert len(x) == 4800  # 0.3 s at 8 kHz resampled to 16 kHz


def test_cap_per_speaker_and_unlabelled(corpus_folder) -> None:
    data = corpus(str(corpus_folder(per=5)), sample_rate=8000, split="random", label="none",
                  max_files_per_speaker=2, val_fraction=0.0, test_fraction=0.0)  # fmt: skip
    assert len(data.train) == 8 and data.task == "none" and data.train[0][1] == -1


def test_missing_root_or_no_audio(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"corpus folder .*missing does not exist"):
        corpus(str(tmp_path / "missing"))
    (tmp_path / "spk").mkdir()
    (tmp_path / "spk" / "a.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no audio files"):
        corpus(str(tmp_path))


def test_bad_file_is_named_when_read(corpus_folder) -> None:
    root = corpus_folder()
    bad = root / "100" / "ch1" / "100-0.wav"
    bad.write_bytes(bad.read_bytes()[:100])
    data = corpus(str(root), sample_rate=8000, split="random", val_fraction=0.0,
                  test_fraction=0.0, max_seconds=None)  # fmt: skip
    k = [str(p) for p in data.train.paths].index(str(bad))
    with pytest.raises(AudioFileError, match=r"100-0\.wav: truncated WAV"):
        data.train[k]


def test_too_few_speakers(corpus_folder) -> None:
    with pytest.raises(ValueError, match="needs more speakers"):
        corpus(str(corpus_folder(speakers=3)), n_val_speakers=1, n_test_speakers=2)
