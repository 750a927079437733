"""The plugin is installed: its entry point is found and active, and listing stays light."""

from __future__ import annotations

import os
import subprocess
import sys

from selfsup.testing import load_plugins

EXPECTED = {
    "encoder": {"graph:gcn", "graph:gat", "graph:gin", "graph:features"},
    "objective": {
        "graph:graphmae",
        "graph:grace",
        "graph:link-recon",
        "graph:multitask",
        "graph:barlow-twins",
        "graph:vicreg",
    },
    "views": {"graph:drop-edge-mask-feature"},
    "dataset": {"graph:planetoid", "graph:karate", "graph:pyg"},
    "routine": {"graph:full-batch", "graph:neighbor"},
    "evaluator": {"graph:link-prediction"},
}


def test_entry_point_found_and_active() -> None:
    pm = load_plugins(strict=False)
    info = pm.infos.get("graph")
    assert info is not None, f"no 'graph' entry point; plugins: {sorted(pm.infos)}"
    assert info.status == "active", info.error
    assert info.distribution == "selfsup-graph"
    for kind, ids in EXPECTED.items():
        got = {s.id for s in pm.registry.list(kind) if s.plugin == "graph"}
        assert got == ids, f"{kind}: {got} != {ids}"
    assert all(s.modality == "graph" for s in pm.registry.all() if s.plugin == "graph")


def test_listing_does_not_import_torch_geometric() -> None:
    code = (
        "import sys\n"
        "from selfsup.testing import load_plugins\n"
        "pm = load_plugins(strict=True)\n"
        "ids = [s.id for s in pm.registry.all() if s.plugin == 'graph']\n"
        "assert len(ids) >= 14, ids\n"
        "heavy = [m for m in sys.modules if m.startswith(('torch_geometric', 'selfsup_graph.'))"
        " and m != 'selfsup_graph.plugin']\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    env = {**os.environ, "SELFSUP_PLUGINS": "graph"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "HEAVY=\n" in out.stdout, f"listing the plugin imported: {out.stdout}"


def test_cli_lists_graph_plugin(cli_runner) -> None:
    result = cli_runner.invoke(["plugins", "--json"])
    assert result.exit_code == 0, result.output
    assert '"graph"' in result.output and "selfsup-graph" in result.output
