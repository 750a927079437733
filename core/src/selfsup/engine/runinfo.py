"""What a run directory records about itself: the resolved config and the environment.

``config.yaml`` is the arm exactly as it ran (plain YAML, every default filled in);
``env.json`` holds Python, platform, torch/CUDA, the versions of selfsup's
distributions and key packages, the hardware and the plugins that were loaded.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml

from selfsup.config import ArmConfig
from selfsup.engine.checkpoint import write_bytes_atomic
from selfsup.engine.results import write_json_atomic

if TYPE_CHECKING:
    from selfsup.engine.runtime import Runtime
    from selfsup.plugins import PluginManager

__all__ = [
    "config_record",
    "environment_info",
    "safe_dir_name",
    "write_config",
    "write_environment",
]

#: Packages whose versions every ``env.json`` records when they are installed.
KEY_PACKAGES = (
    "torch",
    "torchvision",
    "torchaudio",
    "numpy",
    "scipy",
    "scikit-learn",
    "pydantic",
    "pluggy",
    "rich",
    "click",
    "pyyaml",
    "timm",
    "torch-geometric",
    "lightly",
    "monai",
)


def safe_dir_name(name: str) -> str:
    """A directory name for an arm: ``simclr[lr=0.1]`` -> ``simclr_lr=0.1``."""
    text = re.sub(r"[^A-Za-z0-9_.,=+-]+", "_", name).strip("_.")
    return text or "arm"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment_info(runtime: Runtime, pm: PluginManager | None = None) -> dict[str, Any]:
    """Python, platform, package versions, hardware and plugins, as plain data."""
    selfsup_dists = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] or ""
        if name.lower().startswith("selfsup"):
            selfsup_dists[name] = dist.version
    gpus = []
    if torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    plugins = {}
    if pm is not None:
        plugins = {
            name: {"distribution": i.distribution, "version": i.version, "status": i.status}
            for name, i in sorted(pm.infos.items())
        }
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "executable": sys.executable,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "selfsup": dict(sorted(selfsup_dists.items())),
        "packages": {p: v for p in KEY_PACKAGES if (v := _version(p)) is not None},
        "hardware": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "machine": platform.machine(),
            "gpus": gpus,
            "device": str(runtime.device),
            "precision": runtime.precision,
            "world_size": runtime.world_size,
        },
        "plugins": plugins,
    }


def write_environment(path: Path, runtime: Runtime, pm: PluginManager | None) -> None:
    """Write ``env.json`` atomically."""
    write_json_atomic(environment_info(runtime, pm), path)


def config_record(arm: ArmConfig, seed: int, experiment: str, source: str) -> dict[str, Any]:
    """What ``config.yaml`` holds for a run, as plain data (as if read back from the file)."""
    data = {
        "experiment": experiment,
        "source": source,
        "seed": seed,
        **arm.model_dump(mode="json"),
    }
    return yaml.safe_load(yaml.safe_dump(data, sort_keys=False))  # tuples -> lists, as stored


def write_config(path: Path, arm: ArmConfig, seed: int, experiment: str, source: str) -> None:
    """Write the resolved arm (plus seed, experiment name and source) as plain YAML.

    Written once, when a run starts: a resumed run never rewrites it (see
    :mod:`selfsup.engine.resume`).
    """
    data = config_record(arm, seed, experiment, source)
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    write_bytes_atomic(text.encode("utf-8"), path)
