"""audio:label-probe: the core linear probe on any flag (digit, speaker) of real FSDD."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from selfsup.interfaces import DataSplits, EncoderOutput, EvalContext
from selfsup.runtime import Runtime
from selfsup_audio.evaluators.probe import LabelProbe, relabel


class _Identity(torch.nn.Module):
    embed_dim = 3

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        return EncoderOutput(pooled=x)


def _ctx() -> EvalContext:
    return EvalContext(runtime=Runtime(torch.device("cpu")), seed=0)


def _data(n: int = 60, seed: int = 0) -> DataSplits:
    """Features that encode the ``colour`` flag (3 classes) but not ``y``."""
    gen = torch.Generator().manual_seed(seed)
    colour = torch.arange(n) % 3
    x = torch.nn.functional.one_hot(colour, 3).float() + 0.1 * torch.randn(n, 3, generator=gen)
    split = torch.utils.data.TensorDataset(x, torch.zeros(n, dtype=torch.long))
    data = DataSplits(train=split, val=split, test=split, num_classes=1)
    for s in ("train", "val", "test"):
        data = data.with_flags(s, colour=colour)
    return data


def test_probe_reads_the_flag_not_y() -> None:
    out = LabelProbe(flag="colour").evaluate(_Identity(), _data(), _ctx())
    assert out["colour_acc"] == 1.0
    assert {"colour_val_acc", "colour_weight_decay", "colour_standardized"} <= set(out)


def test_relabel_and_bad_flags() -> None:
    data = _data()
    relabelled = relabel("t", data, "colour")
    assert relabelled.num_classes == 3 and relabelled.task == "classification"
    assert int(relabelled.test[4][1]) == 1
    with pytest.raises(ValueError, match="no 'speaker' flag; its flags are \\['colour'\\]"):
        LabelProbe(flag="speaker").evaluate(_Identity(), data, _ctx())
    missing = data.with_flags("val", colour=torch.full((60,), -1))
    with pytest.raises(ValueError, match="no 'colour' label"):
        relabel("t", missing, "colour")
    unseen = data.with_flags("test", colour=torch.full((60,), 7))
    with pytest.raises(ValueError, match="never occur in 'train'"):
        relabel("t", unseen, "colour")
    with pytest.raises(ValueError, match="flag=''"):
        LabelProbe(flag="")


@pytest.mark.heavy
def test_digit_and_speaker_probes_on_real_fsdd(fsdd_root: Path) -> None:
    """MFCC statistics: the DATA.md reference is digit 95.0%, speaker 99.7%."""
    from selfsup.components import build_component

    data = build_component("dataset", {"id": "audio:fsdd", "params": {"root": str(fsdd_root)}})
    enc = build_component("encoder", {"id": "audio:mfcc-stats", "params": {"sample_rate": 8000}})
    digit = LabelProbe(flag="digit").evaluate(enc, data, _ctx())
    speaker = LabelProbe(flag="speaker").evaluate(enc, data, _ctx())
    assert digit["digit_acc"] > 0.9, digit
    assert speaker["speaker_acc"] > 0.95, speaker
    # Unseen test speakers cannot be classified: a clear error, not a silent 0%.
    by_speaker = build_component(
        "dataset", {"id": "audio:fsdd", "params": {"root": str(fsdd_root), "split": "by-speaker"}}
    )
    with pytest.raises(ValueError, match="split: by-index"):
        LabelProbe(flag="speaker").evaluate(enc, by_speaker, _ctx())
