"""Encoders: input handling (dtype, channels, normalisation), timm models, local weights."""

from __future__ import annotations

import pytest
import torch
from selfsup_vision.encoders import Pixels, SmallCNN
from selfsup_vision.timm_encoders import ResNetSmall, TimmEncoder, ViTTiny


def test_small_cnn_size_and_outputs(gray_batch) -> None:
    enc = SmallCNN(in_chans=1, width=32)
    n = sum(p.numel() for p in enc.parameters())
    assert 350_000 < n < 420_000, n
    out = enc(gray_batch)
    assert out.pooled.shape == (6, 256) and out.tokens.shape == (6, 16, 256)
    assert SmallCNN(width=8)(torch.rand(2, 1, 8, 8)).pooled.shape == (2, 64)


def test_uint8_and_unit_float_give_the_same_embedding(gray_batch) -> None:
    enc = SmallCNN().eval()
    a = enc(gray_batch).pooled
    b = enc(gray_batch.float() / 255).pooled
    assert torch.allclose(a, b, atol=1e-5)


def test_normalisation_is_applied() -> None:
    enc = SmallCNN(mean=0.2, std=0.5)
    x = torch.full((1, 1, 4, 4), 0.7)
    assert torch.allclose(enc.prepare(x), torch.ones(1, 1, 4, 4))
    with pytest.raises(ValueError, match="in_chans=1"):
        SmallCNN(mean=[0.1, 0.2])
    with pytest.raises(ValueError, match="std"):
        SmallCNN(std=0.0)


def test_channel_adaptation(gray_batch, rgb_batch) -> None:
    rgb_net = TimmEncoder("resnet10t", in_chans=3).eval()
    gray_batch = gray_batch[:2, :, :8, :8]
    gray_as_rgb = gray_batch.expand(-1, 3, -1, -1)
    assert torch.allclose(rgb_net(gray_batch).pooled, rgb_net(gray_as_rgb).pooled, atol=1e-5)
    gray_net = SmallCNN(in_chans=1)
    assert gray_net.prepare(rgb_batch).shape == (6, 1, 32, 32)
    with pytest.raises(ValueError, match="in_chans to 2"):
        gray_net(torch.rand(2, 2, 8, 8))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        rgb_net(torch.rand(8))


def test_channels_last_matches_contiguous(gray_batch) -> None:
    enc = SmallCNN().eval()
    ref = enc(gray_batch).pooled
    enc = enc.to(memory_format=torch.channels_last)
    assert enc._wants_channels_last()
    assert enc.prepare(gray_batch).is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(enc(gray_batch).pooled, ref, atol=1e-4)


def test_resnet_small_keeps_resolution_and_loads_its_weights(tmp_path) -> None:
    enc = ResNetSmall("resnet18", in_chans=1).eval()
    assert enc.model.conv1.kernel_size == (3, 3) and enc.model.conv1.stride == (1, 1)
    x = torch.rand(2, 1, 16, 16)
    out = enc(x)
    assert out.pooled.shape == (2, 512) and out.tokens.shape == (2, 4, 512)  # 16 / 8 = 2x2
    torch.save(enc.model.state_dict(), tmp_path / "small.pt")
    again = ResNetSmall("resnet18", in_chans=1, weights=str(tmp_path / "small.pt")).eval()
    assert torch.allclose(out.pooled, again(x).pooled, atol=1e-6)
    with pytest.raises(ValueError, match="plain timm ResNet"):
        ResNetSmall("vit_tiny_patch16_224")


def test_vit_tiny_tokens_and_dynamic_size() -> None:
    enc = ViTTiny(img_size=32, patch_size=4, in_chans=1, embed_dim=48, depth=2, num_heads=3)
    assert enc.vit is not None
    out = enc(torch.rand(2, 1, 32, 32))
    assert out.pooled.shape == (2, 48) and out.tokens.shape == (2, 64, 48)
    assert enc(torch.rand(2, 1, 12, 12)).tokens.shape == (2, 9, 48)  # a DINO local crop
    with pytest.raises(ValueError, match="multiple of patch_size"):
        ViTTiny(img_size=30, patch_size=4)


def test_timm_by_name_nhwc_model_and_unknown_name() -> None:
    enc = TimmEncoder("convnext_atto", in_chans=3)
    out = enc(torch.rand(2, 3, 64, 64))
    assert out.pooled.shape == (2, enc.embed_dim) and out.tokens.shape == (2, 4, enc.embed_dim)
    assert enc.vit is None
    with pytest.raises(ValueError, match="Did you mean"):
        TimmEncoder("resnet181")
    with pytest.raises(ValueError, match="may not set 'pretrained'"):
        TimmEncoder("resnet18", model_kwargs={"pretrained": True})


def test_local_weights_roundtrip(tmp_path) -> None:
    src = TimmEncoder("resnet10t", in_chans=1).eval()
    path = tmp_path / "w.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.model.state_dict().items()}}, path)
    dst = TimmEncoder("resnet10t", in_chans=1, weights=str(path)).eval()
    x = torch.rand(2, 1, 16, 16)
    assert torch.allclose(src(x).pooled, dst(x).pooled, atol=1e-6)


def test_bad_weights_files(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing is ever downloaded"):
        TimmEncoder("resnet10t", weights=str(tmp_path / "absent.pt"))
    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="do not fit"):
        TimmEncoder("resnet10t", weights=str(tmp_path / "wrong.pt"))
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="not a state dict"):
        TimmEncoder("resnet10t", weights=str(tmp_path / "list.pt"))


def test_pixels_baseline(gray_batch) -> None:
    enc = Pixels(size=28, in_chans=1, mean=0.0, std=1.0)
    assert enc.embed_dim == 784 and not list(enc.parameters())
    assert torch.allclose(enc(gray_batch).pooled, gray_batch.flatten(1).float() / 255)
    assert Pixels(size=14)(gray_batch).pooled.shape == (6, 196)  # resized
