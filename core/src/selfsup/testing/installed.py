"""Checks that an installed plugin is found, active, complete and cheap to list.

Every plugin's "installed" tests ask the same questions: is the entry point found
and active, does it register exactly the components it should, does each lazy
``"module:attr"`` reference import, and does ``selfsup list`` stay light (no torch,
no heavy stack imported just to list)? These two functions answer them, with
messages that name the plugin, the kind and the missing or unexpected ids.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selfsup.plugins import PluginInfo, PluginManager

__all__ = ["check_installed_plugin", "check_listing_is_light"]


def check_installed_plugin(
    name: str,
    *,
    distribution: str | None = None,
    expected: Mapping[str, Iterable[str]] | None = None,
    modality: str | None = None,
    resolve: bool = True,
    pm: PluginManager | None = None,
) -> PluginInfo:
    """Assert that plugin ``name`` is installed, active and registers what it should.

    Args:
        name: The plugin's entry-point name (``[project.entry-points.selfsup]``).
        distribution: The distribution it must come from (e.g. ``"selfsup-audio"``).
        expected: ``{kind: ids}``: the exact set of ids the plugin registers per kind
            (kinds not named are not checked).
        modality: When given, every component of the plugin must declare it.
        resolve: Import every lazy ``"module:attr"`` reference of the plugin (catches
            a typo in ``plugin.py`` that listing alone never would).
        pm: The manager to inspect; default a fresh one with every entry point
            loaded (:func:`selfsup.testing.load_plugins`).

    Returns:
        The plugin's :class:`~selfsup.plugins.PluginInfo`.

    Raises:
        AssertionError: Naming the plugin and what is wrong.

    Example:
        A plugin's ``tests/test_installed.py``::

            from selfsup.testing import check_installed_plugin

            def test_installed():
                check_installed_plugin(
                    "ecg",
                    distribution="selfsup-ecg",
                    expected={"encoder": {"ecg:cnn"}, "dataset": {"ecg:ptbxl"}},
                    modality="ecg",
                )
    """
    if pm is None:
        from selfsup.testing import load_plugins

        pm = load_plugins(strict=False)
    info = pm.infos.get(name)
    assert info is not None, f"no {name!r} entry point is installed; plugins: {sorted(pm.infos)}"
    assert info.status == "active", f"plugin {name!r} is {info.status}: {info.error}"
    if distribution is not None:
        assert info.distribution == distribution, (
            f"plugin {name!r} comes from {info.distribution!r}, expected {distribution!r}"
        )
    specs = [s for s in pm.registry.all() if s.plugin == name]
    assert specs, f"plugin {name!r} is active but registers no component"
    for kind, ids in (expected or {}).items():
        got = {s.id for s in specs if s.kind == kind}
        want = set(ids)
        assert got == want, (
            f"plugin {name!r}, kind {kind!r}: missing {sorted(want - got)}, "
            f"unexpected {sorted(got - want)}"
        )
    if modality is not None:
        wrong = sorted(f"{s.id} ({s.modality})" for s in specs if s.modality != modality)
        assert not wrong, f"plugin {name!r}: components not of modality {modality!r}: {wrong}"
    if resolve:
        broken = []
        for spec in specs:
            try:
                spec.load()
            except (ImportError, AttributeError) as exc:
                broken.append(f"{spec.id}: {exc}")
        assert not broken, f"plugin {name!r}: references that do not import: {broken}"
    return info


def check_listing_is_light(
    name: str, heavy: Iterable[str] = (), *, lazy: bool = True, timeout: float = 120.0
) -> None:
    """Assert that loading plugin ``name`` to list it imports none of ``heavy``.

    Runs a fresh interpreter with only this plugin allowed (``SELFSUP_PLUGINS``),
    loads the entry points as ``selfsup list`` does, and checks ``sys.modules``:
    listing must not pay for torch, MONAI, timm and the like.

    Args:
        name: The plugin's entry-point name.
        heavy: Modules listing must not import, with their submodules (e.g.
            ``("torch", "monai")``).
        lazy: Also assert that no module of the plugin's own package is imported
            besides its entry-point module: components are registered as lazy
            ``"module:attr"`` references, imported when first built.
        timeout: Seconds the child interpreter may take.

    Raises:
        AssertionError: Naming the plugin and the modules it imported.

    Example:
        ::

            from selfsup.testing import check_listing_is_light

            def test_listing_is_light():
                check_listing_is_light("ecg", heavy=("torch", "scipy"))
    """
    code = (
        "import json, sys\n"
        "from selfsup.testing import load_plugins\n"
        "pm = load_plugins(strict=False)\n"
        f"info = pm.infos[{name!r}]\n"
        "assert info.status == 'active', info.error\n"
        "print(json.dumps({'module': info.module, 'modules': sorted(sys.modules)}))\n"
    )
    env = {**os.environ, "SELFSUP_PLUGINS": name}  # other plugins may import more
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env
    )
    assert out.returncode == 0, f"listing plugin {name!r} failed:\n{out.stderr}"
    listed = json.loads(out.stdout.strip().splitlines()[-1])
    heavy = set(heavy)
    hit = [m for m in listed["modules"] if any(m == h or m.startswith(h + ".") for h in heavy)]
    if lazy:  # the plugin's own modules, but the entry point and its parent packages
        entry = listed["module"].split(":")[0]
        keep = {entry.rsplit(".", i)[0] for i in range(entry.count(".") + 1)}
        mine = entry.split(".")[0] + "."
        hit += [m for m in listed["modules"] if m.startswith(mine) and m not in keep]
    imported = sorted(set(hit))
    assert not imported, f"listing plugin {name!r} imported heavy modules: {imported}"
