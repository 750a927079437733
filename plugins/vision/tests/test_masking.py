"""Patch masks: exact counts, structure of block and grid masks, the mae-mask views."""

from __future__ import annotations

import pytest
import torch
from selfsup_vision.masking import MAEMaskViews, block_mask, grid_mask, make_exact, random_mask

CPU = torch.device("cpu")


@pytest.mark.parametrize("gen", [random_mask, block_mask, grid_mask])
def test_every_sample_hides_exactly_the_ratio(gen) -> None:
    m = gen(32, 8, 8, 0.75, CPU)
    assert m.dtype == torch.bool and m.shape == (32, 64)
    assert m.sum(1).tolist() == [48] * 32
    assert len({tuple(r.tolist()) for r in m}) > 1, "masks must differ across samples"


def test_make_exact_keeps_structure() -> None:
    m = torch.zeros(2, 10, dtype=torch.bool)
    m[0, :3] = True
    m[1, :8] = True
    out = make_exact(m, 5)
    assert out.sum(1).tolist() == [5, 5]
    assert bool(out[0, :3].all()), "already-hidden patches stay hidden when filling"
    assert bool((out[1] <= m[1]).all()), "trimming only removes hidden patches"


def test_block_mask_is_more_clustered_than_random() -> None:
    def neighbours(m: torch.Tensor) -> float:
        g = m.view(-1, 14, 14).float()
        same = (g[:, 1:] == g[:, :-1]).float().mean() + (g[:, :, 1:] == g[:, :, :-1]).float().mean()
        return float(same) / 2

    torch.manual_seed(0)
    assert (
        neighbours(block_mask(64, 14, 14, 0.4, CPU))
        > neighbours(random_mask(64, 14, 14, 0.4, CPU)) + 0.1
    )


def test_grid_mask_keeps_one_patch_per_cell() -> None:
    m = grid_mask(16, 8, 8, 0.75, CPU).view(16, 4, 2, 4, 2)
    visible_per_cell = (~m).sum(dim=(2, 4))
    assert bool((visible_per_cell == 1).all())
    with pytest.raises(ValueError, match="1 - 1/s"):
        grid_mask(2, 8, 8, 0.6, CPU)


def test_mae_mask_views(gray_batch) -> None:
    out = MAEMaskViews(patch_size=4, mask_ratio=0.75)(gray_batch)
    assert set(out) == {"input", "mask"}
    assert out["input"].shape == (6, 1, 28, 28) and out["input"].dtype == torch.float32
    assert out["mask"].shape == (6, 49) and out["mask"].sum(1).tolist() == [37] * 6
    plain = MAEMaskViews(patch_size=4, crop_scale=None, generator="block")(gray_batch)
    assert torch.allclose(plain["input"], gray_batch.float() / 255)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"generator": "checkers"}, "random, block, grid"),
        ({"mask_ratio": 1.0}, "mask_ratio"),
        ({"generator": "grid", "mask_ratio": 0.5}, "1 - 1/s"),
        ({"patch_size": 0}, "patch_size"),
    ],
)
def test_bad_parameters(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        MAEMaskViews(**kwargs)


def test_image_not_divisible_by_patch(gray_batch) -> None:
    with pytest.raises(ValueError, match="multiple of 5"):
        MAEMaskViews(patch_size=5, crop_scale=None)(gray_batch)
