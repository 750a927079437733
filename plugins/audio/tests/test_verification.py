"""audio:verification: trials, cosine scoring, EER/minDCF on real FSDD, bad inputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from selfsup.interfaces import DataSplits, EncoderOutput, EvalContext
from selfsup.runtime import Runtime
from selfsup_audio.evaluators.verification import Verification, build_trials, read_trials
from selfsup_audio.metrics import equal_error_rate

HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


class _Identity(torch.nn.Module):
    """Embeddings as they are (the test controls them directly)."""

    embed_dim = 4

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        return EncoderOutput(pooled=x)


def _ctx(tmp_path: Path | None = None, seed: int = 0) -> EvalContext:
    return EvalContext(runtime=Runtime(torch.device("cpu")), seed=seed, run_dir=tmp_path)


def _embedded(n_spk: int = 4, per: int = 5, noise: float = 0.3, seed: int = 0) -> DataSplits:
    """Speaker clusters in 4-D: train and test splits with a speaker flag."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_spk, 4, generator=gen)
    spk = torch.arange(n_spk).repeat_interleave(per)
    x = centres[spk] + noise * torch.randn(len(spk), 4, generator=gen)
    split = torch.utils.data.TensorDataset(x, torch.zeros(len(spk), dtype=torch.long))
    data = DataSplits(train=split, test=split, num_classes=1)
    return data.with_flags("test", speaker=spk).with_flags("train", speaker=spk)


def test_build_trials_counts_and_determinism() -> None:
    ids = torch.tensor([0, 0, 0, 1, 1, 2])
    pairs, labels = build_trials(ids, max_nontarget=100, seed=0)
    assert int(labels.sum()) == 3 + 1  # C(3,2) + C(2,2)
    assert int((labels == 0).sum()) == 15 - 4
    assert bool((ids[pairs[labels == 1, 0]] == ids[pairs[labels == 1, 1]]).all())
    assert bool((ids[pairs[labels == 0, 0]] != ids[pairs[labels == 0, 1]]).all())
    few, few_labels = build_trials(ids, max_nontarget=5, seed=3)
    again, _ = build_trials(ids, max_nontarget=5, seed=3)
    other, _ = build_trials(ids, max_nontarget=5, seed=4)
    assert int((few_labels == 0).sum()) == 5 and int(few_labels.sum()) == 4
    assert torch.equal(few, again) and not torch.equal(few, other)
    with pytest.raises(ValueError, match="two identities"):
        build_trials(torch.tensor([0, 0, 0]), 10, 0)


def test_cosine_verification_on_clusters(tmp_path: Path) -> None:
    data = _embedded(noise=0.05)
    ctx = _ctx(tmp_path)
    out = Verification(normalize="none").evaluate(_Identity(), data, ctx)
    assert out["eer"] < 0.05
    assert out["target_trials"] == 4 * 10 and out["nontarget_trials"] == 190 - 40
    protocol = ctx.facts["protocol"]
    assert protocol["min_dcf"]["p_target"] == 0.01 and protocol["min_dcf"]["c_fa"] == 1.0
    names = {Path(a["path"]).name for a in ctx.artefacts}
    assert "verification_scores_cosine.csv" in names
    assert ("verification_det.png" in names) == HAVE_MPL  # the PNG needs matplotlib
    # Pure noise: no speaker information, EER near chance.
    noisy = Verification(normalize="center").evaluate(_Identity(), _embedded(noise=50.0), _ctx())
    assert noisy["eer"] > 0.25


def test_metrics_name_the_split_unless_it_is_test() -> None:
    data = _embedded(noise=0.01)
    data = data.replace(val=data.test).with_flags("val", speaker=data.flag("test", "speaker"))
    test = Verification(normalize="none").evaluate(_Identity(), data, _ctx())
    val = Verification(split="val", normalize="none").evaluate(_Identity(), data, _ctx())
    assert set(val) == {f"val_{key}" for key in test}  # both fit in one arm's metrics
    assert val["val_eer"] == test["eer"] < 0.05  # the same items give the same scores


def test_trials_file_and_dataset_trials(tmp_path: Path) -> None:
    data = _embedded(n_spk=2, per=2, noise=0.01)
    trials = tmp_path / "trials.txt"
    trials.write_text("# label a b\n1 0 1\ntarget 2 3\n0 0 2\nnontarget 1 3\n", encoding="utf-8")
    out = Verification(trials_file=str(trials), normalize="none").evaluate(
        _Identity(), data, _ctx()
    )
    assert out["eer"] == 0.0 and out["target_trials"] == 2 and out["nontarget_trials"] == 2
    pairs, labels = read_trials(trials, 4, None)
    assert pairs.tolist() == [[0, 1], [2, 3], [0, 2], [1, 3]] and labels.tolist() == [1, 1, 0, 0]
    named, _ = read_trials(
        _write(tmp_path, "1 a.wav sub/b.wav\n0 a.wav 3\n"), 4, ["x/a.wav", "sub/b.wav"]
    )
    assert named.tolist() == [[0, 1], [0, 3]]
    data.meta["trials"] = [(0, 1, 1), (0, 2, 0), (2, 3, 1), (1, 3, 0)]
    ctx = _ctx()
    assert Verification(normalize="none").evaluate(_Identity(), data, ctx)["eer"] == 0.0
    assert "meta['trials']" in ctx.facts["protocol"]["trials"]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t2.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    data = _embedded()
    with pytest.raises(FileNotFoundError, match=r"nope\.txt"):
        Verification(trials_file=str(tmp_path / "nope.txt")).evaluate(_Identity(), data, _ctx())
    with pytest.raises(ValueError, match=r"t2.txt:2: expected 'label a b'"):
        read_trials(_write(tmp_path, "1 0 1\n2 0\n"), 20, None)
    with pytest.raises(ValueError, match="unknown item '99'"):
        read_trials(_write(tmp_path, "1 0 99\n"), 20, None)
    with pytest.raises(ValueError, match="holds no trial"):
        read_trials(_write(tmp_path, "# nothing\n"), 20, None)
    with pytest.raises(ValueError, match="no 'voice' flag"):
        Verification(flag="voice").evaluate(_Identity(), data, _ctx())
    with pytest.raises(ValueError, match="no 'val' split"):
        Verification(split="val").evaluate(_Identity(), data, _ctx())
    with pytest.raises(ValueError, match="normalize"):
        Verification(normalize="whiten")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="p_target"):
        Verification(p_target=0.0)
    unknown = data.with_flags("test", speaker=torch.full((20,), -1))
    with pytest.raises(ValueError, match="no 'speaker' identity"):
        Verification().evaluate(_Identity(), unknown, _ctx())


@pytest.mark.heavy
def test_mfcc_stats_verification_on_real_fsdd(fsdd_root: Path, tmp_path: Path) -> None:
    """The no-learning MFCC baseline: EER far below chance, near DATA.md's 17.6%."""
    from selfsup.components import build_component

    data = build_component("dataset", {"id": "audio:fsdd", "params": {"root": str(fsdd_root)}})
    enc = build_component("encoder", {"id": "audio:mfcc-stats", "params": {"sample_rate": 8000}})
    ctx = _ctx(tmp_path)
    out = Verification().evaluate(enc, data, ctx)
    assert out["target_trials"] == 6 * 1225 and out["nontarget_trials"] == 37500
    assert out["eer"] < 0.22, out  # DATA.md reference 17.6%; chance is 50%
    assert 0.0 < out["min_dcf"] <= 1.0
    # The EER is not an artefact of the trial order or of the metric code.
    raw = Verification(normalize="none").evaluate(enc, data, _ctx())
    assert raw["eer"] < 0.35
    scores_csv = tmp_path / "artefacts" / "evaluator" / "verification_scores_cosine.csv"
    rows = [line.split(",") for line in scores_csv.read_text().splitlines()[1:]]
    s = torch.tensor([float(r[0]) for r in rows])
    y = torch.tensor([int(r[1]) for r in rows])
    assert equal_error_rate(s, y)[0] == pytest.approx(out["eer"], abs=1e-6)
