"""``security:adversarial-detection`` and ``security:poison-detection``: detectors scored by AUROC.

**Adversarial detection** (an input detector, e.g. ``security:beyond``, against an
attack). The protocol of BEYOND's paper:

1. the defender's clean probe: a linear head on the frozen encoder, fit on the
   labelled train split, weight decay chosen on validation data (carved from train
   when there is no ``val`` split);
2. a seeded choice of at most ``max_items`` held-out inputs (``test``, else ``val``);
   the **correctly classified** ones are the clean (negative) set;
3. the attack perturbs each of them through encoder + probe; the **successful**
   adversarial examples (probe label changed) are the positive set;
4. the detector scores both sets; ``detect_auroc`` and ``detect_tpr_at_5fpr`` (TPR at
   5% FPR, no interpolation) follow, with one ``detect_auroc_<part>`` per score
   component (BEYOND: ``similarity``, ``consistency``, ``sum``, ``paper``).

The attacker is white-box on encoder + probe and **not adaptive**: it does not know
the detector. The issue's reference figure uses PGD L-inf 8/255 with 50 steps
(``security:pgd`` with ``eps: 0.031373, steps: 50``); the record says which budget
each run used.

**Poison detection** (a sample detector, e.g. ``security:spectral``): every item of the
pretraining split (for a graph, every node: the items ``security:poison`` may
poison) is embedded with the frozen encoder and scored; the labels are the
``poisoned`` flags of ``data.flag("train", "poisoned")``.

Metric names end in ``_on_val`` when the held-out split is ``val``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import torch
from pydantic import Field
from selfsup import Ref
from selfsup.evaluation import labelled_splits, require_labelled, subsample
from torch import Tensor

from selfsup_security.items import is_graph, split_items, split_labels, split_size
from selfsup_security.metrics import auroc, roc_curve, tpr_at_fpr
from selfsup_security.probe import ProbedEncoder, fit_linear_head, predict
from selfsup_security.triggers.base import to_unit

if TYPE_CHECKING:
    from selfsup import DataSplits, EvalContext
    from torch import nn

__all__ = ["AdversarialDetection", "PoisonDetection"]

_ADV = "security:adversarial-detection"
_POISON = "security:poison-detection"

#: The false-positive budget of the ``*_tpr_at_5fpr`` metrics.
FPR = 0.05


def _describe(obj: Any) -> dict[str, Any]:
    describe = getattr(obj, "describe", None)
    return dict(describe()) if callable(describe) else {"class": type(obj).__name__}


def _poisoned(data: DataSplits) -> dict[str, Any] | str:
    """What the ``poisoned`` flags of the train split say, in both rate conventions."""
    flags = data.flag("train", "poisoned")
    if flags is None:
        return "nothing: the train split carries no 'poisoned' flag"
    poisoned = flags.bool().reshape(-1).cpu()
    y = split_labels(data, "train")
    count, n = int(poisoned.sum()), poisoned.numel()
    target = int(torch.mode(y[poisoned]).values) if count else -1
    n_target = int((y == target).sum()) if count else 0
    return {
        "split": "train",
        "count": count,
        "items": n,
        "rate_of_dataset": count / n if n else 0.0,
        "target_class": target,
        "rate_of_target_class": count / n_target if n_target else 0.0,
        "source": "data.flag('train', 'poisoned') (set by security:poison); target_class is "
        "the most common label among the poisoned items",
    }


def _clean_probe(
    owner: str, encoder: nn.Module, data: DataSplits, ctx: EvalContext, val_fraction: float
) -> tuple[nn.Module, str, float]:
    """The defender's clean linear probe, its held-out split and its held-out accuracy."""
    ls = labelled_splits(owner, encoder, data, ctx.runtime, ctx.seed, val_fraction=val_fraction)
    head = fit_linear_head(
        ls.select_x, ls.select_y, ls.val_x, ls.val_y, data.num_classes, seed=ctx.seed
    )
    acc = float((predict(head, ls.heldout_x) == ls.heldout_y).double().mean())
    return head, ls.heldout, acc


def _write_roc(ctx: EvalContext, scores: Tensor, labels: Tensor, caption: str) -> None:
    if not ctx.is_main:
        return
    fpr, tpr, thr = roc_curve(scores, labels)
    path = ctx.artefact_path("roc.csv")
    rows = ["fpr,tpr,threshold"] + [
        f"{f:.6g},{t:.6g},{h:.6g}"
        for f, t, h in zip(fpr.tolist(), tpr.tolist(), thr.tolist(), strict=True)
    ]
    path.write_text("\n".join(rows) + "\n")
    ctx.add_artefact(path, kind="curve", caption=caption)


def _scored(prefix: str, scores: Any, labels: Tensor) -> dict[str, float]:
    """AUROC and TPR at 5% FPR of the main score, and AUROC of every component."""
    out = {
        f"{prefix}_auroc": auroc(scores.score, labels),
        f"{prefix}_tpr_at_5fpr": tpr_at_fpr(scores.score, labels, FPR),
    }
    for name, part in scores.components.items():
        out[f"{prefix}_auroc_{name}"] = auroc(part, labels)
    return out


class AdversarialDetection:
    """AUROC and TPR at 5% FPR of an input detector against an attack (BEYOND's protocol).

    Metrics: ``detect_auroc``, ``detect_tpr_at_5fpr``, ``detect_auroc_<component>``,
    ``detect_clean_acc`` (the probe on the chosen held-out inputs), ``detect_attack_success``
    (successful adversarial examples / correctly classified inputs), and the counts
    ``detect_n_clean`` and ``detect_n_adv``. When the attack succeeds on no input the
    AUROC figures are NaN and the record says why.

    Args:
        detector: The input detector (``security:beyond``).
        attack: The attack (``security:pgd`` with ``eps: 0.031373, steps: 50`` for the
            paper's setting); agnostic attacks are fitted on train inputs first.
        max_items: At most this many held-out inputs (a seeded choice); ``None``: all.
        k: Overrides the detector's neighbour count (BEYOND's ``k``) when set.
        batch_size: Inputs per attack batch.
        val_fraction: Part of train carved out to select the probe's weight decay when
            the dataset has no validation split.
    """

    def __init__(
        self,
        detector: Annotated[Any, Ref("detector")],
        attack: Annotated[Any, Ref("attack")],
        max_items: Annotated[int, Field(ge=2)] | None = 500,
        k: Annotated[int, Field(ge=1)] | None = None,
        batch_size: Annotated[int, Field(ge=1)] = 256,
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1,
    ) -> None:
        scope = getattr(detector, "scope", "input")
        if scope != "input":
            raise ValueError(
                f"{_ADV}: detector {type(detector).__name__} scores {scope}s, not inputs; use "
                f"an input detector (security:beyond) here, and {_POISON} for sample detectors"
            )
        if k is not None:
            if not hasattr(detector, "k"):
                raise ValueError(
                    f"{_ADV}: k={k} but detector {type(detector).__name__} has no neighbour "
                    "count k; remove k"
                )
            if k < getattr(detector, "rank", 1):
                raise ValueError(
                    f"{_ADV}: k={k} is below the detector's rank={detector.rank}; raise k or "
                    "lower the detector's rank"
                )
            detector.k = int(k)
        self.detector, self.attack = detector, attack
        self.max_items, self.batch_size = max_items, int(batch_size)
        self.val_fraction = float(val_fraction)

    def _inputs(self, data: DataSplits, split: str, seed: int) -> tuple[Tensor, Tensor]:
        n = split_size(data, split)
        index = subsample(n, self.max_items, seed)
        index = torch.arange(n) if index is None else index
        x, _ = to_unit(split_items(data, split, index))
        return x, split_labels(data, split)[index]

    def _fit_agnostic(self, encoder: nn.Module, data: DataSplits, ctx: EvalContext) -> None:
        if getattr(self.attack, "downstream", "probe") != "agnostic":
            return
        limit = int(getattr(self.attack, "max_fit_items", 2000))
        n = split_size(data, "train")
        index = subsample(n, limit, ctx.seed)
        index = torch.arange(n) if index is None else index
        x, _ = to_unit(split_items(data, "train", index))
        self.attack.fit(encoder, x.to(ctx.device))

    def _attack(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        out = []
        for start in range(0, x.shape[0], self.batch_size):
            sl = slice(start, start + self.batch_size)
            out.append(self.attack.perturb(model, x[sl], y[sl]).detach())
        return torch.cat(out) if out else x.clone()

    @torch.no_grad()
    def _predict(self, model: nn.Module, x: Tensor) -> Tensor:
        step = self.batch_size
        parts = [model(x[i : i + step]).argmax(1) for i in range(0, len(x), step)]
        return torch.cat(parts).cpu() if parts else torch.zeros(0, dtype=torch.long)

    def evaluate(self, encoder: nn.Module, data: DataSplits, ctx: EvalContext) -> dict[str, float]:
        """Fit the clean probe, attack the correctly classified inputs, score both sets.

        Raises:
            ValueError: A graph dataset (inputs cannot be perturbed item by item), an
                unlabelled dataset, or a view maker the detector cannot use.
        """
        if is_graph(data):
            raise ValueError(
                f"{_ADV} perturbs map-style inputs item by item (images, clips); the dataset "
                "is a graph: use security:poison-detection or security:backdoor on graphs"
            )
        require_labelled(_ADV, data)
        head, split, heldout_acc = _clean_probe(_ADV, encoder, data, ctx, self.val_fraction)
        model = ProbedEncoder(encoder, head).to(ctx.device).eval()
        x, y = self._inputs(data, split, ctx.seed)
        x = x.to(ctx.device)
        correct = self._predict(model, x) == y
        x_clean, y_clean = x[correct.to(x.device)], y[correct]
        self._fit_agnostic(encoder, data, ctx)
        x_adv = self._attack(model, x_clean, y_clean.to(ctx.device))
        success = self._predict(model, x_adv) != y_clean
        x_adv = x_adv[success.to(x_adv.device)]
        n_clean, n_adv = int(x_clean.shape[0]), int(x_adv.shape[0])
        suffix = "" if split == "test" else "_on_val"
        metrics: dict[str, float] = {
            "detect_clean_acc": float(correct.double().mean()),
            "detect_attack_success": n_adv / n_clean if n_clean else float("nan"),
            "detect_n_clean": float(n_clean),
            "detect_n_adv": float(n_adv),
        }
        note = "scored"
        if n_adv and n_clean:
            both = torch.cat([x_clean, x_adv])
            scores = self.detector.score(model, both, ctx.views, ctx.seed)
            labels = torch.cat([torch.zeros(n_clean), torch.ones(n_adv)]).long()
            metrics.update(_scored("detect", scores, labels))
            _write_roc(ctx, scores.score, labels, f"ROC of the detector against {n_adv} AEs")
        else:
            note = "not scored: no successful adversarial example or no correct clean input"
            metrics.update({"detect_auroc": float("nan"), "detect_tpr_at_5fpr": float("nan")})
        facts = {"split": split, "inputs": int(x.shape[0]), "clean_correct": n_clean}
        facts.update({"adversarial_successful": n_adv, "probe_heldout_acc": heldout_acc})
        self._record(ctx, data, facts, note)
        return {f"{k}{suffix}": v for k, v in metrics.items()}

    def _record(self, ctx: EvalContext, data: DataSplits, facts: dict[str, Any], note: str) -> None:
        attack = _describe(self.attack)
        ctx.record(
            threat_model={
                "attacker_knowledge": (
                    "white-box: gradients of the encoder and of the clean probe; not adaptive "
                    "(does not know the detector)"
                    if getattr(self.attack, "downstream", "probe") == "probe"
                    else "white-box on the encoder only, downstream-agnostic (never sees the "
                    "probe or labels); not adaptive"
                ),
                "attack_kind": "test-time evasion",
                "poisoned": _poisoned(data),
                "budget": {
                    "eps": attack.get("eps"),
                    "norm": attack.get("norm"),
                    "steps": attack.get("steps"),
                    "scale": "eps on the 0-1 input scale (8/255 = 0.031373)",
                },
                "attack": attack,
                "defender_access": (
                    "the frozen SSL encoder, its clean linear probe and the arm's view maker "
                    "(augmentations); no adversarial examples for calibration"
                ),
                "detector": _describe(self.detector),
                "seed": ctx.seed,
            },
            protocol={
                "name": "BEYOND (He et al., ICML 2024): successful adversarial examples vs "
                "correctly classified clean inputs",
                **facts,
                "tpr_at_fpr": FPR,
                "status": note,
                "reference_setting": "PGD L-inf eps 8/255, 50 steps",
            },
        )


class PoisonDetection:
    """AUROC of a sample detector at finding the poisoned items of the pretraining split.

    Metrics: ``poison_auroc``, ``poison_tpr_at_5fpr``, ``poison_auroc_<component>`` if the
    detector has components, ``poison_n_items`` and ``poison_n_poisoned``.

    Args:
        detector: The sample detector (``security:spectral``).
        val_fraction: Part of train carved out to select the probe when the detector
            groups items by a clean probe's predictions (``labels: probe``).
    """

    def __init__(
        self,
        detector: Annotated[Any, Ref("detector")],
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1,
    ) -> None:
        scope = getattr(detector, "scope", "sample")
        if scope != "sample":
            raise ValueError(
                f"{_POISON}: detector {type(detector).__name__} scores {scope}s, not training "
                f"samples; use a sample detector (security:spectral) here, and {_ADV} for "
                "input detectors"
            )
        self.detector = detector
        self.val_fraction = float(val_fraction)

    def _features(self, encoder: nn.Module, data: DataSplits, ctx: EvalContext) -> Tensor:
        split = "all" if is_graph(data) else "train"  # a graph's train items: all its nodes
        x, _ = data.embed(encoder, split, ctx.runtime)
        return x.float()

    def _groups(
        self, encoder: nn.Module, data: DataSplits, ctx: EvalContext, features: Tensor
    ) -> Tensor | None:
        mode = getattr(self.detector, "labels", "split")
        if mode == "none":
            return None
        if mode == "probe":
            head, _, _ = _clean_probe(_POISON, encoder, data, ctx, self.val_fraction)
            return predict(head, features)
        labels = split_labels(data, "train")
        missing = int((labels < 0).sum())
        if missing:
            raise ValueError(
                f"{_POISON}: detector groups items by the split's labels (labels: split), "
                f"but {missing} train items have none (-1); set the detector's labels to "
                "'probe' or 'none'"
            )
        return labels

    def evaluate(self, encoder: nn.Module, data: DataSplits, ctx: EvalContext) -> dict[str, float]:
        """Embed every pretraining item, score it, compare with the ``poisoned`` flags.

        Raises:
            ValueError: The dataset carries no ``poisoned`` flag, or the flags hold only
                one class.
        """
        flags = data.flag("train", "poisoned")
        if flags is None:
            raise ValueError(
                f"{_POISON} compares detector scores with the 'poisoned' flags of the train "
                "split, but the dataset has none: use security:poison in data.transforms "
                "(for the clean pipeline, poison-detection does not apply)"
            )
        labels = flags.bool().reshape(-1).cpu().long()
        features = self._features(encoder, data, ctx)
        if features.shape[0] != labels.numel():
            raise ValueError(
                f"{_POISON}: {features.shape[0]} embedded train items but {labels.numel()} "
                "'poisoned' flags; the transform that set them must flag every train item"
            )
        scores = self.detector.score(features, self._groups(encoder, data, ctx, features))
        metrics = _scored("poison", scores, labels)
        metrics["poison_n_items"] = float(labels.numel())
        metrics["poison_n_poisoned"] = float(labels.sum())
        _write_roc(ctx, scores.score, labels, "ROC of the detector over the pretraining items")
        self._record(ctx, data)
        return metrics

    def _record(self, ctx: EvalContext, data: DataSplits) -> None:
        ctx.record(
            threat_model={
                "attacker_knowledge": "data-only: poisons unlabelled pretraining items",
                "poisoned": _poisoned(data),
                "defender_access": (
                    "the (possibly backdoored) frozen encoder and the pretraining items; "
                    f"grouping: {getattr(self.detector, 'labels', 'split')}"
                ),
                "detector": _describe(self.detector),
                "seed": ctx.seed,
            },
            protocol={
                "name": "poisoned vs clean pretraining items, AUROC over every item",
                "items": "every node" if is_graph(data) else "every train item",
                "tpr_at_fpr": FPR,
            },
        )
