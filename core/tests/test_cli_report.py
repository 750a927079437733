"""selfsup report: run discovery, summaries, plots and the self-contained HTML page."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from selfsup.cli.main import build_cli
from selfsup.report import build_report, discover_runs, summarise
from selfsup.testing import core_manager


def write_run(root, arm: str, seed: int, acc: float, steps: int = 6, emb: bool = True) -> None:
    """A run directory in the layout the runner writes (runs/<exp>/<arm>/seed-<n>/)."""
    run = root / arm / f"seed-{seed}"
    run.mkdir(parents=True)
    lines = [json.dumps({"step": s, "loss": 4.0 - 0.3 * s, "lr": 0.001}) for s in range(1, steps)]
    lines += [json.dumps({"epoch": e, "step": 3 * e, "loss": 3.0 / e}) for e in (1, 2)]
    lines.append('{"step": 99, "loss": ')  # a killed run leaves half a line
    (run / "metrics.jsonl").write_text("\n".join(lines))
    (run / "results.json").write_text(
        json.dumps(
            {"arm": arm, "seed": seed, "metrics": {"knn_acc": acc, "rankme": "nan"}, "status": "ok"}
        )
    )
    if emb:
        rng = np.random.default_rng(seed)
        labels = np.arange(60) % 3
        feats = rng.normal(size=(60, 8)).astype("float32") + labels[:, None]
        np.savez(run / "embeddings.npz", features=feats, labels=labels, split=np.array("test"))


@pytest.fixture
def experiment(tmp_path):
    root = tmp_path / "runs" / "demo"
    write_run(root, "simclr", 0, 0.80)
    write_run(root, "simclr", 1, 0.90)
    write_run(root, "random-init", 0, 0.50, emb=False)
    (root / "results.json").write_text(json.dumps({"name": "demo", "runs": []}))  # experiment-level
    return root


def test_discover_and_summarise(experiment) -> None:
    warnings: list[str] = []
    runs = discover_runs(experiment, warnings)
    assert sorted(r.label for r in runs) == ["random-init/seed-0", "simclr/seed-0", "simclr/seed-1"]
    simclr = next(r for r in runs if r.label == "simclr/seed-0")
    assert len(simclr.metrics) == 7  # the torn last line is skipped, with a warning
    torn = str(experiment / "simclr" / "seed-0" / "metrics.jsonl") + ":8: not JSON"
    assert len(warnings) == 3 and any(w.startswith(torn) for w in warnings), warnings
    names, rows = summarise(runs)
    assert names == ["knn_acc", "rankme"]
    row = next(r for r in rows if r["arm"] == "simclr")
    mean, std, n = row["knn_acc"]
    assert (round(mean, 6), n) == (0.85, 2) and std == pytest.approx(np.std([0.8, 0.9], ddof=1))
    # a single run directory works too
    single = discover_runs(experiment / "simclr" / "seed-1")
    assert [r.label for r in single] == ["simclr/seed-1"]


def test_build_report_writes_plots_and_self_contained_html(experiment) -> None:
    target = build_report(experiment)
    assert target == experiment / "report.html"
    for name in ("curves_steps.png", "curves_epochs.png", "embeddings_pca.png"):
        data = (experiment / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000
    html = target.read_text()
    # curves per step and epoch, the embeddings, and the lr apart (diagnostics per step)
    assert html.count("data:image/png;base64,") == 4
    assert (experiment / "diagnostics_steps.png").is_file()
    assert "0.85 ± 0.071" in html  # mean ± std over the two simclr seeds
    assert "random-init" in html and "<table>" in html
    assert not list(experiment.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_project_2d_separates_clusters() -> None:
    from selfsup.report import project_2d

    rng = np.random.default_rng(0)
    labels = np.arange(200) % 2
    feats = rng.normal(size=(200, 16)) + 6.0 * labels[:, None]
    xy = project_2d(feats, "pca")
    assert xy.shape == (200, 2)
    gap = abs(xy[labels == 0, 0].mean() - xy[labels == 1, 0].mean())
    assert gap > 3 * xy[labels == 0, 0].std()


def test_report_command(experiment) -> None:
    result = CliRunner().invoke(build_cli(core_manager()), ["report", str(experiment)])
    assert result.exit_code == 0, result.output
    assert "report.html" in result.stdout and "simclr" in result.stdout
    assert (experiment / "report.html").is_file()


def test_report_missing_directory(tmp_path) -> None:
    result = CliRunner().invoke(build_cli(core_manager()), ["report", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "file not found" in result.stderr and "no such directory" in result.stderr


def test_report_empty_directory(tmp_path) -> None:
    result = CliRunner().invoke(build_cli(core_manager()), ["report", str(tmp_path)])
    assert result.exit_code == 1 and "no run found" in result.stderr


def test_report_without_matplotlib_says_how_to_install(experiment, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    result = CliRunner().invoke(build_cli(core_manager()), ["report", str(experiment)])
    assert result.exit_code == 1
    assert (
        "missing dependency" in result.stderr and "pip install 'selfsup[report]'" in result.stderr
    )
    assert not (experiment / "report.html").exists()


def _add_artefacts(run, entries: list[dict]) -> None:
    results = json.loads((run / "results.json").read_text())
    results["artefacts"] = entries
    (run / "results.json").write_text(json.dumps(results))


def test_report_links_artefacts_and_shows_images_inline(experiment, tmp_path) -> None:
    run = experiment / "simclr" / "seed-0"
    folder = run / "artefacts" / "linear-probe"
    folder.mkdir(parents=True)
    (folder / "confusion.csv").write_text("true,0,1\n0,5,1\n1,0,6\n")
    build_report(experiment)  # any PNG will do as the artefact: take one of its plots
    (folder / "confusion.png").write_bytes((experiment / "embeddings_pca.png").read_bytes())
    (tmp_path / "secret.png").write_bytes(b"\x89PNG not for the report")
    _add_artefacts(
        run,
        [
            {"evaluator": "core:linear-probe", "path": "artefacts/linear-probe/confusion.csv",
             "kind": "table", "caption": "confusion <test>"},
            {"evaluator": "core:linear-probe", "path": "artefacts/linear-probe/confusion.png",
             "kind": "image", "caption": "confusion matrix"},
            {"evaluator": "lab:roc", "path": "artefacts/roc/gone.json", "kind": "curve"},
            {"evaluator": "lab:evil", "path": "../../../../secret.png", "kind": "image"},
        ],
    )  # fmt: skip
    html = build_report(experiment, out_dir=tmp_path / "out").read_text()
    assert "<h2>Artefacts</h2>" in html and "<h3>simclr/seed-0</h3>" in html
    # links are relative to the report's folder
    assert 'href="../runs/demo/simclr/seed-0/artefacts/linear-probe/confusion.csv"' in html
    assert "confusion &lt;test&gt;" in html  # captions are escaped
    assert html.count("data:image/png;base64,") == 5  # 4 plots + the confusion matrix inline
    assert 'alt="confusion matrix"' in html
    assert 'gone.json <span class="dim">(missing)</span>' in html
    assert "secret" not in html  # a path outside the run directory is ignored


def test_report_plots_embeddings_saved_without_labels(tmp_path) -> None:
    root = tmp_path / "runs" / "seg"
    write_run(root, "mae", 0, 0.5)
    run = root / "mae" / "seed-0"
    feats = np.random.default_rng(0).normal(size=(40, 8)).astype("float32")
    np.savez(run / "embeddings.npz", features=feats, split=np.array("test"))  # no labels
    target = build_report(root)
    assert (root / "embeddings_pca.png").read_bytes().startswith(b"\x89PNG")
    assert target.read_text().count("data:image/png;base64,") == 4


def test_report_warns_and_still_writes_the_rest(experiment) -> None:
    run = experiment / "simclr" / "seed-1"
    (run / "results.json").write_text('{"arm": "simclr", "metrics": {"knn_acc": 0.9')
    (run / "embeddings.npz").write_bytes(b"PK\x03\x04 a truncated zip")
    (experiment / "simclr" / "seed-0" / "embeddings.npz").write_bytes(b"\x80\x04pickle")
    result = CliRunner().invoke(build_cli(core_manager()), ["report", str(experiment)])
    assert result.exit_code == 0, result.output
    err = " ".join(result.stderr.split())
    assert f"{run / 'results.json'}: not valid JSON" in err and "left out of the results" in err
    assert f"{run / 'embeddings.npz'}: not a readable .npz" in err
    assert "allow_pickle" not in err and "unsafely" not in err
    assert err.count("warning:") == 3 + 3  # + the torn last line of each run's metrics
    html = (experiment / "report.html").read_text()
    assert "<h2>Skipped</h2>" in html and "embeddings.npz" in html
    assert "0.8" in result.stdout and "curves" in html  # the readable rest is reported
    assert not (experiment / "embeddings_pca.png").exists()  # no readable embeddings left


def test_report_shows_recorded_facts_and_transforms(experiment) -> None:
    path = experiment / "simclr" / "seed-0" / "results.json"
    record = json.loads(path.read_text())
    record["facts"] = {"backdoor": {"threat_model": {"knowledge": "data-only", "eps": "<8/255>"}}}
    record["transforms"] = [{"id": "core:label-noise", "params": {"rate": 0.2}, "summary": {}}]
    path.write_text(json.dumps(record))
    html = build_report(experiment).read_text()
    assert "<h2>Recorded facts</h2>" in html and "<summary>simclr/seed-0</summary>" in html
    assert "<h4>backdoor</h4>" in html and "data-only" in html
    assert "&lt;8/255&gt;" in html  # escaped
    assert "core:label-noise" in html


def test_terminal_table_shows_chosen_settings_as_values(experiment) -> None:
    """``knn_k`` / ``linear_weight_decay`` are settings chosen per seed, not mean ± std."""
    for seed, (k, wd) in enumerate([(10, 0.001), (20, 0.001)]):
        path = experiment / "simclr" / f"seed-{seed}" / "results.json"
        record = json.loads(path.read_text())
        record["metrics"].update({"knn_k": k, "linear_weight_decay": wd})
        path.write_text(json.dumps(record))
    result = CliRunner().invoke(
        build_cli(core_manager()), ["report", str(experiment)], env={"COLUMNS": "120"}
    )
    assert result.exit_code == 0, result.output
    k_line = next(line for line in result.stdout.splitlines() if "knn_k" in line)
    wd_line = next(line for line in result.stdout.splitlines() if "linear_weight_decay" in line)
    assert "10 (x1), 20 (x1)" in k_line and "±" not in k_line
    assert "0.001" in wd_line and "±" not in wd_line
    acc_line = next(line for line in result.stdout.splitlines() if "knn_acc" in line)
    assert "±" in acc_line  # quality metrics keep mean ± std
