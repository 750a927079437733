"""``audio:label-probe``: the core linear probe on any per-item flag (speaker, digit, fake).

Speech datasets carry several labels per clip (FSDD: the digit and the speaker), but a
dataset's ``y`` is only one of them. This evaluator relabels every split with one flag
(``DataSplits.flags[split][flag]``) and runs ``core:linear-probe`` on it, unchanged:
the same L-BFGS multinomial logistic regression, weight decay chosen on validation data
(or a stratified, seeded carve-out of ``train`` when there is no ``val`` split), refit and
reported once on the held-out split. Metrics are the core probe's, renamed after the
flag: ``speaker_acc``, ``speaker_val_acc``, ``speaker_weight_decay``, ...
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import torch
from pydantic import Field, NonNegativeFloat, PositiveInt
from selfsup.components import build_component
from torch import Tensor

if TYPE_CHECKING:
    from selfsup.interfaces import DataSplits, EvalContext
    from torch import nn

__all__ = ["LabelProbe", "relabel"]

_OWNER = "audio:label-probe"
_DEFAULT_WD: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


class _Relabelled(torch.utils.data.Dataset):
    """A map-style split whose items keep ``x`` but take ``y`` from a label tensor."""

    def __init__(self, inner: Any, labels: Tensor) -> None:
        self.inner, self.labels = inner, labels

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        return self.inner[index][0], int(self.labels[index])


def relabel(owner: str, data: DataSplits, flag: str) -> DataSplits:
    """A copy of ``data`` whose items' ``y`` is the flag ``flag`` (a classification task).

    Raises:
        ValueError: A split lacks the flag, an item has none (-1), or the held-out
            splits hold classes the train split never shows (say, a speaker-ID probe on
            a split by speaker: use the dataset's split by index instead).
    """
    changes: dict[str, Any] = {}
    seen: dict[str, Tensor] = {}
    for split in ("train", "val", "test"):
        items = getattr(data, split, None)
        if items is None:
            continue
        labels = data.flag(split, flag)
        if labels is None:
            have = sorted(data.flags.get(split, {}))
            raise ValueError(
                f"{owner}: the {split!r} split has no {flag!r} flag; its flags are {have} "
                "(set flag: to one of them)"
            )
        labels = torch.as_tensor(labels).reshape(-1).long()
        if labels.numel() != len(items):
            raise ValueError(
                f"{owner}: flag {flag!r} of split {split!r} has {labels.numel()} entries for "
                f"{len(items)} items"
            )
        missing = int((labels < 0).sum())
        if missing:
            raise ValueError(
                f"{owner}: {missing} items of the {split!r} split have no {flag!r} label (-1)"
            )
        seen[split] = labels
        changes[split] = _Relabelled(items, labels)
    if "train" not in seen:
        raise ValueError(f"{owner} needs a 'train' split to fit on; the dataset has none")
    known = set(seen["train"].unique().tolist())
    for split, labels in seen.items():
        unseen = sorted(set(labels.unique().tolist()) - known)
        if unseen:
            raise ValueError(
                f"{owner}: {flag!r} values {unseen[:5]} of the {split!r} split never occur "
                f"in 'train', so a probe cannot predict them; split the dataset so that "
                f"every {flag} appears in train (for FSDD speakers: split: by-index)"
            )
    num_classes = int(max(int(t.max()) for t in seen.values())) + 1
    meta = dict(data.meta)
    names = meta.get(f"{flag}_names")
    meta["class_names"] = list(names) if names is not None else [str(i) for i in range(num_classes)]
    return data.replace(**changes, num_classes=num_classes, task="classification", meta=meta)


class LabelProbe:
    """Linear probe on one per-item flag (see the module docstring).

    Args:
        flag: The flag to predict (``speaker``, ``digit``, ``fake``, ...).
        weight_decays: The L2 grid searched on validation data (``core:linear-probe``).
        standardize: Standardise features (``true``), not (``false``) or choose on
            validation (``"auto"``).
        val_fraction: Share of ``train`` carved out for validation without a ``val`` split.
        max_iter: L-BFGS iterations per fit.
    """

    def __init__(
        self,
        flag: Annotated[str, Field(min_length=1)] = "speaker",
        weight_decays: Annotated[Sequence[NonNegativeFloat], Field(min_length=1)]
        | NonNegativeFloat = _DEFAULT_WD,
        standardize: bool | Literal["auto"] = True,
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1,
        max_iter: PositiveInt = 200,
    ) -> None:
        if not isinstance(flag, str) or not flag:
            raise ValueError(f"{_OWNER}: flag={flag!r} must name a per-item flag, e.g. speaker")
        self.flag = flag
        grid = [weight_decays] if isinstance(weight_decays, int | float) else list(weight_decays)
        self.probe = build_component(
            "evaluator",
            {
                "id": "core:linear-probe",
                "params": {
                    "weight_decays": grid,
                    "standardize": standardize,
                    "val_fraction": val_fraction,
                    "max_iter": max_iter,
                },
            },
        )

    def evaluate(self, encoder: nn.Module, data: DataSplits, ctx: EvalContext) -> dict[str, float]:
        """Probe the flag; metrics named ``<flag>_acc``, ``<flag>_val_acc``, ...

        Raises:
            ValueError: See :func:`relabel`, and the core probe's errors.
        """
        relabelled = relabel(_OWNER, data, self.flag)
        out = self.probe.evaluate(encoder, relabelled, ctx)
        ctx.record(probe={"flag": self.flag, "classes": relabelled.num_classes})
        return {f"{self.flag}_{k.removeprefix('linear_')}": v for k, v in out.items()}
