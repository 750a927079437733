"""Reports of finished runs: curves, a 2-D embedding plot, the results table, one HTML page.

:func:`build_report` reads an experiment directory (``runs/<name>``, holding
``<arm>/seed-<n>/`` run directories) or a single run directory:

- ``metrics.jsonl``: loss and objective curves per arm (mean over seeds, a ± 1 std
  band; a log axis or a panel per arm where the losses' scales differ), and the
  training diagnostics (learning rate, time, throughput) in figures of their own;
- ``embeddings.npz``: a 2-D projection (PCA by default, t-SNE if scikit-learn is
  installed and asked for) coloured by label, one panel per arm;
- ``results.json``: the results table, mean ± std over seeds per arm (arms in the
  config's order, settings the evaluators chose shown apart, tables split to fit the
  page), and the artefacts the evaluators wrote (linked per run; images shown inline).

It writes PNGs and a self-contained ``report.html`` (images embedded), atomically.
Plotting needs matplotlib, the ``selfsup[report]`` extra.

A damaged file never stops the report: each line of ``metrics.jsonl`` and each
``results.json`` or ``embeddings.npz`` that cannot be read is skipped with a warning
naming it (returned to the caller and listed on the page), and the rest is written.
"""

from __future__ import annotations

import base64
from pathlib import Path

from selfsup.report.html import render_html
from selfsup.report.plots import plot_curves, plot_embeddings, project_2d, require_matplotlib
from selfsup.report.runs import RunRecord, discover_runs, summarise, write_atomic

__all__ = [
    "RunRecord",
    "build_report",
    "discover_runs",
    "plot_curves",
    "plot_embeddings",
    "project_2d",
    "summarise",
]


def build_report(
    root: str | Path,
    out_dir: str | Path | None = None,
    projection: str = "pca",
    warnings: list[str] | None = None,
) -> Path:
    """Write the plots and ``report.html`` for an experiment or run directory.

    Args:
        root: ``runs/<experiment>`` or one run directory.
        out_dir: Where to write (``root`` by default).
        projection: ``"pca"`` or ``"tsne"``.
        warnings: If given, one message per skipped line or file is appended to it
            (the page lists them too, in its "Skipped" section).

    Returns:
        The path of ``report.html``.

    Raises:
        FileNotFoundError: No run under ``root``.
        ImportError: matplotlib (or scikit-learn for t-SNE) is missing.
    """
    if projection not in ("pca", "tsne"):
        raise ValueError(f"projection must be 'pca' or 'tsne', got {projection!r}")
    root = Path(root)
    out = Path(out_dir) if out_dir is not None else root
    skipped: list[str] = []
    runs = discover_runs(root, skipped)
    require_matplotlib()  # fail early and clearly when matplotlib is missing
    arms = list(dict.fromkeys(run.arm for run in runs))  # the config's order
    images = [
        p
        for p in (
            plot_curves(runs, out, "step", arms=arms),
            plot_curves(runs, out, "epoch", arms=arms),
            plot_embeddings(runs, out, projection, skipped),
            plot_curves(runs, out, "step", diagnostics=True, arms=arms),
            plot_curves(runs, out, "epoch", diagnostics=True, arms=arms),
        )
        if p is not None
    ]
    names, rows = summarise(runs)
    embedded = {p.name: base64.b64encode(p.read_bytes()).decode("ascii") for p in images}
    html = render_html(root.name or str(root), runs, names, rows, embedded, out, skipped)
    if warnings is not None:
        warnings.extend(skipped)
    target = out / "report.html"
    write_atomic(target, html.encode("utf-8"))
    return target
