"""``selfsup export``: a run's encoder as safetensors + a JSON manifest (+ TorchScript, export).

The export folder (``<run>/export/`` by default) holds::

    encoder.safetensors   the encoder's state dict (safetensors: no code in the file)
    manifest.json         {"format", "encoder": {"id", "params"}, "input", "embed_dim",
                           "selfsup_version", "torch_version", "source", "sha256", "files",
                           "traced_input"}
    encoder.ts.pt         with --format torchscript: a traced module, x -> pooled [B, D]
    encoder.pt2           with --format export: a torch.export program, x -> pooled

:func:`selfsup.load_encoder` and ``encoder.init: {from: PATH}`` read the folder back
(the plugin that provides the encoder id must be installed). TorchScript and
torch.export need an example input: one batch of two raw items of the run's dataset,
so they work for encoders that take a tensor (images, audio, volumes), not graphs. Tracing
records one path through ``forward``: the traced module and the program take items of
the dataset's dtype (``traced_input`` in the manifest; a ``uint8`` image batch
stays ``uint8``), while the safetensors export loads into the full encoder.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from selfsup.reuse import (
    EXPORT_FORMAT,
    MANIFEST,
    WEIGHTS,
    ReuseError,
    describe_input,
    find_source,
    load_encoder,
)

__all__ = ["FORMATS", "export_encoder"]

#: What ``--format`` accepts (safetensors is always written).
FORMATS = ("safetensors", "torchscript", "export")


class _Pooled(nn.Module):
    """``x -> encoder(x).pooled``: a tensor-only output for tracing and torch.export."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).pooled


def _example_input(info: dict[str, Any], pm: Any) -> torch.Tensor:
    """Two raw items of the run's dataset, collated (the input of tracing)."""
    from selfsup.components import build_component

    data_ref = info.get("data") or {}
    if not data_ref.get("id"):
        raise ReuseError("the run's config.yaml names no dataset: no example input to trace")
    data = build_component(
        "dataset", {"id": data_ref["id"], "params": data_ref.get("params", {})}, pm
    )
    split = next(s for s in ("test", "val", "train") if getattr(data, s, None) is not None)
    dataset = data.split(split)
    try:
        items = [dataset[0], dataset[1]]
    except Exception as exc:
        raise ReuseError(
            f"dataset {data_ref['id']!r} cannot give two items of its {split!r} split "
            f"({type(exc).__name__}: {exc}); TorchScript/torch.export need a tensor input"
        ) from None
    batch = data.collate(items)
    x = batch[0] if isinstance(batch, list | tuple) else batch
    if not isinstance(x, torch.Tensor):
        raise ReuseError(
            f"dataset {data_ref['id']!r} gives {type(x).__name__} batches, not tensors: "
            "TorchScript and torch.export need a tensor input; use the safetensors export"
        )
    return x


def _write(data: bytes, path: Path) -> None:
    from selfsup.engine.checkpoint import write_bytes_atomic

    write_bytes_atomic(data, path)


def export_encoder(
    run_dir: str | Path,
    out: str | Path | None = None,
    formats: tuple[str, ...] = ("safetensors",),
    pm: Any = None,
) -> Path:
    """Export a run's trained encoder; returns the manifest's path.

    Args:
        run_dir: The run directory (``<output_dir>/<experiment>/<arm>/seed-<n>``).
        out: The export folder (``<run_dir>/export`` by default).
        formats: Any of :data:`FORMATS`; safetensors and the manifest are always written.
        pm: The plugin manager (the process-wide one by default).

    Raises:
        ReuseError: Not a run directory, no checkpoint, or an input that cannot be traced.
        ValueError: An unknown format.
    """
    from safetensors.torch import save

    import selfsup

    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown export format(s) {unknown}; choose from {', '.join(FORMATS)}")
    source = find_source(run_dir)
    if source.kind != "run":
        raise ReuseError(f"{source.path}: already an export; name the run directory it came from")
    encoder = load_encoder(source.path, pm=pm)
    folder = Path(out) if out is not None else source.path / "export"
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in encoder.state_dict().items()}
    blob = save(state, metadata={"format": EXPORT_FORMAT, "id": source.encoder["id"]})
    _write(blob, folder / WEIGHTS)
    files: dict[str, Any] = {"weights": WEIGHTS}
    traced: dict[str, Any] | None = None
    spec = encoder.input_spec
    if "torchscript" in formats or "export" in formats:
        x = _example_input(source.info, pm)
        wrapped = _Pooled(encoder).eval()
        if spec.item_shape is None:
            spec = describe_input(
                encoder,
                spec.data,
                {"shape": list(x.shape[1:]), "dtype": str(x.dtype).removeprefix("torch.")},
            )
        with torch.no_grad():
            if "torchscript" in formats:
                buf = io.BytesIO()
                torch.jit.save(torch.jit.trace(wrapped, x), buf)
                _write(buf.getvalue(), folder / "encoder.ts.pt")
                files["torchscript"] = "encoder.ts.pt"
            if "export" in formats:
                batch = {0: torch.export.Dim.AUTO}  # any batch size
                dims = ({**batch, **{i: torch.export.Dim.STATIC for i in range(1, x.ndim)}},)
                program = torch.export.export(wrapped, (x,), dynamic_shapes=dims)
                buf = io.BytesIO()
                torch.export.save(program, buf)
                _write(buf.getvalue(), folder / "encoder.pt2")
                files["export"] = "encoder.pt2"
        traced = {"shape": ["batch", *x.shape[1:]], "dtype": str(x.dtype).removeprefix("torch.")}
    manifest = {
        "format": EXPORT_FORMAT,
        "encoder": {"id": source.encoder["id"], "params": source.encoder["params"]},
        "embed_dim": spec.embed_dim,
        "input": spec.as_dict(),
        "selfsup_version": selfsup.__version__,
        "torch_version": torch.__version__,
        "source": {
            "run_dir": str(source.path.resolve()),
            "experiment": source.info.get("experiment"),
            "arm": source.info.get("name"),
            "seed": source.info.get("seed"),
            "objective": (source.info.get("objective") or {}).get("id"),
        },
        "sha256": hashlib.sha256(blob).hexdigest(),
        "files": files,
        "traced_input": traced,
    }
    _write((json.dumps(manifest, indent=2) + "\n").encode("utf-8"), folder / MANIFEST)
    return folder / MANIFEST
