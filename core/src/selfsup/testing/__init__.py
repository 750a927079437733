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
    per modality.

Contract checks (plain functions, usable from parametrized tests) build a component
and assert what the core relies on: :func:`check_encoder`, :func:`check_objective`,
:func:`check_views`, :func:`check_dataset`, :func:`check_evaluator`.
:func:`contract_cases` lists a plugin's specs for ``pytest.mark.parametrize``.
:func:`torchrun_selfsup` runs ``selfsup run`` under ``torchrun`` on local CPU processes.

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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from selfsup.testing.batches import SHAPES, make_batch
from selfsup.testing.contracts import (
    check_dataset,
    check_encoder,
    check_evaluator,
    check_objective,
    check_views,
    contract_cases,
)
from selfsup.testing.distributed import torchrun_selfsup

if TYPE_CHECKING:
    from click.testing import Result

    from selfsup.plugins import PluginInfo, PluginManager

__all__ = [
    "SHAPES",
    "CliInvoker",
    "check_dataset",
    "check_encoder",
    "check_evaluator",
    "check_objective",
    "check_views",
    "cli_runner",
    "contract_cases",
    "core_manager",
    "make_batch",
    "register_plugin",
    "selfsup_pm",
    "tiny_batch",
    "torchrun_selfsup",
]

# --------------------------------------------------------------------------- managers


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
