"""Graph datasets from local files (never a download): Planetoid, KarateClub, PyG classes.

Every dataset returns a :class:`~selfsup_graph.splits.GraphSplits`. Common parameters:

* ``normalize_features``: row-normalise node features to sum 1 (as DGL's and PyG's
  ``NormalizeFeatures`` do for the citation graphs, and as GraphMAE and GRACE use).
* ``holdout_edges``: share of the (undirected) edges removed from the training graph
  and kept, with as many sampled non-edges, for ``graph:link-prediction``
  (``holdout_val_edges`` adds a validation share). Pretraining and embedding then
  never see the held-out edges. ``split_seed`` fixes which edges (and random node
  splits) are chosen, independently of the run's seed.

No file a user points at can run code. Planetoid's raw files are Python pickles: they
are read by :mod:`selfsup_graph.planetoid_io` through :func:`selfsup.safe_pickle.safe_load`
(numpy, scipy sparse and builtin containers only), never by PyG's ``pickle.load``, and
parsed on every load (Cora in ~0.2 s), so there is no Planetoid cache to go stale.

The other ``graph:pyg`` classes read ``.npz`` (numpy, pickles not allowed), ``.npy``,
text and JSON raw files. PyG's ``processed/`` folder lives only in selfsup's cache,
keyed by the sha256 of the raw files and the parameters, and is loaded weights-only
(:mod:`selfsup_graph.pyg_cache`); the dataset's root is never written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import Field, PositiveInt
from torch import Tensor
from torch_geometric.data import Data

from selfsup_graph.planetoid_io import SUFFIXES as PLANETOID_SUFFIXES
from selfsup_graph.planetoid_io import read_planetoid
from selfsup_graph.pyg_cache import pyg_cached
from selfsup_graph.splits import GraphSplits
from selfsup_graph.views import Rate

__all__ = ["PYG_DATASETS", "karate", "planetoid", "pyg_dataset"]

PLANETOID_NAMES = ("Cora", "CiteSeer", "PubMed")

#: Dataset classes of ``torch_geometric.datasets`` that ``graph:pyg`` may load, with
#: the ``name`` values each accepts (``()``: the class takes no name).
PYG_DATASETS: dict[str, tuple[str, ...]] = {
    "Planetoid": PLANETOID_NAMES,
    "CitationFull": ("Cora", "Cora_ML", "CiteSeer", "DBLP", "PubMed"),
    "Amazon": ("Computers", "Photo"),
    "Coauthor": ("CS", "Physics"),
    "WebKB": ("Cornell", "Texas", "Wisconsin"),
    "WikiCS": (),
    "Actor": (),
    "Flickr": (),
    "Reddit": (),
}


def _resolve_root(owner: str, root: str | None, default: str) -> Path:
    if root is None:
        shared = os.environ.get("SELFSUP_SHARED_DATA")
        if not shared:
            raise ValueError(
                f"{owner}: set data.params.root to the folder that holds the dataset "
                f"(e.g. ../shared/data/{default}), or set SELFSUP_SHARED_DATA"
            )
        return Path(shared).expanduser() / default
    return Path(root).expanduser()


# --------------------------------------------------------------------------- building splits


def _normalize_rows(x: Tensor) -> Tensor:
    x = x.float()
    total = x.sum(dim=1, keepdim=True)
    return x / total.clamp(min=1e-12) if bool((x >= 0).all()) else x


def _mask_nodes(mask: Any) -> Tensor | None:
    if not isinstance(mask, Tensor):
        return None
    if mask.dim() == 2:  # several splits (WikiCS): use the first
        mask = mask[:, 0]
    return mask.nonzero().view(-1)


def _random_nodes(n: int, train: float, val: float, seed: int) -> dict[str, Tensor]:
    if not (0 < train < 1 and 0 <= val < 1 and train + val < 1):
        raise ValueError(
            f"train_fraction={train} and val_fraction={val} must be in (0, 1) and sum below 1"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_tr, n_va = max(1, round(train * n)), round(val * n)
    out = {"train": perm[:n_tr].sort().values, "test": perm[n_tr + n_va :].sort().values}
    if n_va:
        out["val"] = perm[n_tr : n_tr + n_va].sort().values
    return out


def _holdout(graph: Data, test: float, val: float, seed: int) -> tuple[Data, dict[str, Any]]:
    """Remove a share of edges from ``graph`` and keep them (with non-edges) for scoring."""
    from torch_geometric.transforms import RandomLinkSplit
    from torch_geometric.utils import is_undirected

    if not (0 < test < 1 and 0 <= val < 1 and test + val < 1):
        raise ValueError(
            f"holdout_edges={test} and holdout_val_edges={val} must be in [0, 1) and sum below 1"
        )
    split = RandomLinkSplit(
        num_val=val,
        num_test=test,
        is_undirected=is_undirected(graph.edge_index, num_nodes=graph.num_nodes),
        add_negative_train_samples=False,
        split_labels=True,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        train, val_data, test_data = split(graph)
    link: dict[str, Any] = {
        "test": (test_data.pos_edge_label_index, test_data.neg_edge_label_index)
    }
    if val > 0:
        link["val"] = (val_data.pos_edge_label_index, val_data.neg_edge_label_index)
    kept = Data(x=graph.x, edge_index=train.edge_index, y=getattr(graph, "y", None))
    kept.num_nodes = graph.num_nodes
    return kept, link


def build_splits(
    graph: Data,
    nodes: dict[str, Tensor],
    num_classes: int,
    name: str,
    normalize_features: bool,
    holdout_edges: float,
    holdout_val_edges: float,
    split_seed: int,
    embed_batch_size: int | None = None,
) -> GraphSplits:
    """Normalise, hold edges out if asked, and wrap a graph into :class:`GraphSplits`."""
    x = graph.x.float()
    graph = Data(
        x=_normalize_rows(x) if normalize_features else x,
        edge_index=graph.edge_index,
        y=graph.y,
        num_nodes=graph.num_nodes,
    )
    meta: dict[str, Any] = {"name": name}
    if holdout_edges:
        graph, meta["link_split"] = _holdout(graph, holdout_edges, holdout_val_edges, split_seed)
    return GraphSplits(graph, nodes, num_classes, meta, embed_batch_size=embed_batch_size)


# --------------------------------------------------------------------------- datasets


def planetoid(
    name: str = "Cora",
    root: str | None = None,
    cache_dir: str | None = None,
    normalize_features: bool = True,
    holdout_edges: Rate = 0.0,
    holdout_val_edges: Rate = 0.0,
    split_seed: int = 0,
    embed_batch_size: PositiveInt | None = None,
) -> GraphSplits:
    """A Planetoid citation graph (Cora, CiteSeer, PubMed) with its public split.

    ``root`` is the folder holding ``<name>/raw/ind.<name>.*`` (the 8 planetoid files:
    x, tx, allx, y, ty, ally, graph, test.index), e.g. ``../shared/data/planetoid``;
    it may also point at ``<name>/`` or at the ``raw/`` folder itself. The files are
    read in place on every load, through a restricted unpickler
    (:mod:`selfsup_graph.planetoid_io`), giving the tensors PyG's ``Planetoid`` gives;
    nothing is written, so ``cache_dir`` is not used (it is accepted for configs
    written for earlier versions, which cached PyG's ``processed/`` folder).

    Raises:
        FileNotFoundError: A file is missing; the message lists the expected files.
        UnsafePickleError: A file names a global that data never holds (it may be
            malicious); it was refused, not run.
        CorruptFileError: A file is truncated, garbage, or from another dataset.
    """
    owner = "graph:planetoid"
    canon = {n.lower(): n for n in PLANETOID_NAMES}
    if str(name).lower() not in canon:
        raise ValueError(f"{owner}: name={name!r} is not one of {', '.join(PLANETOID_NAMES)}")
    name = canon[str(name).lower()]
    base = _resolve_root(owner, root, "planetoid")
    files = [f"ind.{name.lower()}.{s}" for s in PLANETOID_SUFFIXES]
    candidates = [base / name / "raw", base / "raw", base]
    raw = next((c for c in candidates if all((c / f).is_file() for f in files)), None)
    if raw is None:
        found = next((c for c in candidates if c.is_dir() and any(c.glob("ind.*"))), base)
        missing = [f for f in files if not (found / f).is_file()]
        raise FileNotFoundError(
            f"{owner}: {name} files missing under {found}: {', '.join(missing)}. Expected "
            f"the 8 planetoid files {', '.join(files)} in {base / name / 'raw'} (root="
            f"{str(root)!r}); selfsup never downloads: copy them there or fix data.params.root"
        )
    del cache_dir  # accepted for older configs: nothing is cached (see above)
    graph, num_classes = read_planetoid(raw, name.lower())
    nodes = {s: graph[f"{s}_mask"].nonzero().view(-1) for s in ("train", "val", "test")}
    return build_splits(
        graph,
        nodes,
        num_classes,
        f"planetoid/{name}",
        normalize_features,
        holdout_edges,
        holdout_val_edges,
        split_seed,
        embed_batch_size,
    )


def karate(
    train_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.5,
    val_fraction: Rate = 0.25,
    split_seed: int = 0,
    holdout_edges: Rate = 0.0,
) -> GraphSplits:
    """Zachary's karate club (built into PyG: 34 nodes, 4 communities, one-hot features).

    Its nodes are split at random (``split_seed``) into train/val/test fractions.
    """
    from torch_geometric.datasets import KarateClub

    dataset = KarateClub()
    graph = dataset[0]
    nodes = _random_nodes(graph.num_nodes, train_fraction, val_fraction, split_seed)
    return build_splits(
        graph, nodes, int(dataset.num_classes), "karate", False, holdout_edges, 0.0, split_seed
    )


def pyg_dataset(
    dataset: str,
    root: str,
    name: str | None = None,
    cache_dir: str | None = None,
    normalize_features: bool = True,
    train_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1,
    val_fraction: Rate = 0.1,
    split_seed: int = 0,
    holdout_edges: Rate = 0.0,
    holdout_val_edges: Rate = 0.0,
    embed_batch_size: PositiveInt | None = None,
) -> GraphSplits:
    """A node-level dataset class of ``torch_geometric.datasets``, from local files only.

    ``dataset`` is a class name from the allow-list :data:`PYG_DATASETS` (configs never
    carry import paths) and ``name`` its sub-dataset where it has one. The dataset's
    own split masks are used when it has them (the first of several); otherwise nodes
    are split at random into ``train_fraction`` / ``val_fraction`` / the rest.

    PyG's ``processed/`` folder is kept in ``cache_dir`` only, keyed by the content of
    the raw files (:mod:`selfsup_graph.pyg_cache`); ``Planetoid`` is read by
    :func:`planetoid` (no pickle is ever loaded from a user's folder).

    Raises:
        ValueError: The class or name is not allowed.
        FileNotFoundError: The root or its raw files are missing (listed).
        CorruptFileError: PyG could not read the raw files (the message names them and
            the cache folder).
    """
    owner = "graph:pyg"
    if dataset not in PYG_DATASETS:
        raise ValueError(
            f"{owner}: dataset={dataset!r} is not allowed; choose one of {', '.join(PYG_DATASETS)}"
        )
    names = PYG_DATASETS[dataset]
    if names and name not in names:
        raise ValueError(f"{owner}: {dataset} needs name= one of {', '.join(names)}")
    if not names and name is not None:
        raise ValueError(f"{owner}: {dataset} takes no name (got {name!r})")
    if dataset == "Planetoid":
        return planetoid(
            str(name),
            root,
            cache_dir,
            normalize_features,
            holdout_edges,
            holdout_val_edges,
            split_seed,
            embed_batch_size,
        )
    base = Path(root).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(
            f"{owner}: root {str(base)!r} is not a folder; point data.params.root at the "
            f"folder that holds the {dataset} files (selfsup never downloads)"
        )
    import torch_geometric.datasets as pyg_datasets

    ds = pyg_cached(getattr(pyg_datasets, dataset), base, name if names else None, cache_dir)
    graph = ds[0]
    masks = {s: _mask_nodes(getattr(graph, f"{s}_mask", None)) for s in ("train", "val", "test")}
    if masks["train"] is not None and masks["test"] is not None:
        nodes = {k: v for k, v in masks.items() if v is not None}
    else:
        nodes = _random_nodes(graph.num_nodes, train_fraction, val_fraction, split_seed)
    label = f"{dataset}/{name}" if name else dataset
    return build_splits(
        graph,
        nodes,
        int(ds.num_classes),
        label,
        normalize_features,
        holdout_edges,
        holdout_val_edges,
        split_seed,
        embed_batch_size,
    )
