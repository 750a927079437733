"""The plugin is installed: its entry point is found, active, complete, and listing stays light."""

from __future__ import annotations

from selfsup.testing import check_installed_plugin, check_listing_is_light

EXPECTED = {
    "encoder": {"medical:swin", "medical:resnet3d", "medical:unet-encoder", "medical:vit3d"},
    "views": {"medical:crops"},
    "objective": {
        "medical:voco",
        "medical:swin-pretext",
        "medical:genesis",
        "medical:local-global",
        "medical:masked-volume",
    },
    "dataset": {"medical:colin27-aal", "medical:colin27-patches", "medical:nifti-folder"},
    "evaluator": {"medical:segmentation", "medical:patch-probe"},
}


def test_entry_point_found_active_and_complete() -> None:
    check_installed_plugin(
        "medical", distribution="selfsup-medical", expected=EXPECTED, modality="volume"
    )


def test_listing_does_not_import_heavy_stacks() -> None:
    check_listing_is_light("medical", heavy=("torch", "monai", "nibabel", "pydicom"))
