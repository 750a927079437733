"""Contract and unit tests of the 3-D objectives (synthetic volumes: shapes only)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from selfsup.components import get_component
from selfsup.interfaces import Encoder, EncoderOutput
from selfsup.testing import check_objective, make_batch

OBJECTIVES = [
    "medical:voco",
    "medical:swin-pretext",
    "medical:genesis",
    "medical:local-global",
    "medical:masked-volume",
]


@pytest.mark.parametrize("oid", OBJECTIVES)
def test_objective_contract_with_every_encoder(oid: str, tiny_encoder: Encoder) -> None:
    views = [make_batch("volume", batch_size=2, size=32) for _ in range(2)]
    _, out = check_objective(get_component("objective", oid), tiny_encoder, views)
    assert out.metrics, f"{oid} logs no metrics"


class _Flat(Encoder):
    """A pooled-only encoder (no feature maps): what the decoding objectives refuse."""

    def __init__(self) -> None:
        super().__init__()
        self.embed_dim = 8
        self.net = torch.nn.Linear(1, 8)

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        return EncoderOutput(pooled=self.net(x.mean(dim=(2, 3, 4))))


@pytest.mark.parametrize("oid", [o for o in OBJECTIVES if o != "medical:voco"])
def test_decoding_objectives_refuse_encoders_without_feature_maps(oid: str) -> None:
    objective = get_component("objective", oid).create(embed_dim=8)
    with pytest.raises(TypeError, match=r"feature maps.*medical:swin"):
        objective.attach(_Flat())


def test_voco_needs_only_pooled() -> None:
    enc = _Flat()
    objective = get_component("objective", "medical:voco").create(embed_dim=8)
    out = objective(enc, [make_batch("volume", batch_size=2, size=16)])
    assert torch.isfinite(out.loss)


def test_voco_overlap_labels_sum_to_one_and_match_the_grid() -> None:
    from selfsup_medical.objectives.voco import overlap_labels

    starts = torch.tensor([[0, 0, 0], [8, 8, 8], [4, 0, 8], [3, 5, 7]])
    labels = overlap_labels(starts, (8, 8, 8), grid=2)
    assert torch.allclose(labels.sum(1), torch.ones(4))
    assert labels[0, 0] == 1 and labels[1, 7] == 1  # on a base crop: one-hot
    assert torch.allclose(labels[2], torch.tensor([0, 0.5, 0, 0, 0, 0.5, 0, 0]))  # half/half
    assert labels[3].max() < 1  # in between: never a whole base crop


def test_voco_random_crops_never_cover_the_volume() -> None:
    from selfsup_medical.objectives.voco import VoCo

    voco = VoCo(embed_dim=8, grid=2, num_random=6)
    x = torch.rand(2, 1, 16, 16, 16)
    bases, randoms, labels, side = voco._crops(x)
    assert bases.shape == (16, 1, 8, 8, 8) and randoms.shape == (12, 1, 8, 8, 8)
    assert side == (8, 8, 8) and randoms[0].numel() < x[0].numel()
    assert torch.allclose(labels.sum(-1), torch.ones(2, 6))
    # a base crop is exactly a tile of the volume
    assert torch.equal(bases[1], x[0, :, :8, :8, 8:])


def test_bad_inputs_are_named(make_tiny_encoder: Callable[[str], Encoder]) -> None:
    voco = get_component("objective", "medical:voco").create(embed_dim=8)
    with pytest.raises(ValueError, match="too small for grid"):
        voco(_Flat(), [torch.rand(2, 1, 2, 2, 2)])
    with pytest.raises(ValueError, match=r"\[B, C, D, H, W\]"):
        voco(_Flat(), [torch.rand(2, 16, 16)])
    with pytest.raises(TypeError, match="'input'"):
        voco(_Flat(), {"volume": torch.rand(2, 1, 8, 8, 8)})
    masked = get_component("objective", "medical:masked-volume").create(embed_dim=64, mask_patch=5)
    enc = make_tiny_encoder("medical:unet-encoder")
    masked.attach(enc)
    with pytest.raises(ValueError, match="mask patch 5 must divide"):
        masked(enc, [torch.rand(2, 1, 32, 32, 32)])
    lg = get_component("objective", "medical:local-global").create(embed_dim=64, local_level=9)
    with pytest.raises(ValueError, match="local_level=9 is out of range"):
        lg.attach(enc)


def test_bad_parameters_fail_check() -> None:
    from selfsup import ConfigError, load_config_text, resolve_experiment

    text = """
name: bad
data: {id: medical:colin27-aal}
encoder: medical:unet-encoder
views: medical:crops
objective: {id: medical:voco, params: {grid: 1}}
evaluators: [medical:segmentation]
"""
    with pytest.raises(ConfigError, match=r"objective\.params\.grid"):
        resolve_experiment(load_config_text(text))


def test_genesis_transformations_keep_range_and_change_the_volume() -> None:
    from selfsup_medical.objectives.genesis import bezier_intensity, local_shuffle, paint

    x = torch.rand(2, 1, 16, 16, 16)
    y = bezier_intensity(x)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    shuffled = local_shuffle(x, blocks=5, max_frac=0.5)
    assert not torch.equal(shuffled, x)
    assert torch.allclose(shuffled.sum(), x.sum(), rtol=1e-4)  # a permutation keeps the sum
    assert torch.equal(x, x.clone())  # inputs untouched
    inpainted, outpainted = paint(x, inpaint=True), paint(x, inpaint=False)
    assert (inpainted == x).float().mean() > 0.5 > (outpainted == x).float().mean()


def test_masked_volume_accepts_a_view_mask(make_tiny_encoder: Callable[[str], Encoder]) -> None:
    enc = make_tiny_encoder("medical:unet-encoder")
    masked = get_component("objective", "medical:masked-volume").create(embed_dim=enc.embed_dim)
    masked.attach(enc)
    x = torch.rand(2, 1, 32, 32, 32)
    mask = torch.zeros(2, 1, 32, 32, 32, dtype=torch.bool)
    mask[:, :, :16] = True
    out = masked(enc, {"input": x, "mask": mask})
    assert float(out.metrics["mask_ratio"]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="views\\['mask'\\]"):
        masked(enc, {"input": x, "mask": mask[:, :, :8]})


def test_masked_volume_decodes_only_the_coarse_maps_when_asked(
    make_tiny_encoder: Callable[[str], Encoder],
) -> None:
    """decoder_min_stride=4 reads the UNet's stride-4 and -8 maps, not the finer ones."""
    enc = make_tiny_encoder("medical:unet-encoder")  # maps at strides 1, 2, 4, 8
    masked = get_component("objective", "medical:masked-volume").create(
        embed_dim=enc.embed_dim, decoder_min_stride=4
    )
    masked.attach(enc)
    assert masked.levels == [2, 3] and len(masked.decoder.proj) == 2
    x = torch.rand(2, 1, 32, 32, 32)
    picked = masked.decoded_maps(enc(x))
    assert [tuple(m.shape[2:]) for m in picked] == [(8, 8, 8), (4, 4, 4)]
    out = masked(enc, [x])
    out.loss.backward()
    assert out.loss.isfinite() and all(p.grad is not None for p in masked.decoder.parameters())
    coarse = get_component("objective", "medical:masked-volume").create(
        embed_dim=enc.embed_dim, decoder_min_stride=16
    )
    with pytest.raises(ValueError, match=r"decoder_min_stride=16 .*use at most 8"):
        coarse.attach(enc)


def test_sparse_masking_keeps_hidden_voxels_out_of_every_layer(
    make_tiny_encoder: Callable[[str], Encoder],
) -> None:
    """SparK emulation: hidden voxels are zero in every map, norms normalise over the
    visible voxels, and with nothing hidden the encoder is unchanged."""
    from selfsup_medical.objectives.common import cube_mask
    from selfsup_medical.objectives.sparse import sparse_masking

    enc = make_tiny_encoder("medical:unet-encoder")  # maps at strides 1, 2, 4, 8
    torch.manual_seed(0)
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.no_grad():
        dense = enc(x).feature_maps
        with sparse_masking(enc, torch.ones(2, 1, 32, 32, 32)):
            same = enc(x).feature_maps
        assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(dense, same, strict=True))
        hidden = cube_mask(x.shape, 8, 0.6, torch.device("cpu"))
        visible = (~hidden).float()
        with sparse_masking(enc, visible):
            maps = enc(x * visible).feature_maps
        for fmap in maps:
            keep = torch.nn.functional.interpolate(visible, size=fmap.shape[2:], mode="nearest")
            assert float((fmap * (1 - keep)).abs().max()) == 0.0
            assert float((fmap * keep).abs().mean()) > 0.01
        # The hooks are gone afterwards: the dense encoder mixes hidden voxels in again.
        assert not torch.allclose(enc(x * visible).feature_maps[-1], maps[-1])
        # An instance norm's statistics come from the visible voxels only.
        net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.InstanceNorm3d(4))
        with sparse_masking(net, visible):
            y = net(5 + x * visible)
        seen = y.permute(1, 0, 2, 3, 4)[:, ~hidden[:, 0]]
        assert torch.allclose(seen.mean(1), torch.zeros(4), atol=1e-4)
        assert torch.allclose(seen.std(1, unbiased=False), torch.ones(4), atol=1e-3)


def test_sparse_masked_volume_trains_its_mask_tokens_and_refuses_what_it_cannot_emulate(
    make_tiny_encoder: Callable[[str], Encoder],
) -> None:
    enc = make_tiny_encoder("medical:unet-encoder")
    spec = get_component("objective", "medical:masked-volume")
    masked = spec.create(embed_dim=enc.embed_dim, mask_patch=8, sparse=True)
    masked.attach(enc)
    tokens = list(masked.mask_tokens)
    assert [t.shape[1] for t in tokens] == list(enc.feature_channels)
    trained = {id(p) for p in masked.student_parameters()}
    assert all(id(t) in trained for t in tokens)
    out = masked(enc, [torch.rand(2, 1, 32, 32, 32)])
    out.loss.backward()
    assert out.loss.isfinite()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in tokens)
    split = torch.zeros(2, 1, 32, 32, 32, dtype=torch.bool)
    split[:, :, :4] = True  # half of each 8^3 cell in the first slab
    with pytest.raises(ValueError, match=r"whole 8\^3 cells"):
        masked(enc, {"input": torch.rand(2, 1, 32, 32, 32), "mask": split})
    split[:, :, 4:8] = True  # now whole cells
    assert masked(enc, {"input": torch.rand(2, 1, 32, 32, 32), "mask": split}).loss.isfinite()
    with pytest.raises(ValueError, match=r"mask_patch=4: use 8 or a multiple"):
        spec.create(embed_dim=enc.embed_dim, mask_patch=4, sparse=True).attach(enc)
    swin = make_tiny_encoder("medical:swin")
    with pytest.raises(TypeError, match=r"convolutional encoders.*LayerNorm.*sparse: false"):
        spec.create(embed_dim=swin.embed_dim, mask_patch=32, sparse=True).attach(swin)
