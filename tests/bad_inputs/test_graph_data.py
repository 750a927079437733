"""Bad-input corpus: the graph plugin's data files (issue 9, items 1, 3 and 5).

Each case is one bad input with the answer selfsup must give: the exit code and error
class, the file named and the fix, never "unexpected error ... may be a bug in
selfsup", and never code run from a data file. Planetoid cases go through ``selfsup
run`` on a copy of the shared Cora files with one file replaced; the two stateful
cases (a corrupted file repaired, a file changed under a cache) run twice. The
``graph:pyg`` cases use a small synthetic ``Amazon`` file in PyG's npz format.
"""

from __future__ import annotations

import collections
import os
import pickle
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SHARED_CORA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "planetoid" / "Cora"
IN_CI = os.environ.get("CI", "").lower() == "true"
REFETCH = "re-copy"
SYSTEM = f"{os.system.__module__}.system"  # posix.system on Linux


class _Payload:
    """A pickle that runs ``func(*args)`` when loaded with ``pickle.load``."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


@pytest.fixture
def graph_plugin(need_plugin) -> None:
    """The cases need selfsup-graph."""
    need_plugin("selfsup_graph")


@pytest.fixture
def cora(tmp_path: Path, graph_plugin) -> Path:
    """A writable copy of the shared Cora files: ``<tmp>/planetoid`` (``Cora/raw`` inside)."""
    if not (SHARED_CORA / "raw" / "ind.cora.x").is_file():
        reason = f"the shared Cora files are missing ({SHARED_CORA / 'raw'})"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    root = tmp_path / "planetoid"
    shutil.copytree(SHARED_CORA / "raw", root / "Cora" / "raw")
    for path in (root / "Cora" / "raw").iterdir():
        path.chmod(0o644)
    return root


def _config(tmp_path: Path, root: Path, out: str) -> Path:
    config = tmp_path / f"{out}.yaml"
    config.write_text(
        f"""name: bad-cora
seeds: [0]
baseline: false
output_dir: {tmp_path / out}
data:
  id: graph:planetoid
  params: {{name: Cora, root: {root}, cache_dir: {tmp_path / "cache"}}}
encoder:
  id: graph:features
  params: {{in_dim: 1433}}
routine: graph:full-batch
evaluators:
  - id: core:linear-probe
    params: {{weight_decays: [0.0001]}}
train:
  epochs: 1
"""
    )
    return config


def _run(cli_runner: Any, tmp_path: Path, root: Path, out: str) -> Any:
    return cli_runner.invoke(["run", str(_config(tmp_path, root, out))])


def _accuracy(tmp_path: Path, out: str) -> float:
    import json

    results = json.loads((tmp_path / out / "bad-cora" / "results.json").read_text())
    return float(results["runs"][0]["metrics"]["linear_acc"])


def _raw(root: Path, suffix: str) -> Path:
    return root / "Cora" / "raw" / f"ind.cora.{suffix}"


def _dump(path: Path, obj: Any, protocol: int = 2) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


# --------------------------------------------------------------------------- the bad files


def _malicious_graph(root: Path, marker: Path) -> None:
    _dump(_raw(root, "graph"), _Payload(os.system, f"touch {marker}"))


def _malicious_allx_protocol4(root: Path, marker: Path) -> None:
    _dump(_raw(root, "allx"), _Payload(os.system, f"touch {marker}"), protocol=4)


def _malicious_y_eval(root: Path, marker: Path) -> None:
    _dump(_raw(root, "y"), _Payload(eval, f"open({str(marker)!r}, 'w')"))


def _truncated_allx(root: Path, marker: Path) -> None:
    path = _raw(root, "allx")
    path.write_bytes(path.read_bytes()[:50_000])


def _garbage_graph(root: Path, marker: Path) -> None:
    _raw(root, "graph").write_bytes(random.Random(0).randbytes(4096))


def _empty_ty(root: Path, marker: Path) -> None:
    _raw(root, "ty").write_bytes(b"")


def _text_as_y(root: Path, marker: Path) -> None:
    shutil.copyfile(_raw(root, "test.index"), _raw(root, "y"))


def _missing_graph(root: Path, marker: Path) -> None:
    _raw(root, "graph").unlink()


def _citeseer_sized_tx(root: Path, marker: Path) -> None:
    import scipy.sparse as sp

    _dump(_raw(root, "tx"), sp.csr_matrix((1000, 3703), dtype=np.float32))


def _other_graph(root: Path, marker: Path) -> None:
    _dump(_raw(root, "graph"), collections.defaultdict(list, {0: [1], 1: [0, 3326]}))


def _other_test_index(root: Path, marker: Path) -> None:
    _raw(root, "test.index").write_text("".join(f"{i}\n" for i in range(2312, 3312)))


def _test_index_with_text(root: Path, marker: Path) -> None:
    path = _raw(root, "test.index")
    path.write_text("abc\n" + path.read_text())


def _nan_feature(root: Path, marker: Path) -> None:
    from selfsup.safe_pickle import safe_load

    matrix = safe_load(_raw(root, "allx"))
    matrix.data[5] = np.nan
    _dump(_raw(root, "allx"), matrix)


def _sparse_index_out_of_range(root: Path, marker: Path) -> None:
    from selfsup.safe_pickle import safe_load

    matrix = safe_load(_raw(root, "x"))
    matrix.indices[0] = 10**6  # toarray() would write outside the matrix
    _dump(_raw(root, "x"), matrix)


def _array_larger_than_its_file(root: Path, marker: Path) -> None:
    # numpy.ndarray((2000, 2000)): allowed globals, but 32 MB of uninitialised memory
    _raw(root, "ally").write_bytes(b"cnumpy\nndarray\n((I2000\nI2000\nttR.")


def _list_as_graph(root: Path, marker: Path) -> None:
    _dump(_raw(root, "graph"), [[1, 2], [0]])


Mutator = Callable[[Path, Path], None]
PLANETOID_CASES = [
    pytest.param(
        _malicious_graph,
        "UnsafePickleError",
        ["ind.cora.graph", f"'{SYSTEM}'", "refused, not executed", "original file"],
        id="malicious-graph-os-system",
    ),
    pytest.param(
        _malicious_allx_protocol4,
        "UnsafePickleError",
        ["ind.cora.allx", f"'{SYSTEM}'", "may be malicious", "refused, not executed"],
        id="malicious-allx-protocol-4",
    ),
    pytest.param(
        _malicious_y_eval,
        "UnsafePickleError",
        ["ind.cora.y", "'builtins.eval'", "refused, not executed"],
        id="malicious-y-eval",
    ),
    pytest.param(
        _truncated_allx,
        "CorruptFileError",
        ["ind.cora.allx", "truncated", REFETCH],
        id="truncated-allx",
    ),
    pytest.param(
        _garbage_graph,
        "CorruptFileError",
        ["ind.cora.graph", "not readable as a Planetoid file", REFETCH],
        id="garbage-graph",
    ),
    pytest.param(_empty_ty, "CorruptFileError", ["ind.cora.ty", "empty", REFETCH], id="empty-ty"),
    pytest.param(
        _text_as_y, "CorruptFileError", ["ind.cora.y", "not readable", REFETCH], id="text-as-y"
    ),
    pytest.param(
        _missing_graph,
        "file not found",
        ["ind.cora.graph", "never downloads", "copy them there"],
        id="missing-graph",
    ),
    pytest.param(
        _citeseer_sized_tx,
        "CorruptFileError",
        [
            "ind.cora.tx has 3703 columns but ind.cora.allx has 1433",
            "do not belong together",
            "re-copy the 8 ind.cora.* files",
        ],
        id="other-dataset-tx",
    ),
    pytest.param(
        _other_graph,
        "CorruptFileError",
        ["ind.cora.graph", "links node 3326", "2708 nodes", "another dataset"],
        id="other-dataset-graph",
    ),
    pytest.param(
        _other_test_index,
        "CorruptFileError",
        ["ind.cora.test.index lists nodes 2312 to 3311", "outside the test range", REFETCH],
        id="other-dataset-test-index",
    ),
    pytest.param(
        _test_index_with_text,
        "CorruptFileError",
        ["ind.cora.test.index", "line 1 is 'abc'", "one integer a line"],
        id="test-index-not-integers",
    ),
    pytest.param(
        _nan_feature,
        "CorruptFileError",
        ["ind.cora.allx", "non-finite values", REFETCH],
        id="nan-in-allx",
    ),
    pytest.param(
        _sparse_index_out_of_range,
        "CorruptFileError",
        ["ind.cora.x", "sparse matrix is inconsistent", REFETCH],
        id="sparse-index-out-of-range",
    ),
    pytest.param(
        _array_larger_than_its_file,
        "CorruptFileError",
        ["ind.cora.ally", "declares a (2000, 2000) array larger than the file itself"],
        id="array-larger-than-its-file",
    ),
    pytest.param(
        _list_as_graph,
        "CorruptFileError",
        ["ind.cora.graph", "holds a list, not the adjacency dict"],
        id="list-as-graph",
    ),
]


@pytest.mark.parametrize(("mutate", "kind", "phrases"), PLANETOID_CASES)
def test_bad_planetoid_file_through_selfsup_run(
    cora: Path, tmp_path: Path, cli_runner: Any, mutate: Mutator, kind: str, phrases: list[str]
) -> None:
    marker = tmp_path / "PWNED"
    mutate(cora, marker)
    result = _run(cli_runner, tmp_path, cora, "out")
    assert not marker.exists(), "a data file ran code"
    assert result.exit_code == 1, result.output
    out = " ".join(result.output.split())  # rich wraps long lines
    assert "bug in selfsup" not in out and "unexpected error" not in out, out
    assert kind in out, out
    for phrase in phrases:
        assert phrase in out, f"{phrase!r} not in: {out}"


def test_corrupted_then_repaired_file_is_read_again(
    cora: Path, tmp_path: Path, cli_runner: Any
) -> None:
    good = _run(cli_runner, tmp_path, cora, "first")
    assert good.exit_code == 0, good.output
    path = _raw(cora, "ally")
    original = path.read_bytes()
    path.write_bytes(original[:-20])  # the earlier run's cache must not hide this
    broken = _run(cli_runner, tmp_path, cora, "broken")
    assert broken.exit_code == 1 and "ind.cora.ally" in broken.output, broken.output
    assert "truncated" in broken.output
    path.write_bytes(original)
    repaired = _run(cli_runner, tmp_path, cora, "repaired")
    assert repaired.exit_code == 0, repaired.output
    assert _accuracy(tmp_path, "repaired") == _accuracy(tmp_path, "first")


def test_changed_file_of_the_same_size_is_noticed(
    cora: Path, tmp_path: Path, cli_runner: Any
) -> None:
    from selfsup.safe_pickle import safe_load

    first = _run(cli_runner, tmp_path, cora, "first")
    assert first.exit_code == 0, first.output
    path = _raw(cora, "ally")  # the labels of the training and validation nodes
    labels, content = safe_load(path), path.read_bytes()
    assert content.count(labels.tobytes()) == 1  # the array's bytes, stored as they are
    rolled = np.roll(labels, 1, axis=1).tobytes()  # every training label changes
    path.write_bytes(content.replace(labels.tobytes(), rolled))  # same size, same mtime second
    assert path.stat().st_size == len(content)
    assert np.array_equal(safe_load(path), np.roll(labels, 1, axis=1))
    changed = _run(cli_runner, tmp_path, cora, "changed")
    assert changed.exit_code == 0, changed.output
    assert _accuracy(tmp_path, "changed") != _accuracy(tmp_path, "first")


# --------------------------------------------------------------------------- graph:pyg


def _amazon(root: Path, labels_seed: int = 0) -> Path:
    """A 40-node graph in PyG's Amazon npz format under ``root/Photo/raw``."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    x = sp.csr_matrix((rng.random((40, 12)) > 0.7).astype(np.float32))
    adj = sp.csr_matrix(np.triu(rng.random((40, 40)) > 0.85, 1).astype(np.float32))
    labels = np.random.default_rng(labels_seed).integers(0, 3, 40)
    path = root / "Photo" / "raw" / "amazon_electronics_photo.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        attr_data=x.data, attr_indices=x.indices, attr_indptr=x.indptr, attr_shape=x.shape,
        adj_data=adj.data, adj_indices=adj.indices, adj_indptr=adj.indptr, adj_shape=adj.shape,
        labels=labels,
    )  # fmt: skip
    return path


def _pyg(root: Path, cache: Path | None) -> Any:
    from selfsup_graph.datasets import pyg_dataset

    return pyg_dataset("Amazon", str(root), "Photo", cache_dir=str(cache) if cache else None)


def test_pyg_truncated_raw_file_names_the_file_and_the_cache(tmp_path: Path, graph_plugin) -> None:
    from selfsup.safe_pickle import CorruptFileError

    path = _amazon(tmp_path / "amazon")
    _pyg(tmp_path / "amazon", tmp_path / "cache")
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CorruptFileError) as info:
        _pyg(tmp_path / "amazon", tmp_path / "cache")
    msg = str(info.value)
    assert "graph:pyg could not read the Amazon files" in msg
    assert "changed since the last successful load: Photo/raw/amazon_electronics_photo.npz" in msg
    assert f"(cache: {tmp_path / 'cache'}" in msg and REFETCH in msg
    assert isinstance(info.value, ValueError)  # rendered as an error, not as a selfsup bug


def test_pyg_processed_folder_shipped_in_the_root_is_never_loaded(
    tmp_path: Path, graph_plugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    root = tmp_path / "amazon"
    _amazon(root)
    marker = tmp_path / "PWNED"
    processed = root / "Photo" / "processed"
    processed.mkdir()
    for name in ("pre_transform.pt", "pre_filter.pt", "data.pt"):  # PyG unpickles these
        torch.save(_Payload(os.system, f"touch {marker}"), processed / name)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    monkeypatch.setenv("SELFSUP_CACHE", str(tmp_path / "cache"))
    data = _pyg(root, None)
    assert not marker.exists(), "a shipped processed/ file ran code"
    assert data.train.num_nodes == 40
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # root never written


def test_pyg_tampered_cache_entry_is_rebuilt_not_unpickled(tmp_path: Path, graph_plugin) -> None:
    import torch

    root, cache = tmp_path / "amazon", tmp_path / "cache"
    _amazon(root)
    first = _pyg(root, cache)
    (data_pt,) = cache.rglob("processed/data.pt")
    marker = tmp_path / "PWNED"
    torch.save(_Payload(os.system, f"touch {marker}"), data_pt)  # PyG would fall back to pickle
    again = _pyg(root, cache)
    assert not marker.exists()
    assert torch.equal(again.train.x, first.train.x)


def test_pyg_raw_file_changed_with_the_same_size_is_noticed(tmp_path: Path, graph_plugin) -> None:
    import torch

    root, cache = tmp_path / "amazon", tmp_path / "cache"
    path = _amazon(root, labels_seed=0)
    first = _pyg(root, cache)
    size = path.stat().st_size
    _amazon(root, labels_seed=1)
    assert path.stat().st_size == size
    second = _pyg(root, cache)
    assert not torch.equal(first.train.y, second.train.y)
    assert len(list(cache.rglob("processed/data.pt"))) == 1  # the stale entry is gone
