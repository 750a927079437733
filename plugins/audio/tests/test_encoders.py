"""The audio encoders: contract, padding invariance, inputs, masking and bad parameters."""

from __future__ import annotations

import pytest
import torch
from selfsup.components import get_component
from selfsup.interfaces import Padded
from selfsup.testing import check_encoder, check_padding_invariance, make_batch
from selfsup_audio.encoders.cnn1d import CNN1d, MaskedBatchNorm
from selfsup_audio.encoders.ecapa import ECAPATDNN
from selfsup_audio.encoders.ssast import SSASTEncoder
from selfsup_audio.encoders.wav2vec2 import Wav2Vec2Encoder
from selfsup_audio.features import LogMel

SR = 8000

#: Small settings per encoder, so that the checks stay fast on one thread.
SMALL = {
    "audio:cnn1d": {"sample_rate": SR, "n_mels": 32, "channels": [32, 48]},
    "audio:ssast": {"sample_rate": SR, "n_mels": 32, "embed_dim": 32, "depth": 2},
    "audio:ecapa-tdnn": {"sample_rate": SR, "n_mels": 32, "channels": 32, "embed_dim": 24},
    "audio:wav2vec2": {
        "sample_rate": SR,
        "conv_dim": 32,
        "embed_dim": 32,
        "num_layers": 2,
        "ff_dim": 64,
        "pos_conv_kernel": 8,
        "pos_conv_groups": 4,
    },
}
VARIANTS = [
    ("audio:ssast", {"patch": "square", "n_mels": 32, "embed_dim": 32, "depth": 1}),
    ("audio:ssast", {"n_mels": 32, "patch_time": 3, "embed_dim": 32, "depth": 1}),
    ("audio:cnn1d", {"n_mels": 32, "channels": [16, 16, 16], "strides": [2, 1, 3]}),
    ("audio:cnn1d", {"n_mels": 32, "channels": [16, 24], "pooling": "meanstd"}),
    ("audio:wav2vec2", {**SMALL["audio:wav2vec2"], "layer_norm_first": True, "conv_layers": 5}),
]


@pytest.fixture
def waves() -> Padded:
    """Three clips of 0.3-1.0 s at 8 kHz (distinct lengths: the batch has padding)."""
    return make_batch("audio", variable_length=True, lengths=[2400, 8000, 5000], seed=1)


@pytest.mark.parametrize("eid", sorted(SMALL))
def test_contract_and_padding_invariance(eid: str, waves: Padded) -> None:
    torch.manual_seed(0)
    spec = get_component("encoder", eid)
    encoder, out = check_encoder(spec, waves, **SMALL[eid])
    assert out.hidden_states and all(h.shape[0] == 3 for h in out.hidden_states)
    check_padding_invariance(encoder, [waves.item(i) for i in range(3)])


@pytest.mark.parametrize("eid", sorted(SMALL))
def test_pooled_reaches_every_parameter(eid: str, waves: Padded) -> None:
    """DDP runs with find_unused_parameters=False: an objective on ``pooled`` (DINO, ...)
    must give every parameter a gradient, the mask embeddings included."""
    torch.manual_seed(0)
    encoder = get_component("encoder", eid).create(**SMALL[eid]).train()
    encoder(waves).pooled.pow(2).mean().backward()
    missing = [n for n, p in encoder.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing


@pytest.mark.parametrize(("eid", "params"), VARIANTS)
def test_variants_are_padding_invariant(eid: str, params: dict, waves: Padded) -> None:
    torch.manual_seed(0)
    spec = get_component("encoder", eid)
    encoder, _ = check_encoder(spec, waves, **{"sample_rate": SR, **params})
    check_padding_invariance(encoder, [waves.item(i) for i in range(3)])


@pytest.mark.parametrize("cls", [CNN1d, SSASTEncoder, ECAPATDNN])
def test_spectral_encoders_take_logmel_feature_batches(cls: type, waves: Padded) -> None:
    """A log-mel ``Padded`` batch (audio:specaugment's output) gives the waveform's result."""
    torch.manual_seed(0)
    params = {k: v for k, v in SMALL[_id(cls)].items()}
    encoder = cls(**params, norm="bands").eval()
    feats = LogMel(SR, n_mels=32)(waves)
    with torch.no_grad():
        from_wave, from_feats = encoder(waves).pooled, encoder(feats).pooled
    torch.testing.assert_close(from_feats, from_wave, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="n_mels=32"):
        encoder(LogMel(SR, n_mels=40)(waves))


def _id(cls: type) -> str:
    return {CNN1d: "audio:cnn1d", SSASTEncoder: "audio:ssast", ECAPATDNN: "audio:ecapa-tdnn"}[cls]


def test_cnn1d_statistics_pooling_is_mean_and_std_of_frames(waves: Padded) -> None:
    torch.manual_seed(0)
    enc = CNN1d(sample_rate=SR, n_mels=32, channels=[16, 24], pooling="meanstd").eval()
    out = enc(waves)
    assert enc.embed_dim == 48 and out.pooled.shape == (3, 48)
    for i in range(3):
        frames = out.tokens[i][out.mask[i]][:, :24]
        assert torch.allclose(out.pooled[i, :24], frames.mean(0), atol=1e-5)
        std = (frames.var(0, unbiased=False) + 1e-5).sqrt()  # masked_mean_std eps
        assert torch.allclose(out.pooled[i, 24:], std, atol=1e-5)
    assert bool((out.tokens[..., 24:] == 0).all())


def test_plain_tensor_is_all_real(waves: Padded) -> None:
    torch.manual_seed(0)
    encoder = SSASTEncoder(**SMALL["audio:ssast"]).eval()
    clip = waves.item(1)[None]
    with torch.no_grad():
        torch.testing.assert_close(
            encoder(clip).pooled, encoder(Padded.from_list([clip[0]])).pooled
        )


def test_scalar_norm_is_gain_invariant(waves: Padded) -> None:
    """The default per-utterance normalisation removes the recording gain."""
    torch.manual_seed(0)
    encoder = ECAPATDNN(**SMALL["audio:ecapa-tdnn"]).eval()
    with torch.no_grad():
        a = encoder(waves).pooled
        b = encoder(Padded(waves.values * 3.0, waves.lengths)).pooled
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_masked_batchnorm_ignores_padding() -> None:
    """Training statistics come from the real frames only."""
    norm = MaskedBatchNorm(2, momentum=1.0)
    x = torch.randn(2, 2, 6)
    lengths = torch.tensor([6, 3])
    mask = torch.arange(6)[None] < lengths[:, None]
    x_padded = x.clone()
    x_padded[1, :, 3:] = 1000.0  # whatever the padding holds
    out = norm(x_padded, mask)
    real = x.transpose(1, 2)[mask]
    torch.testing.assert_close(norm.running_mean, real.mean(0))
    assert bool((out[1, :, 3:] == 0).all())


def test_wav2vec2_forward_masked(waves: Padded) -> None:
    torch.manual_seed(0)
    encoder = Wav2Vec2Encoder(**SMALL["audio:wav2vec2"]).eval()
    with torch.no_grad():
        plain = encoder(waves)
        assert plain.mask.sum(1).tolist() == encoder.frame_lengths(waves.lengths).tolist()
        none = encoder.forward_masked(waves, torch.zeros_like(plain.mask))
        torch.testing.assert_close(none.pooled, plain.pooled)
        some = torch.zeros_like(plain.mask)
        some[0, :3] = True
        masked = encoder.forward_masked(waves, some)
    assert (masked.pooled[0] - plain.pooled[0]).abs().max() > 1e-3  # item 0 changed
    torch.testing.assert_close(masked.pooled[1:], plain.pooled[1:])  # the others did not
    assert isinstance(encoder.model, torch.nn.Module) and hasattr(
        encoder.model, "feature_extractor"
    )
    with pytest.raises(ValueError, match="time_mask has shape"):
        encoder.forward_masked(waves, some[:, :2])


def test_wav2vec2_masked_frames_get_gradient(waves: Padded) -> None:
    encoder = Wav2Vec2Encoder(**SMALL["audio:wav2vec2"])
    mask = torch.zeros(3, int(encoder.frame_lengths(waves.lengths).max()), dtype=torch.bool)
    mask[:, 1] = True
    encoder.forward_masked(waves, mask).tokens.pow(2).mean().backward()
    assert encoder.mask_embedding.grad is not None and encoder.mask_embedding.grad.abs().sum() > 0


def test_bad_inputs_are_named(waves: Padded) -> None:
    w2v = Wav2Vec2Encoder(**SMALL["audio:wav2vec2"])
    with pytest.raises(ValueError, match="raw audio, not features"):
        w2v(LogMel(SR, n_mels=32)(waves))
    with pytest.raises(ValueError, match="samples, fewer than"):
        w2v(Padded.from_list([torch.zeros(100), torch.zeros(5000)]))
    with pytest.raises(TypeError, match="expected waveforms"):
        SSASTEncoder(**SMALL["audio:ssast"])([1.0, 2.0])


@pytest.mark.parametrize(
    ("cls", "params", "match"),
    [
        (
            SSASTEncoder,
            {"n_mels": 40, "patch": "square"},
            "patch_freq=16 does not divide n_mels=40",
        ),
        (SSASTEncoder, {"embed_dim": 30, "num_heads": 4}, "num_heads=4"),
        (Wav2Vec2Encoder, {"embed_dim": 30, "num_heads": 4}, "num_heads=4"),
        (ECAPATDNN, {"channels": 30, "scale": 8}, "channels=30 is not divisible by scale=8"),
        (CNN1d, {"channels": [8, 8], "strides": [1]}, "one stride per layer"),
        (CNN1d, {"kernel_size": 4}, "kernel_size=4 must be odd"),
        (CNN1d, {"pooling": "max"}, "pooling='max' is not one of mean, meanstd"),
    ],
)
def test_bad_parameters_are_named(cls: type, params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls(**params)


def test_config_validation_names_bad_values() -> None:
    """``selfsup check`` rejects out-of-range values through the signatures."""
    from selfsup import ConfigError, load_config_text, resolve_experiment

    text = """
name: bad
data: {id: audio:fsdd}
encoder: {id: audio:ssast, params: {patch: hexagon}}
"""
    with pytest.raises(ConfigError, match="patch"):
        resolve_experiment(load_config_text(text))
