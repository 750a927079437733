"""``audio:corpus``: a speech corpus streamed from disk, ``<root>/<speaker>/**/<file>``.

The layout LibriSpeech (``speaker/chapter/utt.flac``) and VoxCeleb (``id/video/utt.wav``)
ship: the first folder under ``root`` is the speaker. Only the file list is held in
memory; every item is decoded when it is read, and only the window that is kept
(``max_seconds``: a random window for training, the centre window for val/test), so a
user with 1,000 hours trains with bounded memory. Unseen-speaker splits give a
``verification`` task with trial pairs over the test speakers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import Field

from selfsup_audio.datasets import (
    AudioSplits,
    _categorical,
    _fraction_split,
    _speaker_split,
    make_splits,
    make_trials,
)

__all__ = ["corpus", "scan_corpus"]


def scan_corpus(root: Path, extensions: tuple[str, ...]) -> list[dict[str, str]]:
    """``[{"path", "speaker"}]`` for every audio file under ``root/<speaker>/``, sorted.

    Walks the tree with ``os.scandir`` (no header reads), so it stays fast on large
    corpora.

    Raises:
        FileNotFoundError: ``root`` is missing or holds no speaker folder with audio.
    """
    if not root.is_dir():
        raise FileNotFoundError(
            f"corpus folder {root} does not exist; expected <root>/<speaker>/.../<file>.flac|wav"
        )
    exts = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
    records: list[dict[str, str]] = []
    for speaker in sorted(e.name for e in os.scandir(root) if e.is_dir()):
        for dirpath, dirnames, filenames in os.walk(root / speaker):
            dirnames.sort()
            for name in sorted(filenames):
                if name.lower().endswith(exts):
                    records.append({"path": os.path.join(dirpath, name), "speaker": speaker})
    if not records:
        raise FileNotFoundError(
            f"{root}: no audio files ({', '.join(exts)}) under speaker folders; expected "
            "<root>/<speaker>/.../<file> (LibriSpeech and VoxCeleb layouts)"
        )
    return records


def _cap_per_speaker(
    records: list[dict[str, str]], max_files: int, seed: int
) -> list[dict[str, str]]:
    by: dict[str, list[dict[str, str]]] = {}
    for r in records:
        by.setdefault(r["speaker"], []).append(r)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for speaker in sorted(by):
        items = by[speaker]
        keep = sorted(torch.randperm(len(items), generator=gen)[:max_files].tolist())
        out += [items[k] for k in keep]
    return out


def corpus(
    root: str,
    sample_rate: Annotated[int, Field(gt=0)] = 16000,
    max_seconds: Annotated[float, Field(gt=0)] | None = 4.0,
    split: Literal["by-speaker", "random"] = "by-speaker",
    label: Literal["speaker", "none"] = "speaker",
    n_val_speakers: Annotated[int, Field(ge=0)] = 2,
    n_test_speakers: Annotated[int, Field(ge=1)] = 4,
    val_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1,
    test_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.1,
    max_files_per_speaker: Annotated[int, Field(ge=1)] | None = None,
    extensions: tuple[str, ...] = (".flac", ".wav"),
    max_trials: Annotated[int, Field(ge=2)] = 20000,
    seed: int = 0,
) -> AudioSplits:
    """A streaming ``speaker/**/file`` corpus (reads one item at a time, never all).

    Args:
        root: The corpus folder; each sub-folder is one speaker.
        sample_rate: Output rate; files at other rates are resampled when read.
        max_seconds: Clip length kept per item: a random window at train time, the
            centre window for val/test (deterministic); ``None`` keeps whole files
            (unbounded memory per item, not advised for long recordings).
        split: ``by-speaker`` (val/test speakers unseen in training; the task is then
            ``verification`` with ``meta["trials"]`` over the test split) or
            ``random`` (files split within each speaker: speaker identification).
        label: ``speaker`` (``y`` is the speaker index) or ``none`` (``y = -1``).
        n_val_speakers: Validation speakers (by-speaker).
        n_test_speakers: Test speakers (by-speaker).
        val_fraction: Validation share per speaker (random).
        test_fraction: Test share per speaker (random).
        max_files_per_speaker: Keep at most this many files per speaker (seeded), for
            quick runs on a large corpus.
        extensions: File suffixes to include.
        max_trials: Verification trials kept (by-speaker).
        seed: Seed of the splits, the file cap and the trials.

    Raises:
        FileNotFoundError: The folder is missing or has no audio under speaker folders.
        ValueError: Too few speakers for the requested speaker split.
    """
    base = Path(root).expanduser()
    records = scan_corpus(base, tuple(extensions))
    if max_files_per_speaker is not None:
        records = _cap_per_speaker(records, max_files_per_speaker, seed)
    speakers = [r["speaker"] for r in records]
    if split == "by-speaker":
        assign = _speaker_split(speakers, n_val_speakers, n_test_speakers, None, seed)
    else:
        strata = _categorical(speakers)[0]
        assign = _fraction_split(len(records), strata, val_fraction, test_fraction, seed)
    target = "speaker" if label == "speaker" else None
    data = make_splits(records, assign, target, sample_rate, max_seconds, False, str(base))
    data.meta["num_files"] = len(records)
    if split == "by-speaker" and target and data.test is not None:
        data.meta["trials"] = make_trials(data.flags["test"]["speaker"].tolist(), max_trials, seed)
        data.task = "verification"
    return data
