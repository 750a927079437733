"""medical:crops: shapes, content preservation, randomness and errors."""

from __future__ import annotations

import pytest
import torch
from selfsup_medical.views import VolumeCrops


def _batch() -> torch.Tensor:
    return torch.rand(3, 1, 12, 12, 12, generator=torch.Generator().manual_seed(0))


def test_geometry_only_views_permute_the_voxels() -> None:
    """Without crop or intensity changes, a view holds exactly the input's values."""
    x = _batch()
    maker = VolumeCrops(min_scale=1.0, intensity_scale=0, intensity_shift=0, noise_std=0,
                        flip_prob=0.5, rot90_prob=1.0, seed=1)  # fmt: skip
    for view in maker(x):
        for a, b in zip(view, x, strict=True):
            torch.testing.assert_close(a.flatten().sort().values, b.flatten().sort().values)
    assert not torch.equal(maker(x)[0], x)


def test_views_differ_and_are_seeded() -> None:
    x = _batch()
    a1, a2 = VolumeCrops(seed=3)(x)
    b1, _ = VolumeCrops(seed=3)(x)
    assert a1.shape == x.shape and not torch.equal(a1, a2)
    torch.testing.assert_close(a1, b1)


def test_resize_and_pair_input() -> None:
    x = _batch()
    views = VolumeCrops(size=8, num_views=3, seed=0)((x, torch.zeros(3)))
    assert len(views) == 3 and all(v.shape == (3, 1, 8, 8, 8) for v in views)
    assert all(torch.isfinite(v).all() for v in views)


def test_crop_is_a_sub_box() -> None:
    """A half-size crop resized back covers less than the whole range of a ramp."""
    ramp = torch.arange(16.0).view(1, 1, 16, 1, 1).expand(1, 1, 16, 16, 16).contiguous()
    maker = VolumeCrops(min_scale=0.5, flip_prob=0, rot90_prob=0, intensity_scale=0,
                        intensity_shift=0, noise_std=0, seed=0)  # fmt: skip
    spans = [float(v.max() - v.min()) for v in maker(ramp.repeat(4, 1, 1, 1, 1))]
    assert all(s < 15.0 for s in spans)


def test_bad_inputs_and_params() -> None:
    with pytest.raises(ValueError, match=r"\[B, C, D, H, W\]"):
        VolumeCrops()(torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="min_scale"):
        VolumeCrops(min_scale=0)
    with pytest.raises(ValueError, match="num_views"):
        VolumeCrops(num_views=0)
    with pytest.raises(ValueError, match="flip_prob"):
        VolumeCrops(flip_prob=2)
