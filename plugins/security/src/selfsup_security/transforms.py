"""``security:poison``: stamp a trigger on target-class items of the pretraining split.

The clean-label poisoning of CTRL and SSL-Backdoor: the attacker knows some items of
the target class (labels are never given to the SSL objective), stamps the trigger on
a seeded random choice of them and releases the data. SSL then learns to put triggered
inputs next to the target class, and a clean downstream probe carries the backdoor.

The poisoned count is set by ``rate`` against one of the two conventions of the
literature, and both rates are recorded whatever the config sets:

* ``rate_of: dataset`` (CTRL): ``count = round(rate * N)``, ``N`` the items of the split.
* ``rate_of: target-class`` (SSL-Backdoor): ``count = round(rate * N_target)``.

The transform works on any modality through :mod:`selfsup_security.items` (for a graph,
the items of ``train`` are its nodes; nodes of the graph's ``val`` and ``test`` node
splits are never poisoned, so that held-out scores see clean held-out nodes).

Example:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from selfsup import DataSplits
    >>> from selfsup_security.triggers.image import Patch
    >>> data = DataSplits(
    ...     train=TensorDataset(torch.zeros(20, 1, 4, 4), torch.arange(20) % 2), num_classes=2
    ... )
    >>> poison = Poison(Patch(size=2, pattern="white"), target=1, rate=0.2)
    >>> out = poison(data, seed=0)
    >>> int(out.flag("train", "poisoned").sum()), poison.summary()["rate_of_target_class"]
    (4, 0.4)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from selfsup import DataSplits, Ref, Transform
from torch import Tensor

from selfsup_security.items import graph_nodes, is_graph, split_labels, split_size

__all__ = ["CLEAN_KEY", "Poison", "clean_data", "describe_trigger"]

_OWNER = "security:poison"
#: ``DataSplits.meta`` key under which :class:`Poison` keeps the data it was given (the
#: clean data: the first poisoning's input when several are chained). No copy is made:
#: it is the object the transform received, which the run holds anyway.
CLEAN_KEY = "security_clean_data"


def clean_data(data: DataSplits) -> DataSplits:
    """The data before ``security:poison`` (``data`` itself when it was never poisoned).

    Evaluators that score what *pretraining* learned (``security:backdoor`` with
    ``downstream: clean``) fit and test on it, so a trigger cannot reach the probe
    through anything else (for a graph: messages from poisoned neighbours).
    """
    clean = data.meta.get(CLEAN_KEY)
    return clean if isinstance(clean, DataSplits) else data


def describe_trigger(trigger: Any) -> dict[str, Any]:
    """The trigger's class name and plain-data parameters, for records."""
    describe = getattr(trigger, "describe", None)
    params = describe() if callable(describe) else {}
    return {"trigger": type(trigger).__name__, **params}


def _heldout_items(data: DataSplits, split: str) -> Tensor:
    """Items of ``split`` that are also held-out items (graph nodes of val/test), never poisoned."""
    if not is_graph(data) or split != "train":
        return torch.zeros(0, dtype=torch.long)
    held = []
    for name in ("val", "test"):
        try:
            held.append(graph_nodes(data, name).long().cpu())
        except KeyError:
            continue
    return torch.cat(held) if held else torch.zeros(0, dtype=torch.long)


class Poison(Transform):
    """Stamp ``trigger`` on a seeded choice of target-class items and flag them ``poisoned``.

    Args:
        trigger: The trigger (a component of kind ``trigger`` of the data's modality).
        target: The target class, whose items are poisoned (clean-label).
        rate: The poison rate, in ``(0, 1]``, against ``rate_of``.
        rate_of: ``"dataset"``: a fraction of the whole split (CTRL's convention);
            ``"target-class"``: a fraction of the target class (SSL-Backdoor's).
        split: The split poisoned: the pretraining split, ``train``.
    """

    def __init__(
        self,
        trigger: Annotated[Any, Ref("trigger")],
        target: Annotated[int, Field(ge=0)] = 0,
        rate: Annotated[float, Field(gt=0, le=1)] = 0.01,
        rate_of: Literal["dataset", "target-class"] = "dataset",
        split: Literal["train"] = "train",
    ) -> None:
        if not 0 < rate <= 1:
            raise ValueError(f"{_OWNER}: rate={rate} must be in (0, 1]")
        if target < 0:
            raise ValueError(f"{_OWNER}: target={target} must be a class index >= 0")
        self.trigger = trigger
        self.target = int(target)
        self.rate = float(rate)
        self.rate_of = rate_of
        self.split = split
        self._summary: dict[str, Any] = {}

    def _count(self, n: int, n_target: int) -> int:
        base = n if self.rate_of == "dataset" else n_target
        count = round(self.rate * base)
        if count < 1:
            raise ValueError(
                f"{_OWNER}: rate={self.rate} of the {self.rate_of} ({base} items) poisons "
                f"no item; raise rate to at least {1 / max(base, 1):.4g}"
            )
        return count

    def __call__(self, data: DataSplits, seed: int) -> DataSplits:
        """Return ``data`` with ``count`` target-class items of ``split`` triggered and flagged."""
        if not data.has_class_labels:
            raise ValueError(
                f"{_OWNER} poisons items of a target class, but the dataset has no class labels "
                f"(task={data.task!r}, num_classes={data.num_classes}); the attacker is assumed "
                "to know target-class items (as in CTRL): use a labelled dataset"
            )
        if self.target >= data.num_classes:
            raise ValueError(
                f"{_OWNER}: target={self.target} is not a class of the dataset "
                f"(num_classes={data.num_classes}); set target in [0, {data.num_classes})"
            )
        n = split_size(data, self.split)
        labels = split_labels(data, self.split)
        is_target = labels == self.target
        n_target = int(is_target.sum())
        eligible = is_target.clone()
        eligible[_heldout_items(data, self.split)] = False
        candidates = torch.nonzero(eligible).reshape(-1)
        count = self._count(n, n_target)
        if count > len(candidates):
            raise ValueError(
                f"{_OWNER}: rate={self.rate} of the {self.rate_of} asks for {count} poisoned "
                f"items, but the {self.split!r} split has only {len(candidates)} eligible items "
                f"of target class {self.target} ({n} items in all); lower rate "
                f"(at most {len(candidates) / (n if self.rate_of == 'dataset' else n_target):.4g})"
            )
        gen = torch.Generator().manual_seed(int(seed))
        chosen = candidates[torch.randperm(len(candidates), generator=gen)[:count]].sort().values
        out = self.trigger.apply(data, self.split, chosen, int(seed))
        mask = torch.zeros(n, dtype=torch.bool)
        mask[chosen] = True
        before = data.flag(self.split, "poisoned")
        if before is not None:  # a second poisoning keeps the first one's flags
            mask = mask | before.bool().reshape(-1)
        self._summary = {
            "split": self.split,
            "target": self.target,
            "rate": self.rate,
            "rate_of": self.rate_of,
            "count": count,
            "items": n,
            "target_class_items": n_target,
            "rate_of_dataset": count / n,
            "rate_of_target_class": count / n_target,
            "seed": int(seed),
            **describe_trigger(self.trigger),
        }
        out = out.replace(meta={**out.meta, CLEAN_KEY: clean_data(data)})
        return out.with_flags(self.split, poisoned=mask)

    def summary(self) -> dict[str, Any]:
        """Count, both rates, target and the trigger's parameters of the last call."""
        return dict(self._summary)
