"""Testing helpers for selfsup plugin authors: pytest fixtures and contract checks.

Installed with selfsup as an (inert) pytest plugin: the fixtures exist in every test
session, but nothing happens unless a test requests one, and importing this module
imports neither torch nor any plugin.

Fixtures:
    ``selfsup_pm``: a fresh :class:`~selfsup.plugins.PluginManager` with the installed
    entry points loaded, installed as the process-wide manager for the test and
    restored afterwards. ``register_plugin``: register a plugin object or module
    under a name for one test. ``cli_runner``: invoke the ``selfsup`` command
    in-process with that manager. ``tiny_batch``: a factory of small random batches
    per modality (:func:`make_batch`).

Batches: :func:`make_batch` makes small random batches per modality (shape tests
only, seeded): tensors ``[B, *shape]`` (:data:`SHAPES`; ``shape=`` overrides),
3-D volumes ``[B, C, D, H, W]`` (``make_batch("volume", size=(D, H, W), channels=C)``),
variable-length :class:`~selfsup.interfaces.Padded` batches of distinct lengths
(``make_batch("sequence", lengths=[...] or min_len=/max_len=, features=F)`` and
``make_batch("audio", variable_length=True)``; defaults in :data:`LENGTHS`) and PyG
graph batches (``make_batch("graph")``).

Contract checks (plain functions, usable from parametrized tests) build a component
and assert what the core relies on: :func:`check_encoder`, :func:`check_objective`,
:func:`check_views`, :func:`check_dataset`, :func:`check_evaluator`. For encoders of
variable-length inputs, :func:`check_padding_invariance` asserts that each item of a
``Padded`` batch gets the embedding it gets alone, whatever the padding, and that
``out.mask`` is False exactly on padded tokens; :func:`check_token_mask` and
:func:`check_feature_maps` check the ``mask`` and ``feature_maps`` fields of an
:class:`~selfsup.interfaces.EncoderOutput` (``check_encoder`` calls both).
:func:`contract_cases` lists a plugin's specs for ``pytest.mark.parametrize``.
:func:`torchrun_selfsup` runs ``selfsup run`` under ``torchrun`` on local CPU processes.
:func:`check_installed_plugin` asserts that an installed plugin is found, active, registers
exactly the expected ids and that each lazy reference imports;
:func:`check_listing_is_light` that listing it imports no heavy stack.

Example:
    A plugin's ``tests/test_contract.py``::

        import pytest
        from selfsup.testing import check_encoder, contract_cases, make_batch

        @pytest.mark.parametrize("spec", contract_cases(None, "ecg", "encoder"))
        def test_encoder_contract(spec):
            check_encoder(spec, make_batch("ecg", batch_size=4))

        def test_installed(cli_runner):
            result = cli_runner.invoke(["plugins", "--json"])
            assert result.exit_code == 0, result.output
            assert '"ecg"' in result.output

    Variable-length and 3-D encoders::

        from selfsup.testing import check_padding_invariance

        @pytest.mark.parametrize("spec", contract_cases(None, "speech", "encoder"))
        def test_padding(spec):
            batch = make_batch("sequence", lengths=[5, 9, 7], features=40)
            check_encoder(spec, batch, n_mels=40)  # its [B, T, D] tokens need out.mask
            items = [batch.item(i) for i in range(batch.batch_size)]
            check_padding_invariance(spec, items, atol=1e-5, n_mels=40)

        @pytest.mark.parametrize("spec", contract_cases(None, "medical", "encoder"))
        def test_volume_encoder(spec):  # feature_maps: [B, C_i, D, H, W], finest first
            _, out = check_encoder(spec, make_batch("volume", batch_size=2, size=32))
            assert len(out.feature_maps) == 4
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from selfsup.testing.batches import LENGTHS, SHAPES, make_batch
from selfsup.testing.contracts import (
    check_dataset,
    check_encoder,
    check_evaluator,
    check_objective,
    check_views,
    contract_cases,
)
from selfsup.testing.distributed import torchrun_selfsup
from selfsup.testing.encoders import (
    check_feature_maps,
    check_padding_invariance,
    check_token_mask,
)
from selfsup.testing.installed import check_installed_plugin, check_listing_is_light

if TYPE_CHECKING:
    from click.testing import Result

    from selfsup.plugins import PluginInfo, PluginManager

__all__ = [
    "LENGTHS",
    "SHAPES",
    "CliInvoker",
    "check_dataset",
    "check_encoder",
    "check_evaluator",
    "check_feature_maps",
    "check_installed_plugin",
    "check_listing_is_light",
    "check_objective",
    "check_padding_invariance",
    "check_token_mask",
    "check_views",
    "cli_runner",
    "contract_cases",
    "core_manager",
    "load_plugins",
    "make_batch",
    "register_plugin",
    "selfsup_pm",
    "tiny_batch",
    "torchrun_selfsup",
]

# --------------------------------------------------------------------------- managers


def load_plugins(strict: bool = False) -> PluginManager:
    """A fresh plugin manager with every installed entry point loaded.

    For "installed" tests: is my entry point found, active, and does it register what
    it should? Not installed as the process-wide manager (see ``selfsup_pm`` for that).

    Args:
        strict: Raise on the first plugin failure instead of recording it.

    Example:
        >>> pm = load_plugins()  # doctest: +SKIP
        >>> pm.infos["ecg"].status, [s.id for s in pm.registry.list("encoder")]  # doctest: +SKIP
    """
    from selfsup.plugins import PluginManager

    return PluginManager(strict=strict)


def core_manager(*plugins: tuple[str, object]) -> PluginManager:
    """A plugin manager with the core plugin and ``plugins`` only: no entry points.

    For testing a plugin (or a hook implementation) without whatever else is
    installed. Registration failures are recorded, not raised (``strict=False``).

    Args:
        plugins: ``(name, plugin)`` pairs to register after the core.

    Example:
        >>> pm = core_manager(("lab", my_plugin))  # doctest: +SKIP
        >>> pm.get("encoder", "lab:cnn")  # doctest: +SKIP
    """
    import warnings

    import selfsup.builtin.plugin
    from selfsup.plugins import PluginManager

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pm = PluginManager(load_entrypoints=False, strict=False)
        pm.register(selfsup.builtin.plugin, name="core")
        for name, plugin in plugins:
            pm.register(plugin, name=name)
    return pm


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def selfsup_pm() -> Iterator[PluginManager]:
    """A fresh plugin manager (entry points loaded), process-wide for the test."""
    from selfsup.plugins import PluginManager, reset_plugin_manager

    pm = PluginManager()
    old = reset_plugin_manager(pm)
    try:
        yield pm
    finally:
        reset_plugin_manager(old)


@pytest.fixture
def register_plugin(
    selfsup_pm: PluginManager,
) -> Iterator[Callable[..., PluginInfo]]:
    """``register_plugin(obj, name="test") -> PluginInfo``: register for one test.

    The plugin (a module, class or instance with hook implementations) joins the
    test's ``selfsup_pm``; it is unregistered afterwards. Failures are recorded as
    usual (``info.status == "failed"``); pass ``strict=True`` to raise instead.
    """
    names: list[str] = []

    def register(plugin: Any, name: str = "test", strict: bool = False) -> PluginInfo:
        old_strict = selfsup_pm.strict
        selfsup_pm.strict = strict
        try:
            selfsup_pm.register(plugin, name=name)
        finally:
            selfsup_pm.strict = old_strict
        names.append(name)
        selfsup_pm.failed()  # run the registration hooks now
        return selfsup_pm.infos[name]

    yield register
    for name in reversed(names):
        selfsup_pm.unregister(name)


@dataclass
class CliInvoker:
    """Invokes the ``selfsup`` CLI in-process (click's ``CliRunner``) with a manager."""

    pm: PluginManager

    def invoke(self, args: list[str], **kwargs: Any) -> Result:
        """Run ``selfsup ARGS``; returns click's ``Result`` (``exit_code``, ``output``)."""
        from click.testing import CliRunner

        from selfsup.cli.main import build_cli

        kwargs.setdefault("catch_exceptions", False)
        return CliRunner().invoke(build_cli(self.pm), args, **kwargs)


@pytest.fixture
def cli_runner(selfsup_pm: PluginManager) -> CliInvoker:
    """``cli_runner.invoke(["list", "encoder"])`` with the test's ``selfsup_pm``."""
    return CliInvoker(selfsup_pm)


@pytest.fixture
def tiny_batch() -> Callable[..., Any]:
    """The :func:`make_batch` factory: ``tiny_batch("image", batch_size=2)``."""
    return make_batch
