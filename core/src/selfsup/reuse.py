"""Take a trained encoder out of a run: load it, describe its input, start from it.

A run directory (``<output_dir>/<experiment>/<arm>/seed-<n>/``) holds the encoder's
id and parameters in ``config.yaml`` and its weights in ``checkpoints/last.pt``; an
export (``selfsup export``, :mod:`selfsup.export`) holds the same as
``manifest.json`` and ``encoder.safetensors``. :func:`load_encoder` reads either::

    import selfsup

    encoder = selfsup.load_encoder("runs/demo/simclr/seed-0")
    print(encoder.input_spec)            # modality, shape, channels, normalisation
    features = encoder(images).pooled    # [B, embed_dim], in eval mode

The encoder applies its own preprocessing inside ``forward`` (normalisation, feature
extraction), so it takes raw items of the kind its dataset yields; ``input_spec``
says which (see :class:`InputSpec`). Checkpoints are read with ``weights_only=True``
and exports with safetensors: loading never runs code from the file.

An experiment may start any encoder from such weights with
``encoder: {id: ..., params: ..., init: {from: PATH}}`` (:func:`load_init_state`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml
from torch import nn

if TYPE_CHECKING:
    from selfsup.plugins import PluginManager

__all__ = [
    "EXPORT_FORMAT",
    "MANIFEST",
    "WEIGHTS",
    "EncoderSource",
    "InputSpec",
    "ReuseError",
    "describe_input",
    "find_source",
    "load_encoder",
    "load_init_state",
]

#: The manifest and weights files of an export.
MANIFEST = "manifest.json"
WEIGHTS = "encoder.safetensors"
#: ``manifest.json``'s ``format`` value.
EXPORT_FORMAT = "selfsup-encoder/1"
#: The file a run writes with the shape of one raw input item.
INPUT_FILE = "input.json"

#: Encoder attributes copied into :class:`InputSpec` when they are plain values.
_ATTRS = (
    "in_chans",
    "in_channels",
    "in_dim",
    "image_size",
    "img_size",
    "patch_size",
    "sample_rate",
    "n_mels",
    "spatial_dims",
    "num_features",
)


class ReuseError(ValueError):
    """A path that holds no loadable encoder; the message names it and the fix."""


@dataclass(frozen=True)
class InputSpec:
    """What a loaded encoder expects as input.

    Attributes:
        modality: ``image``, ``audio``, ``graph``, ``volume``... (``any`` if unknown).
        embed_dim: Width of ``encoder(x).pooled``.
        item_shape: Shape of one raw item as the run's dataset gave it (``None`` when
            unknown or not a tensor), and ``item_dtype`` its dtype.
        channels: Input channels, where the encoder declares them.
        normalization: Per-channel ``mean``/``std`` the encoder applies itself.
        preprocessing: In words: what ``forward`` does to raw items.
        attributes: Other input settings the encoder declares (sample rate, size...).
        data: The dataset the encoder was trained on (``{"id", "params"}``).
    """

    modality: str
    embed_dim: int | None
    item_shape: list[int] | None = None
    item_dtype: str | None = None
    channels: int | None = None
    normalization: dict[str, list[float]] = field(default_factory=dict)
    preprocessing: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (for ``manifest.json``)."""
        return asdict(self)


@dataclass(frozen=True)
class EncoderSource:
    """Where trained encoder weights are: a run directory or an export.

    Attributes:
        kind: ``"run"`` or ``"export"``.
        path: The run directory or export directory.
        encoder: ``{"id", "params"}`` of the encoder.
        info: The manifest (export) or the run's ``config.yaml`` record (run).
    """

    kind: str
    path: Path
    encoder: dict[str, Any]
    info: dict[str, Any]

    def weights_file(self) -> Path:
        """The file holding the weights."""
        return self.path / (WEIGHTS if self.kind == "export" else "checkpoints/last.pt")

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's state dict (safetensors, or the checkpoint with weights_only)."""
        if self.kind == "export":
            from safetensors.torch import load_file

            file = self.weights_file()
            if not file.is_file():
                raise ReuseError(f"{file}: missing; the export is incomplete: export it again")
            try:
                return load_file(str(file))
            except Exception as exc:
                raise ReuseError(
                    f"{file}: not a readable safetensors file ({exc}); export it again"
                ) from None
        from selfsup.engine.checkpoint import load_checkpoint

        file = self.weights_file()
        if not file.is_file():
            trained = bool(self.info.get("objective") or None) and int(
                (self.info.get("train") or {}).get("epochs", 0) or 0
            )
            why = (
                "the run has not saved a checkpoint yet (continue it with --resume)"
                if trained
                else "this arm does not pretrain (no objective or train.epochs 0): its "
                "encoder is the random initialisation, nothing to load"
            )
            raise ReuseError(f"{self.path}: no checkpoints/last.pt: {why}")
        return dict(load_checkpoint(file)["encoder"])


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReuseError(f"{path}: cannot read it as JSON ({exc}); export the run again") from None
    if not isinstance(data, dict):
        raise ReuseError(f"{path}: not a selfsup manifest (not a JSON object)")
    return data


def find_source(path: str | Path) -> EncoderSource:
    """The run directory or export at ``path`` (or that a ``manifest.json`` is in).

    Raises:
        ReuseError: ``path`` is missing, or neither a run directory nor an export; an
            experiment directory is answered with the run directories inside it.
    """
    p = Path(path).expanduser()
    if p.is_file() and p.name in (MANIFEST, WEIGHTS):
        p = p.parent
    elif p.is_file() and p.name == "last.pt" and p.parent.name == "checkpoints":
        p = p.parent.parent
    if not p.exists():
        raise ReuseError(
            f"{p}: no such run directory or export; give a run directory "
            "(<output_dir>/<experiment>/<arm>/seed-<n>) or a 'selfsup export' folder"
        )
    if (p / MANIFEST).is_file():
        manifest = _read_json(p / MANIFEST)
        enc = manifest.get("encoder")
        if manifest.get("format") != EXPORT_FORMAT or not isinstance(enc, Mapping):
            raise ReuseError(
                f"{p / MANIFEST}: not a selfsup encoder manifest (format "
                f"{manifest.get('format')!r}, expected {EXPORT_FORMAT!r}); export the run again"
            )
        return EncoderSource(
            "export", p, {"id": enc["id"], "params": enc.get("params", {})}, manifest
        )
    if (p / "config.yaml").is_file():
        try:
            record = yaml.safe_load((p / "config.yaml").read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ReuseError(f"{p / 'config.yaml'}: unreadable ({exc})") from None
        enc = record.get("encoder") if isinstance(record, dict) else None
        if not isinstance(enc, Mapping) or "id" not in enc:
            raise ReuseError(f"{p / 'config.yaml'}: not a selfsup run config (no encoder id)")
        return EncoderSource("run", p, {"id": enc["id"], "params": enc.get("params") or {}}, record)
    runs = sorted(q.parent for q in p.glob("*/seed-*/config.yaml"))
    if runs:
        shown = ", ".join(str(r) for r in runs[:6]) + (" ..." if len(runs) > 6 else "")
        raise ReuseError(
            f"{p}: an experiment directory with {len(runs)} run(s); name one run: {shown}"
        )
    raise ReuseError(
        f"{p}: neither a run directory (config.yaml + checkpoints/last.pt) nor an export "
        f"({MANIFEST} + {WEIGHTS}); make one with 'selfsup run' or 'selfsup export'"
    )


def _plain(value: Any) -> Any:
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, int | float) for v in value):
        return list(value)
    return None


def describe_input(
    encoder: nn.Module, data: Mapping[str, Any] | None = None, item: Mapping[str, Any] | None = None
) -> InputSpec:
    """What ``encoder`` expects, from its attributes and (optionally) the run's data.

    An encoder may add to this with a method ``describe_input() -> dict`` whose keys
    override the discovered ones (``preprocessing``, ``channels``, ``attributes``...).

    Args:
        encoder: The encoder.
        data: The dataset reference it was trained on (``{"id", "params"}``).
        item: ``{"shape", "dtype"}`` of one raw item (the run's ``input.json``).
    """
    attrs = {name: _plain(getattr(encoder, name)) for name in _ATTRS if hasattr(encoder, name)}
    attrs = {k: v for k, v in attrs.items() if v is not None}
    channels = attrs.pop("in_chans", None) or attrs.pop("in_channels", None)
    norm: dict[str, list[float]] = {}
    for name, buf in encoder.named_buffers():
        leaf = name.rsplit(".", 1)[-1].lower()
        if "." not in name and leaf.endswith(("mean", "std")) and buf.numel() <= 64:
            norm["std" if leaf.endswith("std") else "mean"] = [
                round(float(v), 6) for v in buf.flatten()
            ]
    steps = ["raw dataset items in: the encoder converts and normalises them in forward()"]
    if norm:
        steps.append("(x - mean) / std per channel")
    spec = {
        "modality": str(getattr(encoder, "modality", "any")),
        "embed_dim": int(encoder.embed_dim) if hasattr(encoder, "embed_dim") else None,
        "item_shape": list(item["shape"]) if item and item.get("shape") is not None else None,
        "item_dtype": item.get("dtype") if item else None,
        "channels": channels,
        "normalization": norm,
        "preprocessing": "; ".join(steps),
        "attributes": attrs,
        "data": dict(data or {}),
    }
    custom = getattr(encoder, "describe_input", None)
    if callable(custom):
        spec.update(dict(custom()))
    return InputSpec(**spec)


def _check_state(source: EncoderSource, state: Mapping[str, Any], encoder: nn.Module) -> None:
    from selfsup.engine.checkpoint import CheckpointError, check_fits

    try:
        check_fits("encoder", state, encoder.state_dict(), source.weights_file())
    except CheckpointError as exc:
        raise ReuseError(str(exc)) from None


def load_init_state(path: str | Path, encoder: nn.Module) -> EncoderSource:
    """Load the weights at ``path`` (run or export) into ``encoder`` (``encoder.init``).

    Raises:
        ReuseError: No weights there, or they do not fit ``encoder`` (the first
            mismatching parameter is named).
    """
    source = find_source(path)
    state = source.state_dict()
    _check_state(source, state, encoder)
    encoder.load_state_dict(state, strict=True)
    return source


def _item_info(source: EncoderSource) -> dict[str, Any] | None:
    if source.kind == "export":
        inp = source.info.get("input") or {}
        return {"shape": inp.get("item_shape"), "dtype": inp.get("item_dtype")}
    file = source.path / INPUT_FILE
    if file.is_file():
        try:
            return json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    return None


def load_encoder(
    path: str | Path, *, device: str | torch.device = "cpu", pm: PluginManager | None = None
) -> nn.Module:
    """The trained encoder of a run directory or an export, in eval mode.

    The encoder is built by id from its plugin (which must be installed) with the
    parameters it was trained with, and its weights loaded (``weights_only=True`` for
    checkpoints, safetensors for exports). ``encoder.input_spec`` (an
    :class:`InputSpec`) says what it expects.

    Args:
        path: A run directory, an export folder, or its ``manifest.json``.
        device: Where to put the encoder.
        pm: The plugin manager (the process-wide one by default).

    Raises:
        ReuseError: Not a run or export, no checkpoint, or weights that do not fit.
        UnknownIdError: The encoder's plugin is not installed (with the pip line).
    """
    from selfsup.components import build_component

    source = find_source(path)
    encoder = build_component("encoder", source.encoder, pm)
    state = source.state_dict()
    _check_state(source, state, encoder)
    encoder.load_state_dict(state, strict=True)
    encoder.eval()
    data = source.info.get("data") if source.kind == "run" else None
    if source.kind == "export":
        stored = dict(source.info.get("input") or {})
        spec = InputSpec(**{k: v for k, v in stored.items() if k in InputSpec.__dataclass_fields__})
    else:
        ref = {"id": data.get("id"), "params": data.get("params", {})} if data else None
        spec = describe_input(encoder, ref, _item_info(source))
    encoder.input_spec = spec
    encoder.selfsup_source = {"kind": source.kind, "path": str(source.path)}
    return encoder.to(device)
