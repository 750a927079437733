"""The PyG cache of ``graph:pyg``: keyed by the raw files' content, never trusted blindly.

PyG datasets write a ``processed/`` folder next to their raw files and, once it exists,
never look at the raw files again; PyG also loads ``processed/pre_transform.pt`` with
full unpickling and falls back to full unpickling for ``data.pt``. So here:

* the ``processed/`` folder lives only in selfsup's cache (``cache_dir``, default
  ``$SELFSUP_CACHE`` or ``~/.cache/selfsup``), in a folder per dataset root, never in
  the root itself (a ``processed/`` folder shipped with a dataset is never read, and
  read-only roots work): raw files are copied into the entry, large ones linked;
* an entry is named by the sha256 of every raw file, the dataset class and name and
  PyG's version (:func:`_manifest`, written to ``selfsup-cache.json``): a changed,
  corrupted or repaired raw file gets a fresh entry, and the stale one is removed;
* an entry is built in a temporary folder and renamed into place (a killed build
  leaves a ``*.tmp-<pid>`` folder that the next build removes);
* ``processed/`` is loaded with ``torch.load(weights_only=True)`` only, and PyG's
  ``pre_transform.pt``/``pre_filter.pt`` (used only for a warning) are deleted;
* a failure to read the raw files names the root, the files changed since the last
  successful load and the cache folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from selfsup.safe_pickle import CorruptFileError
from torch_geometric.data import Data

__all__ = ["pyg_cached"]

_LINK_THRESHOLD = 256 * 2**20  # files above this size are symlinked, not copied
_CACHE_FORMAT = 1  # bump when what a cache entry holds changes
_MANIFEST = "selfsup-cache.json"


def _cache_root(cache_dir: str | None) -> Path:
    base = cache_dir or os.environ.get("SELFSUP_CACHE") or Path.home() / ".cache" / "selfsup"
    return Path(base).expanduser() / "graph"


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Serialise dataset preparation in ``folder`` across processes (DDP ranks, runs)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _mirror(src: Path, dst: Path) -> None:
    """Copy (or link, when large) every file under ``src`` to ``dst``, skipping processed/."""
    for path in _raw_files(src):
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.stat().st_size > _LINK_THRESHOLD:
            target.symlink_to(path.resolve())
        else:
            shutil.copyfile(path, target)


def _raw_files(root: Path) -> list[Path]:
    """The files of a dataset root that PyG may read: all but processed/ and dot-files."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and "processed" not in p.relative_to(root).parts
        and not p.name.startswith(".")
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest(root: Path, dataset: str, name: str | None) -> dict[str, Any]:
    """What a cache entry is keyed by: the raw files' sha256, the parameters, PyG's version."""
    import torch_geometric

    files = {p.relative_to(root).as_posix(): _sha256(p) for p in _raw_files(root)}
    return {
        "format": _CACHE_FORMAT,
        "dataset": dataset,
        "name": name,
        "torch_geometric": torch_geometric.__version__,
        "files": files,
    }


def _entry_key(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]


def _changed_since_last_load(folder: Path, files: dict[str, str]) -> list[str]:
    """Raw files that differ from those of the last cache entry built in ``folder``."""
    for manifest_path in folder.glob(f"*/{_MANIFEST}"):
        try:
            old = json.loads(manifest_path.read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        return sorted(f for f in {*old, *files} if old.get(f) != files.get(f))
    return []


def _local_class(cls: type, original: Path, work: Path) -> type:
    """A subclass of a PyG dataset whose ``download`` explains what is missing instead."""

    def download(self: Any) -> None:
        raw = Path(self.raw_dir)
        try:
            shown = original / raw.relative_to(work)
        except ValueError:
            shown = raw
        files = self.raw_file_names
        files = [files] if isinstance(files, str) else list(files)
        missing = [f for f in files if not (raw / f).exists()]
        raise FileNotFoundError(
            f"{cls.__name__}: raw files missing in {shown}: {', '.join(missing)} "
            f"(expected {len(files)} files: {', '.join(files)}). selfsup never downloads: "
            "put the files there (from the dataset's source) or point data.params.root "
            "at the folder that holds them"
        )

    def load(self: Any, path: str, data_cls: type = Data) -> None:
        # InMemoryDataset.load, without PyG's fall-back to full unpickling
        out = torch.load(path, weights_only=True)
        if not isinstance(out, tuple) or len(out) not in (2, 3):
            raise ValueError(f"{path} is not a processed PyG dataset")
        data, self.slices = out[0], out[1]
        data_cls = out[2] if len(out) == 3 else data_cls
        self.data = data_cls.from_dict(data) if isinstance(data, dict) else data

    return type(f"Local{cls.__name__}", (cls,), {"download": download, "load": load})


def _drop_pre_files(work: Path) -> None:
    # PyG reads processed/pre_transform.pt and pre_filter.pt with weights_only=False,
    # only to warn about a changed pre_transform (selfsup passes none): never keep them
    for path in work.rglob("processed/pre_*.pt"):
        path.unlink()


def _open(cls: type, base: Path, work: Path, name: str | None) -> Any:
    local = _local_class(cls, base, work)
    _drop_pre_files(work)
    dataset = local(str(work), name) if name is not None else local(str(work))
    _drop_pre_files(work)
    return dataset


def pyg_cached(cls: type, base: Path, name: str | None, cache_dir: str | None) -> Any:
    """The PyG dataset of ``base``, from a cache entry keyed by its raw files' content.

    Raises:
        FileNotFoundError: Raw files are missing (listed).
        CorruptFileError: PyG could not read the raw files; the message lists the files
            changed since the last successful load and the cache folder.
    """
    tag = cls.__name__.lower()
    digest = hashlib.sha1(f"{base.resolve()}\0{name}".encode()).hexdigest()[:10]
    folder = _cache_root(cache_dir) / f"pyg-{tag}-{digest}"  # one per (root, name)
    manifest = _manifest(base, cls.__name__, name)
    entry = folder / _entry_key(manifest)
    with _locked(folder):
        for leftover in folder.glob("*.tmp-*"):  # a build killed half-way
            shutil.rmtree(leftover, ignore_errors=True)
        if (entry / _MANIFEST).is_file():
            try:
                return _open(cls, base, entry, name)
            except Exception:  # an unreadable entry is rebuilt below
                shutil.rmtree(entry, ignore_errors=True)
        tmp = folder / f"{entry.name}.tmp-{os.getpid()}"
        try:
            _mirror(base, tmp)
            dataset = _open(cls, base, tmp, name)
        except FileNotFoundError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            changed = _changed_since_last_load(folder, manifest["files"])
            files = sorted(manifest["files"])
            since = (
                f"; changed since the last successful load: {', '.join(changed)}"
                if changed
                else f"; its files: {', '.join(files[:8])}{' ...' if len(files) > 8 else ''}"
            )
            detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise CorruptFileError(
                str(base),
                f"graph:pyg could not read the {cls.__name__} files "
                f"({type(exc).__name__}: {detail}){since} (cache: {folder})",
                "re-copy the files from the dataset's original source, or point "
                "data.params.root at the folder that holds them",
            ) from exc
        (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        for old in folder.iterdir():  # one entry per root: the others are stale
            if old.is_dir() and old != tmp:
                shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, entry)
        return dataset
