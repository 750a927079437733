"""``vision:finetune``: end-to-end fine-tuning of a copy of the encoder with a linear head.

Trains ``copy(encoder) + Linear(embed_dim, num_classes)`` with AdamW, warmup + cosine
learning rate, light crop/flip augmentation and timm's ``Mixup`` (mixup and cutmix
with label smoothing), scores the validation split after every epoch, keeps the best
epoch's weights and reports that model's test accuracy once. The encoder passed in is
left untouched.

Split protocol (as the core's frozen-feature evaluators): ``train/val/test`` select on
``val`` and report ``test``; without ``val`` a stratified ``val_fraction`` of ``train``
is carved out for selection; without ``test`` the dataset's ``val`` is the held-out
split and metric names end in ``_on_val``.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Annotated

import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt
from selfsup.evaluation import require_labelled
from selfsup.training import WarmupCosine
from torch import Tensor, nn

from selfsup_vision import augment as A
from selfsup_vision.datasets import ImageTensorDataset, split_indices
from selfsup_vision.encoders import to_unit_float
from selfsup_vision.views import AreaFraction, Probability

if TYPE_CHECKING:
    from selfsup.interfaces import DataSplits, EvalContext
    from selfsup.runtime import Runtime

__all__ = ["FineTune"]

_OWNER = "vision:finetune"


def _tensors(data: DataSplits, split: str) -> tuple[Tensor, Tensor]:
    ds = data.split(split)
    if isinstance(ds, ImageTensorDataset):
        return ds.images, ds.labels
    loader = torch.utils.data.DataLoader(ds, batch_size=512, collate_fn=data.collate)
    xs, ys = zip(*((x, torch.as_tensor(y)) for x, y in loader), strict=True)
    return torch.cat(xs), torch.cat(ys).long()


class _Classifier(nn.Module):
    def __init__(self, encoder: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(int(encoder.embed_dim), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x).pooled)


class FineTune:
    """Fine-tune a copy of the encoder plus a linear head; select the epoch on validation.

    Args:
        epochs: Training epochs.
        batch_size: Batch size (an odd last batch is dropped: mixup pairs samples).
        lr: Peak learning rate of AdamW (linear warmup over ``warmup_epochs``, cosine).
        weight_decay: AdamW weight decay.
        warmup_epochs: Warmup length in epochs.
        mixup_alpha: Mixup's Beta parameter (0 disables mixup).
        cutmix_alpha: CutMix's Beta parameter (0 disables cutmix).
        mixup_prob: Probability of mixing a batch at all.
        label_smoothing: Label smoothing of the soft targets.
        crop_scale: Random-resized-crop area range, or ``None`` for no crop.
        flip_p: Horizontal flip probability.
        val_fraction: Part of ``train`` carved out for selection when there is no ``val``.
        max_train_items: Use at most this many (stratified) training items.
    """

    def __init__(
        self,
        epochs: PositiveInt = 10,
        batch_size: Annotated[int, Field(ge=2)] = 128,
        lr: PositiveFloat = 1e-3,
        weight_decay: NonNegativeFloat = 0.05,
        warmup_epochs: NonNegativeFloat = 1.0,
        mixup_alpha: NonNegativeFloat = 0.8,
        cutmix_alpha: NonNegativeFloat = 1.0,
        mixup_prob: Probability = 1.0,
        label_smoothing: Annotated[float, Field(ge=0, lt=1)] = 0.1,
        crop_scale: tuple[AreaFraction, AreaFraction] | None = (0.5, 1.0),
        flip_p: Probability = 0.5,
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1,
        max_train_items: PositiveInt | None = None,
    ) -> None:
        if epochs < 1 or batch_size < 2:
            raise ValueError(f"need epochs >= 1 and batch_size >= 2, got {epochs}, {batch_size}")
        if lr <= 0 or weight_decay < 0 or not 0 < val_fraction < 1:
            raise ValueError("need lr > 0, weight_decay >= 0 and 0 < val_fraction < 1")
        self.epochs, self.batch_size = int(epochs), int(batch_size)
        self.lr, self.weight_decay, self.warmup_epochs = float(lr), weight_decay, warmup_epochs
        self.mixup = dict(
            mixup_alpha=float(mixup_alpha), cutmix_alpha=float(cutmix_alpha),
            prob=float(mixup_prob), label_smoothing=float(label_smoothing),
        )  # fmt: skip
        self.crop_scale = tuple(crop_scale) if crop_scale is not None else None
        self.flip_p = float(flip_p)
        self.val_fraction = float(val_fraction)
        self.max_train_items = max_train_items

    def _splits(
        self, data: DataSplits, seed: int
    ) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor], tuple[Tensor, Tensor], str]:
        require_labelled(_OWNER, data)
        if data.num_classes < 2:
            raise ValueError(
                f"{_OWNER} needs a labelled dataset with at least two classes, but the "
                f"dataset declares num_classes={data.num_classes}"
            )
        has_val, has_test = data.val is not None, data.test is not None
        if not (has_val or has_test):
            raise ValueError("vision:finetune needs a 'val' or 'test' split to report on")
        x_tr, y_tr = _tensors(data, "train")
        if has_val and has_test:
            val, test, suffix = _tensors(data, "val"), _tensors(data, "test"), ""
        else:
            rest, held = split_indices(y_tr, [0.0, self.val_fraction], seed)
            test = _tensors(data, "test" if has_test else "val")
            suffix = "" if has_test else "_on_val"
            val = (x_tr[held], y_tr[held])
            x_tr, y_tr = x_tr[rest], y_tr[rest]
        if self.max_train_items and self.max_train_items < len(y_tr):
            frac = self.max_train_items / len(y_tr)
            keep = split_indices(y_tr, [0.0, frac], seed)[1]
            x_tr, y_tr = x_tr[keep], y_tr[keep]
        return (x_tr, y_tr), val, test, suffix

    @torch.no_grad()
    def _accuracy(self, model: nn.Module, x: Tensor, y: Tensor, runtime: Runtime) -> float:
        model.eval()
        correct = 0
        for i in range(0, len(y), 512):
            xb = x[i : i + 512].to(runtime.device, non_blocking=True)
            with runtime.autocast():
                pred = model(xb).argmax(1).cpu()
            correct += int((pred == y[i : i + 512]).sum())
        return correct / max(1, len(y))

    def evaluate(self, encoder: nn.Module, data: DataSplits, ctx: EvalContext) -> dict[str, float]:
        """Fine-tune, select the epoch on validation and report held-out accuracy.

        Raises:
            ValueError: The dataset's task is not a class task (``DataSplits.task``),
                it has fewer than two classes, or it has no held-out split.
        """
        from timm.data import Mixup

        runtime, seed = ctx.runtime, ctx.seed
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te), suffix = self._splits(data, seed)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        model = _Classifier(copy.deepcopy(encoder), data.num_classes).to(runtime.device)
        mix = Mixup(num_classes=data.num_classes, **self.mixup)
        use_mix = self.mixup["prob"] > 0 and (
            self.mixup["mixup_alpha"] > 0 or self.mixup["cutmix_alpha"] > 0
        )
        opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        steps_per_epoch = max(1, len(y_tr) // self.batch_size)
        total, warm = self.epochs * steps_per_epoch, self.warmup_epochs * steps_per_epoch

        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, WarmupCosine(warmup_steps=warm, total_steps=total)
        )
        best_acc, best_epoch, best_state = -1.0, 0, None
        for epoch in range(1, self.epochs + 1):
            model.train()
            order = torch.randperm(len(y_tr), generator=gen)
            for s in range(steps_per_epoch):
                idx = order[s * self.batch_size : (s + 1) * self.batch_size]
                idx = idx[: len(idx) - len(idx) % 2]
                xb = to_unit_float(x_tr[idx].to(runtime.device, non_blocking=True))
                yb = y_tr[idx].to(runtime.device, non_blocking=True)
                if self.crop_scale is not None:
                    xb = A.random_resized_crop(xb, None, self.crop_scale, flip_p=self.flip_p)
                if use_mix:
                    xb, target = mix(xb, yb)
                else:
                    ls = self.mixup["label_smoothing"]
                    target = F.one_hot(yb, data.num_classes).float() * (1 - ls)
                    target = target + ls / data.num_classes
                with runtime.autocast():
                    logits = model(xb)
                loss = torch.sum(-target * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            acc = self._accuracy(model, x_va, y_va, runtime)
            if acc > best_acc:
                best_acc, best_epoch = acc, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if best_state is not None:
            model.load_state_dict(best_state)
        test_acc = self._accuracy(model, x_te, y_te, runtime)
        return {
            f"finetune_acc{suffix}": test_acc,
            "finetune_val_acc": best_acc,
            "finetune_best_epoch": float(best_epoch),
        }
