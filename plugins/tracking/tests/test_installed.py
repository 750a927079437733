"""The plugin is installed: its entry point is active, the tracker kind open, listing light."""

from __future__ import annotations

from selfsup.testing import check_installed_plugin, check_listing_is_light, load_plugins


def test_entry_point_found_and_active() -> None:
    pm = load_plugins(strict=False)
    check_installed_plugin(
        "tracking",
        distribution="selfsup-tracking",
        expected={"tracker": {"tracking:tensorboard", "tracking:mlflow"}},
        pm=pm,
    )
    assert "tracker" in pm.registry.kinds()


def test_listing_does_not_import_tensorboard_or_mlflow() -> None:
    # the plugin's records module (the tracker kind's spec type) is light and imported
    check_listing_is_light("tracking", heavy=("mlflow", "tensorboard", "torch"), lazy=False)
