from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

FASHION_ROOT = Path(os.environ.get("SELFSUP_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))


@pytest.fixture
def fashion_root() -> Path:
    """The Fashion-MNIST folder; skip when absent, fail under CI=true."""
    if (FASHION_ROOT / "train-images-idx3-ubyte.gz").is_file():
        return FASHION_ROOT
    msg = (
        f"Fashion-MNIST not found in {FASHION_ROOT} (apt-get install dataset-fashion-mnist, "
        "or set SELFSUP_FASHION_MNIST)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(autouse=True)
def _seed_and_one_thread() -> Iterator[None]:
    """Seed, and run on one intra-op thread: these tensors are small, and on a shared
    machine several threads' synchronisation makes small ops many times slower."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def gray_batch() -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8, generator=gen)


@pytest.fixture
def rgb_batch() -> torch.Tensor:
    gen = torch.Generator().manual_seed(2)
    return torch.rand(6, 3, 32, 32, generator=gen)
