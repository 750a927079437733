"""Read pickle-based data files without ever running code from them.

A pickle is a small program: ``pickle.load`` imports and calls whatever globals the
file names, so a "data file" whose ``__reduce__`` returns ``os.system`` runs a
command. Some dataset formats people have are pickles nonetheless (the Planetoid
citation graphs: ``ind.cora.x``, ``ind.cora.graph``, ...). :func:`safe_load` reads
them with an unpickler that resolves only an explicit allow-list of globals
(:data:`DEFAULT_ALLOW`: numpy arrays and dtypes, scipy's CSR/CSC matrices, builtin
containers), so a file that names anything else is refused before anything is called:

    >>> from selfsup.safe_pickle import safe_load
    >>> features = safe_load("data/planetoid/Cora/raw/ind.cora.x")  # doctest: +SKIP

Errors are :class:`ValueError` subclasses that name the file and say what to do:
:class:`UnsafePickleError` (the file names a global outside the allow-list; it was
refused, not executed) and :class:`CorruptFileError` (truncated, garbage, too large,
or not what the format holds). Allowed objects may still hold inconsistent values (a
sparse matrix whose indices point outside it): readers validate what they load.

Nothing heavy is imported here: numpy and scipy are imported when a file names them.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import io
import os
import pickle
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "DEFAULT_ALLOW",
    "DEFAULT_MAX_BYTES",
    "CorruptFileError",
    "SafePickleError",
    "UnsafePickleError",
    "safe_load",
]

#: Globals a data pickle may name: numpy arrays, dtypes and scalars (under numpy 1's
#: and numpy 2's module paths; ``_frombuffer`` is how protocol 5 pickles arrays),
#: scipy's CSR and CSC matrices (under the module paths of old and new scipy
#: releases), builtin containers, and ``_codecs.encode``, with which protocols 0-2
#: store ``bytes`` (it only looks codecs up inside the ``encodings`` package). Python 2
#: names (``__builtin__.list``) are read as their Python 3 names.
DEFAULT_ALLOW: frozenset[str] = frozenset(
    {
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.core.numeric._frombuffer",
        "numpy._core.numeric._frombuffer",
        "scipy.sparse.csr_matrix",
        "scipy.sparse.csr.csr_matrix",
        "scipy.sparse._csr.csr_matrix",
        "scipy.sparse.csc_matrix",
        "scipy.sparse.csc.csc_matrix",
        "scipy.sparse._csc.csc_matrix",
        "collections.defaultdict",
        "collections.OrderedDict",
        "builtins.list",
        "builtins.dict",
        "builtins.set",
        "builtins.frozenset",
        "builtins.tuple",
        "builtins.bytes",
        "builtins.bytearray",
        "_codecs.encode",
    }
)

#: Files larger than this (1 GiB) are refused before they are read.
DEFAULT_MAX_BYTES = 2**30

# Where an allowed global really lives today, for names whose module moved (numpy 2's
# numpy._core, scipy's private _csr/_csc modules): importing the old paths warns.
_NUMPY_MOVED = {
    "multiarray._reconstruct": ("multiarray", "_reconstruct"),
    "multiarray.scalar": ("multiarray", "scalar"),
    "numeric._frombuffer": ("numeric", "_frombuffer"),
}
_CANONICAL: dict[str, tuple[tuple[str, str], ...]] = {
    **{
        f"numpy.{core}.{name}": ((f"numpy._core.{mod}", attr), (f"numpy.core.{mod}", attr))
        for name, (mod, attr) in _NUMPY_MOVED.items()
        for core in ("core", "_core")
    },
    "scipy.sparse.csr.csr_matrix": (("scipy.sparse", "csr_matrix"),),
    "scipy.sparse._csr.csr_matrix": (("scipy.sparse", "csr_matrix"),),
    "scipy.sparse.csc.csc_matrix": (("scipy.sparse", "csc_matrix"),),
    "scipy.sparse._csc.csc_matrix": (("scipy.sparse", "csc_matrix"),),
}


def _sized(kind: type) -> Any:
    """``bytes``/``bytearray`` without their ``(n)`` form, which allocates ``n`` bytes."""

    def build(*args: Any) -> Any:
        if args and isinstance(args[0], int):
            raise pickle.UnpicklingError(f"{kind.__name__}({args[0]}) is not data")
        return kind(*args)

    return build


# Allowed globals that are replaced by a guarded version when a file names them.
_GUARDED: dict[str, Any] = {
    "builtins.bytes": _sized(bytes),
    "builtins.bytearray": _sized(bytearray),
}

# Classes whose unpickled state the file sets freely (scipy's sparse matrices have no
# __setstate__): they are built as a subclass that admits data attributes only.
_STATE_CHECKED = ("scipy.sparse.csr_matrix", "scipy.sparse.csc_matrix")
_checked_classes: dict[type, type] = {}


def _data_state_only(base: type) -> type:
    """A subclass of ``base`` whose state may set data attributes, never shadow a method.

    Without it a file could set an instance attribute ``check_format`` or ``toarray``
    to an allowed callable and so skip the checks a reader runs. Once its state is
    set, the object becomes a plain ``base``.
    """
    if base in _checked_classes:
        return _checked_classes[base]

    def __setstate__(self: Any, state: Any) -> None:
        parts = state if isinstance(state, tuple) and len(state) == 2 else (state, None)
        merged: dict[Any, Any] = {}
        for part in parts:
            if part is not None and not isinstance(part, dict):
                raise pickle.UnpicklingError(f"the {base.__name__} state is not a dict")
            merged.update(part or {})
        for key in merged:
            if (
                not isinstance(key, str)
                or key.startswith("__")
                or callable(getattr(base, key, None))
            ):
                raise pickle.UnpicklingError(
                    f"the {base.__name__} state sets {key!r}, which is not a data attribute"
                )
        self.__dict__.update(merged)
        self.__class__ = base

    checked = type(base.__name__, (base,), {"__setstate__": __setstate__})
    _checked_classes[base] = checked
    return checked


_REFETCH = (
    "re-copy it from the dataset's original source, or point the config at the "
    "folder that holds the original dataset files"
)

# What a truncated or garbage pickle raises while it is read.
_READ_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    LookupError,
    OverflowError,
    MemoryError,
    RecursionError,
    struct.error,
    UnicodeDecodeError,
)


class SafePickleError(ValueError):
    """A pickle-based data file could not be read safely (base class).

    Attributes:
        path: The file, as given (or the stream's name).
    """

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class UnsafePickleError(SafePickleError):
    """The file names a global outside the allow-list; nothing of it was executed.

    Attributes:
        path: The file.
        global_name: The refused global as ``module.name`` (e.g. ``posix.system``).
    """

    def __init__(self, path: str, global_name: str, what: str = "data file") -> None:
        self.global_name = global_name
        super().__init__(
            f"{path}: refused to load: the file references {global_name!r}, which a "
            f"{what} never contains. It is not a data file of the expected format (it may "
            f"be malicious) and was refused, not executed. Replace it with the original "
            f"file: {_REFETCH}",
            path,
        )


class CorruptFileError(SafePickleError):
    """The file is truncated, garbage, too large, or does not hold what its format holds.

    Attributes:
        path: The file.
        problem: What is wrong with it, in a few words.
    """

    def __init__(self, path: str, problem: str, fix: str = "") -> None:
        self.problem = problem
        super().__init__(f"{path}: {problem}; {fix or _REFETCH}", path)


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose :meth:`find_class` admits only the allowed globals."""

    def __init__(
        self, file: IO[bytes], *, allow: frozenset[str], encoding: str, path: str, what: str
    ) -> None:
        super().__init__(file, encoding=encoding, fix_imports=True)
        self._allow = allow
        self._path = path
        self._what = what

    def find_class(self, module: str, name: str) -> Any:
        """Resolve ``module.name`` if it is allowed; refuse it otherwise.

        Raises:
            UnsafePickleError: The global is not in the allow-list.
        """
        if (module, name) in _compat_pickle.NAME_MAPPING:  # Python 2 pickles
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        dotted = f"{module}.{name}"
        if dotted not in self._allow:
            raise UnsafePickleError(self._path, dotted, self._what)
        if dotted in _GUARDED:
            return _GUARDED[dotted]
        found = _resolve(dotted, module, name)
        if module.startswith("scipy.") and any(
            found is _resolve(c, *c.rsplit(".", 1)) for c in _STATE_CHECKED
        ):
            return _data_state_only(found)
        return found


def _resolve(dotted: str, module: str, name: str) -> Any:
    last: Exception | None = None
    for mod, attr in _CANONICAL.get(dotted, ((module, name),)):
        try:
            obj: Any = importlib.import_module(mod)
            for part in attr.split("."):
                obj = getattr(obj, part)
            return obj
        except (ImportError, AttributeError) as exc:
            last = exc
    raise ImportError(f"cannot import {dotted!r}, which this file needs: {last}") from last


def _read_bytes(source: str | os.PathLike[str] | IO[bytes], max_bytes: int) -> tuple[bytes, str]:
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        shown = str(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"{shown}: no such file; check the path (or copy the file there)"
            )
        size = path.stat().st_size
        if size > max_bytes:
            raise CorruptFileError(
                shown,
                f"the file is {size} bytes, above the limit of {max_bytes} bytes",
                "check that the path names the right file (or raise max_bytes)",
            )
        return path.read_bytes(), shown
    shown = str(getattr(source, "name", "<stream>"))
    data = source.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise CorruptFileError(
            shown,
            f"the stream holds more than {max_bytes} bytes",
            "check that it is the right file (or raise max_bytes)",
        )
    return data, shown


def safe_load(
    file_or_path: str | os.PathLike[str] | IO[bytes],
    *,
    allow: Iterable[str] = DEFAULT_ALLOW,
    encoding: str = "latin1",
    max_bytes: int = DEFAULT_MAX_BYTES,
    what: str = "data file",
) -> Any:
    """Unpickle one object from a file, resolving only the allowed globals.

    Args:
        file_or_path: A path, or a binary file object (read to its end).
        allow: The globals the file may name, as ``module.name``
            (:data:`DEFAULT_ALLOW`; pass ``DEFAULT_ALLOW | {...}`` to add some).
        encoding: How Python 2 ``str`` objects are decoded (``latin1`` keeps numpy
            arrays written by Python 2 intact).
        max_bytes: Files larger than this are refused unread.
        what: What the file is, for messages ("Planetoid file").

    Returns:
        The unpickled object.

    Raises:
        UnsafePickleError: The file names a global outside ``allow``; nothing in it
            was called.
        CorruptFileError: The file is truncated, garbage, larger than ``max_bytes``,
            or continues after the pickled object.
        FileNotFoundError: ``file_or_path`` is a path that does not exist.
    """
    data, shown = _read_bytes(file_or_path, max_bytes)
    if not data:
        raise CorruptFileError(shown, f"the file is empty, not a {what}")
    stream = io.BytesIO(data)
    unpickler = _RestrictedUnpickler(
        stream, allow=frozenset(allow), encoding=encoding, path=shown, what=what
    )
    try:
        obj = unpickler.load()
    except SafePickleError:
        raise
    except _READ_ERRORS as exc:
        cut = isinstance(exc, EOFError) or "truncated" in str(exc)
        problem = "truncated" if cut else "not readable"
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        detail = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        raise CorruptFileError(shown, f"the file is {problem} as a {what} ({detail})") from None
    if stream.tell() != len(data):
        raise CorruptFileError(
            shown,
            f"the file continues for {len(data) - stream.tell()} bytes after the pickled "
            f"object (two files joined, or garbage appended), so it is not a {what}",
        )
    return obj
