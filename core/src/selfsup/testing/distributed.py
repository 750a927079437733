"""Run ``selfsup run`` under ``torchrun`` from a test: several CPU processes on gloo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["torchrun_selfsup"]


def torchrun_selfsup(
    config: Path | str, nproc: int = 2, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Launch ``python -m selfsup run CONFIG --no-progress`` on ``nproc`` local processes.

    One torch thread per process and a free rendezvous port (``127.0.0.1:0``), so that
    tests can run side by side; on a CPU-only machine the engine picks gloo.

    Args:
        config: The experiment YAML.
        nproc: Processes (``--nproc_per_node``).
        timeout: Seconds before the launch is killed (``subprocess.TimeoutExpired``).

    Returns:
        The finished process, with ``stdout`` and ``stderr`` captured as text.

    Example:
        >>> proc = torchrun_selfsup("exp.yaml")  # doctest: +SKIP
        >>> assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    return subprocess.run(
        [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
            "--nproc_per_node", str(nproc), "--rdzv_backend", "c10d",
            "--rdzv_endpoint", "127.0.0.1:0",
            "-m", "selfsup", "run", str(config), "--no-progress",
        ],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
