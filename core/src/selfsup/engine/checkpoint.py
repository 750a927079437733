"""Atomic checkpoints, safe loading and random-number-generator state.

A checkpoint is written to a temporary file in the same directory, flushed and
fsync'ed, then renamed over the old one with :func:`os.replace`: a crash at any
moment leaves either the previous checkpoint or the new one, never half a file.
Checkpoints hold tensors and plain Python values only, so they load with
``torch.load(weights_only=True)`` (no arbitrary code runs when reading them).
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CheckpointError",
    "get_rng_state",
    "load_checkpoint",
    "save_atomic",
    "set_rng_state",
    "write_bytes_atomic",
]


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


def _atomic(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
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


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU with ``weights_only=True``.

    Raises:
        CheckpointError: The file is missing, truncated, corrupt or not a selfsup
            checkpoint; the message names it and says how to recover.
    """
    p = Path(path)
    fix = f"delete {p} to start that run again, or run without --resume"
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint; {fix}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        msg = " ".join(str(exc).split())[:300]
        raise CheckpointError(
            f"{p}: cannot load the checkpoint (corrupt or incompatible: "
            f"{type(exc).__name__}: {msg}); {fix}"
        ) from exc
    required = ("epoch", "global_step", "encoder", "objective", "optimizer", "scheduler", "rng")
    missing = [k for k in required if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(
            f"{p}: not a selfsup training checkpoint (missing {', '.join(missing)}); {fix}"
        )
    return state


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
