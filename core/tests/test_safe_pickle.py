"""selfsup.safe_pickle: data pickles load, code in a pickle is refused and never runs."""

from __future__ import annotations

import collections
import io
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from selfsup.safe_pickle import (
    DEFAULT_ALLOW,
    CorruptFileError,
    SafePickleError,
    UnsafePickleError,
    safe_load,
)


class _Payload:
    """A pickle that, loaded with ``pickle.load``, calls ``func(*args)``."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def _write(path: Path, obj: Any, protocol: int = 2) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    evil = _write(tmp_path / "ind.cora.graph", _Payload(os.system, f"touch {marker}"), protocol)
    # the file really is an attack: plain pickle would run it (in a child process)
    with pytest.raises(UnsafePickleError) as info:
        safe_load(evil)
    assert not marker.exists()
    msg = str(info.value)
    assert str(evil) in msg and f"'{os.system.__module__}.system'" in msg
    assert "refused, not executed" in msg and "not a data file of the expected format" in msg
    assert info.value.global_name == f"{os.system.__module__}.system"
    assert isinstance(info.value, ValueError) and info.value.path == str(evil)
    code = f"import pickle; pickle.load(open({str(evil)!r}, 'rb'))"
    subprocess.run([sys.executable, "-c", code], check=False, timeout=60)
    assert marker.exists(), "the payload is not a working attack, so the test proves nothing"


@pytest.mark.parametrize(
    ("func", "args", "refused"),
    [
        (eval, ("1",), "builtins.eval"),
        (getattr, ([], "append"), "builtins.getattr"),
        (subprocess.Popen, (["true"],), "subprocess.Popen"),
        (__import__, ("os",), "builtins.__import__"),
        (collections.namedtuple, ("T", "a"), "collections.namedtuple"),
    ],
    ids=["eval", "getattr", "popen", "import", "namedtuple"],
)
def test_any_global_outside_the_allow_list_is_refused(
    tmp_path: Path, func: Any, args: tuple[Any, ...], refused: str
) -> None:
    path = _write(tmp_path / "f.pkl", _Payload(func, *args), protocol=4)
    with pytest.raises(UnsafePickleError, match=rf"references '{refused}'"):
        safe_load(path)


def test_python2_global_names_are_checked_under_their_python3_names(tmp_path: Path) -> None:
    path = tmp_path / "py2.pkl"
    path.write_bytes(b"c__builtin__\neval\n(S'1+1'\ntR.")  # GLOBAL '__builtin__ eval'
    with pytest.raises(UnsafePickleError, match=r"references 'builtins\.eval'"):
        safe_load(path)
    ok = tmp_path / "list.pkl"
    ok.write_bytes(b"c__builtin__\nlist\n((I1\nI2\nttR.")  # list((1, 2)), Python 2 style
    assert safe_load(ok) == [1, 2]


def _data_objects() -> dict[str, Any]:
    import scipy.sparse as sp

    dense = np.arange(12, dtype=np.float32).reshape(3, 4)
    return {
        "float32": dense,
        "int64": np.arange(5, dtype=np.int64),
        "fortran": np.asfortranarray(dense),
        "bool": dense > 4,
        "scalar": np.int64(7),
        "object-array": np.array([1, 2.5], dtype=object),
        "csr": sp.csr_matrix(dense),
        "csc": sp.csc_matrix(dense),
        "defaultdict": collections.defaultdict(list, {0: [1, 2], 1: [0]}),
        "ordereddict": collections.OrderedDict(a=1),
        "containers": {"l": [1, 2], "t": (3,), "s": {4}, "f": frozenset({5}), "b": b"xy"},
        "bytearray": bytearray(b"ab"),
    }


def _same(a: Any, b: Any) -> bool:
    if hasattr(a, "toarray"):
        return type(a) is type(b) and np.array_equal(a.toarray(), b.toarray())
    if isinstance(a, np.ndarray):
        return (
            a.dtype == b.dtype
            and np.array_equal(a, b)
            and a.flags.f_contiguous == b.flags.f_contiguous
        )
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("name", list(_data_objects()))
def test_numpy_scipy_and_containers_round_trip(tmp_path: Path, name: str, protocol: int) -> None:
    obj = _data_objects()[name]
    assert _same(obj, safe_load(_write(tmp_path / "f.pkl", obj, protocol)))


def test_old_module_paths_resolve_without_deprecation_warnings(tmp_path: Path) -> None:
    import warnings

    # how scipy < 1.8 and numpy < 2 named these (the Planetoid files use them)
    path = tmp_path / "old.pkl"
    data = pickle.dumps(_data_objects()["csr"], protocol=2)
    data = data.replace(b"scipy.sparse._csr", b"scipy.sparse.csr").replace(
        b"numpy._core", b"numpy.core"
    )
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _same(_data_objects()["csr"], safe_load(path))


@pytest.mark.parametrize("kind", ["bytes", "bytearray"])
def test_allowed_constructors_cannot_allocate_from_a_size(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "alloc.pkl"
    path.write_bytes(f"c__builtin__\n{kind}\n(I1000000000000\ntR.".encode())
    with pytest.raises(CorruptFileError, match=rf"{kind}\(1000000000000\) is not data"):
        safe_load(path)


def test_sparse_state_cannot_shadow_a_method(tmp_path: Path) -> None:
    import scipy.sparse as sp

    matrix = sp.csr_matrix(np.eye(2))
    matrix.__dict__["check_format"] = dict  # a reader's check would then do nothing
    path = _write(tmp_path / "x.pkl", matrix, protocol=2)
    with pytest.raises(
        CorruptFileError, match="sets 'check_format', which is not a data attribute"
    ):
        safe_load(path)


def test_the_allow_list_can_be_narrowed_and_widened(tmp_path: Path) -> None:
    path = _write(tmp_path / "dd.pkl", _data_objects()["defaultdict"])
    with pytest.raises(UnsafePickleError, match=r"collections\.defaultdict"):
        safe_load(path, allow=DEFAULT_ALLOW - {"collections.defaultdict"})
    counter = _write(tmp_path / "c.pkl", collections.Counter("aab"))
    with pytest.raises(UnsafePickleError, match=r"collections\.Counter"):
        safe_load(counter)
    assert safe_load(counter, allow=DEFAULT_ALLOW | {"collections.Counter"}) == {"a": 2, "b": 1}


def test_truncated_file_is_a_named_corrupt_file(tmp_path: Path) -> None:
    full = pickle.dumps(_data_objects()["csr"], protocol=2)
    path = tmp_path / "ind.cora.x"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(CorruptFileError) as info:
        safe_load(path, what="Planetoid file")
    msg = str(info.value)
    assert msg.startswith(f"{path}: the file is truncated as a Planetoid file")
    assert "re-copy it from the dataset's original source" in msg


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes_are_a_named_error_never_a_crash(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "garbage.bin"
    path.write_bytes(random.Random(seed).randbytes(2048))
    with pytest.raises(SafePickleError) as info:
        safe_load(path)
    assert str(info.value).startswith(f"{path}: ") and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (b"", "the file is empty"),
        (pickle.dumps([1], protocol=2) + b"junk", "continues for 4 bytes after the pickled object"),
        (b"1708\n1709\n", "not readable"),
    ],
    ids=["empty", "trailing-bytes", "text-file"],
)
def test_files_that_are_not_one_pickle_are_named(
    tmp_path: Path, content: bytes, phrase: str
) -> None:
    path = tmp_path / "f.pkl"
    path.write_bytes(content)
    with pytest.raises(CorruptFileError, match=phrase) as info:
        safe_load(path)
    assert str(path) in str(info.value)


def test_size_limit_missing_file_and_streams(tmp_path: Path) -> None:
    path = _write(tmp_path / "big.pkl", list(range(1000)))
    with pytest.raises(
        CorruptFileError, match=r"big\.pkl: the file is \d+ bytes, above the limit of 100"
    ):
        safe_load(path, max_bytes=100)
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pkl: no such file"):
        safe_load(tmp_path / "nowhere.pkl")
    with open(path, "rb") as fh:
        assert safe_load(fh) == list(range(1000))
    with pytest.raises(UnsafePickleError, match="<stream>"):
        safe_load(io.BytesIO(pickle.dumps(_Payload(print, "x"))))


def test_importing_safe_pickle_stays_light() -> None:
    code = (
        "import sys, selfsup.safe_pickle\n"
        "print(sorted({'torch', 'numpy', 'scipy'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
