"""The plugin is installed: its entry point is active, the tracker kind open, listing light."""

from __future__ import annotations

import os
import subprocess
import sys

from selfsup.testing import load_plugins


def test_entry_point_found_and_active() -> None:
    pm = load_plugins(strict=False)
    info = pm.infos.get("tracking")
    assert info is not None, f"no 'tracking' entry point; plugins: {sorted(pm.infos)}"
    assert info.status == "active", info.error
    assert info.distribution == "selfsup-tracking"
    assert "tracker" in pm.registry.kinds()
    ids = {s.id for s in pm.registry.list("tracker")}
    assert ids == {"tracking:tensorboard", "tracking:mlflow"}


def test_listing_does_not_import_tensorboard_or_mlflow() -> None:
    code = (
        "import sys\n"
        "from selfsup.testing import load_plugins\n"
        "pm = load_plugins(strict=False)\n"
        "assert pm.registry.list('tracker')\n"
        "heavy = [m for m in ('mlflow', 'tensorboard', 'torch.utils.tensorboard') "
        "if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    env = {**os.environ, "SELFSUP_PLUGINS": "tracking"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "HEAVY=\n" in out.stdout, out.stdout
