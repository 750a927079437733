"""The items of a split, whatever the modality: labels, counts, and replacing some.

Security components work on any installed modality without importing its plugin: a
split is either map-style (``(x, y)`` items: images, clips, rows) or a graph dataset
(``data.train`` is the whole graph with ``y``, ``data.nodes(split)`` its node ids), told
apart by duck typing.

Example:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from selfsup import DataSplits
    >>> data = DataSplits(train=TensorDataset(torch.zeros(4, 2), torch.tensor([0, 1, 1, 0])),
    ...                   num_classes=2)
    >>> split_labels(data, "train").tolist()
    [0, 1, 1, 0]
"""

from __future__ import annotations

from typing import Any

import torch
from selfsup import DataSplits
from selfsup.evaluation import item_labels
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["ReplacedItems", "is_graph", "split_items", "split_labels", "split_size"]


def is_graph(data: DataSplits) -> bool:
    """Whether ``data`` is a graph dataset (one graph, node-id splits)."""
    return callable(getattr(data, "nodes", None)) and hasattr(data.train, "edge_index")


def graph_nodes(data: DataSplits, split: str) -> Tensor:
    """The node ids of ``split`` in a graph dataset (``train``: every node, as pretraining sees)."""
    if split == "train":
        return torch.arange(int(data.train.num_nodes))
    return data.nodes(split)  # type: ignore[attr-defined]


def split_size(data: DataSplits, split: str) -> int:
    """Number of items (nodes for graphs) of ``split``."""
    if is_graph(data):
        return len(graph_nodes(data, split))
    return len(data.split(split))


def split_labels(data: DataSplits, split: str) -> Tensor:
    """The integer label of every item (node) of ``split`` (``-1`` where unlabelled)."""
    if is_graph(data):
        return data.train.y[graph_nodes(data, split)].long().cpu()
    return item_labels(data.split(split))


def split_items(data: DataSplits, split: str, index: Tensor) -> Tensor:
    """The inputs ``x`` of items ``index`` of a map-style split, stacked."""
    items = data.split(split)
    return torch.stack([torch.as_tensor(items[int(i)][0]) for i in index])


class ReplacedItems(Dataset):
    """A map-style split with the inputs of some items replaced (labels kept).

    Args:
        items: The original split (never modified).
        index: Positions of the replaced items.
        inputs: Their new inputs, ``[len(index), ...]``.
    """

    def __init__(self, items: Any, index: Tensor, inputs: Tensor) -> None:
        self.items = items
        self.replaced = {int(i): row for i, row in zip(index.tolist(), inputs, strict=True)}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> Any:
        x, y = self.items[position]
        new = self.replaced.get(int(position))
        return (x if new is None else new), y

    def __getitems__(self, positions: list[int]) -> list[Any]:
        # Defined here so that a DataLoader never reaches the wrapped split's own
        # ``__getitems__`` through ``__getattr__`` (it would return the unreplaced items).
        return [self[int(p)] for p in positions]

    def __getattr__(self, name: str) -> Any:  # keep the split's own attributes (classes, ...)
        if name in ("items", "replaced") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.items, name)
