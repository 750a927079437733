"""What a trigger is: ``apply(data, split, index, seed) -> DataSplits``.

A trigger stamps chosen items of one split of a dataset and returns new splits (the
input is never changed). The poisoning transform (``security:poison``) applies it to
target-class items of the pretraining split; the backdoor evaluator applies it to
test items and asks the clean probe what it sees. One method serves every modality:
:class:`ItemTrigger` implements it for map-style splits from a batched
:meth:`ItemTrigger.stamp` on inputs in ``[0, 1]``; graph triggers change node features
or structure of the one graph.

Example:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from selfsup import DataSplits
    >>> class White(ItemTrigger):
    ...     modality = "image"
    ...     def stamp(self, x, generator):
    ...         return torch.ones_like(x)
    >>> data = DataSplits(train=TensorDataset(torch.zeros(3, 1, 2, 2), torch.zeros(3)))
    >>> out = White().apply(data, "train", torch.tensor([1]), seed=0)
    >>> out.train[1][0].max().item(), out.train[0][0].max().item(), data.train[1][0].max().item()
    (1.0, 0.0, 0.0)
"""

from __future__ import annotations

from typing import Any

import torch
from selfsup import DataSplits
from torch import Tensor

from selfsup_security.items import ReplacedItems, is_graph, split_items

__all__ = ["ItemTrigger", "Trigger", "from_unit", "to_unit"]


class Trigger:
    """Base of triggers. Subclasses set :attr:`modality` and implement :meth:`apply`."""

    modality: str = "any"

    def apply(self, data: DataSplits, split: str, index: Tensor, seed: int) -> DataSplits:
        """Return ``data`` with the items ``index`` of ``split`` triggered."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Plain-data parameters of the trigger, for the threat model record."""
        return {k: v for k, v in vars(self).items() if isinstance(v, str | int | float | bool)}


def to_unit(x: Tensor) -> tuple[Tensor, torch.dtype]:
    """Inputs as float in ``[0, 1]`` (``uint8`` images are divided by 255) and their dtype."""
    if x.dtype == torch.uint8:
        return x.float() / 255.0, x.dtype
    return x.float(), x.dtype


def from_unit(x: Tensor, dtype: torch.dtype) -> Tensor:
    """Back to the original dtype (``uint8``: rounded and clamped to 0-255)."""
    if dtype == torch.uint8:
        return (x.clamp(0, 1) * 255.0).round().to(torch.uint8)
    return x.to(dtype)


class ItemTrigger(Trigger):
    """A trigger on map-style items: implement :meth:`stamp` on a batch in ``[0, 1]``."""

    def stamp(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Return the triggered batch (same shape, values in ``[0, 1]``)."""
        raise NotImplementedError

    def apply(self, data: DataSplits, split: str, index: Tensor, seed: int) -> DataSplits:
        """Stamp items ``index`` of ``split``; their labels are kept."""
        if is_graph(data):
            raise ValueError(
                f"{type(self).__name__} is a {self.modality} trigger and the dataset is a graph; "
                "use a graph trigger (selfsup list trigger --modality graph)"
            )
        index = torch.as_tensor(index, dtype=torch.long)
        if len(index) == 0:
            return data
        raw = split_items(data, split, index)
        x, dtype = to_unit(raw)
        gen = torch.Generator().manual_seed(seed)
        stamped = from_unit(self.stamp(x, gen), dtype)
        return data.replace(**{split: ReplacedItems(data.split(split), index, stamped)})
