"""``selfsup doctor``: the environment, the installed selfsup packages and their extras.

Reports Python and torch, the accelerators (CUDA, MPS) and distributed backends
(NCCL, gloo, MPI), every selfsup distribution, the optional packages plugins use
(read from package metadata, not imported), plugin load errors and the ``SELFSUP_*``
variables in effect. Exits 1 when a plugin failed to load.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from selfsup.cli._common import EXIT_FAILURE, State, echo_json, plain

__all__ = ["EXTRAS", "collect", "doctor_command"]

#: Optional packages plugins use: distribution name -> what needs it.
EXTRAS: dict[str, str] = {
    "torchvision": "vision transforms and datasets",
    "timm": "vision encoders",
    "torch-geometric": "graph encoders and datasets",
    "torchaudio": "audio features",
    "soundfile": "reading wav/flac",
    "monai": "3D medical networks and transforms",
    "nibabel": "NIfTI volumes",
    "lightly": "reference SSL losses (tests)",
    "scikit-learn": "t-SNE in reports, reference metrics",
    "matplotlib": "selfsup report (selfsup[report])",
}

_ENV_KEYS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "CUDA_VISIBLE_DEVICES")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _torch_info() -> dict[str, Any]:
    import torch
    import torch.distributed as dist

    info: dict[str, Any] = {
        "version": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "cuda_version": torch.version.cuda,
        "cuda_devices": [],
        "mps_available": bool(
            getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
        ),
        "distributed_available": dist.is_available(),
        "backends": {},
    }
    if info["cuda_available"]:
        info["cuda_devices"] = [
            torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
        ]
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
    if dist.is_available():
        info["backends"] = {
            "nccl": dist.is_nccl_available(),
            "gloo": dist.is_gloo_available(),
            "mpi": dist.is_mpi_available(),
        }
    return info


def _selfsup_distributions() -> list[dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] or ""
        provides = any(ep.group == "selfsup" for ep in dist.entry_points)
        if name.lower().startswith("selfsup") or provides:
            plugins = sorted(ep.name for ep in dist.entry_points if ep.group == "selfsup")
            found[name] = {"name": name, "version": dist.version, "plugins": ", ".join(plugins)}
    return sorted(found.values(), key=lambda d: d["name"])


def _thread_info() -> dict[str, Any]:
    import torch

    from selfsup.engine.threads import (
        available_cpus,
        default_threads,
        oversubscription,
        physical_cores,
    )

    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    return {
        "available_cpus": available_cpus(),
        "physical_cores": physical_cores(),
        "torch_default": torch.get_num_threads(),
        "selfsup_default": default_threads(),
        "warning": oversubscription(torch.get_num_threads(), processes),
    }


def collect(state: State) -> dict[str, Any]:
    """Everything ``doctor`` reports, as plain data."""
    failed = state.pm.failed()
    return {
        "python": {
            "version": platform.python_version(),
            "executable": sys.executable,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "torch": _torch_info(),
        "threads": _thread_info(),
        "distributions": _selfsup_distributions(),
        "extras": {name: _version(name) for name in EXTRAS},
        "plugins": {
            name: {"status": info.status, "error": info.error}
            for name, info in sorted(state.pm.infos.items())
        },
        "plugin_errors": [info.one_line_error() for info in failed],
        "environment": {
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith("SELFSUP_") or k in _ENV_KEYS
        },
    }


def _yes(value: Any) -> Text:
    return Text("yes", style="green") if value else Text("no", style="dim")


def _print(state: State, report: dict[str, Any]) -> None:
    out = state.out
    py, tinfo = report["python"], report["torch"]
    env = Table(title="environment", title_justify="left", show_header=False)
    env.add_column("what")
    env.add_column("value", overflow="fold")
    env.add_row(*plain("python", f"{py['version']} ({py['executable']})"))
    env.add_row(*plain("platform", f"{py['platform']}, {py['cpus']} CPUs"))
    env.add_row("torch", f"{tinfo['version']} ({tinfo['threads']} threads)")
    th = report["threads"]
    env.add_row(
        *plain(
            "threads",
            f"{th['available_cpus']} usable CPU(s), {th['physical_cores'] or '?'} physical "
            f"core(s); runs use {th['selfsup_default']} unless train.threads is set",
        )
    )
    cuda = _yes(tinfo["cuda_available"])
    if tinfo["cuda_available"]:
        cuda.append(f" CUDA {tinfo['cuda_version']}: {', '.join(tinfo['cuda_devices'])}")
    env.add_row("cuda", cuda)
    env.add_row("mps", _yes(tinfo["mps_available"]))
    backends = Text()
    for name, ok in tinfo["backends"].items():
        backends.append(f"{name} ")
        backends.append_text(_yes(ok))
        backends.append("  ")
    env.add_row("distributed", backends if tinfo["distributed_available"] else _yes(False))
    out.print(env)
    if th["warning"]:
        state.warn(f"threads oversubscribed: {th['warning']}")

    dists = Table(title="selfsup packages", title_justify="left")
    for column in ("distribution", "version", "plugins"):
        dists.add_column(column)
    for d in report["distributions"]:
        dists.add_row(*plain(d["name"], d["version"], d["plugins"] or "-"))
    out.print(dists)

    extras = Table(title="optional packages", title_justify="left")
    for column in ("package", "version", "used for"):
        extras.add_column(column)
    for name, version in report["extras"].items():
        extras.add_row(*plain(name, version or Text("not installed", style="dim"), EXTRAS[name]))
    out.print(extras)

    if report["environment"]:
        out.print("environment variables in effect:")
        for key, value in report["environment"].items():
            out.print(f"  {key}={value}", soft_wrap=True, markup=False)
    plugins = report["plugins"]
    active = sum(1 for p in plugins.values() if p["status"] == "active")
    out.print(f"plugins: {active} active of {len(plugins)} installed")
    for line in report["plugin_errors"]:
        text = Text("failed: ", style="bold red")
        text.append(line)
        out.print(text, soft_wrap=True)


@click.command(name="doctor")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_obj
@click.pass_context
def doctor_command(ctx: click.Context, state: State, as_json: bool) -> None:
    """Check the environment: Python, torch, CUDA/MPS, distributed backends, packages.

    Also lists plugin load errors and the SELFSUP_* variables in effect. Exits 1
    if a plugin failed to load.
    """
    report = collect(state)
    if as_json:
        echo_json(report)
    else:
        _print(state, report)
    if report["plugin_errors"]:
        ctx.exit(EXIT_FAILURE)
