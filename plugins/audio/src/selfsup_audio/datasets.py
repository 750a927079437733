"""Audio datasets from local files: ``audio:fsdd`` and ``audio:folder``.

Items are ``(waveform [T] float32 mono in [-1, 1], y int)`` at ``meta["sample_rate"]``;
:class:`AudioSplits` batches them as ``(Padded(values [B, T_max], lengths [B]), y [B])``.
Per-item metadata lives in ``flags[split]`` (``"speaker"`` always when known, ``"digit"``
or any other label field), names in ``meta["speaker_names"]`` / ``meta["class_names"]``.

Labels come from the file name (a regex with named groups, e.g. FSDD's
``{digit}_{speaker}_{index}.wav``) or from a CSV manifest. Splits are random
(stratified), by speaker (unseen speakers at test time), by a split column/group, or
FSDD's convention (recordings 0-4 of every speaker and digit are the test set).
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from selfsup.interfaces import DataSplits, Padded
from torch import Tensor

from selfsup_audio.io import AUDIO_SUFFIXES, audio_info, crop, read_audio

__all__ = ["AudioSplits", "ClipDataset", "audio_folder", "fsdd", "make_splits", "make_trials"]

FSDD_PATTERN = r"(?P<digit>\d)_(?P<speaker>[A-Za-z]+)_(?P<index>\d+)\.wav"


class AudioSplits(DataSplits):
    """Splits of ``(waveform [T], y)`` items, collated into padded batches."""

    def collate(self, items: list[Any]) -> tuple[Padded, Tensor]:
        """``(Padded(values [B, T_max], lengths [B]), y [B])`` (zero padding)."""
        waves = [torch.as_tensor(w, dtype=torch.float32) for w, _ in items]
        ys = torch.tensor([int(y) for _, y in items], dtype=torch.long)
        return Padded.from_list(waves), ys


class ClipDataset(torch.utils.data.Dataset):
    """Audio files with integer labels, read per item (or held in memory).

    Args:
        paths: Audio files.
        labels: One integer label per file (``-1``: none).
        sample_rate: Target rate; files at another rate are resampled.
        max_samples: Crop longer clips to this many samples (``None``: keep whole).
        random_crop: A random window per read (training); otherwise the centre window.
        in_memory: Decode every file once, now (errors surface at load time).

    Without ``in_memory`` and with ``max_samples``, only the window is decoded from
    disk (soundfile seeks), so a long recording costs the crop's size, not its own.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        labels: Sequence[int],
        sample_rate: int,
        max_samples: int | None = None,
        random_crop: bool = False,
        in_memory: bool = False,
    ) -> None:
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
        self.paths = [Path(p) for p in paths]
        self.labels = [int(y) for y in labels]
        self.sample_rate = int(sample_rate)
        self.max_samples = max_samples
        self.random_crop = random_crop
        self._cache: list[Tensor] | None = None
        if in_memory:
            self._cache = [read_audio(p, sample_rate=self.sample_rate)[0] for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def _window(self, path: Path) -> Tensor:
        rate, frames, _ = audio_info(path)
        want = math.ceil(self.max_samples * rate / self.sample_rate)  # type: ignore[operator]
        start = 0
        if frames > want:
            excess = frames - want
            start = int(torch.randint(0, excess + 1, (1,))) if self.random_crop else excess // 2
        wave, _ = read_audio(path, sample_rate=self.sample_rate, start=start, frames=want)
        return wave[: self.max_samples]

    def load(self, index: int) -> Tensor:
        """The waveform of item ``index`` (cropped as configured)."""
        if self._cache is not None:
            wave = self._cache[index]
        elif self.max_samples is not None:
            return self._window(self.paths[index])
        else:
            wave = read_audio(self.paths[index], sample_rate=self.sample_rate)[0]
        if self.max_samples is None:
            return wave
        if self.random_crop and wave.shape[-1] > self.max_samples:
            excess = wave.shape[-1] - self.max_samples
            off = int(torch.randint(0, excess + 1, (1,)))
            return wave[off : off + self.max_samples]
        return crop(wave, self.max_samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.load(index), self.labels[index]


def _categorical(values: Sequence[str]) -> tuple[list[int], list[str]]:
    """Integers for a field and the name of each integer.

    Small dense non-negative integers (digits, recording indices) keep their value;
    anything else (names, sparse ids such as LibriSpeech speakers) becomes the index of
    its value in sorted order (numeric order for integers).
    """
    numeric = all(re.fullmatch(r"-?\d+", v) for v in values)
    if numeric:
        ints = [int(v) for v in values]
        if min(ints) >= 0 and max(ints) + 1 <= 2 * len(set(ints)):
            return ints, [str(i) for i in range(max(ints) + 1)]
    names = sorted(set(values), key=int) if numeric else sorted(set(values))
    lookup = {n: i for i, n in enumerate(names)}
    return [lookup[v] for v in values], names


def make_trials(
    speakers: Sequence[int], max_trials: int = 20000, seed: int = 0
) -> list[tuple[int, int, int]]:
    """Balanced verification trials ``(i, j, same)`` over items with speaker ids.

    Half target pairs (same speaker), half non-target, drawn without repetition from all
    pairs ``i < j`` with a seeded generator (all pairs when there are fewer).
    """
    spk = torch.as_tensor(list(speakers), dtype=torch.long)
    n = len(spk)
    if n < 2:
        return []
    i, j = torch.triu_indices(n, n, offset=1)
    same = spk[i] == spk[j]
    gen = torch.Generator().manual_seed(seed)
    out = []
    for want_same in (True, False):
        idx = torch.nonzero(same == want_same).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)[: max_trials // 2]]
        out += [(int(i[k]), int(j[k]), int(want_same)) for k in idx.sort().values]
    return sorted(out)


def _fraction_split(
    n: int, strata: list[int], val_fraction: float, test_fraction: float, seed: int
) -> list[str]:
    """Stratified random assignment to train/val/test (per stratum, seeded)."""
    gen = torch.Generator().manual_seed(seed)
    out = ["train"] * n
    by: dict[int, list[int]] = {}
    for k, s in enumerate(strata):
        by.setdefault(s, []).append(k)
    for members in by.values():
        order = [members[k] for k in torch.randperm(len(members), generator=gen).tolist()]
        n_test = round(len(order) * test_fraction)
        n_val = round(len(order) * val_fraction)
        for k in order[:n_test]:
            out[k] = "test"
        for k in order[n_test : n_test + n_val]:
            out[k] = "val"
    return out


def _speaker_split(
    speakers: list[str], n_val: int, n_test: int, test_speakers: Sequence[str] | None, seed: int
) -> list[str]:
    names = sorted(set(speakers))
    if test_speakers:
        unknown = sorted(set(test_speakers) - set(names))
        if unknown:
            raise ValueError(f"test_speakers {unknown} are not in the data; speakers: {names}")
        test = list(test_speakers)
        rest = [s for s in names if s not in test]
        order = torch.randperm(len(rest), generator=torch.Generator().manual_seed(seed)).tolist()
        val = [rest[k] for k in order[:n_val]]
    else:
        if n_val + n_test >= len(names):
            raise ValueError(
                f"split by speaker needs more speakers than n_val_speakers={n_val} + "
                f"n_test_speakers={n_test}; the data has {len(names)}: {names}"
            )
        order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()
        test = [names[k] for k in order[:n_test]]
        val = [names[k] for k in order[n_test : n_test + n_val]]
    return ["test" if s in test else "val" if s in val else "train" for s in speakers]


def make_splits(
    records: list[dict[str, str]],
    assign: list[str],
    label: str | None,
    sample_rate: int,
    max_seconds: float | None,
    in_memory: bool,
    source: str,
    extra_meta: dict[str, Any] | None = None,
    train_random_crop: bool = True,
) -> AudioSplits:
    """Build :class:`AudioSplits` from records (``{"path", field: value}``) and a split per record.

    Every field besides ``path`` and ``split`` becomes an integer flag; ``speaker``
    also gives ``meta["speaker_names"]``; the ``label`` field gives ``y`` and
    ``meta["class_names"]``.
    """
    fields = [k for k in records[0] if k not in ("path", "split")]
    codes: dict[str, list[int]] = {}
    names: dict[str, list[str]] = {}
    for f in fields:
        codes[f], names[f] = _categorical([r[f] for r in records])
    ys = codes[label] if label else [-1] * len(records)
    max_samples = None if max_seconds is None else max(1, round(max_seconds * sample_rate))
    splits: dict[str, Any] = {}
    flags: dict[str, dict[str, Tensor]] = {}
    for name in ("train", "val", "test"):
        idx = [k for k, a in enumerate(assign) if a == name]
        if not idx:
            splits[name] = None
            continue
        splits[name] = ClipDataset(
            [records[k]["path"] for k in idx],
            [ys[k] for k in idx],
            sample_rate,
            max_samples=max_samples,
            random_crop=train_random_crop and name == "train",
            in_memory=in_memory,
        )
        flags[name] = {f: torch.tensor([codes[f][k] for k in idx]) for f in fields}
    if splits["train"] is None:
        raise ValueError(f"{source}: the split leaves no training items; change the split params")
    meta: dict[str, Any] = {"sample_rate": sample_rate, "source": source, "fields": fields}
    if label:
        meta["class_names"] = names[label]
        meta["label"] = label
    if "speaker" in names:
        meta["speaker_names"] = names["speaker"]
    for f in fields:
        meta[f"{f}_names"] = names[f]
    meta.update(extra_meta or {})
    return AudioSplits(
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        num_classes=len(names[label]) if label else 0,
        modality="audio",
        meta=meta,
        flags=flags,
    )


def _scan(root: Path, recursive: bool) -> list[Path]:
    if not root.is_dir():
        raise FileNotFoundError(f"audio folder {root} does not exist (or is not a folder)")
    it = root.rglob("*") if recursive else root.glob("*")
    files = sorted(p for p in it if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)}) found")
    return files


def _from_pattern(root: Path, pattern: str, recursive: bool) -> list[dict[str, str]]:
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"pattern={pattern!r} is not a valid regular expression: {exc}") from exc
    if not regex.groupindex:
        raise ValueError(
            f"pattern={pattern!r} has no named groups; name the fields, e.g. "
            r"'(?P<digit>\d)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav'"
        )
    records = []
    for path in _scan(root, recursive):
        m = regex.fullmatch(path.relative_to(root).as_posix()) or regex.fullmatch(path.name)
        if m:
            records.append({"path": str(path), **{k: v for k, v in m.groupdict().items() if v}})
    if not records:
        raise ValueError(f"{root}: no file name matches pattern={pattern!r}")
    keys = set(records[0])
    if any(set(r) != keys for r in records):
        raise ValueError(f"pattern={pattern!r}: optional groups matched only some files")
    return records


def _from_manifest(
    root: Path, manifest: Path, path_column: str, columns: Sequence[str]
) -> list[dict[str, str]]:
    if not manifest.is_file():
        raise FileNotFoundError(f"manifest {manifest} does not exist")
    with manifest.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        missing = [c for c in [path_column, *columns] if c not in header]
        if missing:
            raise ValueError(
                f"manifest {manifest}: missing column(s) {missing}; its columns are {header}"
            )
        records = []
        for line, row in enumerate(reader, start=2):
            rel = (row.get(path_column) or "").strip()
            if not rel:
                raise ValueError(f"manifest {manifest}, line {line}: empty {path_column!r}")
            path = Path(rel) if os.path.isabs(rel) else root / rel
            if not path.is_file():
                raise FileNotFoundError(
                    f"manifest {manifest}, line {line}: audio file {path} does not exist"
                )
            rec = {"path": str(path)}
            for c in header:
                if c != path_column and c is not None:
                    value = (row.get(c) or "").strip()
                    if value == "" and c in columns:
                        raise ValueError(f"manifest {manifest}, line {line}: empty {c!r}")
                    rec[c] = value
            records.append(rec)
    if not records:
        raise ValueError(f"manifest {manifest} has no rows")
    return records


def _resolve_rate(records: list[dict[str, str]], sample_rate: int | None, verify: bool) -> int:
    if verify:
        rates = Counter(audio_info(r["path"])[0] for r in records)
    else:
        rates = Counter([audio_info(records[0]["path"])[0]])
    return int(sample_rate) if sample_rate else rates.most_common(1)[0][0]


def audio_folder(
    root: str,
    pattern: str | None = None,
    manifest: str | None = None,
    label: str | None = "label",
    path_column: str = "path",
    split: Literal["random", "by-speaker", "column"] = "random",
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1,
    test_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2,
    n_val_speakers: Annotated[int, Field(ge=0)] = 1,
    n_test_speakers: Annotated[int, Field(ge=1)] = 2,
    sample_rate: Annotated[int, Field(gt=0)] | None = None,
    max_seconds: Annotated[float, Field(gt=0)] | None = None,
    in_memory: bool = False,
    recursive: bool = True,
    seed: int = 0,
) -> AudioSplits:
    """Any folder of audio files, labelled by a filename regex or a CSV manifest.

    Args:
        root: The folder (manifest paths are relative to it).
        pattern: A regex with named groups, matched against each file's path relative
            to ``root`` (or its name); non-matching files are skipped. Groups become
            flags; ``speaker`` is the speaker id.
        manifest: A CSV file with a ``path_column`` and the label/speaker/split columns.
        label: The group/column that gives ``y`` (``None``: unlabelled, ``y = -1``).
        path_column: The manifest's file column.
        split: ``random`` (stratified by label), ``by-speaker`` (speaker-disjoint), or
            ``column`` (a ``split`` group/column with values train/val/test).
        val_fraction: Validation share (random split).
        test_fraction: Test share (random split).
        n_val_speakers: Validation speakers (split by speaker).
        n_test_speakers: Test speakers (split by speaker).
        sample_rate: Resample to this rate; default: the most common rate of the files.
        max_seconds: Crop clips to this length (random window for train, centre else).
        in_memory: Decode everything at load time (small datasets).
        recursive: Search sub-folders.
        seed: Seed of the random and speaker splits.

    Raises:
        ValueError: Neither or both of pattern/manifest, a regex without the ``label``
            group, a manifest without a needed column, a bad split value.
        FileNotFoundError: The folder, manifest or a listed file is missing.
    """
    base = Path(root).expanduser()
    if (pattern is None) == (manifest is None):
        raise ValueError(
            "audio:folder needs exactly one of 'pattern' (a regex) or 'manifest' (CSV)"
        )
    needed = [c for c in (label, "speaker" if split == "by-speaker" else None) if c]
    if split == "column":
        needed.append("split")
    if pattern is not None:
        records = _from_pattern(base, pattern, recursive)
        missing = [c for c in needed if c not in records[0]]
        if missing:
            raise ValueError(
                f"pattern={pattern!r} has no named group(s) {missing} (needed for label={label!r},"
                f" split={split!r}); its groups are {sorted(re.compile(pattern).groupindex)}"
            )
    else:
        records = _from_manifest(base, Path(manifest), path_column, needed)  # type: ignore[arg-type]
    source = manifest or f"{root} ({pattern})"
    if split == "column":
        bad = sorted({r["split"] for r in records} - {"train", "val", "test"})
        if bad:
            raise ValueError(f"{source}: split values {bad}; use train, val or test")
        assign = [r["split"] for r in records]
    elif split == "by-speaker":
        spk = [r["speaker"] for r in records]
        assign = _speaker_split(spk, n_val_speakers, n_test_speakers, None, seed)
    else:
        strata = _categorical([r[label] for r in records])[0] if label else [0] * len(records)
        assign = _fraction_split(len(records), strata, val_fraction, test_fraction, seed)
    rate = _resolve_rate(records, sample_rate, verify=True)
    return make_splits(records, assign, label, rate, max_seconds, in_memory, str(source))


def fsdd(
    root: str = "../shared/data/fsdd/recordings",
    label: Literal["digit", "speaker"] = "digit",
    split: Literal["by-index", "by-speaker"] = "by-index",
    test_index_max: Annotated[int, Field(ge=0)] = 4,
    val_index_max: Annotated[int, Field(ge=0)] = 9,
    n_val_speakers: Annotated[int, Field(ge=0)] = 1,
    n_test_speakers: Annotated[int, Field(ge=1)] = 2,
    test_speakers: list[str] | None = None,
    sample_rate: Annotated[int, Field(gt=0)] = 8000,
    max_seconds: Annotated[float, Field(gt=0)] | None = None,
    max_trials: Annotated[int, Field(ge=2)] = 20000,
    seed: int = 0,
) -> AudioSplits:
    """The Free Spoken Digit Dataset: ``{digit}_{speaker}_{index}.wav`` at 8 kHz.

    Args:
        root: The ``recordings`` folder (``$SELFSUP_SHARED_DATA/fsdd/recordings`` is
            used when ``root`` is the default and the variable is set).
        label: ``digit`` (keyword spotting) or ``speaker`` (speaker ID/verification).
        split: ``by-index``: FSDD's convention, recordings ``0..test_index_max`` of
            every speaker and digit are the test set and ``test_index_max+1 ..
            val_index_max`` validation; ``by-speaker``: unseen speakers at test time.
        test_index_max: Last recording index of the test set (by-index).
        val_index_max: Last recording index of the validation set (by-index).
        n_val_speakers: Validation speakers (by-speaker).
        n_test_speakers: Test speakers (by-speaker), drawn with ``seed``.
        test_speakers: Fix the test speakers by name instead (by-speaker).
        sample_rate: Output rate (FSDD is 8000 Hz; other rates resample).
        max_seconds: Crop clips to this length (random for train, centre else).
        max_trials: Verification trials kept (label=speaker with split=by-speaker,
            where the task is ``verification`` and ``meta["trials"]`` pairs test items).
        seed: Seed of the speaker split and the trials.

    Raises:
        FileNotFoundError: The folder is missing or holds no FSDD files.
    """
    env = os.environ.get("SELFSUP_SHARED_DATA")
    if env and root == "../shared/data/fsdd/recordings":
        root = str(Path(env) / "fsdd" / "recordings")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(
            f"FSDD folder {base} does not exist; point 'root' at the 'recordings' folder of "
            "the Free Spoken Digit Dataset (files like 0_george_0.wav)"
        )
    records = _from_pattern(base, FSDD_PATTERN, recursive=False)
    if split == "by-index":
        if val_index_max < test_index_max:
            raise ValueError(f"val_index_max={val_index_max} < test_index_max={test_index_max}")
        assign = [
            "test"
            if int(r["index"]) <= test_index_max
            else "val"
            if int(r["index"]) <= val_index_max
            else "train"
            for r in records
        ]
    else:
        if label == "speaker" and test_speakers is None and n_test_speakers < 2:
            raise ValueError("verification on unseen speakers needs n_test_speakers >= 2")
        spk = [r["speaker"] for r in records]
        assign = _speaker_split(spk, n_val_speakers, n_test_speakers, test_speakers, seed)
    data = make_splits(records, assign, label, sample_rate, max_seconds, True, str(base))
    data.meta["class_names"] = (
        [str(d) for d in range(10)] if label == "digit" else data.meta["speaker_names"]
    )
    if label == "speaker" and split == "by-speaker" and data.test is not None:
        # Unseen test speakers: their labels are identities for verification, not classes.
        trials = make_trials(data.flags["test"]["speaker"].tolist(), max_trials, seed)
        data.meta["trials"] = trials
        data.task = "verification"
    return data
