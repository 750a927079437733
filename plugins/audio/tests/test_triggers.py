"""Audio backdoor triggers (``audio:tone``, ``audio:noise-burst``): unit, contract, learning.

The contract and learning tests go through the security plugin's public ids
(``security:poison``, ``security:backdoor``) and skip when it is not installed; the
kind-less case (security disabled) is checked through the CLI.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from selfsup import DataSplits, EvalContext, load_config, run_experiment
from selfsup.components import build_component
from selfsup.runtime import Runtime
from selfsup_audio.datasets import AudioSplits, fsdd
from selfsup_audio.triggers import NoiseBurst, Tone
from torch.utils.data import TensorDataset

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "security" / "audio_backdoor_fsdd.yaml"
#: The example config as a user runs it, one seed (the conftest holds torch to one thread).
ONE_SEED_ON_CPU = [
    "seeds=[0]",
    "train.device=cpu",
    "train.progress=false",
    "train.checkpoint_every=100",
]
SR = 8000
HAS_SECURITY = importlib.util.find_spec("selfsup_security") is not None
needs_security = pytest.mark.skipif(not HAS_SECURITY, reason="selfsup-security is not installed")


def _clips(lengths=(4000, 2600, 1800, 3100), seed: int = 0) -> list[tuple[torch.Tensor, int]]:
    gen = torch.Generator().manual_seed(seed)
    return [(0.1 * torch.randn(n, generator=gen), k % 3) for k, n in enumerate(lengths)]


def _data(clips=None, **meta) -> AudioSplits:
    return AudioSplits(
        train=clips if clips is not None else _clips(),
        num_classes=3,
        modality="audio",
        meta={"sample_rate": SR, **meta},
    )


def _diff(out: DataSplits, data: DataSplits, i: int) -> torch.Tensor:
    return out.train[i][0] - data.train[i][0]


# --------------------------------------------------------------------------- unit


@pytest.mark.parametrize("trigger", [Tone(frequency=1000), NoiseBurst(low_hz=500, high_hz=2000)])
def test_only_chosen_items_change_labels_kept_input_untouched(trigger) -> None:
    data = _data()
    before = [x.clone() for x, _ in data.train]
    out = trigger.apply(data, "train", torch.tensor([1, 3]), seed=0)
    assert out is not data and isinstance(out, AudioSplits)
    for i, (x, y) in enumerate(data.train):
        assert torch.equal(x, before[i])  # the input is never changed
        new_x, new_y = out.train[i]
        assert new_y == y and new_x.shape == x.shape
        assert torch.equal(new_x, x) == (i not in (1, 3))
    assert len(out.train) == len(data.train) and out.meta == data.meta


def test_deterministic_by_seed_and_placement_depends_on_it() -> None:
    data, idx = _data(), torch.tensor([0, 2])
    tone = Tone(frequency=1000, duration_ms=50, position="random")
    a = tone.apply(data, "train", idx, seed=3)
    b = tone.apply(data, "train", idx, seed=3)
    c = tone.apply(data, "train", idx, seed=4)
    assert torch.equal(a.train[0][0], b.train[0][0]) and torch.equal(a.train[2][0], b.train[2][0])
    assert not torch.equal(a.train[0][0], c.train[0][0])
    # an item's trigger depends on its own position, not on which others are chosen
    d = tone.apply(data, "train", torch.tensor([0]), seed=3)
    assert torch.equal(a.train[0][0], d.train[0][0])


def test_noise_pattern_is_fixed_by_pattern_seed_not_by_seed() -> None:
    data = _data([(torch.zeros(2000), 0)])
    idx = torch.tensor([0])
    burst = NoiseBurst(position="start", relative_to="full-scale", level_db=-20)
    a, b = (burst.apply(data, "train", idx, seed=s).train[0][0] for s in (0, 9))
    other = NoiseBurst(position="start", relative_to="full-scale", level_db=-20, pattern_seed=1)
    assert torch.equal(a, b)
    assert not torch.equal(a, other.apply(data, "train", idx, seed=0).train[0][0])


@pytest.mark.parametrize(
    ("position", "where"), [("start", slice(0, 400)), ("end", slice(1600, 2000))]
)
def test_position_start_and_end_place_one_burst_at_its_own_clip_length(position, where) -> None:
    data = _data([(torch.zeros(2000), 0)])
    tone = Tone(frequency=1000, duration_ms=50, position=position, relative_to="full-scale")
    diff = _diff(tone.apply(data, "train", torch.tensor([0]), seed=0), data, 0)
    inside = torch.zeros(2000, dtype=torch.bool)
    inside[where] = True
    assert diff[inside].abs().max() > 0.1 and diff[~inside].abs().max() == 0


def test_level_is_relative_to_the_clip_rms_or_full_scale() -> None:
    clip = 0.05 * torch.sin(2 * math.pi * 300 * torch.arange(4000) / SR)
    data = _data([(clip, 0)])
    ramp = math.sqrt(1 - 2 * 40 * 0.625 / 800)  # 5 ms raised-cosine ramps (40 samples) of 800
    for relative_to, reference in (("clip", float(clip.pow(2).mean().sqrt())), ("full-scale", 1)):
        tone = Tone(
            frequency=2000, duration_ms=100, level_db=-20, position="start", relative_to=relative_to
        )
        diff = _diff(tone.apply(data, "train", torch.tensor([0]), seed=0), data, 0)[:800]
        rms = float(diff.pow(2).mean().sqrt())
        assert rms == pytest.approx(0.1 * reference * ramp, rel=0.02), relative_to


def test_tone_is_at_its_frequency_and_noise_stays_in_its_band() -> None:
    data = _data([(torch.zeros(8000), 0)])
    idx = torch.tensor([0])
    tone = Tone(frequency=1250, duration_ms=500, position="start", relative_to="full-scale")
    spec = torch.fft.rfft(_diff(tone.apply(data, "train", idx, seed=0), data, 0)).abs()
    assert int(spec.argmax()) == 1250  # 1 Hz bins over one second
    band = NoiseBurst(
        low_hz=1000,
        high_hz=2000,
        duration_ms=500,
        position="start",
        relative_to="full-scale",
        level_db=-20,
    )
    power = torch.fft.rfft(_diff(band.apply(data, "train", idx, seed=0), data, 0)).abs() ** 2
    assert float(power[1000:2001].sum() / power.sum()) > 0.97
    white = NoiseBurst(duration_ms=500, position="start", relative_to="full-scale", level_db=-20)
    power = torch.fft.rfft(_diff(white.apply(data, "train", idx, seed=0), data, 0)).abs() ** 2
    assert float(power[:2000].sum() / power.sum()) == pytest.approx(0.5, abs=0.05)


def test_repeats_and_fill() -> None:
    data = _data([(torch.zeros(4000), 0)])
    idx = torch.tensor([0])

    def bursts(trigger) -> int:
        on = (_diff(trigger.apply(data, "train", idx, seed=1), data, 0) != 0).int()
        return int((on[1:] - on[:-1] == 1).sum() + on[0])

    assert bursts(Tone(frequency=1000, duration_ms=20, repeats=3, period_ms=100)) == 3
    filled = Tone(frequency=1000, duration_ms=20, repeats="fill", period_ms=100, position="start")
    assert bursts(filled) == 5  # 4000 samples = 500 ms: onsets at 0, 100, ..., 400 ms
    covered = Tone(frequency=1000, duration_ms=100, repeats="fill", period_ms=100)
    diff = _diff(covered.apply(data, "train", idx, seed=2), data, 0)
    assert float((diff != 0).float().mean()) > 0.95  # through the whole clip, any phase


def test_output_is_clipped_to_unit_range_and_short_clips_work() -> None:
    data = _data([(0.95 * torch.ones(3000), 0), (0.5 * torch.ones(30), 1), (torch.zeros(0), 2)])
    tone = Tone(frequency=1000, level_db=6, duration_ms=200)
    out = tone.apply(data, "train", torch.tensor([0, 1, 2]), seed=0)
    x0, x1, x2 = (out.train[i][0] for i in range(3))
    assert x0.max() == 1.0 and x0.min() >= -1.0 and x1.shape == (30,) and x2.shape == (0,)
    assert not torch.equal(x1, data.train[1][0])


def test_padding_is_never_stamped() -> None:
    data = _data()
    out = NoiseBurst(repeats="fill", level_db=0).apply(data, "train", torch.arange(4), seed=0)
    batch, y = out.collate([out.train[i] for i in range(4)])
    lengths = torch.tensor([4000, 2600, 1800, 3100])
    assert torch.equal(batch.lengths, lengths) and y.tolist() == [0, 1, 2, 0]
    assert (batch.values[~batch.mask] == 0).all()
    assert all((batch.values[i, : lengths[i]] != data.train[i][0]).any() for i in range(4))


def test_stamped_split_is_batched_by_a_dataloader_and_keeps_attributes() -> None:
    data = fsdd_like = _data()
    fsdd_like.train = _ListWithNames(_clips())
    out = Tone(frequency=500).apply(data, "train", torch.tensor([2]), seed=0)
    loader = torch.utils.data.DataLoader(out.train, batch_size=4, collate_fn=out.collate)
    batch, _ = next(iter(loader))
    assert not torch.equal(batch.values[2, :1800], data.train[2][0])
    assert out.train.names == ["a", "b", "c", "d"]


class _GraphData:
    edge_index = torch.tensor([[0, 1], [1, 0]])
    num_nodes = 4


class _ListWithNames(list):
    names = ["a", "b", "c", "d"]


def test_describe_is_plain_data() -> None:
    for trigger in (Tone(frequency=440, repeats="fill"), NoiseBurst(high_hz=3000)):
        record = trigger.describe()
        json.dumps(record)
        assert record["duration_ms"] == 100.0 and record["relative_to"] == "clip"
    assert Tone(frequency=440).describe()["frequency"] == 440.0
    burst = NoiseBurst(high_hz=3000).describe()
    assert burst["low_hz"] is None and burst["high_hz"] == 3000 and burst["pattern_seed"] == 0


# --------------------------------------------------------------------------- bad inputs


def test_frequency_above_nyquist_names_the_sample_rate() -> None:
    with pytest.raises(ValueError, match=r"frequency=5000 Hz .*Nyquist .*4000 Hz .*8000 Hz"):
        Tone(frequency=5000).apply(_data(), "train", torch.tensor([0]), seed=0)
    with pytest.raises(ValueError, match=r"Nyquist.*8000 Hz"):
        Tone(frequency=4000, sample_rate=8000)
    with pytest.raises(ValueError, match=r"high_hz=6000 Hz .*Nyquist .*8000 Hz"):
        NoiseBurst(high_hz=6000).apply(_data(), "train", torch.tensor([0]), seed=0)
    with pytest.raises(ValueError, match="low_hz=3000 must be below high_hz=2000"):
        NoiseBurst(low_hz=3000, high_hz=2000)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"period_ms": 50, "duration_ms": 100}, "period_ms=50"),
        ({"position": "middle"}, "position"),
        ({"repeats": 0}, "repeats"),
        ({"relative_to": "full-scale", "level_db": 3}, "level_db=3"),
        ({"frequency": -1}, "frequency"),
    ],
)
def test_bad_parameters_name_the_key(params, fragment) -> None:
    with pytest.raises(ValueError, match=fragment):
        Tone(**params)


@needs_security
def test_bad_parameters_through_the_registry_name_the_key() -> None:
    with pytest.raises(Exception, match="position"):
        build_component("trigger", {"id": "audio:tone", "params": {"position": "middle"}})
    tone = build_component("trigger", {"id": "audio:tone", "params": {"frequency": 440}})
    assert isinstance(tone, Tone) and tone.modality == "audio"


def test_refuses_image_and_graph_datasets_and_unknown_rates() -> None:
    images = DataSplits(
        train=TensorDataset(torch.zeros(4, 1, 8, 8), torch.zeros(4)),
        num_classes=2,
        modality="image",
    )
    with pytest.raises(ValueError, match=r"audio trigger and the dataset is a 'image' dataset"):
        Tone().apply(images, "train", torch.tensor([0]), seed=0)
    unknown = images.replace(modality="any")
    with pytest.raises(ValueError, match=r"mono waveforms \[T\].*shape \(1, 8, 8\)"):
        Tone().apply(unknown, "train", torch.tensor([0]), seed=0)
    with pytest.raises(ValueError, match="no meta\\['sample_rate'\\]"):
        Tone().apply(_data().replace(meta={}), "train", torch.tensor([0]), seed=0)
    with pytest.raises(ValueError, match="sample_rate=16000 but the dataset's clips are at 8000"):
        Tone(sample_rate=16000).apply(_data(), "train", torch.tensor([0]), seed=0)
    with pytest.raises(ValueError, match="outside the 'train' split"):
        Tone().apply(_data(), "train", torch.tensor([7]), seed=0)


class _Graph(DataSplits):
    """A graph dataset as the security plugin tells one apart: one graph, node-id splits."""

    def nodes(self, split: str) -> torch.Tensor:
        return torch.arange(4)


def test_refuses_a_graph_dataset() -> None:
    graph = _Graph(train=_GraphData(), num_classes=2, modality="graph")
    with pytest.raises(ValueError, match="'graph' dataset; use a trigger of its modality"):
        NoiseBurst().apply(graph, "train", torch.tensor([0]), seed=0)


# --------------------------------------------------------------------------- registration


def _cli(*args: str, disable: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "SELFSUP_DISABLE_PLUGINS": disable, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "selfsup", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@needs_security
def test_triggers_are_listed_under_the_security_kind() -> None:
    got = _cli("list", "trigger", "--modality", "audio")
    assert got.returncode == 0, got.stderr
    assert "audio:tone" in got.stdout and "audio:noise-burst" in got.stdout


def test_without_the_security_plugin_audio_loads_quietly() -> None:
    got = _cli("plugins", disable="security")
    assert got.returncode == 0, got.stdout + got.stderr
    audio = [line for line in got.stdout.splitlines() if line.startswith("│ audio ")]
    assert audio and "active" in audio[0], got.stdout
    assert "warn" not in (got.stdout + got.stderr).lower()
    assert "failed" not in got.stdout.lower() and not got.stderr.strip(), got.stderr
    listed = _cli("list", "encoder", "--modality", "audio", disable="security")
    assert listed.returncode == 0 and "audio:cnn1d" in listed.stdout
    assert not listed.stderr.strip(), listed.stderr


# --------------------------------------------------------------------------- contract


@needs_security
def test_poison_and_backdoor_contract_on_fsdd(fsdd_root: Path) -> None:
    data = fsdd(root=str(fsdd_root), label="digit", split="by-index", max_seconds=1.0)
    trigger = {"id": "audio:tone", "params": {"frequency": 3000, "repeats": "fill"}}
    poison = build_component(
        "transform",
        {"id": "security:poison", "params": {"trigger": trigger, "target": 3, "rate": 0.02}},
    )
    out = poison(data, seed=0)
    flags = out.flag("train", "poisoned")
    labels = torch.tensor(data.train.labels)
    n, n_target = len(data.train), int((labels == 3).sum())
    assert int(flags.sum()) == round(0.02 * n) and len(flags) == n
    assert bool((labels[flags.bool()] == 3).all())
    for i in [*torch.nonzero(flags).reshape(-1)[:5].tolist(), 0, 1]:
        x_new, y_new = out.train[i]
        x_old, y_old = data.train[i]
        assert y_new == y_old and x_new.shape == x_old.shape
        assert torch.equal(x_new, x_old) != bool(flags[i])
    summary = poison.summary()
    assert summary["trigger"] == "Tone" and summary["frequency"] == 3000.0
    assert summary["rate_of_target_class"] == pytest.approx(round(0.02 * n) / n_target)

    backdoor = build_component(
        "evaluator",
        {
            "id": "security:backdoor",
            "params": {"trigger": trigger, "target": 3, "max_test_items": 200},
        },
    )
    encoder = build_component("encoder", {"id": "audio:mfcc-stats", "params": {"sample_rate": SR}})
    ctx = EvalContext(runtime=Runtime(torch.device("cpu")), seed=0, name="backdoor")
    metrics = backdoor.evaluate(encoder, out, ctx)
    assert set(metrics) >= {"ca", "asr", "asr_all_ctrl", "target_rate_clean", "poison_rate"}
    assert metrics["ca"] > 0.6 and metrics["poison_rate"] == pytest.approx(0.02)
    assert 0.0 <= metrics["asr"] <= 1.0
    threat = ctx.facts["threat_model"]
    assert threat["modality"] == "audio" and threat["trigger"]["trigger"] == "Tone"
    assert threat["poisoned"]["of_target_class"] == round(0.02 * n)


# --------------------------------------------------------------------------- learning


@needs_security
@pytest.mark.heavy
def test_tone_backdoor_is_planted_through_simclr_on_fsdd(fsdd_root: Path, tmp_path: Path) -> None:
    """The example config's tone and clean arms, seed 0, as a user runs them.

    Measured when written (examples/security/audio_backdoor_fsdd.yaml: 5% of the 2400
    pretraining clips poisoned, all of them digit 0; a 3 kHz tone 6 dB below the clip's
    RMS; 5 epochs of SimCLR): poisoned ASR 0.30 vs the clean pipeline's 0.0 with the same
    trigger, CA 0.98 vs 0.97, triggered clips whose nearest train clip is poisoned 0.20
    (chance 0.05). The ASR varies with the seed (0.30, 0.11, 0.11 for seeds 0-2), so the
    margin asserted is 0.1, and the probe-free nearest-neighbour check twice chance.
    """
    overrides = [*ONE_SEED_ON_CPU, f"output_dir={tmp_path}", f"data.params.root={fsdd_root}"]
    cfg = load_config(EXAMPLE, overrides=overrides)
    result = run_experiment(cfg, progress=False, only=["simclr-clean", "simclr-tone"])
    runs = {run["arm"]: run for run in result.runs}
    assert all(run["status"] == "ok" for run in runs.values()), runs
    clean, poisoned = runs["simclr-clean"]["metrics"], runs["simclr-tone"]["metrics"]
    assert poisoned["poison_rate"] == pytest.approx(0.05) and clean["poison_rate"] == 0.0
    assert poisoned["asr"] >= clean["asr"] + 0.1, (clean, poisoned)
    assert poisoned["asr"] >= poisoned["target_rate_clean"] + 0.1, poisoned
    assert poisoned["trigger_nn_poisoned"] >= 0.1 and clean["trigger_nn_poisoned"] == 0.0
    assert poisoned["ca"] >= clean["ca"] - 0.05, (clean, poisoned)
    threat = runs["simclr-tone"]["facts"]["backdoor"]["threat_model"]
    assert threat["poisoned"]["count"] == 120 and threat["trigger"]["trigger"] == "Tone"
