"""Learning on the real volume (Colin27 + AAL, left hemisphere trains, right tests).

1. Every main objective learns its pretext task (a small 3-D ResNet, 2 mm, 60 steps):
   its loss falls by a clear margin.
2. The examples' segmentation protocol (read from the example configs: 3 mm, 32^3
   crops, 400 cosine-decayed steps, the decoder alone for the first half, then the
   encoder too at 0.2x the decoder's lr: linear probing then fine-tuning) finds real
   regions from one labelled crop, above the raw-intensity linear probe.
3. Pretraining with an example config as it is (left-hemisphere crops, labels unused)
   beats the same encoder from random init at seed 0 (``WINS``), at the label budget
   and protocol chosen on validation: ``benchmarks/medical_quality.py`` scores every
   arm on the left hemisphere without the labelled crops' voxels too, and each
   objective is asserted where its mean validation gap over seeds 0-2 was largest:
   VoCo at 1 crop, local-global contrast and the SwinUNETR pretext at 4 crops (the
   examples' protocol, benchmarks/results/medical_quality.md), Models Genesis at 1
   crop with the short protocol (200 steps, the encoder trained from the first:
   medical_quality_short_val.md), whose validation gap (+2.8) beats the examples'
   protocol's (+0.5).
4. Masked-volume modelling is asserted the same way with Dice averaged over 3 draws of
   labelled crops (``medical:segmentation`` ``draws: 3``, ``WINS_OVER_DRAWS``): with
   a single draw, which one crop a seed labels decided its seed-0 comparison (behind
   at seed 0, ahead at seeds 1 and 2, on validation and test alike); averaged over 3
   draws it is ahead at every seed on both (benchmarks/results/
   medical_quality_draws3.md). It runs as a class of its own so that pytest-xdist
   (``--dist loadscope``) runs it beside the rest of this file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from selfsup.components import get_component
from selfsup.interfaces import EvalContext
from selfsup.runtime import Runtime

ENCODER = ("medical:resnet3d", {"depth": 10, "width": 8})
PRETRAIN_STEPS, BATCH = 60, 4
FINETUNE = {"budget": 2, "steps": 60, "lr": 5e-3, "encoder_lr_scale": 0.2, "decoder_width": 8}
#: The main objectives and the fraction their pretext loss must fall by.
MAIN = {"medical:voco": 0.3, "medical:genesis": 0.3, "medical:masked-volume": 0.2}


def _encoder():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return get_component("encoder", ENCODER[0]).create(**ENCODER[1])


def _dice(encoder, data) -> float:  # type: ignore[no-untyped-def]
    from selfsup_medical.evaluators.segmentation import SegmentationFinetune

    ctx = EvalContext(runtime=Runtime(torch.device("cpu")), seed=0)
    evaluator = SegmentationFinetune(save_masks=False, validate=False, **FINETUNE)
    return evaluator.evaluate(encoder, data, ctx)["dice_mean"]


def _pretrain(oid: str, data):  # type: ignore[no-untyped-def]
    """Pretrain for PRETRAIN_STEPS; returns (encoder, mean loss of first 10, of last 10)."""
    encoder = _encoder()
    objective = get_component("objective", oid).create(embed_dim=encoder.embed_dim)
    objective.attach(encoder)
    params = [*encoder.parameters(), *objective.student_parameters()]
    opt = torch.optim.AdamW(params, lr=1e-3)
    crops = torch.stack([data.train[i][0] for i in range(len(data.train))])
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(PRETRAIN_STEPS):
        batch = crops[torch.randint(0, len(crops), (BATCH,), generator=gen)]
        loss = objective(encoder, [batch]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return encoder, sum(losses[:10]) / 10, sum(losses[-10:]) / 10


@pytest.fixture(scope="module")
def colin64(mricron_root):  # type: ignore[no-untyped-def]
    from selfsup_medical.datasets import colin27_aal

    return colin27_aal(root=str(mricron_root), spacing=2.0, crop_size=32, train_crops=64)


@pytest.fixture(scope="module")
def pretrained(colin64):  # type: ignore[no-untyped-def]
    torch.set_num_threads(1)
    return {oid: _pretrain(oid, colin64) for oid in MAIN}


@pytest.mark.heavy
@pytest.mark.parametrize("oid", sorted(MAIN))
def test_objective_learns_its_pretext_on_the_real_volume(oid: str, pretrained) -> None:
    _, first, last = pretrained[oid]
    assert last < (1 - MAIN[oid]) * first, (
        f"{oid}: pretext loss {first:.4f} -> {last:.4f} over {PRETRAIN_STEPS} steps; "
        f"expected a fall of at least {MAIN[oid]:.0%}"
    )


#: The short fine-tuning protocol (overrides of the examples' parameters): 200 steps,
#: the encoder trained from the first one (``benchmarks/medical_quality.py --tag
#: short_val --finetune-steps 200 --encoder-frozen-fraction 0``).
SHORT: dict = {"steps": 200, "encoder_frozen_fraction": 0.0}
#: examples/medical/<name>.yaml -> (the Dice margin asserted, the protocol's overrides
#: of the example's parameters ({}: the example's own), labelled crops). Protocol and
#: budget are those with the largest mean validation gap over seeds 0-2 in
#: benchmarks/medical_quality.py; the margin is below the seed-0 test gap it measured
#: there (``MEASURED``), which this test reproduces.
WINS: dict[str, tuple[float, dict, int]] = {
    "voco_colin27": (0.02, {}, 1),
    "local_global_colin27": (0.04, {}, 4),
    "swin_pretext_colin27": (0.025, {}, 4),
    "genesis_colin27": (0.02, SHORT, 1),
}
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "medical"


def _example(name: str, overrides: list[str] | None = None):  # type: ignore[no-untyped-def]
    from selfsup import load_config

    path = EXAMPLES / f"{name}.yaml"
    if not path.is_file():
        pytest.skip(f"{path} not found: run from a checkout of the repository")
    return load_config(path, overrides=overrides or [])


def protocol(name: str) -> dict:
    """The example's ``medical:segmentation`` parameters (one protocol for all)."""
    for ev in _example(name).evaluators:
        if ev.id == "medical:segmentation":
            return {k: v for k, v in (ev.params or {}).items() if k != "budget"}
    raise AssertionError(f"examples/medical/{name}.yaml has no medical:segmentation")


@pytest.fixture(scope="module")
def colin3mm(mricron_root):  # type: ignore[no-untyped-def]
    from selfsup_medical.datasets import colin27_aal

    return colin27_aal(root=str(mricron_root), spacing=3.0, crop_size=32, train_crops=128)


def seg_dice(encoder, data, budget: int, seed: int, params: dict) -> float:  # type: ignore[no-untyped-def]
    """Mean Dice on the right hemisphere after the examples' fine-tuning protocol."""
    from selfsup_medical.evaluators.segmentation import SegmentationFinetune

    ctx = EvalContext(runtime=Runtime(torch.device("cpu")), seed=seed)
    evaluator = SegmentationFinetune(
        **{**params, "budget": budget, "save_masks": False, "validate": False}
    )
    return evaluator.evaluate(encoder, data, ctx)["dice_mean"]


def random_encoder(cfg, seed: int):  # type: ignore[no-untyped-def]
    """The config's encoder at the seed's initialisation (the benchmark's baseline)."""
    torch.manual_seed(seed)
    return get_component("encoder", cfg.encoder.id).create(**(cfg.encoder.params or {}))


def pretrain_from_example(name: str, seed: int, out: Path):  # type: ignore[no-untyped-def]
    """Run ``examples/medical/<name>.yaml`` as it is (one seed, no evaluators); its encoder."""
    from selfsup import run_experiment

    sets = [f"seeds=[{seed}]", "baseline=false", "evaluators=[]", f"output_dir={out}"]
    cfg = _example(name, sets)
    run = run_experiment(cfg, progress=False, overwrite=True).runs[0]
    assert run["status"] == "ok", run
    ckpt = out / cfg.name / run["arm"] / f"seed-{seed}" / "checkpoints" / "last.pt"
    encoder = random_encoder(cfg, seed)
    encoder.load_state_dict(torch.load(ckpt, weights_only=True, map_location="cpu")["encoder"])
    return encoder


@pytest.fixture(scope="module")
def random_init_dice(colin3mm):  # type: ignore[no-untyped-def]
    """Dice of each encoder from random init (seed 0, 1 crop), once per encoder and protocol."""
    cache: dict[str, float] = {}

    def dice(name: str, overrides: dict | None = None, budget: int = 1) -> float:
        cfg = _example(name)
        params = {**protocol(name), **(overrides or {})}
        key = repr((cfg.encoder.id, cfg.encoder.params, sorted(params.items()), budget))
        if key not in cache:
            cache[key] = seg_dice(random_encoder(cfg, 0), colin3mm, budget, 0, params)
        return cache[key]

    return dice


@pytest.mark.heavy
def test_random_init_finds_regions_above_the_raw_intensity_probe(
    colin3mm, random_init_dice
) -> None:
    """The protocol learns: random-init UNet from one crop beats the raw-intensity floor."""
    params = protocol("genesis_colin27")
    unet = random_encoder(_example("genesis_colin27"), 0)
    raw = seg_dice(unet, colin3mm, 1, 0, {**params, "model": "raw-linear"})
    random_init = random_init_dice("genesis_colin27")
    assert random_init > raw + 0.02, f"random-init Dice {random_init:.3f} vs raw {raw:.3f}"


@pytest.mark.heavy
@pytest.mark.parametrize("name", sorted(WINS))
def test_pretraining_beats_random_init_with_few_labelled_crops(
    name: str, colin3mm, random_init_dice, tmp_path
) -> None:
    """The example's objective vs the same encoder from random init, seed 0.

    Pretraining is ``examples/medical/<name>.yaml`` as it is (left-hemisphere crops,
    labels unused, through ``selfsup``'s runner); both arms then get the same crops,
    steps and learning rates (the example's protocol, or the short one for
    ``genesis_colin27``) at the budget in ``WINS``, chosen on validation.
    """
    _assert_beats_random_init(name, WINS[name], colin3mm, random_init_dice, tmp_path)


def _assert_beats_random_init(name: str, win: tuple, colin3mm, random_init_dice, tmp_path) -> None:  # type: ignore[no-untyped-def]
    margin, overrides, budget = win
    params = {**protocol(name), **overrides}
    encoder = pretrain_from_example(name, 0, tmp_path)
    pretrained = seg_dice(encoder, colin3mm, budget, 0, params)
    random_init = random_init_dice(name, overrides, budget)
    assert pretrained > random_init + margin, (
        f"{name}: pretrained Dice {pretrained:.3f} vs random init {random_init:.3f} at "
        f"{budget} labelled crop(s) ({overrides or 'the example protocol'}); "
        f"expected a margin of at least {margin} (measured: {MEASURED[name]})"
    )


#: Like ``WINS``, with Dice averaged over independent draws of labelled crops.
WINS_OVER_DRAWS: dict[str, tuple[float, dict, int]] = {
    "masked_volume_colin27": (0.01, {"draws": 3}, 1),
}


class TestOverDraws:
    """Objectives asserted on Dice averaged over draws of labelled crops (3 fine-tunes per arm).

    A class so that it is a scheduling scope of its own under ``--dist loadscope``.
    """

    @pytest.mark.heavy
    @pytest.mark.parametrize("name", sorted(WINS_OVER_DRAWS))
    def test_pretraining_beats_random_init_over_draws(
        self, name: str, colin3mm, random_init_dice, tmp_path
    ) -> None:
        """The example's objective vs random init, seed 0, mean Dice over 3 crop draws."""
        _assert_beats_random_init(name, WINS_OVER_DRAWS[name], colin3mm, random_init_dice, tmp_path)


#: benchmarks/medical_quality.py at the budget of ``WINS``: test Dice x100 per seed
#: (pretrained vs random init), and the validation gaps that chose the budget.
MEASURED = {
    "voco_colin27": "1 crop: 12.5 / 15.6 / 11.9 vs 9.2 / 11.3 / 3.2; "
    "validation gaps +0.7 / +2.7 / +3.0",
    "local_global_colin27": "4 crops: 36.8 / 26.9 / 18.6 vs 28.4 / 19.3 / 18.8; "
    "validation gaps +7.9 / +16.0 / -2.4",
    "swin_pretext_colin27": "4 crops: 20.9 / 18.3 / 17.1 vs 15.5 / 16.2 / 15.3; "
    "validation gaps +2.8 / -1.3 / +6.0",
    "genesis_colin27": "1 crop, short protocol: 6.9 / 17.1 / 2.6 vs 3.1 / 13.4 / 2.3; "
    "validation gaps +3.2 / +5.2 / +0.0",
    "masked_volume_colin27": "1 crop, mean of 3 draws: 11.4 / 14.6 / 13.8 vs 9.9 / 11.1 / "
    "7.6; validation gaps +0.7 / +2.8 / +1.7",
}
