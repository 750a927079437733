"""The plugin is installed: its entry point is found, active, complete, and listing stays light."""

from __future__ import annotations

from selfsup.testing import check_installed_plugin, check_listing_is_light

EXPECTED = {
    "dataset": {"audio:fsdd", "audio:folder", "audio:corpus", "audio:fsdd-deepfake"},
    "views": {"audio:wave-views", "audio:specaugment"},
    "encoder": {
        "audio:mfcc-stats",
        "audio:cnn1d",
        "audio:wav2vec2",
        "audio:ssast",
        "audio:ecapa-tdnn",
    },
    "objective": {
        "audio:ssast",
        "audio:masked-prediction",
        "audio:wav2vec2",
        "audio:cluster-dino",
    },
    "evaluator": {
        "audio:verification",
        "audio:label-probe",
        "audio:deepfake",
        "audio:ltdnn-probe",
    },
}


def test_entry_point_found_active_and_complete() -> None:
    check_installed_plugin(
        "audio", distribution="selfsup-audio", expected=EXPECTED, modality="audio"
    )


def test_listing_does_not_import_heavy_stacks() -> None:
    check_listing_is_light("audio", heavy=("torch", "torchaudio", "soundfile", "sklearn"))
