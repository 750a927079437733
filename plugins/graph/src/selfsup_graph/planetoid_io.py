"""Read the Planetoid raw files (``ind.<name>.*``) without running code from them.

The eight files (``x``, ``tx``, ``allx``, ``y``, ``ty``, ``ally``, ``graph``,
``test.index``) are Python pickles, except the last, a text file. PyG reads them with
``pickle.load``, so a replaced ``ind.cora.graph`` could run any command. Here every
pickle goes through :func:`selfsup.safe_pickle.safe_load`, which admits only numpy
arrays, scipy CSR/CSC matrices and builtin containers, and what it returns is checked
(types, shapes, index ranges, finite values) before it is used. Every error names the
file and says to re-copy the original files.

The result is the graph PyG's ``read_planetoid_data`` builds from the same files:
features ``cat([allx, tx])`` with the test rows put back in ``test.index`` order,
labels the argmax of the one-hot rows, CiteSeer's isolated test nodes as zero rows,
``edge_index`` from the adjacency dict without self loops, coalesced, and the public
split (the first ``len(y)`` nodes train, the next 500 validation, ``test.index`` test).
"""

from __future__ import annotations

from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import torch
from selfsup.safe_pickle import CorruptFileError, safe_load
from torch import Tensor
from torch_geometric.data import Data

__all__ = ["KNOWN_SIZES", "SUFFIXES", "read_planetoid"]

SUFFIXES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")

#: (nodes, features, classes) of the public Planetoid files, to tell one dataset's
#: files from another's.
KNOWN_SIZES: dict[str, tuple[int, int, int]] = {
    "cora": (2708, 1433, 7),
    "citeseer": (3327, 3703, 6),
    "pubmed": (19717, 500, 3),
}

_WHAT = "Planetoid file"
_NUM_VAL = 500  # the public split's validation nodes follow the training nodes
_MAX_COLUMNS = 2**20
_MAX_DENSE = 2**32  # elements of a densified feature matrix


def _refetch(prefix: str) -> str:
    return (
        f"re-copy the 8 ind.{prefix}.* files from the original Planetoid dataset "
        "(or point data.params.root at the folder that holds them)"
    )


def _is_int(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, np.integer)


def _array(path: Path, obj: Any, prefix: str) -> np.ndarray:
    """A 2-D numeric numpy array (a dense label matrix or a densified feature matrix)."""
    import scipy.sparse as sp

    dense_from_sparse = sp.issparse(obj)
    if dense_from_sparse:
        try:  # a pickled matrix is whatever its file says: check it before densifying
            rows, cols = (int(n) for n in obj.shape)
            if obj.dtype.kind not in "biuf":
                raise ValueError(f"it holds {obj.dtype} values, not numbers")
            if cols > _MAX_COLUMNS or rows * cols > _MAX_DENSE:
                raise ValueError(f"it is {rows} x {cols}, far larger than a Planetoid matrix")
            if not isinstance(obj, sp.csr_matrix | sp.csc_matrix):
                raise ValueError(f"it is a {type(obj).__name__}, not a CSR or CSC matrix")
            arrays = (obj.data, obj.indices, obj.indptr)
            if not all(isinstance(a, np.ndarray) for a in arrays):
                raise ValueError("its data, indices and indptr are not all arrays")
            kind = sp.csr_matrix if isinstance(obj, sp.csr_matrix) else sp.csc_matrix
            fresh = kind(arrays, shape=(rows, cols))  # only the arrays of the file are used
            fresh.check_format(full_check=True)  # indices inside the matrix
            obj = fresh.toarray()
        except (ValueError, TypeError, AttributeError, IndexError, MemoryError) as exc:
            raise CorruptFileError(
                str(path), f"its sparse matrix is inconsistent ({exc})", _refetch(prefix)
            ) from None
    if not isinstance(obj, np.ndarray):
        raise CorruptFileError(
            str(path),
            f"it holds a {type(obj).__name__}, not the matrix a Planetoid "
            f"'{path.name.rsplit('.', 1)[-1]}' file holds",
            _refetch(prefix),
        )
    if obj.ndim != 2 or obj.dtype.kind not in "biuf":
        raise CorruptFileError(
            str(path),
            f"it holds a {obj.ndim}-D array of {obj.dtype}, not a 2-D numeric matrix",
            _refetch(prefix),
        )
    if not dense_from_sparse and obj.nbytes > path.stat().st_size:  # never written by numpy
        raise CorruptFileError(
            str(path),
            f"it declares a {obj.shape} array larger than the file itself",
            _refetch(prefix),
        )
    _finite(path, obj, prefix)
    return obj


def _finite(path: Path, values: np.ndarray, prefix: str) -> None:
    if values.dtype.kind == "f" and not bool(np.isfinite(values).all()):
        raise CorruptFileError(
            str(path), "it holds non-finite values (NaN or inf)", _refetch(prefix)
        )


def _matrix(raw: Path, prefix: str, suffix: str) -> Tensor:
    path = raw / f"ind.{prefix}.{suffix}"
    values = torch.from_numpy(
        np.ascontiguousarray(_array(path, safe_load(path, what=_WHAT), prefix))
    )
    return values.to(torch.float)


def _test_index(path: Path, prefix: str) -> Tensor:
    try:
        text = path.read_bytes().decode("ascii")
    except UnicodeDecodeError:
        raise CorruptFileError(
            str(path),
            "it is not a text file of node indices (one integer a line)",
            _refetch(prefix),
        ) from None
    values: list[int] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        item = line.strip()
        if not item:
            continue
        try:
            values.append(int(item))
        except ValueError:
            raise CorruptFileError(
                str(path),
                f"line {lineno} is {item[:40]!r}, not a node index (one integer a line)",
                _refetch(prefix),
            ) from None
    if not values:
        raise CorruptFileError(str(path), "it lists no test nodes", _refetch(prefix))
    if len(set(values)) != len(values):
        raise CorruptFileError(str(path), "it lists a test node twice", _refetch(prefix))
    return torch.tensor(values, dtype=torch.long)


def _edge_index(raw: Path, prefix: str, num_nodes: int) -> Tensor:
    from torch_geometric.utils import coalesce, remove_self_loops

    path = raw / f"ind.{prefix}.graph"
    graph = safe_load(path, what=_WHAT)
    if not isinstance(graph, dict):
        raise CorruptFileError(
            str(path),
            f"it holds a {type(graph).__name__}, not the adjacency dict (node -> neighbours)",
            _refetch(prefix),
        )
    rows: list[int] = []
    cols: list[int] = []
    for key, value in graph.items():
        if not _is_int(key) or not isinstance(value, list | tuple):
            raise CorruptFileError(
                str(path),
                f"entry {key!r} is not a node id with a list of neighbours",
                _refetch(prefix),
            )
        if not all(_is_int(v) for v in value):
            raise CorruptFileError(
                str(path), f"node {key}'s neighbours are not all node ids", _refetch(prefix)
            )
        rows += repeat(int(key), len(value))
        cols += [int(v) for v in value]
    edge_index = torch.tensor([rows, cols], dtype=torch.long).view(2, -1)
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        bad = int(edge_index.max()) if int(edge_index.max()) >= num_nodes else int(edge_index.min())
        raise CorruptFileError(
            str(path),
            f"it links node {bad}, but the other ind.{prefix}.* files describe {num_nodes} "
            f"nodes (0 to {num_nodes - 1}): it belongs to another dataset or is damaged",
            _refetch(prefix),
        )
    edge_index, _ = remove_self_loops(edge_index)
    return coalesce(edge_index, num_nodes=num_nodes, sort_by_row=False)


def _mismatch(raw: Path, prefix: str, what: str) -> CorruptFileError:
    return CorruptFileError(
        str(raw),
        f"{what}: the ind.{prefix}.* files do not belong together (one comes from another "
        "dataset or is damaged)",
        _refetch(prefix),
    )


def read_planetoid(raw: Path, prefix: str, check_sizes: bool = True) -> tuple[Data, int]:
    """The graph and class count from the 8 files ``raw/ind.<prefix>.*``.

    Args:
        raw: The folder holding the files.
        prefix: The dataset's lower-case name (``cora``, ``citeseer``, ``pubmed``).
        check_sizes: Refuse files whose node, feature and class counts are not those
            of the public dataset of that name (:data:`KNOWN_SIZES`).

    Returns:
        ``(data, num_classes)``: ``data`` holds ``x``, ``edge_index``, ``y`` and the
        public ``train_mask``/``val_mask``/``test_mask``.

    Raises:
        UnsafePickleError: A file names a global that data never holds (refused, not run).
        CorruptFileError: A file is truncated, garbage, inconsistent with the others,
            or from another dataset; the message names it.
    """
    from torch_geometric.utils import index_to_mask

    prefix = prefix.lower()
    labels = {s: _matrix(raw, prefix, s) for s in ("y", "ty", "ally")}
    feats = {s: _matrix(raw, prefix, s) for s in ("x", "tx", "allx")}
    test_index = _test_index(raw / f"ind.{prefix}.test.index", prefix)
    for f, lab in (("x", "y"), ("tx", "ty"), ("allx", "ally")):
        if feats[f].size(0) != labels[lab].size(0):
            raise _mismatch(
                raw,
                prefix,
                f"ind.{prefix}.{f} has {feats[f].size(0)} rows but ind.{prefix}.{lab} has "
                f"{labels[lab].size(0)}",
            )
    for group, ref in ((feats, "allx"), (labels, "ally")):
        for s, t in group.items():
            if t.size(1) != group[ref].size(1):
                raise _mismatch(
                    raw,
                    prefix,
                    f"ind.{prefix}.{s} has {t.size(1)} columns but ind.{prefix}.{ref} has "
                    f"{group[ref].size(1)}",
                )
    tx, ty, allx, ally = feats["tx"], labels["ty"], feats["allx"], labels["ally"]
    num_train, num_all = labels["y"].size(0), allx.size(0)
    low, high = int(test_index.min()), int(test_index.max())
    sorted_test = test_index.sort()[0]
    if prefix == "citeseer":  # isolated test nodes: zero rows where test.index skips
        span = high - low + 1
        if tx.size(0) != test_index.numel() or low != num_all:
            raise _mismatch(raw, prefix, f"ind.{prefix}.test.index does not match ind.{prefix}.tx")
        tx_ext = torch.zeros(span, tx.size(1), dtype=tx.dtype)
        tx_ext[sorted_test - low] = tx
        ty_ext = torch.zeros(span, ty.size(1), dtype=ty.dtype)
        ty_ext[sorted_test - low] = ty
        tx, ty = tx_ext, ty_ext
    num_nodes = num_all + tx.size(0)
    if tx.size(0) != test_index.numel() and prefix != "citeseer":
        raise _mismatch(
            raw,
            prefix,
            f"ind.{prefix}.test.index lists {test_index.numel()} nodes but ind.{prefix}.tx "
            f"has {tx.size(0)} rows",
        )
    if low < num_all or high >= num_nodes:
        raise _mismatch(
            raw,
            prefix,
            f"ind.{prefix}.test.index lists nodes {low} to {high}, outside the test range "
            f"{num_all} to {num_nodes - 1} of ind.{prefix}.allx and ind.{prefix}.tx",
        )
    if num_train + _NUM_VAL > num_all:
        raise _mismatch(
            raw, prefix, f"ind.{prefix}.allx has {num_all} rows, fewer than the public split needs"
        )
    x = torch.cat([allx, tx], dim=0)
    x[test_index] = x[sorted_test]
    y = torch.cat([ally, ty], dim=0).max(dim=1)[1]
    y[test_index] = y[sorted_test]
    num_classes = ally.size(1)
    if check_sizes and prefix in KNOWN_SIZES:
        got = (num_nodes, x.size(1), num_classes)
        if got != KNOWN_SIZES[prefix]:
            like = [n for n, sizes in KNOWN_SIZES.items() if sizes == got]
            hint = f" (they look like the {like[0]} files)" if like else ""
            raise CorruptFileError(
                str(raw),
                f"the ind.{prefix}.* files describe {got[0]} nodes, {got[1]} features and "
                f"{got[2]} classes, but {prefix} has {KNOWN_SIZES[prefix][0]}, "
                f"{KNOWN_SIZES[prefix][1]} and {KNOWN_SIZES[prefix][2]}{hint}",
                _refetch(prefix),
            )
    data = Data(x=x, edge_index=_edge_index(raw, prefix, num_nodes), y=y)
    data.train_mask = index_to_mask(torch.arange(num_train), size=num_nodes)
    data.val_mask = index_to_mask(torch.arange(num_train, num_train + _NUM_VAL), size=num_nodes)
    data.test_mask = index_to_mask(test_index, size=num_nodes)
    return data, num_classes
