"""Batched view makers: per-sample randomness, shapes, geometry and colour operations."""

from __future__ import annotations

import pytest
import torch
from selfsup_vision import augment as A
from selfsup_vision.views import BYOLViews, MultiCropViews, SimCLRViews, images_of


def _ramp(b: int = 4, c: int = 1, s: int = 16) -> torch.Tensor:
    xs = torch.linspace(0, 1, s)
    img = (xs.view(1, s) * 0.7 + xs.view(s, 1) * 0.3).expand(b, c, s, s)
    return img.contiguous()


@pytest.mark.parametrize("maker", [SimCLRViews(), BYOLViews(), MultiCropViews(n_local=2)])
def test_views_differ_per_sample_and_between_views(maker, gray_batch) -> None:
    before = gray_batch.clone()
    views = maker(gray_batch)
    assert torch.equal(before, gray_batch), "the input was modified"
    a, b = views[0], views[1]
    assert a.shape == b.shape == (6, 1, 28, 28)
    assert a.dtype == torch.float32 and float(a.min()) >= 0 and float(a.max()) <= 1
    per_sample = (a - b).abs().flatten(1).mean(1)
    assert bool((per_sample > 1e-3).all()), "two views of an image must differ"
    # No two images share their augmentation: same image repeated -> different views.
    same = gray_batch[:1].expand(6, -1, -1, -1)
    v = maker(same)[0].flatten(1)
    off_diagonal = torch.cdist(v, v)[~torch.eye(6, dtype=torch.bool)]
    assert float(off_diagonal.min()) > 1e-3


def test_multicrop_shapes_and_order(rgb_batch) -> None:
    views = MultiCropViews(n_global=2, n_local=3, local_size=12)(rgb_batch)
    assert [tuple(v.shape) for v in views] == [(6, 3, 32, 32)] * 2 + [(6, 3, 12, 12)] * 3
    default_local = MultiCropViews(n_local=1)(rgb_batch)[-1]
    assert default_local.shape[-1] == round(32 * 3 / 7)


def test_images_of_accepts_pairs_and_rejects_junk(gray_batch) -> None:
    labels = torch.zeros(6, dtype=torch.long)
    assert images_of((gray_batch, labels)).shape == (6, 1, 28, 28)
    assert images_of(gray_batch[:, 0]).shape == (6, 1, 28, 28)  # [B, H, W]
    assert images_of(gray_batch).dtype == torch.float32
    with pytest.raises(TypeError, match="batch of images"):
        images_of("not images")
    with pytest.raises(TypeError, match="uint8"):
        images_of(torch.zeros(2, 1, 4, 4, dtype=torch.int32))


def test_full_crop_without_flip_is_identity() -> None:
    x = _ramp()
    y = A.random_resized_crop(x, None, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0)
    assert torch.allclose(x, y, atol=1e-5)
    flipped = A.random_resized_crop(x, None, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=1.0)
    assert torch.allclose(flipped, x.flip(-1), atol=1e-5)


def test_crop_boxes_follow_scale_and_ratio() -> None:
    w, h = A.crop_boxes(20000, (0.2, 0.5), (0.5, 2.0), torch.device("cpu"))
    area, ratio = w * h, w / h
    assert float(area.min()) >= 0.2 - 1e-5 and float(area.max()) <= 0.5 + 1e-5
    assert float(ratio.min()) >= 0.5 - 1e-4 and float(ratio.max()) <= 2.0 + 1e-4
    assert float(w.max()) <= 1 and float(h.max()) <= 1
    # Impossible draws fall back to the whole image (clipped to the ratio range).
    w, h = A.crop_boxes(100, (1.0, 1.0), (2.0, 3.0), torch.device("cpu"))
    assert torch.allclose(w, torch.ones(100)) and torch.allclose(h, torch.full((100,), 0.5))


def test_small_crops_zoom_in() -> None:
    x = _ramp(64)
    y = A.random_resized_crop(x, 8, scale=(0.05, 0.1), flip_p=0.0)
    assert y.shape == (64, 1, 8, 8)
    # A small crop of a ramp has a much smaller value range than the whole image.
    spread = (y.amax(dim=(1, 2, 3)) - y.amin(dim=(1, 2, 3))).mean()
    assert float(spread) < 0.6 * float(x[0].max() - x[0].min())


def test_color_jitter_identity_and_per_sample_factors(rgb_batch) -> None:
    assert torch.equal(A.color_jitter(rgb_batch, p=0.0), rgb_batch)
    y = A.color_jitter(rgb_batch, brightness=0.5, contrast=0, saturation=0, hue=0, p=1.0)
    ratio = y.mean(dim=(1, 2, 3)) / rgb_batch.mean(dim=(1, 2, 3))
    assert float(ratio.std()) > 1e-3, "brightness factors must differ per sample"
    gray = torch.rand(6, 1, 8, 8)
    out = A.color_jitter(gray, p=1.0)  # saturation/hue are skipped for 1 channel
    assert out.shape == gray.shape and float(out.min()) >= 0 and float(out.max()) <= 1


def test_hue_roundtrip_and_rotation() -> None:
    x = torch.rand(5, 3, 6, 6)
    assert torch.allclose(A.adjust_hue(x, torch.zeros(5)), x, atol=1e-5)
    assert torch.allclose(A.adjust_hue(x, torch.ones(5)), x, atol=1e-5)  # a full turn
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    green = A.adjust_hue(red, torch.tensor([1 / 3]))
    assert torch.allclose(green[0, :, 0, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-5)


def test_grayscale_blur_solarize(rgb_batch) -> None:
    g = A.random_grayscale(rgb_batch, p=1.0)
    assert torch.allclose(g[:, 0], g[:, 1]) and torch.allclose(g[:, 1], g[:, 2])
    assert torch.equal(A.random_grayscale(rgb_batch[:, :1], p=1.0), rgb_batch[:, :1])
    const = torch.full((3, 1, 16, 16), 0.3)
    assert torch.allclose(A.gaussian_blur(const, p=1.0), const, atol=1e-6)
    noise = torch.rand(3, 1, 32, 32)
    blurred = A.gaussian_blur(noise, p=1.0, sigma=(1.0, 2.0))
    assert float(blurred.std()) < 0.7 * float(noise.std())
    assert torch.allclose(blurred.mean(), noise.mean(), atol=0.02)
    sol = A.solarize(torch.tensor([0.2, 0.7]).view(1, 1, 1, 2), p=1.0)
    assert torch.allclose(sol.flatten(), torch.tensor([0.2, 0.3]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": (0.5, 0.2)}, "scale"),
        ({"flip_p": 1.5}, "flip_p"),
        ({"hue": 0.9}, "hue"),
        ({"n_views": 0}, "n_views"),
        ({"size": -3}, "size"),
    ],
)
def test_bad_parameters_are_named(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        SimCLRViews(**kwargs)
