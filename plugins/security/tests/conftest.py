"""Fixtures shared by the security plugin's tests: one torch thread, a clean probe on digits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Small convolutions: one thread is faster and steadier on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits_model():
    """A random-init small CNN (BatchNorm in eval mode) + a clean probe on real digits.

    Returns ``(model, x_test, y_test, x_train)``: 300 test digits and every train digit
    as floats in [0, 1].
    """
    from selfsup.runtime import Runtime
    from selfsup_security.probe import ProbedEncoder, fit_linear_head
    from selfsup_vision.datasets import digits
    from selfsup_vision.encoders import SmallCNN

    torch.manual_seed(0)
    data = digits(size=16)
    enc = SmallCNN(in_chans=1, width=16).eval()
    rt = Runtime(torch.device("cpu"))
    (xtr, ytr), (xva, yva) = data.embed(enc, "train", rt), data.embed(enc, "val", rt)
    head = fit_linear_head(xtr, ytr, xva, yva, num_classes=10, seed=0, weight_decays=(1e-4,))
    x, y = data.test.images[:300].float() / 255, data.test.labels[:300]
    return ProbedEncoder(enc, head).eval(), x, y, data.train.images.float() / 255
