"""The plugin is installed: its entry point is found, active, complete, and listing stays light."""

from __future__ import annotations

from selfsup.testing import check_installed_plugin, check_listing_is_light

EXPECTED = {
    "encoder": {
        "vision:timm",
        "vision:resnet-small",
        "vision:vit-tiny",
        "vision:small-cnn",
        "vision:pixels",
    },
    "views": {"vision:simclr", "vision:byol", "vision:multicrop", "vision:mae-mask"},
    "objective": {"vision:mae"},
    "dataset": {
        "vision:digits",
        "vision:fashion-mnist",
        "vision:image-folder",
        "vision:cifar10",
        "vision:cifar100",
        "vision:stl10",
        "vision:imagenet",
    },
    "evaluator": {"vision:finetune"},
}


def test_entry_point_found_active_and_complete() -> None:
    check_installed_plugin(
        "vision", distribution="selfsup-vision", expected=EXPECTED, modality="image"
    )


def test_listing_does_not_import_heavy_stacks() -> None:
    check_listing_is_light("vision", heavy=("timm", "torchvision", "PIL", "sklearn", "torch"))
