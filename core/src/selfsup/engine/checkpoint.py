"""Atomic checkpoints, safe loading and random-number-generator state.

A checkpoint is written to a temporary file in the same directory, flushed and
fsync'ed, then renamed over the old one with :func:`os.replace`: a crash at any
moment leaves either the previous checkpoint or the new one, never half a file.
Checkpoints hold tensors and plain Python values only, so they load with
``torch.load(weights_only=True)`` (no arbitrary code runs when reading them).

Temporary files are named ``.<name>.<random>.selfsup-tmp`` and created with mode
``0666 & ~umask`` (the mode of any file the user creates, not ``mkstemp``'s 0600), so
the final file honours the umask too. A process killed in the middle of a write
(``SIGKILL`` cannot be caught) leaves its temporary file behind; the runner removes
those of an experiment directory at its next start (:func:`remove_temp_files`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import re
import secrets
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parameter import is_lazy

__all__ = [
    "TEMP_SUFFIX",
    "CheckpointError",
    "check_fits",
    "checkpoint_fix",
    "get_rng_state",
    "is_temp_file",
    "load_checkpoint",
    "remove_temp_files",
    "save_atomic",
    "set_rng_state",
    "write_bytes_atomic",
]

#: How the temporary files of atomic writes end: ``.<name>.<random>.selfsup-tmp``.
TEMP_SUFFIX = ".selfsup-tmp"
#: Temporary files: ours, and those of selfsup versions that used ``mkstemp``
#: (``.<name>.<8 characters>.tmp``).
_TEMP_NAME = re.compile(r"^\..+\.[0-9a-z_]+\.selfsup-tmp$|^\..+\.[0-9a-z_]{8}\.tmp$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read; the message names the file and the fix."""


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (no-op where directories cannot be opened, e.g. Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new temporary file next to ``path``, opened for writing, mode ``0666 & ~umask``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            return os.open(tmp, flags, 0o666), tmp  # the OS applies the umask
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name next to {path}")


def _atomic(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)  # 0777 & ~umask, like mkdir(1)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def save_atomic(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` with :func:`torch.save`, atomically.

    Args:
        state: Tensors and plain Python values (dicts, lists, numbers, strings).
        path: The destination; its directory is created if needed.
    """
    _atomic(Path(path), lambda handle: torch.save(state, handle))


def write_bytes_atomic(data: bytes, path: str | Path) -> None:
    """Write bytes atomically (used for ``results.json``, ``config.yaml`` and friends)."""
    _atomic(Path(path), lambda handle: handle.write(data))


def is_temp_file(path: Path) -> bool:
    """Whether ``path`` is the temporary file of an atomic write (ours or older selfsup's)."""
    return path.is_file() and _TEMP_NAME.match(path.name) is not None


def remove_temp_files(root: str | Path) -> list[Path]:
    """Remove the temporary files that killed writes left under ``root``; the removed files.

    Only names that atomic writes use are touched (see :data:`TEMP_SUFFIX`); call this
    when no other process writes under ``root`` (the runner does, on rank 0, before
    the runs start).
    """
    base = Path(root)
    if not base.is_dir():
        return []
    removed = []
    for path in sorted(base.rglob(".*")):
        if is_temp_file(path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def checkpoint_fix(path: str | Path) -> str:
    """What to do about a checkpoint that cannot be used (the end of every message)."""
    return (
        f"delete {path} and run again with --resume to train that run from scratch, "
        "or resume from another run directory (--set output_dir=...)"
    )


def _why_unreadable(exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, without torch's advice.

    torch's message suggests retrying with ``weights_only=False``: the right advice for
    an old trusted file, the wrong one for a malicious file, which is exactly what that
    retry would execute. Only the facts are kept.
    """
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return (
            f"it asks to import {found.group(1)}, which a checkpoint never holds: "
            "corrupt or untrusted, and not loaded, so nothing in it ran"
        )
    if isinstance(exc, EOFError) or not text.strip():
        return f"corrupt: empty or truncated ({type(exc).__name__})"
    operand = re.search(r"Unsupported operand (\d+)", text)
    if operand or isinstance(exc, pickle.UnpicklingError):
        what = f"unknown pickle opcode {operand.group(1)}" if operand else "unreadable pickle"
        return f"corrupt or not written by torch.save: {what}"
    first = re.split(r"(?<=[.:])\s+(?=[A-Z])", " ".join(text.split()))[0]
    if "weights_only" in first:
        first = type(exc).__name__
    return f"corrupt or truncated: {first[:160]}"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU with ``weights_only=True``.

    Raises:
        CheckpointError: The file is missing, truncated, corrupt, untrusted or not a
            selfsup checkpoint; the message (one line) names it and says how to
            recover, never to load it unsafely.
    """
    p = Path(path)
    fix = checkpoint_fix(p)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint; {fix}")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise here
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{p}: not a selfsup checkpoint ({_why_unreadable(exc)}); {fix}"
        ) from None
    required = ("epoch", "global_step", "encoder", "objective", "optimizer", "scheduler", "rng")
    missing = [k for k in required if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(
            f"{p}: not a selfsup training checkpoint (missing {', '.join(missing)}); {fix}"
        )
    return state


def _shape(value: Any) -> list[int] | None:
    shape = getattr(value, "shape", None)
    return list(shape) if shape is not None else None


def check_fits(
    part: str, stored: Mapping[str, Any], expected: Mapping[str, Any], path: str | Path
) -> None:
    """Check that a checkpoint's state dict fits a module, before ``load_state_dict``.

    ``load_state_dict`` lists every mismatch (dozens of lines for another width);
    this names the first one, in one line, with the fix.

    Args:
        part: What the state belongs to (``"encoder"``, ``"objective"``).
        stored: The state dict in the checkpoint.
        expected: The module's own ``state_dict()``.
        path: The checkpoint (named in the message).

    Raises:
        CheckpointError: A parameter or buffer is missing, extra or of another shape.
    """
    if not isinstance(stored, Mapping):
        raise CheckpointError(
            f"{path}: not a selfsup training checkpoint ({part} is a "
            f"{type(stored).__name__}, not a state dict); {checkpoint_fix(path)}"
        )
    problem = None
    for key, value in expected.items():
        if key not in stored:
            problem = f"{part} parameter {key!r} of the model is not in the checkpoint"
        elif is_lazy(value):
            continue  # shaped by load_state_dict itself
        elif _shape(stored[key]) != _shape(value):
            problem = (
                f"{part} parameter {key!r} is {_shape(stored[key])} in the checkpoint, "
                f"{_shape(value)} in the model"
            )
        if problem:
            break
    extra = [key for key in stored if key not in expected]
    if problem is None and extra:
        problem = f"the checkpoint has {part} parameter {extra[0]!r}, which the model has not"
    if problem:
        raise CheckpointError(
            f"{path}: the checkpoint does not fit this run's model ({problem}): it was "
            f"written by another model; {checkpoint_fix(path)}"
        )


def get_rng_state() -> dict[str, Any]:
    """The state of Python's, NumPy's, torch's CPU and CUDA generators.

    Everything is a tensor, list or number, so the result survives a
    ``weights_only=True`` load.
    """
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore generators saved by :func:`get_rng_state` (CUDA only where available)."""
    version, internal, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))
    npst = state["numpy"]
    keys = np.asarray(torch.as_tensor(npst["keys"]).numpy(), dtype=np.uint32)
    np.random.set_state(
        (npst["name"], keys, int(npst["pos"]), int(npst["has_gauss"]), npst["cached_gaussian"])
    )
    torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8).cpu() for s in cuda])
