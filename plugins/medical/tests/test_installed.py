"""The plugin is installed: its entry point is found, active, and listing stays light."""

from __future__ import annotations

import os
import subprocess
import sys

from selfsup.testing import load_plugins

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


def test_entry_point_found_and_active() -> None:
    pm = load_plugins(strict=False)
    info = pm.infos.get("medical")
    assert info is not None, f"no 'medical' entry point; plugins: {sorted(pm.infos)}"
    assert info.status == "active", info.error
    assert info.distribution == "selfsup-medical"
    for kind, ids in EXPECTED.items():
        got = {s.id for s in pm.registry.list(kind) if s.plugin == "medical"}
        assert got == ids, f"{kind}: {got} != {ids}"
    assert all(s.modality == "volume" for s in pm.registry.all() if s.plugin == "medical")


def test_every_reference_resolves() -> None:
    """Each lazy "module:attr" reference names an importable callable."""
    pm = load_plugins(strict=False)
    for spec in pm.registry.all():
        if spec.plugin == "medical":
            assert callable(spec.load()), spec.id


def test_listing_does_not_import_heavy_stacks() -> None:
    code = (
        "import sys\n"
        "from selfsup.testing import load_plugins\n"
        "pm = load_plugins(strict=False)\n"
        "ids = [s.id for s in pm.registry.all() if s.plugin == 'medical']\n"
        "assert ids, 'medical registered nothing'\n"
        "heavy = [m for m in ('monai', 'nibabel', 'pydicom') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    env = {**os.environ, "SELFSUP_PLUGINS": "medical"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "HEAVY=\n" in out.stdout, f"listing the plugin imported: {out.stdout}"
