"""``selfsup export``: a run's trained encoder as safetensors + manifest."""

from __future__ import annotations

import click
from rich.text import Text

from selfsup.cli._common import State

__all__ = ["export_command"]


@click.command(name="export")
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(file_okay=False))
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(["safetensors", "torchscript", "export"]),
    help="Also write a TorchScript module (torchscript) or a torch.export program (export); "
    "repeatable. safetensors + manifest.json are always written.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="The export folder (default: RUN_DIR/export).",
)
@click.pass_obj
def export_command(
    state: State, run_dir: str, formats: tuple[str, ...], out_dir: str | None
) -> None:
    """Export the trained encoder of RUN_DIR (runs/<name>/<arm>/seed-<n>).

    Writes encoder.safetensors and manifest.json (encoder id and params, the input it
    expects, the selfsup version). Load it back with selfsup.load_encoder(FOLDER) or
    start an experiment from it with 'encoder: {id: ..., init: {from: FOLDER}}'.
    """
    from selfsup.export import export_encoder

    manifest = export_encoder(run_dir, out_dir, tuple(formats) or ("safetensors",), pm=state.pm)
    line = Text("exported: ", style="bold green")
    line.append(f"{manifest.parent} (load with selfsup.load_encoder({str(manifest.parent)!r}))")
    state.out.print(line, soft_wrap=True)
