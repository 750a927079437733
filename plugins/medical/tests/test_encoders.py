"""Encoder behaviour beyond the contract: size rules, shapes at other sizes, bad parameters."""

from __future__ import annotations

import pytest
import torch
from selfsup.testing import make_batch
from selfsup_medical.encoders.resnet import ResNet3D
from selfsup_medical.encoders.swin import SwinEncoder
from selfsup_medical.encoders.unet import UNetEncoder
from selfsup_medical.encoders.vit import ViT3D


def _tiny_vit(**kw) -> ViT3D:
    args = dict(img_size=32, patch_size=8, hidden_size=32, mlp_dim=64, num_layers=2, num_heads=2)
    return ViT3D(**{**args, **kw})


@pytest.mark.parametrize(
    "encoder",
    [
        lambda: SwinEncoder(feature_size=12, depths=(1, 1, 1, 1)),
        lambda: ResNet3D(depth=10, width=4),
        lambda: UNetEncoder(channels=(4, 8, 16)),
        _tiny_vit,
    ],
    ids=["swin", "resnet3d", "unet", "vit3d"],
)
def test_bad_inputs_raise_clear_errors(encoder) -> None:
    model = encoder()
    k = model.size_multiple
    with pytest.raises(ValueError, match=f"multiple of {k}"):
        model(torch.zeros(1, 1, 2 * k, 2 * k, 2 * k + 1))
    with pytest.raises(ValueError, match="input channel"):
        model(torch.zeros(1, 2, 2 * k, 2 * k, 2 * k))
    with pytest.raises(ValueError, match="5-D batch"):
        model(torch.zeros(1, 2 * k, 2 * k, 2 * k))


def test_non_cubic_and_larger_inputs_keep_the_declared_strides() -> None:
    x = make_batch("volume", batch_size=1, shape=(1, 32, 64, 96))
    for model in (
        SwinEncoder(feature_size=12, depths=(1, 1, 1, 1)),
        ResNet3D(depth=10, width=4),
        UNetEncoder(channels=(4, 8, 16)),
    ):
        model.eval()
        maps = model(x).feature_maps
        assert maps is not None
        for fmap, stride in zip(maps, model.feature_strides, strict=True):
            assert tuple(fmap.shape[2:]) == (32 // stride, 64 // stride, 96 // stride)


def test_vit_resamples_its_position_embedding_for_other_sizes() -> None:
    model = _tiny_vit().eval()
    small = model(make_batch("volume", batch_size=1, size=32))
    large = model(make_batch("volume", batch_size=1, size=48))
    assert small.tokens is not None and large.tokens is not None
    assert small.tokens.shape == (1, 64, 32) and large.tokens.shape == (1, 216, 32)
    assert large.feature_maps is not None and large.feature_maps[0].shape == (1, 32, 6, 6, 6)
    # At the native size the embedding is used as it is: same as MONAI's own ViT forward.
    x = make_batch("volume", batch_size=1, size=32)
    ours = model(x).tokens
    theirs, _ = model.vit(x)
    torch.testing.assert_close(ours, theirs)


def test_vit_feature_layers_default_and_validation() -> None:
    assert ViT3D(img_size=16, patch_size=8, hidden_size=16, mlp_dim=16, num_layers=12,
                 num_heads=2).feature_layers == [3, 6, 9, 12]  # fmt: skip
    with pytest.raises(ValueError, match="feature_layers"):
        _tiny_vit(feature_layers=[0, 3])
    with pytest.raises(ValueError, match="multiple of patch_size"):
        _tiny_vit(img_size=30)


def test_swin_matches_monai_swinunetr_encoder() -> None:
    """Our maps are exactly the SwinUNETR encoder's hidden states (same weights)."""
    from monai.networks.nets import SwinUNETR

    net = SwinUNETR(in_channels=1, out_channels=2, feature_size=12, depths=(1, 1, 1, 1))
    ours = SwinEncoder(feature_size=12, depths=(1, 1, 1, 1))
    ours.swin.load_state_dict(net.swinViT.state_dict())
    x = make_batch("volume", batch_size=1, size=32)
    expected = net.swinViT(x, normalize=True)
    got = ours(x).feature_maps
    assert got is not None and len(got) == len(expected) == 5
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="num_heads"):
        SwinEncoder(feature_size=10)
    with pytest.raises(ValueError, match="depth=11"):
        ResNet3D(depth=11)
    with pytest.raises(ValueError, match="at least 2"):
        UNetEncoder(channels=(8,))


def test_resnet50_bottleneck_widths() -> None:
    model = ResNet3D(depth=50, width=4)
    assert model.feature_channels == [4, 16, 32, 64, 128] and model.embed_dim == 128
    assert ResNet3D(depth=10, width=4, no_max_pool=True).feature_strides == [2, 2, 4, 8, 16]


def test_encoders_are_trainable_end_to_end() -> None:
    """A few Adam steps on a fixed target reduce the loss (the gradients are usable)."""
    torch.manual_seed(0)
    model = UNetEncoder(channels=(4, 8))
    head = torch.nn.Linear(model.embed_dim, 1)
    x = make_batch("volume", batch_size=4, size=8)
    target = x.mean(dim=(1, 2, 3, 4))[:, None] * 10
    opt = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=1e-2)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.mse_loss(head(model(x).pooled), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
