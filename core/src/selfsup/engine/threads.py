"""How many CPU threads torch should use, and whether the machine is oversubscribed.

torch starts with one thread per logical CPU it sees. On a shared machine (other
jobs, hyper-threads, a container with a CPU quota, several ``torchrun`` processes)
that many threads fight for fewer free cores, and a run can be several times slower
in wall time than with fewer threads (``benchmarks/threads.py`` measures it). When
``train.threads`` is not set, :func:`default_threads` picks:

* the threads ``OMP_NUM_THREADS`` asks for, if set (the user's explicit choice);
* else the CPUs this process may run on (``sched_getaffinity``: taskset, cgroups
  cpusets), capped by a container's CPU quota (``cpu.max``) and by the physical
  cores (hyper-threads do not add matrix throughput),
* divided among the processes of a ``torchrun`` job on this node (``LOCAL_WORLD_SIZE``),
* and fewer when the machine is busy: no more than the cores the load average of other
  work leaves free (at least 1). On a 2-core machine with a load of 18, two threads
  ran a small CNN 8x slower in wall time than one (``benchmarks/results/threads.md``).

:func:`oversubscription` says when threads times processes exceed the CPUs, or when the
load of other work leaves fewer free cores than torch's threads (``selfsup doctor``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "available_cpus",
    "choose_threads",
    "default_threads",
    "oversubscription",
    "physical_cores",
]


def physical_cores() -> int | None:
    """Physical cores (distinct (socket, core) pairs in ``/proc/cpuinfo``), or ``None``."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    pairs: set[tuple[str, str]] = set()
    socket = core = None
    for line in [*text.splitlines(), ""]:
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            socket = value.strip()
        elif key == "core id":
            core = value.strip()
        elif not line.strip():
            if core is not None:
                pairs.add((socket or "0", core))
            socket = core = None
    return len(pairs) or None


def _quota() -> float | None:
    """A cgroup v2 CPU quota (``cpu.max``) in CPUs, or ``None`` when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text(encoding="utf-8").split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(float(quota) / float(period), 1.0)
    except (ValueError, ZeroDivisionError):
        return None


def available_cpus() -> int:
    """CPUs this process may use: affinity, then the cgroup quota (at least 1)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _quota()
    if quota is not None:
        cpus = min(cpus, int(quota))
    return max(cpus, 1)


def _env_int(name: str) -> int | None:
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def choose_threads(load: float | None = None) -> tuple[int, str]:
    """The torch thread count for a run whose ``train.threads`` is unset, and why.

    Args:
        load: The 1-minute load average of the machine (``os.getloadavg``'s by default).
    """
    explicit = _env_int("OMP_NUM_THREADS")
    if explicit is not None:
        return explicit, "OMP_NUM_THREADS"
    cpus = available_cpus()
    cores = physical_cores()
    local = _env_int("LOCAL_WORLD_SIZE") or 1
    threads = max(min(cpus, cores or cpus) // local, 1)
    why = f"{cpus} usable CPU(s), {cores or '?'} physical core(s)"
    if local > 1:
        why += f", {local} local processes"
    load = _load() if load is None else load
    if load is not None and threads > 1:
        free = int(cpus - load + 0.5) // local
        if free < threads:
            threads = max(free, 1)
            why += f"; the machine is busy (load {load:.1f}), so fewer"
    return threads, why


def default_threads() -> int:
    """The torch thread count used when ``train.threads`` is not set (see the module)."""
    return choose_threads()[0]


def oversubscription(threads: int, processes: int = 1, load: float | None = None) -> str | None:
    """Why ``threads`` torch threads (per process) oversubscribe the CPUs, or ``None``.

    Args:
        threads: torch's threads per process.
        processes: Processes of the job on this node.
        load: The 1-minute load average of other work (``os.getloadavg``'s by default).
    """
    cpus = available_cpus()
    wanted = threads * processes
    if wanted > cpus:
        return (
            f"{threads} torch thread(s) x {processes} process(es) = {wanted} > {cpus} CPU(s) "
            f"available: set train.threads to {max(cpus // processes, 1)} or fewer"
        )
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            return None
    free = cpus - load
    if threads > 1 and free < threads:
        return (
            f"the machine is busy (load {load:.1f} on {cpus} CPU(s), about {max(free, 0):.1f} "
            f"free) and torch would use {threads} threads: on a shared machine fewer threads "
            "are often faster in wall time; try train.threads=1 (see benchmarks/threads.py)"
        )
    return None
