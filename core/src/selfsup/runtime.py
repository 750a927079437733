"""The runtime a routine trains on: device, precision, rank and world size (public).

Single device by default; under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment)
:func:`Runtime.from_env` joins the process group: NCCL on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["Runtime", "select_device", "to_device"]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """Resolve ``auto`` to CUDA (this rank's GPU), then MPS, then CPU.

    Raises:
        RuntimeError: A CUDA or MPS device was asked for but is not available.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={name!r} but CUDA is not available; use 'auto' or 'cpu'")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def to_device(x: Any, device: torch.device) -> Any:
    """Move a tensor, a mapping/sequence of tensors, or a PyG-like batch to ``device``."""
    if isinstance(x, Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, Mapping):
        return {k: to_device(v, device) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(to_device(v, device) for v in x)
    if hasattr(x, "to"):
        return x.to(device)
    return x


@dataclass
class Runtime:
    """Where and how a run computes.

    Attributes:
        device: The device of this process.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast; fp16 uses a grad scaler).
        rank: Global rank (0 without ``torchrun``).
        world_size: Number of processes.
        local_rank: Rank on this machine (selects the GPU).
    """

    device: torch.device
    precision: str = "fp32"
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, device: str = "auto", precision: str = "fp32") -> Runtime:
        """Build the runtime, joining the process group when launched by ``torchrun``."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        dev = select_device(device, local)
        if world > 1 and not dist.is_initialized():
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            backend = "nccl" if dev.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None)
        if precision == "bf16" and dev.type == "cpu":
            pass  # CPU autocast supports bf16
        if precision == "fp16" and dev.type == "cpu":
            raise RuntimeError("train.precision='fp16' needs a GPU; use 'bf16' or 'fp32' on CPU")
        return cls(device=dev, precision=precision, rank=rank, world_size=world, local_rank=local)

    @property
    def distributed(self) -> bool:
        """Whether more than one process trains."""
        return self.world_size > 1 and dist.is_available() and dist.is_initialized()

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (writes files, shows progress)."""
        return self.rank == 0

    @property
    def amp_dtype(self) -> torch.dtype | None:
        """The autocast dtype, or ``None`` for fp32."""
        return _DTYPES.get(self.precision)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """An autocast context for the configured precision (no-op for fp32)."""
        dtype = self.amp_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def barrier(self) -> None:
        """Wait for every rank (no-op on one process)."""
        if self.distributed:
            dist.barrier()

    def all_reduce_mean(self, value: float) -> float:
        """Mean of a Python float over ranks."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Let rank 0 run a block (e.g. preparing a dataset cache) before the others."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()
