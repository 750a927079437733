"""The plugin is installed: its entry point is found, active, and listing stays light."""

from __future__ import annotations

import os
import subprocess
import sys

from selfsup.testing import load_plugins

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


def test_entry_point_found_and_active() -> None:
    pm = load_plugins(strict=False)
    info = pm.infos.get("vision")
    assert info is not None, f"no 'vision' entry point; plugins: {sorted(pm.infos)}"
    assert info.status == "active", info.error
    assert info.distribution == "selfsup-vision"
    for kind, ids in EXPECTED.items():
        got = {s.id for s in pm.registry.list(kind) if s.plugin == "vision"}
        assert got == ids, f"{kind}: {got} != {ids}"
    assert all(s.modality == "image" for s in pm.registry.all() if s.plugin == "vision")


def test_listing_does_not_import_heavy_stacks() -> None:
    code = (
        "import sys\n"
        "from selfsup.testing import load_plugins\n"
        "pm = load_plugins(strict=False)\n"
        "ids = [s.id for s in pm.registry.all() if s.plugin == 'vision']\n"
        "assert ids, 'vision registered nothing'\n"
        "heavy = [m for m in ('timm', 'torchvision', 'PIL', 'sklearn') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    env = {**os.environ, "SELFSUP_PLUGINS": "vision"}  # other plugins may import more
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "HEAVY=\n" in out.stdout, f"listing the plugin imported: {out.stdout}"
