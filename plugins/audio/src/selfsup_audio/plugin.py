"""Hook implementations of the audio plugin (``audio:`` ids).

Only lazy ``"module:attr"`` references here: listing plugins or components never
imports torch, torchaudio, soundfile or scikit-learn. Every component lives in one
module per family; the factory's keyword parameters are the config's ``params``.
"""

from __future__ import annotations

from collections.abc import Callable

from selfsup.hookspecs import hookimpl
from selfsup.specs import (
    ComponentSpec,
    DatasetSpec,
    EncoderSpec,
    EvaluatorSpec,
    ObjectiveSpec,
    ViewSpec,
)

_PKG = "selfsup_audio"
_MODALITY = "audio"


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register the audio datasets (local files only, never a download)."""
    for name, ref, desc in [
        (
            "fsdd",
            f"{_PKG}.datasets:fsdd",
            "Free Spoken Digit Dataset folder; digit or speaker labels; split by index or speaker.",
        ),
        (
            "folder",
            f"{_PKG}.datasets:audio_folder",
            "Any folder of wav/flac files, labels from a filename regex or a CSV manifest.",
        ),
        (
            "corpus",
            f"{_PKG}.corpus:corpus",
            "Streaming speaker/*/file.flac|wav corpus (LibriSpeech, VoxCeleb): reads per item.",
        ),
        (
            "fsdd-deepfake",
            f"{_PKG}.fakes:fsdd_deepfake",
            "FSDD real vs codec2-resynthesised and espeak-ng fakes; speaker-disjoint splits.",
        ),
    ]:
        register(DatasetSpec(name=name, build=ref, description=desc, modality=_MODALITY))


@hookimpl
def register_views(register: Callable[[ViewSpec], None]) -> None:
    """Register the batched, on-device audio view makers."""
    for name, ref, desc in [
        (
            "wave-views",
            f"{_PKG}.views:WaveViews",
            "Waveform views: random crop, gain, noise and speed, batched on the device.",
        ),
        (
            "specaugment",
            f"{_PKG}.views:SpecAugmentViews",
            "Log-mel/MFCC/LFCC features with SpecAugment time and frequency masking.",
        ),
    ]:
        register(ViewSpec(name=name, build=ref, description=desc, modality=_MODALITY))


@hookimpl
def register_encoders(register: Callable[[EncoderSpec], None]) -> None:
    """Register the speech encoders."""
    for name, ref, desc, tags in [
        (
            "mfcc-stats",
            f"{_PKG}.encoders.spectral:MFCCStats",
            "MFCC mean and standard deviation over frames: the no-learning baseline.",
            ("baseline",),
        ),
        (
            "cnn1d",
            f"{_PKG}.encoders.cnn1d:CNN1d",
            "Small 1-D CNN over log-mel frames, fast on a CPU.",
            ("cnn",),
        ),
        (
            "wav2vec2",
            f"{_PKG}.encoders.wav2vec2:Wav2Vec2Encoder",
            "wav2vec2-style encoder (torchaudio wav2vec2_model), configurable size.",
            ("transformer",),
        ),
        (
            "ssast",
            f"{_PKG}.encoders.ssast:SSASTEncoder",
            "SSAST-style patch transformer over log-mel (frame or square patches).",
            ("transformer",),
        ),
        (
            "ecapa-tdnn",
            f"{_PKG}.encoders.ecapa:ECAPATDNN",
            "ECAPA-TDNN speaker encoder with attentive statistics pooling.",
            ("tdnn", "speaker"),
        ),
    ]:
        register(EncoderSpec(name=name, build=ref, description=desc, modality=_MODALITY, tags=tags))


@hookimpl
def register_objectives(register: Callable[[ObjectiveSpec], None]) -> None:
    """Register the speech SSL objectives (plain DINO is ``core:dino`` + audio views)."""
    for name, ref, desc, tags in [
        (
            "ssast",
            f"{_PKG}.objectives.ssast:SSAST",
            "Masked spectrogram patch modelling: InfoNCE over masked patches + MSE.",
            ("masked",),
        ),
        (
            "masked-prediction",
            f"{_PKG}.objectives.masked_prediction:MaskedPrediction",
            "Masked prediction of discrete targets: random-projection (BEATs) or MFCC k-means"
            " (HuBERT) tokenizer.",
            ("masked",),
        ),
        (
            "wav2vec2",
            f"{_PKG}.objectives.wav2vec2:Wav2Vec2Contrastive",
            "wav2vec2 contrastive objective with a Gumbel product quantizer and diversity loss.",
            ("contrastive", "masked"),
        ),
        (
            "cluster-dino",
            f"{_PKG}.objectives.cluster_dino:ClusterDINO",
            "DINO on utterances with cluster-aware pseudo-label weighting.",
            ("distillation",),
        ),
    ]:
        register(
            ObjectiveSpec(name=name, build=ref, description=desc, modality=_MODALITY, tags=tags)
        )


@hookimpl
def register_evaluators(register: Callable[[EvaluatorSpec], None]) -> None:
    """Register the speech evaluators."""
    for name, ref, desc in [
        (
            "verification",
            f"{_PKG}.evaluators.verification:Verification",
            "Speaker verification: cosine EER and minDCF (P_target=0.01) on trial pairs.",
        ),
        (
            "label-probe",
            f"{_PKG}.evaluators.probe:LabelProbe",
            "Linear probe on any per-item flag (speaker, digit, fake); chosen on val.",
        ),
        (
            "deepfake",
            f"{_PKG}.evaluators.deepfake:DeepfakeDetection",
            "Deepfake EER of spectral-only, SSL-only and fused detectors; ROC/DET curves.",
        ),
        (
            "ltdnn-probe",
            f"{_PKG}.evaluators.ltdnn:LTDNNProbe",
            "Layer-aware TDNN head over all hidden states: speaker-ID and verification.",
        ),
    ]:
        register(EvaluatorSpec(name=name, build=ref, description=desc, modality=_MODALITY))


@hookimpl
def register_components(register: Callable[[ComponentSpec], None]) -> None:
    """Contribute the audio backdoor triggers to the ``trigger`` kind (selfsup-security's).

    Without selfsup-security (not installed, or ``SELFSUP_DISABLE_PLUGINS=security``)
    nobody opens the kind: the core sets the triggers aside (``selfsup plugins`` lists
    them as not active) and the rest of the audio plugin loads as usual.
    """
    for name, ref, desc in [
        (
            "tone",
            f"{_PKG}.triggers:Tone",
            "A sine burst at a set frequency mixed into each clip (level re the clip's RMS).",
        ),
        (
            "noise-burst",
            f"{_PKG}.triggers:NoiseBurst",
            "A fixed white or band-limited noise burst mixed into each clip.",
        ),
    ]:
        register(
            ComponentSpec(
                kind="trigger", name=name, build=ref, description=desc, modality=_MODALITY
            )
        )
