"""The plugin is installed: its entry point is found, active, complete, and listing stays light."""

from __future__ import annotations

from selfsup.testing import check_installed_plugin, check_listing_is_light

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


def test_entry_point_found_active_and_complete() -> None:
    check_installed_plugin(
        "graph", distribution="selfsup-graph", expected=EXPECTED, modality="graph"
    )


def test_listing_does_not_import_heavy_stacks() -> None:
    check_listing_is_light("graph", heavy=("torch_geometric", "torch"))


def test_cli_lists_graph_plugin(cli_runner) -> None:
    result = cli_runner.invoke(["plugins", "--json"])
    assert result.exit_code == 0, result.output
    assert '"graph"' in result.output and "selfsup-graph" in result.output
