"""vision:finetune: learns on real digits, selects on validation, leaves the encoder alone."""

from __future__ import annotations

import pytest
import torch
from selfsup.interfaces import EvalContext
from selfsup.runtime import Runtime
from selfsup_vision.datasets import digits
from selfsup_vision.encoders import SmallCNN
from selfsup_vision.evaluators import FineTune

CPU = Runtime(device=torch.device("cpu"))


def ctx(seed: int = 0) -> EvalContext:
    return EvalContext(runtime=CPU, seed=seed)


def test_finetune_learns_and_keeps_the_encoder() -> None:
    torch.manual_seed(0)
    data = digits(size=16)
    encoder = SmallCNN(width=16)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    metrics = FineTune(epochs=6, batch_size=64, lr=3e-3).evaluate(encoder, data, ctx(0))
    assert metrics["finetune_acc"] > 0.85, metrics  # chance is 0.1
    assert 1 <= metrics["finetune_best_epoch"] <= 6
    assert 0 < metrics["finetune_val_acc"] <= 1
    after = encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the encoder was modified"


def test_finetune_without_mixup_and_split_protocols() -> None:
    data = digits(size=8)
    enc = SmallCNN(width=4)
    ft = FineTune(epochs=1, batch_size=32, mixup_alpha=0, cutmix_alpha=0, crop_scale=None)
    no_val = type(data)(train=data.train, test=data.test, num_classes=10)
    assert "finetune_acc" in ft.evaluate(enc, no_val, ctx())
    no_test = type(data)(train=data.train, val=data.val, num_classes=10)
    assert "finetune_acc_on_val" in ft.evaluate(enc, no_test, ctx())
    with pytest.raises(ValueError, match="'val' or 'test'"):
        ft.evaluate(enc, type(data)(train=data.train, num_classes=10), ctx())
    with pytest.raises(ValueError, match=r"vision:finetune needs one class label.*task is 'none'"):
        ft.evaluate(enc, type(data)(train=data.train, test=data.test, num_classes=0), ctx())


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="epochs"):
        FineTune(epochs=0)
    with pytest.raises(ValueError, match="lr"):
        FineTune(lr=-1.0)
