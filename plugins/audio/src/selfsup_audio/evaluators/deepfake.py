"""``audio:deepfake``: spectral-only, SSL-only and fused deepfake detectors, EER on test.

Protocol (``audio:fsdd-deepfake`` and any dataset with a ``fake`` flag, or ``y`` of a
``detection`` task):

1. Each split is (optionally) subsampled to ``max_items`` clips, stratified by label and
   seeded; the frozen encoder's hidden states (all layers, float16, real frames only)
   and the spectral frames (``lfcc`` or ``mfcc``) of every clip are computed once.
2. One :class:`~selfsup_audio.fusion.FusionDetector` per mode in ``modes`` (spectral
   only, SSL only, concat, cross-attention, gated) is trained on ``train`` with binary
   cross-entropy (AdamW, ``epochs`` epochs, same seed for every mode); the epoch with the
   lowest validation EER (ties: lowest validation BCE) is kept (model selection on
   ``val``; a stratified, seeded carve-out of ``train`` when the dataset has no ``val``
   split). With ``warm_start`` (default) the spectral and the SSL detector are trained
   first (``1 + restarts`` rounds: warm restarts from the best state so far), their
   scores mixed by a logistic regression fitted on validation (score-level fusion), and
   every fusion starts from that: both branches and heads copied, the mix, and a fused
   correction initialised at zero; the start is epoch 0 of the selection, so a fusion
   keeps the score-level fusion unless the fused features lower the validation error.
   The single-view figures get the same last round from the same start (a warm
   restart), so fusion and single views are compared at the same budget.
3. Each kept detector is scored once on ``test``: ``eer_<mode>`` and ``min_dcf_<mode>``
   (a fake is the positive class: a miss is an accepted fake). ``eer_fusion`` is the
   test EER of the fusion mode with the lowest validation EER (selected on ``val``), and
   ``fusion_rel_reduction_vs_ssl`` its relative EER reduction over SSL-only.
   Scores and DET curves of every mode are run artefacts.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from selfsup.evaluation import item_labels, stratified_split
from selfsup.runtime import to_device
from torch import Tensor

from selfsup_audio.evaluators.ltdnn import hidden_of, pad_frames, pad_hidden, real_frames
from selfsup_audio.features import LFCC, MFCC
from selfsup_audio.fusion import FUSION_MODES, FusionDetector
from selfsup_audio.metrics import equal_error_rate, min_dcf, write_curves

if TYPE_CHECKING:
    from selfsup.interfaces import DataSplits, EvalContext
    from torch import nn

__all__ = ["DeepfakeDetection"]

_OWNER = "audio:deepfake"
_Mode = Literal["spectral", "ssl", "concat", "cross-attention", "gated"]
#: ``FusionDetector.init_from_views`` arguments: spectral[, ssl[, score mix]] detectors.
_Start = tuple[Any, ...]


class _Views:
    """Both views of a set of clips: spectral ``[T_i, F]`` and hidden ``[L, T_i, D]`` items."""

    def __init__(
        self, spec: list[Tensor], hidden: list[Tensor], y: Tensor, widths: tuple[int, ...]
    ) -> None:
        self.spec, self.hidden, self.y, self.widths = spec, hidden, y, widths

    def subset(self, index: Tensor) -> _Views:
        pick = [int(i) for i in index]
        spec, hidden = [self.spec[i] for i in pick], [self.hidden[i] for i in pick]
        return _Views(spec, hidden, self.y[index], self.widths)

    def batch(self, index: Tensor, dev: torch.device) -> tuple[Any, ...]:
        """Padded ``(spec, spec_mask, hidden, hidden_mask, y)`` of the items ``index``."""
        spec, smask = pad_frames([self.spec[int(i)] for i in index], dev)
        hid, hmask = pad_hidden([self.hidden[int(i)] for i in index], self.widths, dev)
        return spec, smask, hid, hmask, self.y[index].float().to(dev)


def _labels(data: DataSplits, split: str, items: Any) -> Tensor:
    """The 0/1 fake label of every item of ``split`` (the ``fake`` flag, else ``y``)."""
    flag = data.flag(split, "fake")
    if flag is None and data.task != "detection":
        raise ValueError(
            f"{_OWNER}: the {split!r} split has no 'fake' flag and the dataset's task is "
            f"{data.task!r}, not 'detection'; use a deepfake dataset such as "
            "audio:fsdd-deepfake (real clips 0, fakes 1)"
        )
    if flag is None:
        flag = getattr(items, "labels", None)
        flag = item_labels(items) if flag is None else flag
    labels = torch.as_tensor(flag).reshape(-1).long()
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError(f"{_OWNER}: the {split!r} split's fake labels must be 0 (real) or 1")
    if labels.unique().numel() < 2:
        raise ValueError(
            f"{_OWNER}: the {split!r} split holds only {'fakes' if int(labels[0]) else 'real'} "
            "clips; a detector needs both"
        )
    return labels


class DeepfakeDetection:
    """Deepfake EER of spectral-only, SSL-only and fused detectors (module docstring).

    Args:
        modes: The detectors trained (any of spectral, ssl, concat, cross-attention, gated).
        features: The spectral view: ``lfcc`` or ``mfcc``.
        n_coeffs: Cepstral coefficients of the spectral view.
        normalize_features: Per-utterance mean/variance normalisation of the spectral view
            (off by default: channel and codec cues live partly in the mean).
        channels: Width of both branches.
        epochs: Training epochs per detector (best validation epoch kept).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        batch_size: Clips per step.
        max_items: Clips kept per split (stratified, seeded); ``None`` keeps all.
        val_fraction: Share of ``train`` carved out for validation without ``val``.
        warm_start: Train one detector per view first (``1 + restarts`` rounds) and
            start every fusion from them: their branches and heads, their scores mixed
            by weights fitted on validation, the fused correction at zero; that start
            is epoch 0 of the validation selection, so a fusion keeps the score-level
            fusion unless its fused features help on validation. The single-view
            figures get the same last round from the same start (a warm restart).
            ``False`` trains every detector from scratch in one round.
        restarts: Warm restarts of the single-view detectors before the fusions start
            (each a round of ``epochs`` from the best state so far; restarts lower the
            validation error of these small detectors markedly).
        freeze_views: With ``warm_start``, keep the copied branches, heads and score mix
            of a fusion fixed and train only its fusion module and correction.
    """

    def __init__(
        self,
        modes: Annotated[list[_Mode], Field(min_length=1)] = list(FUSION_MODES),  # noqa: B006
        features: Literal["lfcc", "mfcc"] = "lfcc",
        n_coeffs: PositiveInt = 40,
        normalize_features: bool = False,
        channels: PositiveInt = 64,
        epochs: PositiveInt = 10,
        lr: Annotated[float, Field(gt=0)] = 1e-3,
        weight_decay: Annotated[float, Field(ge=0)] = 1e-4,
        batch_size: PositiveInt = 64,
        max_items: PositiveInt | None = 1500,
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.15,
        warm_start: bool = True,
        restarts: Annotated[int, Field(ge=0)] = 1,
        freeze_views: bool = False,
    ) -> None:
        bad = [m for m in modes if m not in FUSION_MODES]
        if bad or not modes:
            raise ValueError(
                f"{_OWNER}: modes={list(modes)!r}: {bad or 'empty'}; choose from "
                f"{list(FUSION_MODES)}"
            )
        if features not in ("lfcc", "mfcc"):
            raise ValueError(f"{_OWNER}: features={features!r} is not one of lfcc, mfcc")
        if int(restarts) < 0:
            raise ValueError(f"{_OWNER}: restarts={restarts} must be 0 or more")
        if channels % 4:
            raise ValueError(f"{_OWNER}: channels={channels} must be a multiple of 4 (heads)")
        self.modes = list(dict.fromkeys(modes))
        self.features, self.n_coeffs, self.normalize = features, n_coeffs, normalize_features
        self.channels, self.epochs, self.lr = channels, epochs, float(lr)
        self.weight_decay, self.batch_size = float(weight_decay), batch_size
        self.max_items, self.val_fraction = max_items, float(val_fraction)
        self.warm_start, self.freeze_views = bool(warm_start), bool(freeze_views)
        self.restarts = int(restarts)

    @torch.no_grad()
    def _views(self, encoder: nn.Module, data: DataSplits, split: str, ctx: EvalContext) -> _Views:
        items: Any = data.split(split)
        labels = _labels(data, split, items)
        keep = torch.arange(len(items))
        if self.max_items is not None and len(items) > self.max_items:
            _, keep = stratified_split(labels, self.max_items / len(items), ctx.seed)
            items = torch.utils.data.Subset(items, keep.tolist())
        rate = int(data.meta.get("sample_rate", 16000))
        cls = LFCC if self.features == "lfcc" else MFCC
        kw = {"n_lfcc": self.n_coeffs} if self.features == "lfcc" else {"n_mfcc": self.n_coeffs}
        feats = cls(sample_rate=rate, normalize=self.normalize, **kw).to(ctx.device)
        loader = torch.utils.data.DataLoader(items, batch_size=64, collate_fn=data.collate)
        spec: list[Tensor] = []
        hidden: list[Tensor] = []
        widths: tuple[int, ...] = ()
        was_training = encoder.training
        encoder.eval()
        try:
            for x, _ in loader:
                x = to_device(x, ctx.device)
                with ctx.runtime.autocast():
                    out = encoder(x)
                cat, mask, widths = hidden_of(_OWNER, out, split)
                hidden.extend(real_frames(cat, mask))
                f = feats(x)
                spec.extend(real_frames(f.values.float().cpu(), f.mask.cpu()))
        finally:
            encoder.train(was_training)
        return _Views(spec, hidden, labels[keep], widths)

    def _scores(self, det: FusionDetector, views: _Views, dev: torch.device) -> Tensor:
        det.eval()
        out = []
        with torch.no_grad():
            for idx in torch.split(torch.arange(len(views.y)), 256):
                spec, sm, hid, hm, _ = views.batch(idx, dev)
                out.append(det(spec, sm, hid, hm).float().cpu())
        return torch.cat(out)

    def _stack(
        self, spectral: FusionDetector, ssl: FusionDetector, val: _Views, dev: torch.device
    ) -> tuple[float, float, float]:
        """``(w_spectral, w_ssl, bias)``: the score-level fusion weights.

        A logistic regression of the label on the two detectors' validation scores
        (fusion weights are fitted on development data, as in ASVspoof practice).
        """
        x = torch.stack([self._scores(spectral, val, dev), self._scores(ssl, val, dev)], 1)
        y = val.y.float()
        w = torch.tensor([1.0, 0.0, 0.0], requires_grad=True)
        opt = torch.optim.LBFGS([w], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(x @ w[:2] + w[2], y)
            loss = loss + 1e-3 * (w[:2] ** 2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        return tuple(float(v) for v in w.detach())  # type: ignore[return-value]

    def _val_error(
        self, det: FusionDetector, val: _Views, dev: torch.device
    ) -> tuple[float, float]:
        """Validation ``(EER, BCE)``: EER first, the loss breaks ties (EER is coarse)."""
        scores = self._scores(det, val, dev)
        loss = F.binary_cross_entropy_with_logits(scores, val.y.float())
        return equal_error_rate(scores, val.y)[0], float(loss)

    def _train(
        self,
        mode: str,
        fit: _Views,
        val: _Views,
        dev: torch.device,
        seed: int,
        start: _Start | None = None,
    ) -> tuple[FusionDetector, tuple[float, float], int]:
        """The detector of the best validation epoch, its validation (EER, BCE) and epoch.

        A detector warm-started from ``start`` (``init_from_views``' arguments) counts its
        starting point as epoch 0 of the selection.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            det = FusionDetector(
                mode,  # type: ignore[arg-type]
                spectral_features=int(fit.spec[0].shape[1]),
                ssl_widths=fit.widths,
                channels=self.channels,
            ).to(dev)
            if start is not None:
                det.init_from_views(*start)
            if start is not None and self.freeze_views and det.fusion:
                for part in (det.spectral, det.spectral_head, det.ssl, det.ssl_head, det.mix):
                    part.requires_grad_(False)  # type: ignore[union-attr]
            params = [p for p in det.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
            pos = float(fit.y.float().mean())
            weight = torch.tensor((1 - pos) / max(pos, 1e-6), device=dev)  # balance classes
            best = (float("inf"), float("inf")), 0, copy.deepcopy(det.state_dict())
            if start is not None:
                best = self._val_error(det, val, dev), 0, best[2]
            with torch.enable_grad():
                for epoch in range(1, self.epochs + 1):
                    det.train()
                    for idx in torch.split(
                        torch.randperm(len(fit.y), generator=gen), self.batch_size
                    ):
                        spec, sm, hid, hm, y = fit.batch(idx, dev)
                        logits = det(spec, sm, hid, hm)
                        loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=weight)
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                    err = self._val_error(det, val, dev)
                    if err < best[0]:
                        best = err, epoch, copy.deepcopy(det.state_dict())
        det.load_state_dict(best[2])
        return det, best[0], best[1]

    def evaluate(self, encoder: nn.Module, data: DataSplits, ctx: EvalContext) -> dict[str, float]:
        """Train every detector, select on validation, report test EERs.

        Raises:
            ValueError: Missing splits, labels not 0/1, a split with one class only.
        """
        for split in ("train", "test"):
            if getattr(data, split, None) is None:
                raise ValueError(f"{_OWNER} needs a {split!r} split; the dataset has none")
        dev = ctx.device
        train, test = (
            self._views(encoder, data, "train", ctx),
            self._views(encoder, data, "test", ctx),
        )
        if getattr(data, "val", None) is not None:
            fit, val, val_source = train, self._views(encoder, data, "val", ctx), "val split"
        else:
            rest, held = stratified_split(train.y, self.val_fraction, ctx.seed)
            fit, val, val_source = train.subset(rest), train.subset(held), "carved from train"
        out: dict[str, float] = {}
        curves: dict[str, tuple[Tensor, Tensor]] = {}
        val_err: dict[str, tuple[float, float]] = {}
        chosen: dict[str, int] = {}
        fusions = [m for m in self.modes if m not in ("spectral", "ssl")]
        starts: dict[str, _Start] = {}
        if self.warm_start and fusions:
            # the shared start: one detector per view and their score mix fitted on val;
            # the single-view figures get the same last round (a warm restart)
            spec0 = self._train("spectral", fit, val, dev, ctx.seed)[0]
            ssl0 = self._train("ssl", fit, val, dev, ctx.seed)[0]
            for _ in range(self.restarts):  # warm restarts (the best state carried over)
                spec0 = self._train("spectral", fit, val, dev, ctx.seed, (spec0,))[0]
                ssl0 = self._train("ssl", fit, val, dev, ctx.seed, (spec0, ssl0))[0]
            mix = self._stack(spec0, ssl0, val, dev)
            starts = {"spectral": (spec0,), "ssl": (spec0, ssl0)}
            starts |= {m: (spec0, ssl0, mix) for m in fusions}
            ctx.record(score_mix_on_val=[round(w, 4) for w in mix])
        for mode in self.modes:
            det, err, epoch = self._train(mode, fit, val, dev, ctx.seed, starts.get(mode))
            scores = self._scores(det, test, dev)
            key = mode.replace("-", "_")
            out[f"eer_{key}"] = equal_error_rate(scores, test.y)[0]
            out[f"min_dcf_{key}"] = min_dcf(scores, test.y)[0]
            val_err[mode], chosen[mode] = err, epoch
            curves[mode] = (scores, test.y)
        if fusions:
            best = min(fusions, key=lambda m: val_err[m])
            out["eer_fusion"] = out[f"eer_{best.replace('-', '_')}"]
            if "ssl" in self.modes and out["eer_ssl"] > 0:
                out["fusion_rel_reduction_vs_ssl"] = 1 - out["eer_fusion"] / out["eer_ssl"]
            ctx.record(fusion_selected_on_val=best)
        ctx.record(
            protocol={
                "positive_class": "fake (label 1)",
                "features": self.features,
                "selection": f"epoch with the lowest EER on validation ({val_source}), "
                "ties broken by the validation BCE",
                "start": (
                    f"every detector starts from the single-view detectors after "
                    f"{1 + self.restarts} round(s) (fusions: both, mixed by weights fitted "
                    "on validation) and trains one more round; the start is epoch 0"
                    if self.warm_start and fusions
                    else "every detector from scratch"
                ),
                "val_eer": {m: round(v[0], 4) for m, v in val_err.items()},
                "best_epoch": chosen,
                "clips": {"train": len(fit.y), "val": len(val.y), "test": len(test.y)},
                "min_dcf": "normalised, P_target=0.01, C_miss=C_fa=1 (fake = target)",
            }
        )
        write_curves(ctx, "deepfake", curves, f"deepfake detectors, {len(test.y)} test clips")
        return out
