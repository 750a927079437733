"""timm-based encoders: any timm model by name, a small-image ResNet and a small ViT.

Models are always created with ``pretrained=False`` (nothing is downloaded); a local
weights file can be loaded instead (``torch.load(..., weights_only=True)`` or
safetensors). ``pooled`` is timm's pre-logits output and ``tokens`` the patch or
spatial features of ``forward_features``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import Field, PositiveFloat, PositiveInt
from selfsup.interfaces import EncoderOutput
from torch import Tensor, nn

from selfsup_vision.encoders import ImageEncoder

__all__ = ["ResNetSmall", "TimmEncoder", "ViTTiny", "load_weights"]

_HEAD_PREFIXES = ("head.", "fc.", "classifier.", "head_drop.", "last_linear.")


def _state_dict_of(obj: Any, path: Path) -> dict[str, Tensor]:
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "encoder", "module"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and not isinstance(inner, Tensor):
                return _state_dict_of(inner, path)
        if all(isinstance(v, Tensor) for v in obj.values()):
            return dict(obj)
    raise ValueError(
        f"{path}: not a state dict (expected a mapping of parameter names to tensors, or "
        "a checkpoint with a 'state_dict' / 'model' entry)"
    )


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a local weights file into a timm model (classifier weights are ignored).

    Accepts a plain state dict, a checkpoint with a ``state_dict``/``model`` entry,
    keys prefixed with ``module.`` or ``model.``, and ``.safetensors`` files.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is not a state dict or does not match the model.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(
            f"weights file {str(p)!r} does not exist; give the path of a local .pt/.pth or "
            ".safetensors file (nothing is ever downloaded)"
        )
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        raw: Any = load_file(str(p), device="cpu")
    else:
        raw = torch.load(p, map_location="cpu", weights_only=True)
    state = _state_dict_of(raw, p)
    for prefix in ("module.", "model."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(_HEAD_PREFIXES)}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ValueError(f"{p}: weights do not fit the model: {exc}") from exc
    missing = [k for k in result.missing_keys if not k.startswith(_HEAD_PREFIXES)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{p}: weights do not fit the model: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {result.unexpected_keys[:5]}"
            f"{'...' if len(result.unexpected_keys) > 5 else ''}"
        )


class TimmEncoder(ImageEncoder):
    """Any timm model as an encoder (``timm.create_model(model, pretrained=False)``).

    Args:
        model: A timm model name (see ``timm.list_models()``), e.g. ``resnet50``,
            ``vit_small_patch16_224``, ``convnext_tiny``.
        in_chans: Input channels of the network.
        weights: Optional path of a local weights file (``.pt``/``.pth``/``.safetensors``).
        mean: Normalisation mean (default: ImageNet for 3 channels).
        std: Normalisation std.
        model_kwargs: Extra keyword arguments of ``timm.create_model`` (``img_size``,
            ``drop_path_rate``, ...).

    Example:
        >>> enc = TimmEncoder("resnet18", in_chans=3)
        >>> enc(torch.rand(2, 3, 32, 32)).pooled.shape
        torch.Size([2, 512])
    """

    def __init__(
        self,
        model: str = "resnet18",
        in_chans: PositiveInt = 3,
        weights: str | None = None,
        mean: float | Sequence[float] | None = None,
        std: PositiveFloat | Sequence[PositiveFloat] | None = None,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(in_chans, mean, std)
        self.model_name = model
        self.model = self._create(model, in_chans, dict(model_kwargs or {}))
        if weights:
            load_weights(self.model, weights)
        self.embed_dim = int(
            getattr(self.model, "head_hidden_size", None) or self.model.num_features
        )

    @staticmethod
    def _create(name: str, in_chans: int, kwargs: dict[str, Any]) -> nn.Module:
        import timm

        for key in ("pretrained", "num_classes", "in_chans", "pretrained_cfg_overlay"):
            if key in kwargs:
                raise ValueError(f"model_kwargs may not set {key!r}: the encoder sets it itself")
        if not timm.is_model(name):
            import difflib

            close = difflib.get_close_matches(name, timm.list_models(), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"timm has no model {name!r}.{hint} See timm.list_models().")
        return timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans, **kwargs)

    @property
    def vit(self) -> nn.Module | None:
        """The timm ``VisionTransformer`` inside, or ``None`` (MAE needs one)."""
        from timm.models.vision_transformer import VisionTransformer

        return self.model if isinstance(self.model, VisionTransformer) else None

    def _tokens(self, feats: Tensor) -> Tensor | None:
        if feats.ndim == 3:
            prefix = int(getattr(self.model, "num_prefix_tokens", 0))
            return feats[:, prefix:]
        if feats.ndim == 4:
            if str(getattr(self.model, "output_fmt", "NCHW")).upper().endswith("NHWC"):
                return feats.flatten(1, 2)
            return feats.flatten(2).transpose(1, 2)
        return None

    def forward(self, x: Tensor) -> EncoderOutput:
        """Encode images: timm's pre-logits as ``pooled``, patch/spatial ``tokens``."""
        feats = self.model.forward_features(self.prepare(x))
        pooled = self.model.forward_head(feats, pre_logits=True)
        return EncoderOutput(pooled=pooled, tokens=self._tokens(feats))


class ResNetSmall(TimmEncoder):
    """A timm ResNet adapted to small images (CIFAR-style stem).

    The 7x7 stride-2 stem convolution is replaced by a 3x3 stride-1 one and the
    max-pool is removed, so 28x28 or 32x32 inputs keep enough resolution.

    Args:
        arch: A timm ResNet name: ``resnet18`` (default), ``resnet34``, ``resnet50``...
        in_chans: Input channels.
        weights: Optional local weights file (for this adapted architecture).
        mean: Normalisation mean.
        std: Normalisation std.
        model_kwargs: Extra keyword arguments of ``timm.create_model``.
    """

    def __init__(
        self,
        arch: str = "resnet18",
        in_chans: PositiveInt = 3,
        weights: str | None = None,
        mean: float | Sequence[float] | None = None,
        std: PositiveFloat | Sequence[PositiveFloat] | None = None,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        from timm.models.resnet import ResNet

        super().__init__(arch, in_chans, None, mean, std, model_kwargs)
        if not isinstance(self.model, ResNet) or not isinstance(self.model.conv1, nn.Conv2d):
            raise ValueError(
                f"vision:resnet-small needs a plain timm ResNet (resnet18/34/50/...), got "
                f"{arch!r}; use vision:timm for other models"
            )
        out = self.model.conv1.out_channels
        self.model.conv1 = nn.Conv2d(in_chans, out, 3, stride=1, padding=1, bias=False)
        self.model.maxpool = nn.Identity()
        if weights:
            load_weights(self.model, weights)


class ViTTiny(TimmEncoder):
    """A small timm ``VisionTransformer`` for small images (ViT-Ti widths by default).

    Built with ``dynamic_img_size=True`` so that crops of other sizes (DINO's local
    crops) work: position embeddings are interpolated. Sizes must be multiples of
    ``patch_size``.

    Args:
        img_size: Nominal input size (position-embedding grid = img_size / patch_size).
        patch_size: Patch size.
        in_chans: Input channels.
        embed_dim: Token width (192 for ViT-Ti).
        depth: Number of transformer blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / embed_dim.
        global_pool: ``token`` (class token) or ``avg`` (mean of patch tokens).
        drop_path_rate: Stochastic depth.
        weights: Optional local weights file.
        mean: Normalisation mean.
        std: Normalisation std.
    """

    def __init__(
        self,
        img_size: PositiveInt = 32,
        patch_size: PositiveInt = 4,
        in_chans: PositiveInt = 3,
        embed_dim: PositiveInt = 192,
        depth: PositiveInt = 12,
        num_heads: PositiveInt = 3,
        mlp_ratio: PositiveFloat = 4.0,
        global_pool: Literal["token", "avg"] = "token",
        drop_path_rate: Annotated[float, Field(ge=0, lt=1)] = 0.0,
        weights: str | None = None,
        mean: float | Sequence[float] | None = None,
        std: PositiveFloat | Sequence[PositiveFloat] | None = None,
    ) -> None:
        if img_size % patch_size:
            raise ValueError(f"img_size={img_size} must be a multiple of patch_size={patch_size}")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} must be divisible by num_heads={num_heads}")
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool={global_pool!r}: choose 'token' or 'avg'")
        self._vit_kwargs = {
            "img_size": img_size,
            "patch_size": patch_size,
            "embed_dim": embed_dim,
            "depth": depth,
            "num_heads": num_heads,
            "mlp_ratio": mlp_ratio,
            "global_pool": global_pool,
            "drop_path_rate": drop_path_rate,
            "dynamic_img_size": True,
        }
        super().__init__("vit_tiny", in_chans, weights, mean, std)

    def _create(self, name: str, in_chans: int, kwargs: dict[str, Any]) -> nn.Module:  # type: ignore[override]
        from timm.models.vision_transformer import VisionTransformer

        return VisionTransformer(in_chans=in_chans, num_classes=0, **self._vit_kwargs)
