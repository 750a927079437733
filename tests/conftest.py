"""Shared helpers of the cross-plugin tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"


def selfsup_command() -> list[str]:
    """The installed ``selfsup`` executable of this interpreter, or ``python -m selfsup``."""
    exe = Path(sys.executable).with_name("selfsup")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "selfsup"]


@pytest.fixture
def run_selfsup():
    """Run the CLI in a subprocess (a real process, as a user runs it)."""

    def run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        return subprocess.run(
            [*selfsup_command(), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
            env=env,
        )

    return run


@pytest.fixture
def need_plugin():
    """Skip (or fail under CI) when a first-party plugin is not installed."""

    def need(module: str) -> None:
        import importlib.util

        if importlib.util.find_spec(module) is None:
            reason = f"{module} is not installed (bash scripts/setup.sh installs every plugin)"
            if IN_CI:
                pytest.fail(reason)
            pytest.skip(reason)

    return need


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A scratch directory for run outputs."""
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)
