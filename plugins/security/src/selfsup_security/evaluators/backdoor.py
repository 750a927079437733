"""``security:backdoor``: clean accuracy and attack success rate of a trigger.

The downstream user's view of a (possibly) backdoored encoder: a linear probe fit on
clean labelled data (the train items the poisoning transform flagged are left out),
weight decay chosen on the validation split (or on a stratified part carved from
train), then the held-out split scored clean and triggered.

Metrics (the issue's conventions; the same names for the clean pipeline, whose
figures are the baseline the poisoned pipeline is compared against):

* ``ca``: clean accuracy of the probe on the held-out split.
* ``asr``: the **attack success rate**: the fraction of triggered held-out inputs of
  **non-target classes** predicted as the target class.
* ``asr_all_ctrl``: CTRL's own convention, labelled so: every held-out input
  triggered and relabelled to the target; the fraction predicted as the target
  (inflated by the target class's own items, which count as successes).
* ``target_rate_clean``: the fraction of *clean* non-target held-out inputs predicted
  as the target (the false "ASR" a trigger-less input already gets).
* ``poison_rate``: poisoned train items / train items, from the ``poisoned`` flags.
* ``trigger_nn_poisoned``: a probe-free diagnostic: the fraction of triggered non-target
  held-out inputs whose nearest train item (cosine, among the train items embedded for
  the probe: for graphs, the labelled train nodes) is a poisoned one (chance: about
  ``poison_rate``; ``0`` for a clean pipeline). High values with a low ``asr`` mean the
  encoder did learn to map triggered inputs onto the poisoned items, but that cluster
  lies away from the clean target class, so a clean probe sends it elsewhere.

Without a ``test`` split the dataset's ``val`` split is the held-out one and every
name ends in ``_on_val``. Works for any modality: triggers stamp items through
``Trigger.apply`` and features come from ``DataSplits.embed`` (graphs included).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import torch
from pydantic import Field
from selfsup import Ref
from selfsup.evaluation import (
    accuracy,
    embed_split,
    has_split,
    require_labelled,
    stratified_split,
    subsample,
)
from torch import Tensor

from selfsup_security.items import is_graph, split_labels, split_size
from selfsup_security.probe import fit_linear_head, predict
from selfsup_security.transforms import clean_data, describe_trigger

if TYPE_CHECKING:
    from selfsup import DataSplits, EvalContext
    from torch import nn

__all__ = ["Backdoor", "poison_facts"]

_OWNER = "security:backdoor"


def _train_flags(data: DataSplits) -> Tensor | None:
    """The ``poisoned`` flags aligned with the items ``data.embed(..., "train")`` returns."""
    flags = data.flag("train", "poisoned")
    if flags is None:
        return None
    flags = flags.bool().reshape(-1).cpu()
    if is_graph(data):  # flags are per node of the graph; embed("train") gives the train nodes
        return flags[data.nodes("train")]  # type: ignore[attr-defined]
    return flags


def poison_facts(data: DataSplits, target: int) -> dict[str, Any]:
    """What is poisoned and how much, from the ``poisoned`` flags of the train split."""
    flags = data.flag("train", "poisoned")
    n = split_size(data, "train")
    labels = split_labels(data, "train")
    n_target = int((labels == target).sum())
    count = 0 if flags is None else int(flags.bool().sum())
    on_target = 0 if flags is None else int((flags.bool().reshape(-1) & (labels == target)).sum())
    return {
        "split": "train",
        "count": count,
        "of_target_class": on_target,
        "items": n,
        "target_class_items": n_target,
        "rate_of_dataset": count / n if n else 0.0,
        "rate_of_target_class": count / n_target if n_target else 0.0,
        "source": "data.flag('train', 'poisoned') (set by security:poison)",
    }


def _nn_flagged(queries: Tensor, items: Tensor, flags: Tensor | None) -> float:
    """Fraction of ``queries`` whose nearest item (cosine) is flagged (``0`` without flags)."""
    if flags is None or not bool(flags.any()):
        return 0.0
    q = torch.nn.functional.normalize(queries.float(), dim=1)
    k = torch.nn.functional.normalize(items.float(), dim=1)
    nearest = (q @ k.T).argmax(1)
    return float(flags[nearest].double().mean())


class Backdoor:
    """Clean accuracy and attack success rate of ``trigger`` through a clean linear probe.

    Args:
        trigger: The trigger stamped on held-out inputs (the one the data was poisoned
            with; for the clean pipeline the same trigger measures the false ASR).
        target: The attacker's target class.
        max_test_items: Trigger and score at most this many held-out items (a seeded
            choice); ``None``: all of them.
        val_fraction: Part of the clean train items carved out for selecting the
            probe's weight decay when the dataset has no separate validation split.
        downstream: Which data the defender's probe and the held-out inputs come from.
            ``"as-trained"``: the data the run holds (for a graph: the poisoned graph,
            so triggered nodes also reach the probe through message passing, which a
            random-init encoder already shows); ``"clean"``: the data before
            ``security:poison`` (kept by the transform), so only what pretraining
            learned carries the trigger. The same for map-style data, except that the
            poisoned train items come back clean into the probe's training set.
        suffix: Appended to every metric name (``asr_m300`` with ``suffix: _m300``),
            for two backdoor evaluators on one arm (e.g. two trigger magnitudes).
    """

    def __init__(
        self,
        trigger: Annotated[Any, Ref("trigger")],
        target: Annotated[int, Field(ge=0)] = 0,
        max_test_items: Annotated[int, Field(ge=1)] | None = None,
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1,
        downstream: Literal["as-trained", "clean"] = "as-trained",
        suffix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.@-]*$", max_length=32)] = "",
    ) -> None:
        self.trigger = trigger
        self.downstream = downstream
        self.suffix = suffix
        self.target = int(target)
        self.max_test_items = max_test_items
        self.val_fraction = float(val_fraction)

    def _embed(self, encoder: nn.Module, data: DataSplits, split: str, ctx: EvalContext) -> Tensor:
        got = embed_split(_OWNER, encoder, data, split, ctx.runtime)
        if got is None:
            raise ValueError(f"{_OWNER}: the dataset has no {split!r} split")
        return got[0]

    def _triggered(
        self, encoder: nn.Module, data: DataSplits, split: str, index: Tensor, ctx: EvalContext
    ) -> Tensor:
        """Embeddings of the items ``index`` of ``split``, triggered."""
        triggered = self.trigger.apply(data, split, index, ctx.seed)
        return self._embed(encoder, triggered, split, ctx)[index]

    def _labelled(
        self, encoder: nn.Module, data: DataSplits, split: str, ctx: EvalContext
    ) -> tuple[Tensor, Tensor] | None:
        got = embed_split(_OWNER, encoder, data, split, ctx.runtime)
        if got is None:
            return None
        y = got[1].reshape(-1).long()
        if int((y < 0).sum()):
            raise ValueError(
                f"{_OWNER}: {int((y < 0).sum())} items of the {split!r} split have no label "
                "(-1); the clean probe needs labelled train, validation and test items"
            )
        return got[0], y

    def evaluate(self, encoder: nn.Module, data: DataSplits, ctx: EvalContext) -> dict[str, float]:
        """Fit the clean probe, score clean and triggered held-out inputs, record the threats."""
        require_labelled(_OWNER, data)
        original = data
        if self.downstream == "clean":
            data = clean_data(data)
        if self.target >= data.num_classes:
            raise ValueError(
                f"{_OWNER}: target={self.target} is not a class of the dataset "
                f"(num_classes={data.num_classes}); set target in [0, {data.num_classes})"
            )
        heldout = "test" if has_split(data, "test") else "val"
        train = self._labelled(encoder, data, "train", ctx)
        held = self._labelled(encoder, data, heldout, ctx)
        if train is None or held is None:
            raise ValueError(
                f"{_OWNER} needs a 'train' split and a held-out ('test' or 'val') split; "
                "the dataset lacks one"
            )
        all_x, (x_tr, y_tr) = train[0], train
        flags = _train_flags(data)
        if flags is not None:
            x_tr, y_tr = x_tr[~flags], y_tr[~flags]
        val = self._labelled(encoder, data, "val", ctx) if heldout == "test" else None
        if val is not None:
            fit_x, fit_y, sel_x, sel_y, selection = x_tr, y_tr, val[0], val[1], "val"
        else:
            rest, part = stratified_split(y_tr, self.val_fraction, ctx.seed)
            fit_x, fit_y = x_tr[rest], y_tr[rest]
            sel_x, sel_y, selection = x_tr[part], y_tr[part], f"carved {self.val_fraction} of train"
        head = fit_linear_head(fit_x, fit_y, sel_x, sel_y, data.num_classes, ctx.seed)

        x_ho, y_ho = held
        scored = subsample(len(y_ho), self.max_test_items, ctx.seed)
        scored = torch.arange(len(y_ho)) if scored is None else scored
        nontarget = scored[y_ho[scored] != self.target]
        clean_pred = predict(head, x_ho)
        if len(nontarget) == 0:
            raise ValueError(
                f"{_OWNER}: the {heldout!r} split has no item outside target class "
                f"{self.target}; the ASR is undefined"
            )
        # ASR: only the non-target items are triggered (the convention).
        x_trig = self._triggered(encoder, data, heldout, nontarget, ctx)
        asr = float((predict(head, x_trig) == self.target).double().mean())
        # CTRL's convention: every scored item triggered and relabelled to the target.
        x_all = self._triggered(encoder, data, heldout, scored, ctx)
        asr_all = float((predict(head, x_all) == self.target).double().mean())
        false_asr = float((clean_pred[nontarget] == self.target).double().mean())
        poisoned = poison_facts(original, self.target)
        suffix = ("" if heldout == "test" else "_on_val") + self.suffix
        self._record(ctx, data, poisoned, heldout, selection, len(scored), len(nontarget))
        metrics = {
            f"ca{suffix}": accuracy(clean_pred, y_ho),
            f"asr{suffix}": asr,
            f"asr_all_ctrl{suffix}": asr_all,
            f"target_rate_clean{suffix}": false_asr,
            f"poison_rate{self.suffix}": float(poisoned["rate_of_dataset"]),
        }
        if self.downstream == "as-trained":  # the poisoned items are not in clean data
            metrics[f"trigger_nn_poisoned{suffix}"] = _nn_flagged(x_trig, all_x, flags)
        return metrics

    def _record(
        self,
        ctx: EvalContext,
        data: DataSplits,
        poisoned: dict[str, Any],
        heldout: str,
        selection: str,
        scored: int,
        nontarget: int,
    ) -> None:
        trigger = describe_trigger(self.trigger)
        ctx.record(
            threat_model={
                "attack": "backdoor planted through poisoned unlabelled pretraining data",
                "knowledge": "data-only (poisons target-class items; never sees the encoder)",
                "target": self.target,
                "trigger": trigger,
                "poisoned": poisoned,
                "budget": {k: v for k, v in trigger.items() if k != "trigger"},
                "defender": (
                    "clean labelled train split (items flagged poisoned left out), frozen "
                    "encoder, linear probe"
                ),
                "protocol": {
                    "ca": f"clean accuracy on the {heldout!r} split",
                    "asr": (
                        "triggered held-out inputs of non-target classes predicted as the "
                        "target (issue 10 convention)"
                    ),
                    "asr_all_ctrl": (
                        "all scored held-out inputs triggered and relabelled to the target "
                        "(CTRL's convention)"
                    ),
                    "target_rate_clean": "clean non-target held-out inputs predicted as the target",
                    "probe_selection": selection,
                    "downstream": self.downstream,
                    "heldout": heldout,
                    "scored_items": scored,
                    "nontarget_items": nontarget,
                },
                "modality": data.modality,
                "seed": ctx.seed,
            }
        )
