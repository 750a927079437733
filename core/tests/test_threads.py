"""train.threads unset: the default for the machine; doctor's oversubscription warning."""

from __future__ import annotations

import pytest
from selfsup.engine import threads
from selfsup.testing import core_manager


@pytest.fixture
def machine(monkeypatch):
    """A fake machine: ``machine(cpus, cores, load)``."""

    def make(cpus: int, cores: int | None, load: float) -> None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
        monkeypatch.setattr(threads, "available_cpus", lambda: cpus)
        monkeypatch.setattr(threads, "physical_cores", lambda: cores)
        monkeypatch.setattr(threads, "_load", lambda: load)

    return make


def test_idle_machine_uses_physical_cores_within_affinity(machine) -> None:
    machine(cpus=16, cores=8, load=0.0)
    assert threads.choose_threads() == (8, "16 usable CPU(s), 8 physical core(s)")
    machine(cpus=4, cores=8, load=0.0)  # taskset / cpuset: 4 CPUs of 8 cores
    assert threads.default_threads() == 4


def test_busy_machine_gets_fewer_threads(machine) -> None:
    machine(cpus=2, cores=2, load=18.6)
    n, why = threads.choose_threads()
    assert n == 1 and "busy (load 18.6)" in why
    machine(cpus=16, cores=16, load=10.0)
    assert threads.default_threads() == 6


def test_torchrun_processes_share_the_cores(machine, monkeypatch) -> None:
    machine(cpus=16, cores=16, load=0.0)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert threads.default_threads() == 4


def test_omp_num_threads_wins(machine, monkeypatch) -> None:
    machine(cpus=16, cores=16, load=30.0)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.choose_threads() == (3, "OMP_NUM_THREADS")


def test_oversubscription_messages(monkeypatch) -> None:
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    assert "4 > 2 CPU(s)" in threads.oversubscription(2, processes=2, load=0.0)
    assert "machine is busy (load 5.0" in threads.oversubscription(2, load=5.0)
    assert threads.oversubscription(1, load=5.0) is None
    assert threads.oversubscription(2, load=0.0) is None


def test_physical_cores_reads_cpuinfo() -> None:
    cores = threads.physical_cores()
    assert cores is None or cores >= 1


def test_doctor_warns_when_threads_are_oversubscribed(monkeypatch) -> None:
    import torch
    from click.testing import CliRunner
    from selfsup.cli.main import build_cli

    monkeypatch.setattr(threads, "available_cpus", lambda: 1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # torch's default on a 2-CPU machine
    try:
        result = CliRunner().invoke(build_cli(core_manager()), ["doctor"])
    finally:
        torch.set_num_threads(before)
    assert "threads oversubscribed: 2 torch thread(s) x 1 process(es) = 2 > 1 CPU(s)" in (
        result.output
    )
    assert "physical core(s)" in result.output
