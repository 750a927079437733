"""The plugin is installed: its entry point is found, active, and listing stays light."""

from __future__ import annotations

import os
import subprocess
import sys

from selfsup.testing import load_plugins

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


def test_entry_point_found_and_active() -> None:
    pm = load_plugins(strict=False)
    info = pm.infos.get("audio")
    assert info is not None, f"no 'audio' entry point; plugins: {sorted(pm.infos)}"
    assert info.status == "active", info.error
    assert info.distribution == "selfsup-audio"
    for kind, ids in EXPECTED.items():
        got = {s.id for s in pm.registry.list(kind) if s.plugin == "audio"}
        assert got == ids, f"{kind}: {got} != {ids}"
    assert all(s.modality == "audio" for s in pm.registry.all() if s.plugin == "audio")


def test_every_reference_resolves() -> None:
    """Each lazy ``module:attr`` reference imports (catches typos in plugin.py)."""
    pm = load_plugins(strict=False)
    missing = []
    for spec in pm.registry.all():
        if spec.plugin != "audio":
            continue
        try:
            spec.load()
        except (ImportError, AttributeError) as exc:
            missing.append(f"{spec.id}: {exc}")
    assert not missing, missing


def test_listing_does_not_import_heavy_stacks() -> None:
    code = (
        "import sys\n"
        "from selfsup.testing import load_plugins\n"
        "pm = load_plugins(strict=False)\n"
        "ids = [s.id for s in pm.registry.all() if s.plugin == 'audio']\n"
        "assert ids, 'audio registered nothing'\n"
        "heavy = [m for m in ('torch', 'torchaudio', 'soundfile', 'sklearn') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    env = {**os.environ, "SELFSUP_PLUGINS": "audio"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "HEAVY=\n" in out.stdout, f"listing the plugin imported: {out.stdout}"
