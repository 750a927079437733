"""MAE: patchify, the visible-only encoder pass, the loss, and clear mismatch errors."""

from __future__ import annotations

import pytest
import torch
from selfsup_vision.encoders import SmallCNN
from selfsup_vision.masking import MAEMaskViews
from selfsup_vision.objectives import MAE, patchify, sincos_pos_embed_2d
from selfsup_vision.timm_encoders import TimmEncoder, ViTTiny


def _vit(**kw):
    args = {"img_size": 16, "patch_size": 4, "in_chans": 1, "embed_dim": 32, "depth": 2,
            "num_heads": 2}  # fmt: skip
    return ViTTiny(**{**args, **kw})


def test_patchify_layout() -> None:
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    p = patchify(x, 2)
    assert p.shape == (2, 4, 12)
    # Patch 1 (top-right) of sample 0, pixel (0, 0), all channels.
    assert p[0, 1, :3].tolist() == [x[0, c, 0, 2].item() for c in range(3)]


def test_sincos_embedding_is_distinct_per_position() -> None:
    e = sincos_pos_embed_2d(4, 4, 16, torch.device("cpu"))
    assert e.shape == (16, 16)
    assert torch.cdist(e, e)[~torch.eye(16, dtype=torch.bool)].min() > 1e-3


def test_encoder_sees_only_visible_patches() -> None:
    enc = _vit().eval()
    mae = MAE(32, patch_size=4, in_chans=1, decoder_dim=32, decoder_heads=2)
    x = enc.prepare(torch.rand(2, 1, 16, 16))
    keep = torch.tensor([[0, 5, 7, 9], [1, 2, 3, 15]])
    latent = mae.encode_visible(enc, x, keep)
    assert latent.shape == (2, 1 + 4, 32)  # class token + 4 visible patches
    # Changing a hidden patch's pixels does not change the encoding.
    x2 = x.clone()
    x2[0, :, 12:16, 0:4] += 5.0  # patch 12 is hidden in sample 0
    assert torch.allclose(mae.encode_visible(enc, x2, keep)[0], latent[0], atol=1e-5)


def test_mae_learns_to_reconstruct() -> None:
    torch.manual_seed(0)
    enc = _vit(depth=1)
    mae = MAE(32, patch_size=4, in_chans=1, decoder_dim=32, decoder_depth=1, decoder_heads=2)
    views = MAEMaskViews(patch_size=4, mask_ratio=0.5, crop_scale=None)
    xs = torch.linspace(0, 1, 16)
    images = (xs.view(1, 1, 16, 1) * xs.view(1, 1, 1, 16)).repeat(8, 1, 1, 1)
    images = images * torch.rand(8, 1, 1, 1)
    opt = torch.optim.AdamW([*enc.parameters(), *mae.parameters()], lr=3e-3)
    losses = []
    for _ in range(25):
        out = mae(enc, views(images))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses


def test_mae_errors_are_actionable() -> None:
    views = MAEMaskViews(patch_size=4)(torch.rand(2, 1, 16, 16))
    with pytest.raises(TypeError, match="needs a ViT encoder"):
        MAE(256, patch_size=4, in_chans=1)(SmallCNN(), views)
    with pytest.raises(ValueError, match="patch_size=4"):
        MAE(32, patch_size=8, in_chans=1, decoder_dim=32, decoder_heads=2)(_vit(), views)
    with pytest.raises(ValueError, match="in_chans=1"):
        MAE(32, patch_size=4, in_chans=3, decoder_dim=32, decoder_heads=2)(_vit(), views)
    with pytest.raises(TypeError, match="vision:mae-mask"):
        MAE(32, patch_size=4, in_chans=1, decoder_dim=32, decoder_heads=2)(_vit(), [views["input"]])
    with pytest.raises(ValueError, match="divisible"):
        MAE(32, decoder_dim=30)


def test_mae_with_a_timm_vit_by_name() -> None:
    enc = TimmEncoder("vit_tiny_patch16_224", model_kwargs={"img_size": 32, "depth": 1})
    mae = MAE(enc.embed_dim, patch_size=16, in_chans=3, decoder_dim=32, decoder_heads=2)
    out = mae(enc, MAEMaskViews(patch_size=16, mask_ratio=0.5)(torch.rand(2, 3, 32, 32)))
    out.loss.backward()
    assert enc.model.patch_embed.proj.weight.grad is not None
