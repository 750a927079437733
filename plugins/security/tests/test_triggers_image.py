"""Image triggers: CTRL against a scipy re-implementation of its reference code, Patch."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import torch
from selfsup import DataSplits
from selfsup_security.triggers.image import (
    CTRL,
    Patch,
    block_dct2,
    block_idct2,
    dct_matrix,
    rgb_to_yuv,
    yuv_to_rgb,
)
from torch.utils.data import TensorDataset

GEN = torch.Generator().manual_seed(0)


def _scipy_block_dct(x: np.ndarray, window: int, inverse: bool = False) -> np.ndarray:
    """The reference's loop over blocks, with scipy's orthonormal DCT-II."""
    fn = scipy.fft.idctn if inverse else scipy.fft.dctn
    out = np.zeros_like(x)
    for r in range(0, x.shape[-2], window):
        for c in range(0, x.shape[-1], window):
            block = x[..., r : r + window, c : c + window]
            out[..., r : r + window, c : c + window] = fn(block, axes=(-2, -1), norm="ortho")
    return out


def _scipy_ctrl(x: np.ndarray, magnitude: float, window: int, positions, channels) -> np.ndarray:
    """CTRL as the reference code does it (Poison_Frequency_Diff), with numpy and scipy."""
    m = np.array([[0.299, 0.587, 0.114], [-0.147, -0.289, 0.436], [0.615, -0.515, -0.100]])
    img = x.astype(np.float64) * 255.0
    colour = img.shape[1] == 3
    if colour:
        img = np.einsum("ij,bjhw->bihw", m, img)
    freq = _scipy_block_dct(img, window)
    for ch in channels if colour else [0]:
        for r in range(0, img.shape[2], window):
            for c in range(0, img.shape[3], window):
                for p in positions:
                    freq[:, ch, r + p, c + p] += magnitude
    img = _scipy_block_dct(freq, window, inverse=True)
    if colour:
        img = np.einsum("ij,bjhw->bihw", np.linalg.inv(m), img)
    return np.clip(img / 255.0, 0.0, 1.0)


@pytest.mark.parametrize("n", [4, 8, 16, 32])
def test_dct_matrix_is_scipys_orthonormal_dct(n):
    eye = np.eye(n)
    ref = scipy.fft.dct(eye, type=2, norm="ortho", axis=0)
    assert np.abs(dct_matrix(n).numpy() - ref).max() < 1e-12
    d = dct_matrix(n)
    assert torch.allclose(d @ d.T, torch.eye(n, dtype=d.dtype), atol=1e-12)


@pytest.mark.parametrize("window", [4, 8, 16])
def test_block_dct_matches_scipy_dctn_per_block(window):
    x = torch.rand(3, 2, 16, 16, dtype=torch.float64, generator=GEN)
    ours = block_dct2(x, window).numpy()
    assert np.abs(ours - _scipy_block_dct(x.numpy(), window)).max() < 1e-12
    assert torch.allclose(block_idct2(block_dct2(x, window), window), x, atol=1e-12)


def test_yuv_round_trip_is_exact():
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64, generator=GEN)
    assert torch.allclose(yuv_to_rgb(rgb_to_yuv(x)), x, atol=1e-12)


@pytest.mark.parametrize(
    ("shape", "params", "window", "positions"),
    [
        ((4, 3, 32, 32), {"magnitude": 100.0}, 32, (15, 31)),  # the reference's CIFAR setting
        ((4, 3, 32, 32), {"magnitude": 50.0, "window_size": 8}, 8, (3, 7)),
        ((4, 3, 16, 16), {"magnitude": 80.0, "positions": (5, 9), "channels": (2,)}, 16, (5, 9)),
        ((4, 1, 16, 16), {"magnitude": 100.0}, 16, (7, 15)),  # grayscale: the one channel
        ((2, 3, 64, 64), {"magnitude": 100.0}, 32, (15, 31)),  # larger images: 32 blocks
    ],
)
def test_ctrl_matches_the_reference_recipe_with_scipy(shape, params, window, positions):
    x = torch.rand(shape, generator=GEN)
    trigger = CTRL(**params)
    assert trigger.window_for(shape[2], shape[3]) == window
    assert trigger.positions_for(window) == positions
    ours = trigger.stamp(x, GEN).double().numpy()
    ref = _scipy_ctrl(
        x.numpy(), params["magnitude"], window, positions, params.get("channels", (1, 2))
    )
    assert np.abs(ours - ref).max() < 1e-6
    assert np.abs(ours - x.numpy()).max() > 0.01  # the trigger did change the images


def test_ctrl_adds_the_magnitude_at_the_positions_only_in_u_and_v():
    x = 0.4 + 0.2 * torch.rand(2, 3, 32, 32, generator=GEN)  # mid-range: no clamping
    y = CTRL(magnitude=100.0).stamp(x, GEN)
    diff = block_dct2(rgb_to_yuv(y.double() * 255), 32) - block_dct2(
        rgb_to_yuv(x.double() * 255), 32
    )
    expected = torch.zeros_like(diff)
    for p in (15, 31):
        expected[:, 1:, p, p] = 100.0
    assert torch.allclose(diff, expected, atol=1e-3)  # float32 output: ~1e-5 per pixel


def test_ctrl_grayscale_puts_the_magnitude_in_the_one_channel():
    x = 0.4 + 0.2 * torch.rand(3, 1, 16, 16, generator=GEN)
    y = CTRL(magnitude=60.0).stamp(x, GEN)
    diff = block_dct2(y.double() * 255, 16) - block_dct2(x.double() * 255, 16)
    expected = torch.zeros_like(diff)
    expected[:, 0, 7, 7] = expected[:, 0, 15, 15] = 60.0
    assert torch.allclose(diff, expected, atol=1e-3)


@pytest.mark.parametrize("channels", [1, 3])
def test_ctrl_zero_magnitude_is_the_identity_on_uint8(channels):
    images = torch.randint(0, 256, (5, channels, 16, 16), dtype=torch.uint8, generator=GEN)
    data = DataSplits(train=TensorDataset(images, torch.arange(5)), num_classes=5)
    out = CTRL(magnitude=0.0).apply(data, "train", torch.arange(5), seed=0)
    stamped = torch.stack([out.train[i][0] for i in range(5)])
    assert stamped.dtype == torch.uint8
    assert torch.equal(stamped, images)


def test_ctrl_uint8_round_trip_keeps_dtype_and_rounds_the_float_trigger():
    images = torch.randint(60, 200, (4, 3, 32, 32), dtype=torch.uint8, generator=GEN)
    data = DataSplits(train=TensorDataset(images, torch.arange(4)), num_classes=4)
    trigger = CTRL(magnitude=100.0)
    out = trigger.apply(data, "train", torch.tensor([1, 3]), seed=0)
    got = torch.stack([out.train[i][0] for i in range(4)])
    assert got.dtype == torch.uint8
    assert torch.equal(got[[0, 2]], images[[0, 2]])  # untouched items
    assert torch.equal(data.train.tensors[0], images)  # input never modified
    exact = trigger.stamp(images[[1, 3]].float() / 255, GEN) * 255
    assert (got[[1, 3]].float() - exact).abs().max() <= 0.5 + 1e-3  # only uint8 rounding
    assert (got[[1, 3]].int() - images[[1, 3]].int()).abs().max() >= 5  # visible change


def test_ctrl_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="window_size=12 does not divide"):
        CTRL(window_size=12).stamp(torch.rand(1, 3, 32, 32), GEN)
    with pytest.raises(ValueError, match=r"positions=\[20\] must lie in \[0, 16\)"):
        CTRL(positions=(20,)).stamp(torch.rand(1, 1, 16, 16), GEN)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        CTRL().stamp(torch.rand(1, 4, 16, 16), GEN)
    with pytest.raises(ValueError, match="magnitude=-1"):
        CTRL(magnitude=-1)
    graph_like = DataSplits(train=TensorDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2)))
    graph_like.train.edge_index = torch.zeros(2, 0)
    graph_like.nodes = lambda split: torch.arange(2)  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="graph trigger"):
        CTRL().apply(graph_like, "train", torch.tensor([0]), seed=0)


def test_patch_fixed_corner_and_patterns():
    x = torch.full((2, 1, 8, 8), 0.5)
    y = Patch(size=3, pattern="checkerboard", position="bottom-right").stamp(x, GEN)
    board = torch.tensor([[0.0, 1, 0], [1, 0, 1], [0, 1, 0]])
    assert torch.equal(y[:, 0, 5:, 5:], board.expand(2, 3, 3))
    assert torch.equal(y[:, :, :5], x[:, :, :5]) and torch.equal(y[:, :, :, :5], x[:, :, :, :5])
    white = Patch(size=2, pattern="white", position="top-left").stamp(x, GEN)
    assert torch.equal(white[:, 0, :2, :2], torch.ones(2, 2, 2))
    rand = Patch(size=4, pattern="random", pattern_seed=3)
    assert torch.equal(rand.pattern_for(3), Patch(size=4, pattern_seed=3).pattern_for(3))
    assert not torch.equal(rand.pattern_for(3), Patch(size=4, pattern_seed=4).pattern_for(3))
    assert set(rand.pattern_for(3).unique().tolist()) == {0.0, 1.0}


def test_patch_random_position_is_seeded_per_item_and_pastes_the_same_pattern():
    trigger = Patch(size=3, position="random", pattern_seed=1)
    x = torch.full((20, 3, 12, 12), 0.5)
    a = trigger.stamp(x, torch.Generator().manual_seed(7))
    b = trigger.stamp(x, torch.Generator().manual_seed(7))
    c = trigger.stamp(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    corners = set()
    pattern = trigger.pattern_for(3)
    for img in a:
        changed = (img != 0.5).any(0).nonzero()
        r, col = int(changed[:, 0].min()), int(changed[:, 1].min())
        window = img[:, r : r + 3, col : col + 3]
        if torch.equal(window, pattern):
            corners.add((r, col))
    assert len(corners) > 5  # positions vary across items


def test_patch_too_large_and_bad_choices():
    with pytest.raises(ValueError, match="size=9 is larger than the images"):
        Patch(size=9).stamp(torch.rand(1, 1, 8, 8), GEN)
    with pytest.raises(ValueError, match="position='left'"):
        Patch(position="left")  # type: ignore[arg-type]


def test_triggers_are_checked_by_selfsup_check():
    """Parameter constraints are declared in the signatures (what `selfsup check` validates)."""
    from selfsup import ConfigError, load_config_text, resolve_experiment

    base = """
name: t
data:
  id: vision:digits
  transforms: [{id: security:poison, params: {trigger: TRIGGER, target: 0, rate: 0.01}}]
encoder: vision:small-cnn
views: vision:simclr
objective: core:simclr
"""
    ok = base.replace("TRIGGER", "{id: security:ctrl, params: {magnitude: 100}}")
    resolve_experiment(load_config_text(ok))
    for bad, key in (
        ("{id: security:ctrl, params: {magnitude: -5}}", "params.trigger.params.magnitude"),
        ("{id: security:ctrl, params: {channels: [3]}}", "params.trigger.params.channels"),
        ("{id: security:patch, params: {size: 0}}", "params.trigger.params.size"),
        ("{id: security:patch, params: {position: left}}", "params.trigger.params.position"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            resolve_experiment(load_config_text(base.replace("TRIGGER", bad)))
