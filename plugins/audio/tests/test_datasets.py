"""audio:fsdd and audio:folder: labels, flags, splits, collate and bad inputs."""

from __future__ import annotations

import re

import pytest
import torch
from selfsup.interfaces import Padded
from selfsup_audio.datasets import ClipDataset, audio_folder, fsdd, make_trials
from selfsup_audio.io import AudioFileError

PATTERN = r"(?P<label>\d)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav"


# ------------------------------------------------------------------ FSDD (real data)


@pytest.fixture(scope="module")
def fsdd_digits(fsdd_root):
    return fsdd(str(fsdd_root))


def test_fsdd_by_index_follows_the_convention(fsdd_digits) -> None:
    data = fsdd_digits
    assert (len(data.train), len(data.val), len(data.test)) == (2400, 300, 300)
    assert data.num_classes == 10 and data.task == "classification"
    assert data.meta["sample_rate"] == 8000 and len(data.meta["speaker_names"]) == 6
    assert data.flags["test"]["index"].max() <= 4 and data.flags["val"]["index"].min() == 5
    assert data.flags["train"]["index"].min() == 10
    # y is the digit of the file name, and the flags agree with it.
    for k in (0, 777, 2399):
        path = data.train.paths[k]
        digit, speaker, _ = path.stem.split("_")
        assert data.train[k][1] == int(digit) == int(data.flags["train"]["digit"][k])
        assert data.meta["speaker_names"][int(data.flags["train"]["speaker"][k])] == speaker
    x, _ = data.train[0]
    assert x.dtype == torch.float32 and x.ndim == 1 and 0 < float(x.abs().max()) <= 1


def test_fsdd_collate_pads_with_lengths(fsdd_digits) -> None:
    items = [fsdd_digits.test[i] for i in (0, 1, 2)]
    batch, y = fsdd_digits.collate(items)
    assert isinstance(batch, Padded) and batch.lengths.tolist() == [len(x) for x, _ in items]
    assert batch.values.shape == (3, max(len(x) for x, _ in items))
    assert y.tolist() == [yy for _, yy in items]


def test_fsdd_speaker_split_is_disjoint_with_trials(fsdd_root) -> None:
    data = fsdd(str(fsdd_root), label="speaker", split="by-speaker", seed=3, max_trials=400)
    spk = {s: set(data.flags[s]["speaker"].tolist()) for s in ("train", "val", "test")}
    assert len(spk["test"]) == 2 and len(spk["val"]) == 1 and len(spk["train"]) == 3
    assert not (spk["train"] & spk["test"]) and not (spk["train"] & spk["val"])
    assert data.task == "verification"
    trials = torch.tensor(data.meta["trials"])
    assert len(trials) == 400 and int(trials[:, 2].sum()) == 200
    same = (
        data.flags["test"]["speaker"][trials[:, 0]] == data.flags["test"]["speaker"][trials[:, 1]]
    )
    assert torch.equal(same.long(), trials[:, 2])


def test_fsdd_fixed_test_speakers(tone_folder) -> None:
    root = tone_folder()  # FSDD-style names: {digit}_{speaker}_{index}.wav
    data = fsdd(str(root), split="by-speaker", test_speakers=["dave", "alice"], n_val_speakers=1)
    names = {data.meta["speaker_names"][i] for i in data.flags["test"]["speaker"].tolist()}
    assert names == {"dave", "alice"} and data.task == "classification"
    assert len(set(data.flags["val"]["speaker"].tolist())) == 1
    with pytest.raises(ValueError, match=r"test_speakers \['zoe'\] are not in the data"):
        fsdd(str(root), split="by-speaker", test_speakers=["zoe"])


def test_fsdd_shared_data_variable_is_honoured(tmp_path, tone_writer, monkeypatch) -> None:
    for name in ("0_amy_0.wav", "1_amy_7.wav", "2_amy_12.wav"):
        tone_writer(tmp_path / "fsdd" / "recordings" / name, 300.0, 0.2)
    monkeypatch.setenv("SELFSUP_SHARED_DATA", str(tmp_path))
    monkeypatch.chdir("/")
    data = fsdd()
    assert (len(data.train), len(data.val), len(data.test)) == (1, 1, 1)
    assert data.test[0][1] == 0 and data.train[0][1] == 2


@pytest.mark.heavy
def test_mfcc_stats_linear_probe_on_fsdd_is_far_above_chance(fsdd_digits) -> None:
    """The no-learning baseline through the core's probe: DATA.md says 95.0% digit."""
    from selfsup.components import build_component
    from selfsup.interfaces import EvalContext
    from selfsup.runtime import Runtime
    from selfsup_audio.encoders.spectral import MFCCStats

    probe = build_component("evaluator", {"id": "core:linear-probe"})
    ctx = EvalContext(runtime=Runtime(device=torch.device("cpu")))
    metrics = probe.evaluate(MFCCStats(sample_rate=8000), fsdd_digits, ctx)
    assert metrics["linear_acc"] > 0.9, metrics  # chance is 0.1


def test_fsdd_missing_folder_is_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"FSDD folder .*nothere"):
        fsdd(str(tmp_path / "nothere"))


# ------------------------------------------------------------------ audio:folder (synthetic)


def test_folder_regex_labels_flags_and_random_split(tone_folder) -> None:
    root = tone_folder()
    (root / "README.wav.txt").write_text("ignored: not an audio suffix")
    (root / "extra.wav").write_bytes((root / "0_alice_0.wav").read_bytes())  # no match: skipped
    data = audio_folder(str(root), pattern=PATTERN, test_fraction=0.25, val_fraction=0.25)
    n = len(data.train) + len(data.val) + len(data.test)
    assert n == 32 and data.num_classes == 2 and data.meta["class_names"] == ["0", "1"]
    assert data.meta["speaker_names"] == ["alice", "bob", "carol", "dave"]
    assert set(data.flags["train"]) == {"label", "speaker", "index"}
    assert len(data.test) == 8 and torch.bincount(torch.tensor(data.test.labels)).tolist() == [4, 4]
    for k in range(len(data.train)):
        assert data.train[k][1] == int(data.train.paths[k].name[0])


def test_folder_speaker_split_is_disjoint(tone_folder) -> None:
    data = audio_folder(str(tone_folder()), pattern=PATTERN, split="by-speaker",
                        n_val_speakers=1, n_test_speakers=1)  # fmt: skip
    sets = [set(data.flags[s]["speaker"].tolist()) for s in ("train", "val", "test")]
    assert len(sets[0]) == 2 and all(
        not (a & b) for a, b in [(sets[0], sets[1]), (sets[0], sets[2])]
    )


def test_folder_manifest_with_split_column(tone_folder, tmp_path) -> None:
    root = tone_folder(per=2)
    rows = ["file,word,speaker,split"]
    for k, path in enumerate(sorted(root.glob("*.wav"))):
        d, s, _ = path.stem.split("_")
        rows.append(f"{path.name},{['zero', 'one'][int(d)]},{s},{['train', 'test'][k % 2]}")
    manifest = tmp_path / "m.csv"
    manifest.write_text("\n".join(rows) + "\n")
    data = audio_folder(str(root), manifest=str(manifest), label="word", path_column="file",
                        split="column", sample_rate=16000, in_memory=True)  # fmt: skip
    assert data.val is None and len(data.train) == len(data.test) == 8
    assert data.meta["class_names"] == ["one", "zero"] and data.meta["sample_rate"] == 16000
    assert len(data.train[0][0]) == 2 * 1600  # 0.2 s resampled to 16 kHz


def test_folder_max_seconds_crops_train_randomly_and_eval_deterministically(tone_folder) -> None:
    data = audio_folder(str(tone_folder(per=6)), pattern=PATTERN, max_seconds=0.1)
    assert all(len(data.train[k][0]) == 800 for k in range(len(data.train)))
    k = max(range(len(data.test)), key=lambda i: data.test.paths[i].stat().st_size)
    assert torch.equal(data.test[k][0], data.test[k][0])
    torch.manual_seed(0)
    long = max(range(len(data.train)), key=lambda i: data.train.paths[i].stat().st_size)
    crops = {tuple(data.train[long][0][:3].tolist()) for _ in range(6)}
    assert len(crops) > 1


def test_clip_dataset_reads_only_the_window(tone_folder) -> None:
    paths = sorted(tone_folder(per=2).glob("*.wav"))[:2]
    streamed = ClipDataset(paths, [0, 1], 8000, max_samples=500)
    loaded = ClipDataset(paths, [0, 1], 8000, max_samples=500, in_memory=True)
    assert torch.equal(streamed[0][0], loaded[0][0]) and len(streamed[1][0]) == 500


def test_make_trials_balanced_and_correct() -> None:
    spk = [0, 0, 0, 1, 1, 2]
    trials = make_trials(spk, max_trials=100)
    assert len(trials) == 15  # every pair of 6 items
    assert all(same == int(spk[i] == spk[j]) for i, j, same in trials)


# ------------------------------------------------------------------ bad inputs


def test_regex_without_the_label_group(tone_folder) -> None:
    with pytest.raises(
        ValueError, match=r"no named group\(s\) \['label'\].*groups are \['speaker'\]"
    ):
        audio_folder(str(tone_folder()), pattern=r"\d_(?P<speaker>[a-z]+)_\d+\.wav")


def test_regex_without_named_groups_or_invalid(tone_folder) -> None:
    root = str(tone_folder())
    with pytest.raises(ValueError, match="has no named groups"):
        audio_folder(root, pattern=r"\d_[a-z]+_\d+\.wav")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        audio_folder(root, pattern=r"(?P<label>\d")
    with pytest.raises(ValueError, match="no file name matches"):
        audio_folder(root, pattern=r"(?P<label>x)\.flac")


def test_pattern_and_manifest_exclusive(tone_folder) -> None:
    with pytest.raises(ValueError, match="exactly one of 'pattern'"):
        audio_folder(str(tone_folder()))


def test_manifest_missing_column_is_named(tone_folder, tmp_path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,speaker\n0_alice_0.wav,alice\n")
    with pytest.raises(ValueError, match=re.escape("missing column(s) ['label']")):
        audio_folder(str(tone_folder()), manifest=str(manifest))


def test_manifest_missing_file_and_empty_label(tone_folder, tmp_path) -> None:
    root = tone_folder()
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\n0_alice_0.wav,0\nghost.wav,1\n")
    with pytest.raises(FileNotFoundError, match=r"line 3: audio file .*ghost\.wav does not exist"):
        audio_folder(str(root), manifest=str(manifest))
    manifest.write_text("path,label\n0_alice_0.wav,\n")
    with pytest.raises(ValueError, match=r"line 2: empty 'label'"):
        audio_folder(str(root), manifest=str(manifest))
    with pytest.raises(FileNotFoundError, match=r"manifest .*nope\.csv does not exist"):
        audio_folder(str(root), manifest=str(tmp_path / "nope.csv"))


def test_bad_split_column_values(tone_folder, tmp_path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,split\n0_alice_0.wav,0,training\n")
    with pytest.raises(ValueError, match=r"split values \['training'\]"):
        audio_folder(str(tone_folder()), manifest=str(manifest), split="column")


def test_text_file_named_wav_in_a_folder_is_named(tone_folder) -> None:
    root = tone_folder()
    (root / "1_eve_0.wav").write_text("not audio")
    with pytest.raises(AudioFileError, match=r"1_eve_0\.wav: not a readable audio file"):
        audio_folder(str(root), pattern=PATTERN)


def test_truncated_and_empty_files_in_a_folder_are_named(tone_folder) -> None:
    root = tone_folder()
    cut = root / "0_bob_1.wav"
    cut.write_bytes(cut.read_bytes()[:-200])
    with pytest.raises(AudioFileError, match=r"0_bob_1\.wav: truncated WAV"):
        audio_folder(str(root), pattern=PATTERN, in_memory=True)
    cut.write_bytes(b"")
    with pytest.raises(AudioFileError, match=r"0_bob_1\.wav: empty file"):
        audio_folder(str(root), pattern=PATTERN)


def test_missing_or_empty_folder(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        audio_folder(str(tmp_path / "none"), pattern=PATTERN)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no audio files"):
        audio_folder(str(tmp_path / "empty"), pattern=PATTERN)


def test_speaker_split_needs_enough_speakers(tone_folder) -> None:
    with pytest.raises(ValueError, match="needs more speakers"):
        audio_folder(str(tone_folder(speakers=("a", "b"))), pattern=PATTERN, split="by-speaker")


def test_folder_regex_over_sub_folders(corpus_folder) -> None:
    root = corpus_folder()  # <speaker>/ch1/<speaker>-<i>.wav
    data = audio_folder(str(root), pattern=r"(?P<speaker>\d+)/ch1/\d+-(?P<take>\d)\.wav",
                        label="speaker", val_fraction=0.0, test_fraction=0.34)  # fmt: skip
    assert data.num_classes == 4 and data.meta["class_names"] == ["100", "107", "114", "121"]
    assert set(data.flags["train"]) == {"speaker", "take"}
