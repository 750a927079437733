"""The segmentation evaluator and its decoder: shapes, protocol, artefacts, bad inputs."""

from __future__ import annotations

import itertools

import nibabel as nib
import pytest
import torch
from selfsup.components import get_component
from selfsup.interfaces import DataSplits, Encoder, EvalContext
from selfsup.runtime import Runtime
from selfsup.testing import check_evaluator


def test_decoder_gives_full_resolution_logits_for_every_encoder(tiny_encoder: Encoder) -> None:
    from selfsup_medical.evaluators.decoder import SegmentationNet

    enc = tiny_encoder
    net = SegmentationNet(enc, num_classes=5, width=4)
    x = torch.rand(2, 1, 32, 32, 32, requires_grad=True)
    logits = net(x)
    assert logits.shape == (2, 5, 32, 32, 32)
    logits.mean().backward()
    first = next(p for p in enc.parameters() if p.requires_grad)  # the stem / patch embedding
    assert first.grad is not None and float(first.grad.abs().sum()) > 0


def test_decoder_rejects_mismatched_strides() -> None:
    from selfsup_medical.evaluators.decoder import UNETRDecoder

    with pytest.raises(ValueError, match="strides must divide"):
        UNETRDecoder([8, 16], [4, 6], out_channels=2)
    with pytest.raises(ValueError, match="equal length"):
        UNETRDecoder([8, 16], [2], out_channels=2)


def test_segmentation_on_colin_records_protocol_and_writes_masks(colin, tmp_path) -> None:
    enc = get_component("encoder", "medical:resnet3d").create(depth=10, width=8)
    spec = get_component("evaluator", "medical:segmentation")
    metrics = check_evaluator(
        spec, enc, colin, run_dir=tmp_path, budget=1, steps=2, decoder_width=4, sw_batch_size=8
    )
    regions = [k for k in metrics if k.startswith("dice_") and k != "dice_mean"]
    assert "dice_frontal" in regions and metrics["regions_scored"] == len(regions) == 7
    assert 0 <= metrics["dice_mean"] <= 1
    mask = nib.load(tmp_path / "artefacts" / "segmentation" / "pred_0.nii.gz")
    volume = colin.meta["volumes"]["test"][0][0]
    assert mask.shape == tuple(volume.shape[1:])
    assert mask.header.get_zooms()[:3] == (2.0, 2.0, 2.0)
    assert (tmp_path / "artefacts" / "segmentation" / "pred_0.png").stat().st_size > 1000


def test_segmentation_leaves_the_encoder_unchanged(colin) -> None:
    from selfsup_medical.evaluators.segmentation import SegmentationFinetune

    enc = get_component("encoder", "medical:resnet3d").create(depth=10, width=8)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    ctx = EvalContext(runtime=Runtime(torch.device("cpu")))
    SegmentationFinetune(
        budget=1, steps=2, decoder_width=4, save_masks=False, cpu_stitch_voxels=1
    ).evaluate(enc, colin, ctx)
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())
    protocol = ctx.facts["protocol"]
    assert protocol["budget_crops"] == 1 and len(protocol["crop_indices"]) == 1
    assert "ignore_empty=True" in protocol["metric"] and "ignored" in protocol["empty_regions"]
    assert protocol["stitching_device"] == "cpu"  # above cpu_stitch_voxels: stitched on CPU


def test_validation_scores_the_train_hemisphere_without_the_labelled_crops(colin) -> None:
    """val_dice_mean reads the left hemisphere minus the labelled crops' voxels only."""
    from selfsup_medical.evaluators.segmentation import SegmentationFinetune, validation_split

    volumes, leave_out = validation_split(colin, [0, 5])
    assert volumes is colin.meta["volumes"]["train"]
    union = colin.train.footprint(0)[1] | colin.train.footprint(5)[1]
    assert set(leave_out) == {0} and torch.equal(leave_out[0], union)
    enc = get_component("encoder", "medical:resnet3d").create(depth=10, width=8)
    ctx = EvalContext(runtime=Runtime(torch.device("cpu")))
    evaluator = SegmentationFinetune(budget=2, steps=2, decoder_width=4, save_masks=False)
    metrics = evaluator.evaluate(enc, colin, ctx)
    assert 0 <= metrics["val_dice_mean"] <= 1
    assert "voxels)" in ctx.facts["protocol"]["validation"]
    # a voxel left out counts for no class: leaving out everything scores nothing
    net = evaluator.finetune(enc, colin, ctx)
    everything = {0: torch.ones_like(union)}
    assert bool(evaluator.score(net, volumes, ctx, everything).isnan().all())
    partial = evaluator.score(net, volumes, ctx, {0: union})
    assert not bool(partial.isnan().all())
    assert (
        not SegmentationFinetune(validate=False, budget=1, steps=1, save_masks=False)
        .evaluate(enc, colin, ctx)
        .get("val_dice_mean")
    )


def test_validation_on_separate_volumes_leaves_nothing_out(labelled_folder) -> None:
    from selfsup_medical.datasets import nifti_folder
    from selfsup_medical.evaluators.segmentation import validation_split

    data = nifti_folder(
        str(labelled_folder),
        crop_size=16,
        val_fraction=0.34,
        test_fraction=0.34,
    )
    volumes, leave_out = validation_split(data, [0])
    assert volumes is data.meta["volumes"]["val"] and leave_out == {}
    assert validation_split(DataSplits(train=data.train, num_classes=2, meta={}), [0]) is None


def test_same_seed_same_crops_for_every_arm(colin) -> None:
    from selfsup_medical.evaluators.segmentation import pick_crops

    assert pick_crops(colin.train, 3, 0.05, seed=0) == pick_crops(colin.train, 3, 0.05, seed=0)
    assert pick_crops(colin.train, 3, 0.05, seed=0) != pick_crops(colin.train, 3, 0.05, seed=1)


def test_bad_data_and_budget_are_named(colin) -> None:
    from selfsup_medical.evaluators.segmentation import SegmentationFinetune

    enc = get_component("encoder", "medical:resnet3d").create(depth=10, width=8)
    ctx = EvalContext(runtime=Runtime(torch.device("cpu")))
    flat = DataSplits(train=[(torch.rand(1, 8, 8, 8), 0)], test=[], num_classes=2)
    with pytest.raises(ValueError, match="needs a segmentation dataset"):
        SegmentationFinetune().evaluate(enc, flat, ctx)
    with pytest.raises(ValueError, match="budget=999"):
        SegmentationFinetune(budget=999, steps=1).evaluate(enc, colin, ctx)


def test_raw_linear_baseline_ignores_the_encoder(colin) -> None:
    spec = get_component("evaluator", "medical:segmentation")
    enc = get_component("encoder", "medical:resnet3d").create(depth=10, width=8)
    metrics = check_evaluator(spec, enc, colin, budget=2, steps=30, model="raw-linear")
    assert 0 <= metrics["dice_mean"] <= 1 and metrics["regions_scored"] == 7


def test_flip_axes_are_checked_and_only_those_axes_flip() -> None:
    from selfsup_medical.evaluators.segmentation import SegmentationFinetune, _sub_crop

    with pytest.raises(ValueError, match=r"flip_axes=\[3\]"):
        SegmentationFinetune(flip_axes=[3])
    assert SegmentationFinetune().flip_axes == (0, 1, 2)
    x = torch.arange(4 * 5 * 6, dtype=torch.float32).reshape(1, 4, 5, 6)
    y = x[0].long()
    seen = set()
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        xc, yc = _sub_crop(x, y, (4, 5, 6), gen, (0,))
        assert torch.equal(xc[0].long(), yc)  # image and label flipped together
        assert torch.equal(xc[0, 0], x[0, 0]) or torch.equal(xc[0, 0], x[0, -1])
        seen.add(bool(torch.equal(xc, x)))
    assert seen == {True, False}  # axis 0 flips about half the time, the others never


def test_cosine_schedule_warms_up_then_decays_and_bad_names_are_refused() -> None:
    from selfsup_medical.evaluators.segmentation import SegmentationFinetune

    with pytest.raises(ValueError, match="schedule='linear'"):
        SegmentationFinetune(schedule="linear")  # type: ignore[arg-type]
    flat = SegmentationFinetune(steps=100).lr_factor()
    assert {flat(s) for s in (0, 50, 99)} == {1.0}
    cos = SegmentationFinetune(steps=100, schedule="cosine", warmup=0.1).lr_factor()
    factors = [cos(s) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[9:]))  # then decays
    assert factors[-1] < 0.01


def test_encoder_frozen_fraction_trains_the_decoder_first_then_the_encoder(colin) -> None:
    from selfsup_medical.evaluators.segmentation import SegmentationFinetune

    torch.manual_seed(0)
    enc = get_component("encoder", "medical:unet-encoder").create(channels=[4, 8])
    start = {k: v.clone() for k, v in enc.named_parameters()}
    ctx = EvalContext(runtime=Runtime(torch.device("cpu")))

    def tuned(fraction: float, scale: float = 0.5) -> dict[str, bool]:
        evaluator = SegmentationFinetune(
            budget=1, steps=3, lr=0.01, decoder_width=4, save_masks=False,
            encoder_lr_scale=scale, encoder_frozen_fraction=fraction,
        )  # fmt: skip
        net = evaluator.finetune(enc, colin, ctx)
        assert evaluator.frozen_steps() == (3 if scale == 0 else round(3 * fraction))
        moved = {k: not torch.equal(start[k], v) for k, v in net.encoder.named_parameters()}
        assert all(p.requires_grad for p in net.decoder.parameters())
        return moved

    assert not any(tuned(0.9).values())  # frozen for all 3 steps: only the decoder learned
    assert not any(tuned(0.5, scale=0.0).values())  # encoder_lr_scale 0: frozen throughout
    assert all(tuned(0.5).values())  # frozen for 2 steps, then every encoder tensor moves
    assert all(tuned(0.0).values())


@pytest.mark.parametrize(
    ("key", "value"),
    [("encoder_frozen_fraction", 1.0), ("encoder_frozen_fraction", -0.1), ("warmup", 1)],
)
def test_config_names_an_out_of_range_protocol_value(key: str, value: float) -> None:
    """``selfsup check`` names the key, the value and the range allowed."""
    from selfsup import ConfigError, load_config_text, resolve_experiment

    text = f"""
name: bad
data: {{id: medical:colin27-aal}}
encoder: {{id: medical:unet-encoder}}
evaluators: [{{id: medical:segmentation, params: {{{key}: {value}}}}}]
"""
    with pytest.raises(ConfigError, match=rf"{key} = {value}.*\[0, 1\)"):
        resolve_experiment(load_config_text(text))


def test_config_names_a_validate_flag_that_is_not_a_boolean() -> None:
    """``validate: sometimes`` is refused with the key and the value, not read as true."""
    from selfsup import ConfigError, load_config_text, resolve_experiment

    text = """
name: bad
data: {id: medical:colin27-aal}
encoder: {id: medical:unet-encoder}
evaluators: [{id: medical:segmentation, params: {validate: sometimes}}]
"""
    with pytest.raises(ConfigError, match=r"validate.*sometimes"):
        resolve_experiment(load_config_text(text))


def test_draws_average_independent_draws_of_labelled_crops(colin) -> None:
    """draws=2 is the mean of draw 0 (the single draw) and of a draw seeded apart."""
    from selfsup_medical.evaluators.segmentation import DRAW_SEED_STEP, SegmentationFinetune

    enc = get_component("encoder", "medical:resnet3d").create(depth=10, width=8)
    params = {"budget": 1, "steps": 3, "lr": 0.01, "decoder_width": 4, "save_masks": False}

    def run(seed: int, draws: int) -> tuple[dict[str, float], dict]:
        ctx = EvalContext(runtime=Runtime(torch.device("cpu")), seed=seed)
        metrics = SegmentationFinetune(draws=draws, **params).evaluate(enc, colin, ctx)
        return metrics, ctx.facts["protocol"]

    first, one = run(0, 1)
    second, other = run(DRAW_SEED_STEP, 1)
    both, protocol = run(0, 2)
    assert protocol["crop_indices"] == [one["crop_indices"], other["crop_indices"]]
    assert protocol["draw_seeds"] == [0, DRAW_SEED_STEP]
    for key in ("dice_mean", "val_dice_mean"):
        assert both[key] == pytest.approx((first[key] + second[key]) / 2, abs=1e-6)
        spread = abs(first[key] - second[key]) / 2**0.5  # the std of two values
        assert both[f"{key}_std"] == pytest.approx(spread, abs=1e-6)
    assert "dice_mean_std" not in first
