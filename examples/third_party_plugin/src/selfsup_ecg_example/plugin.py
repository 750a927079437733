"""The plugin module: hook implementations only, every factory a lazy reference.

``selfsup plugins`` and ``selfsup list`` import this module (and nothing it refers
to), so keep it free of torch and of the plugin's heavy dependencies: factories are
``"module:attribute"`` strings imported when a component is built or described.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selfsup import DatasetSpec, EncoderSpec, ViewSpec, hookimpl

_PKG = "selfsup_ecg_example"


@hookimpl
def register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    """Register the 1-D CNN encoder (``ecg:cnn1d``)."""
    register(
        EncoderSpec(
            name="cnn1d",
            modality="ecg",
            build=f"{_PKG}.encoders:CNN1d",
            description="1-D CNN for multi-lead signals: strided conv blocks, mean pooling.",
            tags=("cnn",),
        )
    )


@hookimpl
def register_views(register: Callable[[ViewSpec], None]) -> None:
    """Register the signal augmentations (``ecg:jitter-scale``)."""
    register(
        ViewSpec(
            name="jitter-scale",
            modality="ecg",
            build=f"{_PKG}.views:JitterScale",
            description="Views by random time shift, amplitude scaling and Gaussian jitter.",
        )
    )


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register the local-folder dataset (``ecg:npy-folder``)."""
    register(
        DatasetSpec(
            name="npy-folder",
            modality="ecg",
            build=f"{_PKG}.datasets:NpyFolder",
            description="Signals [N, leads, samples] and labels [N] from .npy files in a folder.",
        )
    )


@hookimpl
def register_commands(cli: Any) -> None:
    """Add ``selfsup ecg-info FOLDER``: what an ``ecg:npy-folder`` folder holds."""
    import click

    @cli.command(name="ecg-info")
    @click.argument("folder", type=click.Path(file_okay=False))
    def ecg_info(folder: str) -> None:
        """Show the shape and class counts of the signals in FOLDER."""
        from selfsup_ecg_example.datasets import describe_folder

        click.echo(describe_folder(folder))
