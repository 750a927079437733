"""selfsup.testing's installed-plugin checks pass on a real plugin and fail with clear messages."""

from __future__ import annotations

import pytest
from selfsup.testing import check_installed_plugin, check_listing_is_light, core_manager


def test_core_plugin_passes_every_check() -> None:
    info = check_installed_plugin(
        "core",
        distribution="selfsup",
        expected={"views": {"core:identity", "core:noise-mask"}},
        modality="any",
    )
    assert info.module == "selfsup.builtin.plugin"


def test_missing_plugin_names_the_installed_ones() -> None:
    with pytest.raises(AssertionError, match=r"no 'nope' entry point.*'core'"):
        check_installed_plugin("nope", pm=core_manager())


def test_wrong_ids_name_missing_and_unexpected() -> None:
    with pytest.raises(
        AssertionError, match=r"missing \['core:gone'\], unexpected \['core:noise-mask'\]"
    ):
        check_installed_plugin(
            "core", expected={"views": {"core:identity", "core:gone"}}, pm=core_manager()
        )


def test_wrong_distribution_and_modality_fail() -> None:
    with pytest.raises(AssertionError, match="comes from 'selfsup'"):
        check_installed_plugin("core", distribution="selfsup-other")
    with pytest.raises(AssertionError, match="not of modality 'image'"):
        check_installed_plugin("core", modality="image", pm=core_manager())


def test_broken_reference_is_named() -> None:
    from selfsup import EncoderSpec, hookimpl

    class Broken:
        @hookimpl
        def register_encoders(self, register):
            register(
                EncoderSpec(name="bad", modality="image", build="selfsup_no_such_module:Thing")
            )

    pm = core_manager(("broken", Broken()))
    with pytest.raises(AssertionError, match=r"broken:bad: .*selfsup_no_such_module"):
        check_installed_plugin("broken", pm=pm)


def test_listing_light_passes_and_catches_a_heavy_import() -> None:
    check_listing_is_light("core", heavy=("torch",), lazy=False)  # the core is selfsup itself
    # listing the core imports selfsup.builtin.plugin: named as heavy, it must be caught
    with pytest.raises(AssertionError, match=r"imported heavy modules: \['selfsup.builtin'"):
        check_listing_is_light("core", heavy=("selfsup.builtin",), lazy=False)
