"""examples/cross_domain.yaml: one experiment, three objective families, images and graphs.

``selfsup check`` resolves it (one random-init baseline per modality), and, as a heavy
test, the whole experiment runs through the CLI on a shortened graph budget: every arm
finishes, the table has one row per arm, and every pretrained arm beats the random-init
arm of its own data and encoder on the linear probe.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from selfsup.config import expand_arms, load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "examples" / "cross_domain.yaml"
CORA = ROOT / ".." / "shared" / "data" / "planetoid" / "Cora" / "raw" / "ind.cora.x"
IN_CI = os.environ.get("CI", "").lower() == "true"

# arm -> (modality's random-init arm, asserted linear-probe margin over it). Measured
# when written (seed 0; digits at the config's 15 epochs, Cora at 40 full-batch epochs):
# digits random init 0.960 -> simclr 0.978, barlow-twins 0.976, vicreg 0.987 (over seeds
# 0-2 every digits arm gained >= 0.011); Cora random init 0.717 -> grace 0.774,
# graph-barlow-twins 0.783, graph-vicreg 0.817. Margins sit at about half the smallest
# measured gain.
EXPECTED = {
    "simclr": ("random-init", 0.005),
    "barlow-twins": ("random-init", 0.005),
    "vicreg": ("random-init", 0.005),
    "grace": ("random-init[grace]", 0.03),
    "graph-barlow-twins": ("random-init[grace]", 0.03),
    "graph-vicreg": ("random-init[grace]", 0.03),
}
BASELINES = {"random-init": "vision:digits", "random-init[grace]": "graph:planetoid"}
GRAPH_ARMS = (3, 4, 5)  # indices of the Cora arms in the config's arms list
GRAPH_EPOCHS = 40


@pytest.fixture
def both_plugins(need_plugin) -> None:
    """The experiment needs the vision and graph plugins."""
    need_plugin("selfsup_vision")
    need_plugin("selfsup_graph")


def test_cross_domain_passes_check(both_plugins, cli_runner) -> None:
    result = cli_runner.invoke(["check", str(CONFIG)])
    assert result.exit_code == 0, result.output
    assert "8 arm(s) x 3 seed(s)" in result.output, result.output


def test_every_family_has_an_arm_per_modality_and_a_baseline_each() -> None:
    arms = {arm.name: arm for arm in expand_arms(load_config(CONFIG))}
    assert set(arms) == set(EXPECTED) | set(BASELINES)
    for name, (baseline, _) in EXPECTED.items():
        arm, base = arms[name], arms[baseline]
        assert arm.pretrains, name
        assert (arm.data, arm.encoder) == (base.data, base.encoder), (name, baseline)
    for baseline, dataset in BASELINES.items():
        assert arms[baseline].objective is None and arms[baseline].data.id == dataset
    # the --set paths the heavy test uses reach exactly the graph arms
    overrides = [f"arms.{i}.train.epochs=7" for i in GRAPH_ARMS]
    shortened = {a.name: a.train.epochs for a in expand_arms(load_config(CONFIG, overrides))}
    assert {n for n, e in shortened.items() if e == 7} == {
        "grace", "graph-barlow-twins", "graph-vicreg", "random-init[grace]"
    }  # fmt: skip


@pytest.mark.heavy
def test_cross_domain_runs_and_every_arm_beats_its_own_baseline(
    both_plugins, run_selfsup, workdir
) -> None:
    if not CORA.is_file():
        reason = f"the shared Cora files are missing ({CORA.parent})"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    graph_epochs = [f"arms.{i}.train.epochs={GRAPH_EPOCHS}" for i in GRAPH_ARMS]
    sets = ["seeds=[0]", *graph_epochs, f"output_dir={workdir}"]
    args = [item for s in sets for item in ("--set", s)]
    run = run_selfsup("run", str(CONFIG), *args, "--no-progress", timeout=1500)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]

    exp = workdir / "cross-domain"
    runs = sorted(exp.glob("*/seed-0/results.json"))
    assert len(runs) == len(EXPECTED) + len(BASELINES), runs
    for path in runs:
        assert json.loads(path.read_text())["status"] == "ok", path

    summary = {row["arm"]: row for row in json.loads((exp / "results.json").read_text())["arms"]}
    assert set(summary) == set(EXPECTED) | set(BASELINES)
    table = (exp / "results.md").read_text()
    for name in summary:
        assert f"| {name} |" in table, (name, table)
    acc = {name: row["linear_acc"]["mean"] for name, row in summary.items()}
    for name, (baseline, margin) in EXPECTED.items():
        assert summary[name]["baseline"] == baseline, summary[name]
        assert acc[name] > acc[baseline] + margin, (name, acc[name], baseline, acc[baseline])
