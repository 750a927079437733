"""The L-TDNN head and audio:ltdnn-probe: shapes, padding invariance, learning on FSDD."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from selfsup.interfaces import EncoderOutput, EvalContext
from selfsup.runtime import Runtime
from selfsup_audio.evaluators.ltdnn import LTDNNProbe, hidden_of, pad_hidden, real_frames
from selfsup_audio.heads import LTDNN, masked_stats_pool

HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


def test_ltdnn_shapes_and_layer_weights() -> None:
    head = LTDNN(num_layers=3, in_dim=[8, 8, 12], channels=16, embed_dim=6, num_classes=4)
    hs = [torch.randn(2, 10, d) for d in (8, 8, 12)]
    emb, logits = head(hs, torch.ones(2, 10, dtype=torch.bool))
    assert emb.shape == (2, 6) and logits is not None and logits.shape == (2, 4)
    assert head.layer_weights.sum().item() == pytest.approx(1.0)
    # The layer weights are learned: a gradient reaches them.
    logits.sum().backward()
    assert head.layer_logits.grad is not None and head.layer_logits.grad.abs().sum() > 0
    no_cls = LTDNN(num_layers=1, in_dim=8, channels=16, embed_dim=6)
    assert no_cls(hs[:1], torch.ones(2, 10, dtype=torch.bool))[1] is None


def test_ltdnn_padding_invariance() -> None:
    torch.manual_seed(0)
    head = LTDNN(num_layers=2, in_dim=8, channels=16, embed_dim=6, num_classes=3).eval()
    short = [torch.randn(1, 7, 8) for _ in range(2)]
    padded = [torch.cat([h, 100 * torch.randn(1, 5, 8)], 1) for h in short]
    mask = torch.zeros(1, 12, dtype=torch.bool)
    mask[0, :7] = True
    a, _ = head(short, torch.ones(1, 7, dtype=torch.bool))
    b, _ = head(padded, mask)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_ltdnn_bad_inputs() -> None:
    head = LTDNN(num_layers=2, in_dim=8, channels=16, embed_dim=6)
    with pytest.raises(ValueError, match="got 1 hidden states"):
        head([torch.randn(1, 5, 8)], torch.ones(1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="different lengths"):
        head([torch.randn(1, 5, 8), torch.randn(1, 6, 8)], torch.ones(1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="kernel_sizes"):
        LTDNN(num_layers=1, in_dim=8, kernel_sizes=(3,), dilations=(1, 2))
    with pytest.raises(ValueError, match="no real frame"):
        masked_stats_pool(torch.randn(1, 3, 2), torch.zeros(1, 3, dtype=torch.bool))


def test_hidden_states_of_downsampling_encoders_are_aligned() -> None:
    """CNN layers at 40, 20 and 10 steps are resampled to the tokens' 10 steps."""
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 6:] = False
    out = EncoderOutput(
        pooled=torch.zeros(2, 4),
        tokens=torch.zeros(2, 10, 16),
        mask=mask,
        hidden_states=(torch.ones(2, 40, 4), torch.ones(2, 20, 8), torch.ones(2, 10, 16)),
    )
    cat, m, widths = hidden_of("t", out, "train")
    assert cat.shape == (2, 10, 28) and widths == (4, 8, 16) and torch.equal(m, mask)
    items = real_frames(cat, m)
    assert [tuple(i.shape) for i in items] == [(10, 28), (6, 28)]
    layers, pmask = pad_hidden(items, widths, torch.device("cpu"))
    assert [tuple(h.shape) for h in layers] == [(2, 10, 4), (2, 10, 8), (2, 10, 16)]
    assert int(pmask.sum()) == 16
    with pytest.raises(ValueError, match="neither hidden_states nor tokens"):
        hidden_of("t", EncoderOutput(pooled=torch.zeros(2, 4)), "train")


@pytest.mark.heavy
def test_ltdnn_probe_learns_speakers_on_real_fsdd(fsdd_root: Path, tmp_path: Path) -> None:
    """A random-init 1-D CNN's hidden states through the L-TDNN: speaker-ID far above
    the 1/6 chance and the linear probe's 90% reference, verification EER below 20%."""
    from selfsup.components import build_component

    data = build_component("dataset", {"id": "audio:fsdd", "params": {"root": str(fsdd_root)}})
    torch.manual_seed(0)
    enc = build_component(
        "encoder", {"id": "audio:cnn1d", "params": {"sample_rate": 8000, "channels": [32, 64]}}
    )
    ctx = EvalContext(runtime=Runtime(torch.device("cpu")), seed=0, run_dir=tmp_path)
    out = LTDNNProbe(channels=32, embed_dim=32, epochs=3).evaluate(enc, data, ctx)
    assert out["ltdnn_acc"] > 0.9, out
    assert out["ltdnn_eer"] < 0.2, out
    weights = ctx.facts["ltdnn"]["layer_weights"]
    assert len(weights) == ctx.facts["ltdnn"]["layers"] and sum(weights) == pytest.approx(
        1, abs=1e-3
    )
    assert any(a["path"].endswith("ltdnn_det.png") for a in ctx.artefacts) == HAVE_MPL
