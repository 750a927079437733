"""MAE: masked autoencoding of image patches with a ViT encoder (He et al., 2022).

The encoder sees only the visible patches (plus its class/register tokens); a light
transformer decoder receives the encoded visible tokens and a shared mask token at
every hidden position, and predicts the pixels of each patch. The loss is the mean
squared error on hidden patches, against per-patch normalised pixels
(``norm_pix_loss``) by default.

Works with ``vision:vit-tiny`` and ``vision:timm`` models that are timm
``VisionTransformer`` instances (``vit_*``, ``deit_*``, ...). Pair it with the
``vision:mae-mask`` view maker, with the same ``patch_size``.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import PositiveFloat, PositiveInt
from selfsup.interfaces import BatchMeta, Objective, ObjectiveOutput
from torch import Tensor, nn

__all__ = ["MAE", "patchify", "sincos_pos_embed_2d"]


def patchify(x: Tensor, p: int) -> Tensor:
    """``[B, C, H, W]`` -> ``[B, N, p*p*C]`` patches in row-major order."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def sincos_pos_embed_2d(gh: int, gw: int, dim: int, device: torch.device) -> Tensor:
    """Fixed 2-D sine-cosine position embeddings ``[gh * gw, dim]`` (``dim % 4 == 0``)."""
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter))
    ys, xs = torch.meshgrid(
        torch.arange(gh, device=device, dtype=torch.float32),
        torch.arange(gw, device=device, dtype=torch.float32),
        indexing="ij",
    )
    out_y = ys.reshape(-1, 1) * omega.view(1, -1)
    out_x = xs.reshape(-1, 1) * omega.view(1, -1)
    return torch.cat([out_y.sin(), out_y.cos(), out_x.sin(), out_x.cos()], dim=1)


class MAE(Objective):
    """Masked autoencoder objective with its own transformer decoder.

    Args:
        embed_dim: Width of the encoder's tokens (given by the engine).
        patch_size: The encoder's patch size (checked against the encoder).
        in_chans: Channels of the images the decoder reconstructs (checked too).
        decoder_dim: Decoder width (divisible by 4 and by ``decoder_heads``).
        decoder_depth: Decoder transformer blocks.
        decoder_heads: Decoder attention heads.
        mlp_ratio: Decoder MLP width / decoder_dim.
        norm_pix_loss: Normalise each target patch to zero mean, unit variance.

    Example:
        >>> from selfsup_vision.timm_encoders import ViTTiny
        >>> from selfsup_vision.masking import MAEMaskViews
        >>> enc = ViTTiny(img_size=16, patch_size=4, in_chans=1, embed_dim=32, depth=1,
        ...               num_heads=2)
        >>> mae = MAE(32, patch_size=4, in_chans=1, decoder_dim=32, decoder_heads=2)
        >>> out = mae(enc, MAEMaskViews(patch_size=4)(torch.rand(2, 1, 16, 16)))
        >>> out.loss.ndim
        0
    """

    def __init__(
        self,
        embed_dim: int,
        patch_size: PositiveInt = 4,
        in_chans: PositiveInt = 3,
        decoder_dim: PositiveInt = 128,
        decoder_depth: PositiveInt = 2,
        decoder_heads: PositiveInt = 4,
        mlp_ratio: PositiveFloat = 4.0,
        norm_pix_loss: bool = True,
    ) -> None:
        super().__init__()
        from timm.models.vision_transformer import Block

        if decoder_dim % 4 or decoder_dim % decoder_heads:
            raise ValueError(
                f"decoder_dim={decoder_dim} must be divisible by 4 and by "
                f"decoder_heads={decoder_heads}"
            )
        self.patch_size = int(patch_size)
        self.in_chans = int(in_chans)
        self.norm_pix_loss = bool(norm_pix_loss)
        self.decoder_embed = nn.Linear(embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.blocks = nn.Sequential(
            *[
                Block(decoder_dim, decoder_heads, mlp_ratio=mlp_ratio, qkv_bias=True)
                for _ in range(decoder_depth)
            ]
        )
        self.norm = nn.LayerNorm(decoder_dim)
        self.pred = nn.Linear(decoder_dim, patch_size * patch_size * in_chans)
        nn.init.normal_(self.mask_token, std=0.02)

    # ------------------------------------------------------------------ helpers
    def _vit(self, encoder: nn.Module) -> Any:
        vit = getattr(encoder, "vit", None)
        if vit is None:
            raise TypeError(
                f"vision:mae needs a ViT encoder (vision:vit-tiny, or vision:timm with a "
                f"vit_*/deit_* model), got {type(encoder).__name__}"
            )
        p = vit.patch_embed.patch_size
        p = p[0] if isinstance(p, tuple | list) else p
        if p != self.patch_size:
            raise ValueError(
                f"vision:mae has patch_size={self.patch_size} but the encoder's patches are "
                f"{p} pixels; set objective.params.patch_size={p} (and the views' too)"
            )
        if encoder.in_chans != self.in_chans:
            raise ValueError(
                f"vision:mae reconstructs in_chans={self.in_chans} channels but the encoder "
                f"has in_chans={encoder.in_chans}; set objective.params.in_chans="
                f"{encoder.in_chans}"
            )
        return vit

    def encode_visible(self, encoder: nn.Module, x: Tensor, ids_keep: Tensor) -> Tensor:
        """Run the ViT on the visible patches only; returns ``[B, prefix + keep, D]``."""
        vit = self._vit(encoder)
        tokens = vit._pos_embed(vit.patch_embed(x))  # [B, P + N, D]
        prefix = int(vit.num_prefix_tokens)
        patches = tokens[:, prefix:]
        idx = ids_keep.unsqueeze(-1).expand(-1, -1, patches.shape[-1])
        tokens = torch.cat([tokens[:, :prefix], patches.gather(1, idx)], dim=1)
        tokens = vit.norm_pre(tokens)
        tokens = vit.blocks(tokens)
        return vit.norm(tokens)

    # ------------------------------------------------------------------ forward
    def forward(
        self, encoder: nn.Module, views: Any, meta: BatchMeta | None = None
    ) -> ObjectiveOutput:
        """Masked reconstruction loss for ``{"input": images, "mask": [B, N] bool}``."""
        if not isinstance(views, dict) or "input" not in views or "mask" not in views:
            raise TypeError(
                "vision:mae expects views {'input': images, 'mask': patch mask}: use the "
                "vision:mae-mask view maker"
            )
        vit = self._vit(encoder)
        x = encoder.prepare(views["input"])
        mask = views["mask"].bool()
        b, _, h, w = x.shape
        p = self.patch_size
        gh, gw = h // p, w // p
        n = gh * gw
        if mask.shape != (b, n):
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} does not match {b} images of {gh}x{gw} "
                f"patches of {p} pixels; use the same patch_size in views and objective"
            )
        n_hidden = mask.sum(1)
        if bool((n_hidden != n_hidden[0]).any()):
            raise ValueError("every sample must hide the same number of patches")
        n_keep = n - int(n_hidden[0])
        ids_shuffle = torch.argsort(mask.int(), dim=1, stable=True)  # visible first
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        latent = self.encode_visible(encoder, x, ids_shuffle[:, :n_keep])

        prefix = int(vit.num_prefix_tokens)
        y = self.decoder_embed(latent)
        dec_prefix, visible = y[:, :prefix], y[:, prefix:]
        filler = self.mask_token.to(y.dtype).expand(b, n - n_keep, -1)
        full = torch.cat([visible, filler], dim=1)
        full = full.gather(1, ids_restore.unsqueeze(-1).expand(-1, -1, full.shape[-1]))
        full = full + sincos_pos_embed_2d(gh, gw, full.shape[-1], x.device).to(full.dtype)
        y = self.blocks(torch.cat([dec_prefix, full], dim=1))
        pred = self.pred(self.norm(y)[:, prefix:])  # [B, N, p*p*C]

        target = patchify(x.float(), p)
        if self.norm_pix_loss:
            mean = target.mean(-1, keepdim=True)
            var = target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        per_patch = (pred.float() - target).pow(2).mean(-1)
        m = mask.float()
        loss = (per_patch * m).sum() / m.sum().clamp_min(1.0)
        visible_err = (per_patch * (1 - m)).sum() / (1 - m).sum().clamp_min(1.0)
        return ObjectiveOutput(
            loss=loss,
            metrics={"mask_ratio": float(n - n_keep) / n, "visible_mse": visible_err.detach()},
        )
