"""Few-label segmentation fine-tuning scored with MONAI's Dice (``medical:segmentation``).

Protocol (recorded in ``results.json`` through ``ctx.record``):

1. ``budget`` labelled crops are drawn (seeded by the run's seed) from the train split
   among crops with at least ``min_foreground`` labelled foreground voxels. The same
   seed draws the same crops for every arm, so a pretrained encoder and the same
   encoder from random init get exactly the same labels.
2. A copy of the encoder (the run's encoder is left unchanged for later evaluators)
   gets a UNETR/SwinUNETR-style decoder (:class:`~.decoder.SegmentationNet`) and the
   pair is fine-tuned for a fixed ``steps`` with AdamW on MONAI's ``DiceCELoss``
   (random ``roi_size`` sub-crops and flips of the labelled crops), the encoder at
   ``encoder_lr_scale`` times the decoder's rate: from the first step, after the
   decoder alone has trained for ``encoder_frozen_fraction`` of the steps (linear
   probing then fine-tuning), or never (``encoder_lr_scale: 0``). There is no model
   selection: the step budget is fixed beforehand, so the test split is touched
   once.
3. Every test volume is segmented with ``monai.inferers.sliding_window_inference``
   (``roi_size`` windows, ``overlap`` 0.5, Gaussian blending); windows run on the
   run's device and are stitched on the CPU when the volume's logits exceed
   ``cpu_stitch_voxels`` (large volumes on a GPU).
4. MONAI's ``DiceMetric(include_background=False, ignore_empty=True)`` scores the
   argmax masks per foreground class over the test volumes. Empty regions: a class
   absent from a volume's ground truth is ignored for that volume (NaN, not 1 or 0);
   ``dice_mean`` is the mean over the classes present, and ``regions_scored`` says
   how many there were.
5. With ``validate``, the same net scores the validation volumes the same way
   (``val_dice_mean``). On Colin27 they are the left hemisphere, the train crops'
   own volume, so the labelled crops' voxels are left out of the score
   (:func:`validation_split`): validation reads only labels fine-tuning never saw,
   and choices made on it (a protocol, a pretraining recipe) never read the test
   hemisphere.

6. With ``draws`` above 1, steps 1-5 are repeated on that many independent draws of
   labelled crops (draw ``r`` seeded by ``seed + DRAW_SEED_STEP * r``; draw 0 is the
   single draw), each from the same encoder, and every Dice is the mean over draws
   (``dice_mean_std`` / ``val_dice_mean_std``: their spread). With one or two
   labelled crops, which crops they are moves Dice by more than most pretraining
   does; averaging over draws, as few-shot benchmarks average over episodes, keeps a
   comparison of encoders from hanging on one draw.

Masks are written as NIfTI artefacts (``pred_<i>.nii.gz`` on the volume's grid) and
as a PNG of three orthogonal slices (image, ground truth, prediction).
"""

from __future__ import annotations

import copy
import math
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from selfsup.interfaces import DataSplits, EvalContext
from selfsup.training import WarmupCosine
from torch import Tensor, nn

from selfsup_medical.evaluators.artefacts import write_nifti, write_slices
from selfsup_medical.evaluators.decoder import RawLinear, SegmentationNet

__all__ = [
    "SegmentationFinetune",
    "class_names",
    "pick_crops",
    "test_volumes",
    "validation_split",
    "write_nifti",
]

_ID = "medical:segmentation"
#: Draw ``r`` of labelled crops is seeded by ``seed + DRAW_SEED_STEP * r``: apart from
#: every other run seed's draw 0 (seeds 0 .. DRAW_SEED_STEP - 1).
DRAW_SEED_STEP = 1_000_003


def _require(data: DataSplits) -> None:
    if data.task != "segmentation" or data.num_classes < 2:
        raise ValueError(
            f"{_ID}: needs a segmentation dataset (task 'segmentation', >= 2 classes), got "
            f"task={data.task!r} with num_classes={data.num_classes}; use medical:colin27-aal "
            "or medical:nifti-folder with label maps"
        )
    if data.test is None:
        raise ValueError(f"{_ID}: the dataset has no test split to score")


def class_names(meta: dict[str, Any], num_classes: int) -> list[str]:
    """``meta["class_names"]`` when it fits, else ``class_0 .. class_{K-1}``."""
    names = meta.get("class_names")
    if isinstance(names, list | tuple) and len(names) == num_classes:
        return [str(n) for n in names]
    return [f"class_{i}" for i in range(num_classes)]


def test_volumes(data: DataSplits) -> Any:
    """The whole test volumes (``meta["volumes"]["test"]``), else the test split's items."""
    volumes = data.meta.get("volumes", {})
    return volumes.get("test") if isinstance(volumes, dict) and "test" in volumes else data.test


def validation_split(data: DataSplits, picked: list[int]) -> tuple[Any, dict[int, Tensor]] | None:
    """The volumes to validate on and, per volume index, the voxels to leave out.

    The validation volumes are ``meta["volumes"]["val"]``. When they are the very
    volumes the train crops are cut from (Colin27's left hemisphere), the labelled
    crops' voxels (``data.train.footprint(i)`` for ``i`` in ``picked``) are left out,
    so validation scores only voxels whose labels fine-tuning never saw.

    Returns:
        ``(volumes, {volume index: bool mask of voxels to leave out})``, or ``None``
        when there are no validation volumes, or they share the train crops' volumes
        and the crops cannot say where they lie (no ``footprint``).
    """
    volumes = data.meta.get("volumes", {})
    val = volumes.get("val") if isinstance(volumes, dict) else None
    if val is None:
        return None
    if val is not volumes.get("train") and val is not getattr(data.train, "pairs", None):
        return val, {}
    footprint = getattr(data.train, "footprint", None)
    if footprint is None:
        return None
    leave_out: dict[int, Tensor] = {}
    for index in picked:
        volume, mask = footprint(index)
        leave_out[volume] = leave_out[volume] | mask if volume in leave_out else mask
    return val, leave_out


def pick_crops(train: Any, budget: int, min_foreground: float, seed: int) -> list[int]:
    """Indices of ``budget`` labelled train crops with enough foreground (seeded order).

    Raises:
        ValueError: Fewer than ``budget`` crops qualify.
    """
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
    chosen = []
    for i in order:
        _, y = train[i]
        if not isinstance(y, Tensor) or y.dim() != 3:
            continue
        if float((y > 0).float().mean()) >= min_foreground:
            chosen.append(i)
            if len(chosen) == budget:
                return chosen
    raise ValueError(
        f"{_ID}: only {len(chosen)} train crops have labels with >= {min_foreground:.0%} "
        f"foreground, budget={budget}; lower budget or min_foreground"
    )


def _sub_crop(
    x: Tensor,
    y: Tensor,
    roi: tuple[int, ...],
    gen: torch.Generator,
    flip_axes: tuple[int, ...] = (0, 1, 2),
) -> tuple:
    """A random ``roi`` window (end-padded if the crop is smaller), randomly flipped.

    Each spatial axis in ``flip_axes`` (0 = the first) is flipped with probability 0.5.
    """
    pad = [max(0, r - s) for r, s in zip(roi, x.shape[1:], strict=True)]
    if any(pad):
        spec = [p for side in reversed(pad) for p in (0, side)]
        x = torch.nn.functional.pad(x, spec)
        y = torch.nn.functional.pad(y, spec)
    starts = [
        int(torch.randint(0, s - r + 1, (1,), generator=gen))
        for s, r in zip(x.shape[1:], roi, strict=True)
    ]
    win = tuple(slice(a, a + r) for a, r in zip(starts, roi, strict=True))
    x, y = x[(slice(None), *win)], y[win]
    for axis in flip_axes:
        if float(torch.rand(1, generator=gen)) < 0.5:
            x, y = x.flip(axis + 1), y.flip(axis)
    return x, y


def _nanmean(per_class: Tensor) -> float:
    """Mean over the classes scored (not NaN); 0 when none was."""
    present = per_class[~per_class.isnan()]
    return float(present.mean()) if len(present) else 0.0


class SegmentationFinetune:
    """Fine-tune encoder + UNETR-style decoder on a few labelled crops; Dice on the test split.

    Args:
        budget: Number of labelled crops (the label budget).
        steps: Optimiser steps (fixed; no model selection).
        batch_size: Crops per step.
        lr: AdamW learning rate of the decoder.
        encoder_lr_scale: Encoder learning rate as a fraction of ``lr`` (0 freezes it).
        weight_decay: AdamW weight decay.
        roi_size: Side of the training windows and of the sliding window; ``None``
            uses the train crops' size (rounded up to the encoder's size multiple).
        decoder_width: Width of the decoder's finest level.
        overlap: Sliding-window overlap (MONAI tutorials: 0.5).
        sw_batch_size: Windows per forward pass.
        cpu_stitch_voxels: Stitch on the CPU when ``classes * voxels`` of a test volume
            exceeds this (only matters on an accelerator).
        min_foreground: Minimum labelled-foreground fraction of a chosen crop.
        save_masks: Write NIfTI masks and PNG slices as artefacts.
        model: ``"unetr"`` (the encoder + decoder) or ``"raw-linear"``: the baseline
            that ignores the encoder, a linear classifier of each voxel's raw 3^3
            intensity neighbourhood trained and scored the same way.
        flip_axes: Spatial axes (0-2) along which training windows are flipped at
            random. On RAS volumes, axis 0 is left-right: flipping it is what lets a
            model trained on one hemisphere read the other, while flipping the
            anterior-posterior (1) or inferior-superior (2) axis would swap where the
            regions lie (frontal vs occipital), which is the cue that separates them.
        schedule: ``"constant"`` learning rates, or ``"cosine"``: a linear warm-up over
            the first ``warmup`` fraction of ``steps`` then cosine decay to zero (every
            parameter group scaled alike), which converges in fewer steps at a high
            ``lr``.
        warmup: Fraction of ``steps`` spent warming up under ``schedule: cosine``.
        encoder_frozen_fraction: Fraction of ``steps`` during which the encoder stays
            frozen and only the decoder learns, before the encoder joins at
            ``encoder_lr_scale`` (linear probing then fine-tuning, "LP-FT", Kumar et al.
            2022): the decoder first learns to read the encoder's features as they are,
            so that fine-tuning starts from a fitted head instead of letting a random
            decoder's gradients scramble pretrained features. 0 fine-tunes from the
            first step; ignored when ``encoder_lr_scale`` is 0 (frozen throughout).
        validate: Also score the validation volumes (``val_dice_mean``): on Colin27
            the left hemisphere without the labelled crops' voxels, so a protocol or a
            pretraining recipe can be chosen without reading the test hemisphere.
        draws: Independent draws of labelled crops to fine-tune on (from the same
            encoder); every Dice is their mean. Costs ``draws`` fine-tunes.
    """

    def __init__(
        self,
        budget: Annotated[int, Field(ge=1)] = 2,
        steps: Annotated[int, Field(ge=1)] = 100,
        batch_size: Annotated[int, Field(ge=1)] = 2,
        lr: Annotated[float, Field(gt=0)] = 2e-3,
        encoder_lr_scale: Annotated[float, Field(ge=0)] = 0.5,
        weight_decay: Annotated[float, Field(ge=0)] = 1e-5,
        roi_size: Annotated[int, Field(ge=4)] | None = None,
        decoder_width: Annotated[int, Field(ge=2)] = 16,
        overlap: Annotated[float, Field(ge=0, lt=1)] = 0.5,
        sw_batch_size: Annotated[int, Field(ge=1)] = 4,
        cpu_stitch_voxels: Annotated[int, Field(ge=1)] = 2**27,
        min_foreground: Annotated[float, Field(ge=0, le=1)] = 0.05,
        save_masks: bool = True,
        model: Literal["unetr", "raw-linear"] = "unetr",
        flip_axes: list[Annotated[int, Field(ge=0, le=2)]] | None = None,
        schedule: Literal["constant", "cosine"] = "constant",
        warmup: Annotated[float, Field(ge=0, lt=1)] = 0.1,
        encoder_frozen_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0,
        validate: bool = True,
        draws: Annotated[int, Field(ge=1)] = 1,
    ) -> None:
        self.budget, self.steps, self.batch_size = budget, steps, batch_size
        self.lr, self.encoder_lr_scale, self.weight_decay = lr, encoder_lr_scale, weight_decay
        self.roi_size, self.decoder_width = roi_size, decoder_width
        self.overlap, self.sw_batch_size = overlap, sw_batch_size
        self.cpu_stitch_voxels, self.min_foreground = cpu_stitch_voxels, min_foreground
        self.save_masks, self.model = save_masks, model
        if schedule not in ("constant", "cosine"):
            raise ValueError(f"{_ID}: schedule={schedule!r}; use 'constant' or 'cosine'")
        self.schedule, self.warmup = schedule, float(warmup)
        self.encoder_frozen_fraction = float(encoder_frozen_fraction)
        self.validate, self.draws = bool(validate), int(draws)
        axes = (0, 1, 2) if flip_axes is None else tuple(int(a) for a in flip_axes)
        if any(a not in (0, 1, 2) for a in axes):
            raise ValueError(
                f"{_ID}: flip_axes={list(axes)} must hold spatial axes 0, 1 or 2 "
                "(e.g. [0] to flip left-right only)"
            )
        self.flip_axes = axes

    def _roi(self, encoder: nn.Module, crop_shape: tuple[int, ...]) -> tuple[int, int, int]:
        k = int(getattr(encoder, "size_multiple", 1) or 1)
        sides = (self.roi_size,) * 3 if self.roi_size else crop_shape
        roi = tuple(max(k, math.ceil(int(s) / k) * k) for s in sides)
        return roi  # type: ignore[return-value]

    def finetune(
        self, encoder: nn.Module, data: DataSplits, ctx: EvalContext, seed: int | None = None
    ) -> nn.Module:
        """Fine-tune a copy of ``encoder`` with a decoder; returns the segmentation net.

        ``seed`` (default: the run's) draws the labelled crops and seeds the training.
        """
        device = ctx.runtime.device
        seed = ctx.seed if seed is None else int(seed)
        picked = pick_crops(data.train, self.budget, self.min_foreground, seed)
        crops = [data.train[i] for i in picked]
        self.roi = self._roi(encoder, tuple(crops[0][0].shape[1:]))
        self.picked, self.seed = picked, seed
        torch.manual_seed(seed)
        if self.model == "raw-linear":
            in_chans = int(crops[0][0].shape[0])
            raw = RawLinear(in_chans, data.num_classes).to(device).train()
            return self._fit(raw, [{"params": list(raw.parameters()), "lr": self.lr}], crops, ctx)
        net = SegmentationNet(copy.deepcopy(encoder), data.num_classes, self.decoder_width)
        net = net.to(device).train()
        groups = [{"params": list(net.decoder.parameters()), "lr": self.lr}]
        if self.encoder_lr_scale > 0:
            groups.append(
                {"params": list(net.encoder.parameters()), "lr": self.lr * self.encoder_lr_scale}
            )
        frozen = self.frozen_steps()  # all of them when encoder_lr_scale is 0
        if frozen:
            net.encoder.requires_grad_(False)
        return self._fit(net, groups, crops, ctx, unfreeze_at=frozen)

    def _fit(
        self,
        net: nn.Module,
        groups: list[dict[str, Any]],
        crops: list[Any],
        ctx: EvalContext,
        unfreeze_at: int | None = None,
    ) -> nn.Module:
        """The fixed-budget training loop (DiceCE, AdamW, random windows and flips).

        ``unfreeze_at``: the step at which ``net.encoder`` starts to train (its
        parameters have no gradient before, so AdamW leaves them unchanged); ``steps``
        or more (or ``None``) never unfreezes it.
        """
        from monai.losses import DiceCELoss

        device = next(net.parameters()).device
        roi = self.roi
        opt = torch.optim.AdamW(groups, weight_decay=self.weight_decay)
        loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
        gen = torch.Generator().manual_seed(self.seed)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, self.lr_factor())
        for step in range(self.steps):
            if step == unfreeze_at:
                net.encoder.requires_grad_(True)
            pick = torch.randint(0, len(crops), (self.batch_size,), generator=gen).tolist()
            pairs = [_sub_crop(crops[i][0], crops[i][1], roi, gen, self.flip_axes) for i in pick]
            x = torch.stack([p[0] for p in pairs]).to(device)
            y = torch.stack([p[1] for p in pairs])[:, None].to(device)
            with ctx.runtime.autocast():
                logits = net(x)
            loss = loss_fn(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        self.final_loss = float(loss.detach())
        return net.eval()

    def frozen_steps(self) -> int:
        """Steps the encoder stays frozen (all of them when ``encoder_lr_scale`` is 0)."""
        if self.encoder_lr_scale == 0:
            return self.steps
        return round(self.encoder_frozen_fraction * self.steps)

    def lr_factor(self) -> WarmupCosine:
        """The learning-rate factor per step (1 throughout when ``schedule`` is constant)."""
        if self.schedule == "constant":
            return WarmupCosine(warmup_steps=0, total_steps=self.steps, cosine=False)
        warm = max(1, round(self.warmup * self.steps))
        return WarmupCosine(warmup_steps=warm, total_steps=self.steps)

    @torch.no_grad()
    def predict(self, net: nn.Module, image: Tensor, ctx: EvalContext) -> Tensor:
        """Sliding-window logits ``[1, K, D, H, W]`` of one volume ``[C, D, H, W]``."""
        from monai.inferers import sliding_window_inference

        device = ctx.runtime.device
        classes = int(net.num_classes)
        large = classes * image[0].numel() > self.cpu_stitch_voxels
        stitch = torch.device("cpu") if large else device
        self.stitch = str(stitch)
        with ctx.runtime.autocast():
            logits = sliding_window_inference(
                image[None].to(stitch),
                roi_size=self.roi,
                sw_batch_size=self.sw_batch_size,
                predictor=net,
                overlap=self.overlap,
                mode="gaussian",
                sw_device=device,
                device=stitch,
            )
        return torch.as_tensor(logits).float()

    def score(
        self,
        net: nn.Module,
        volumes: Any,
        ctx: EvalContext,
        leave_out: dict[int, Tensor] | None = None,
        artefacts: DataSplits | None = None,
    ) -> Tensor:
        """Per-foreground-class Dice ``[K - 1]`` over ``volumes`` (NaN: class absent).

        Args:
            net: The fine-tuned segmentation net.
            volumes: Whole ``(image, label)`` volumes.
            ctx: The evaluation context.
            leave_out: Per volume index, voxels that count for no class (in neither the
                prediction nor the truth).
            artefacts: The dataset, to write masks of the first volumes as artefacts.
        """
        from monai.metrics import DiceMetric

        k = int(net.num_classes)
        metric = DiceMetric(
            include_background=False, reduction="mean_batch", ignore_empty=True, get_not_nans=True
        )
        for index in range(len(volumes)):
            image, label = volumes[index]
            if not isinstance(label, Tensor):
                raise ValueError(f"{_ID}: volume {index} has no label map to score")
            pred = self.predict(net, image, ctx).argmax(1).cpu()  # [1, D, H, W]
            onehot = torch.nn.functional.one_hot(pred, k).permute(0, 4, 1, 2, 3)
            truth = torch.nn.functional.one_hot(label[None].clamp_min(0).long(), k)
            truth = truth.permute(0, 4, 1, 2, 3)
            mask = (leave_out or {}).get(index)
            if mask is not None:
                onehot, truth = onehot * ~mask, truth * ~mask
            metric(y_pred=onehot, y=truth)
            if artefacts is not None and ctx.is_main and index < 4:
                self._artefacts(ctx, artefacts, index, image, label, pred[0])
        per_class, scored = (t.cpu() for t in metric.aggregate())
        metric.reset()
        # MONAI's mean_batch gives 0 to a class no volume had: make it NaN (not scored)
        return per_class.masked_fill(scored == 0, float("nan"))

    def evaluate(self, encoder: nn.Module, data: DataSplits, ctx: EvalContext) -> dict[str, float]:
        """Fine-tune, segment the test split and return Dice per region and mean.

        With ``validate``, ``val_dice_mean`` is the same score on the validation
        volumes (the labelled crops' voxels left out: :func:`validation_split`), for
        choosing a protocol or a pretraining recipe without reading the test split.
        With ``draws`` above 1, each figure is the mean over the draws.
        """
        _require(data)
        names = class_names(data.meta, data.num_classes)
        tests, vals, picks, losses = [], [], [], []
        split = None
        seeds = [ctx.seed + DRAW_SEED_STEP * r for r in range(self.draws)]
        for r, seed in enumerate(seeds):
            net = self.finetune(encoder, data, ctx, seed=seed)
            keep = data if self.save_masks and r == 0 else None
            tests.append(self.score(net, test_volumes(data), ctx, artefacts=keep))
            picks.append(self.picked)
            losses.append(self.final_loss)
            split = validation_split(data, self.picked) if self.validate else None
            if split is not None:
                vals.append(_nanmean(self.score(net, split[0], ctx, split[1])))
        per_class = torch.stack(tests).nanmean(0)  # NaN only where no draw scored a class
        out = {f"dice_{names[c + 1]}": float(v) for c, v in enumerate(per_class) if not v.isnan()}
        means = torch.tensor([_nanmean(t) for t in tests])
        out["dice_mean"] = float(means.mean())
        out["regions_scored"] = float((~per_class.isnan()).sum())
        if vals:
            out["val_dice_mean"] = float(torch.tensor(vals).mean())
        if self.draws > 1:
            out["dice_mean_std"] = float(means.std())
            if vals:
                out["val_dice_mean_std"] = float(torch.tensor(vals).std())
        validation = (
            "val_dice_mean: meta['volumes']['val'], labelled crops' voxels left out "
            f"({sum(int(m.sum()) for m in split[1].values())} voxels"
            f"{', last draw' if self.draws > 1 else ''})"
            if split is not None
            else "none"
        )
        ctx.record(
            protocol={
                "budget_crops": self.budget,
                "draws": self.draws,
                "draw_seeds": seeds,
                "crop_indices": picks[0] if self.draws == 1 else picks,
                "steps": self.steps,
                "batch_size": self.batch_size,
                "schedule": self.schedule,
                "encoder_lr_scale": self.encoder_lr_scale,
                "encoder_frozen_steps": self.frozen_steps(),
                "roi_size": list(self.roi),
                "flip_axes": list(self.flip_axes),
                "loss": "monai DiceCELoss (softmax, one-hot)",
                "inference": "monai sliding_window_inference, overlap "
                f"{self.overlap}, gaussian blending",
                "stitching_device": getattr(self, "stitch", "none"),
                "metric": "monai DiceMetric(include_background=False, ignore_empty=True)",
                "empty_regions": "a region absent from a test volume's ground truth is "
                "ignored for that volume; dice_mean averages the regions present",
                "model_selection": "none: fixed step budget, test split scored once",
                "validation": validation,
                "final_train_loss": losses[0] if self.draws == 1 else losses,
            }
        )
        return out

    def _artefacts(
        self,
        ctx: EvalContext,
        data: DataSplits,
        index: int,
        image: Tensor,
        label: Tensor,
        pred: Tensor,
    ) -> None:
        path = ctx.artefact_path(f"pred_{index}.nii.gz")
        write_nifti(path, pred, data.meta, index)
        ctx.add_artefact(path, kind="nifti", caption=f"predicted regions, test volume {index}")
        png = ctx.artefact_path(f"pred_{index}.png")
        if write_slices(png, image[0], label, pred, data.num_classes):
            ctx.add_artefact(
                png, kind="image", caption=f"image / truth / prediction, volume {index}"
            )
