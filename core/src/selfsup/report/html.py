"""The self-contained ``report.html``: results table, per-run table, embedded plots.

Evaluator artefacts (``results.json`` ``"artefacts"``: confusion matrices, curves,
masks) are linked per run, relative to the report, and images among them are shown
inline (embedded, so the page stays self-contained).
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from pathlib import Path
from typing import Any

from selfsup.report.runs import RunRecord, is_setting, to_float

__all__ = ["CAPTIONS", "MAX_TABLE_COLUMNS", "TITLES", "format_cell", "render_html"]

#: Value columns per HTML table; wider tables are split into several (they fit the page).
MAX_TABLE_COLUMNS = 4

#: Figure file name prefix -> section title.
TITLES = {
    "curves_steps": "Training curves per step",
    "curves_epochs": "Training curves per epoch",
    "diagnostics_steps": "Training diagnostics per step",
    "diagnostics_epochs": "Training diagnostics per epoch",
    "embeddings_pca": "Embeddings (PCA)",
    "embeddings_tsne": "Embeddings (t-SNE)",
}

#: Figure file name prefix -> caption (what the plot shows, on which split).
CAPTIONS = {
    "curves_steps": "Pretraining loss and the objective's terms per logged step, on the train "
    "split: the mean over seeds per arm, the band ± 1 std. A loss whose scale differs between "
    "arms (different objectives) gets a log axis or a panel per arm.",
    "curves_epochs": "The same per epoch (epoch means), on the train split.",
    "diagnostics_steps": "Training diagnostics per logged step (learning rate, gradient norm): "
    "how training ran, not what it learned.",
    "diagnostics_epochs": "Training diagnostics per epoch: time per epoch and throughput "
    "(items/s).",
    "embeddings_pca": "Pooled embeddings of the evaluation split named in the title (test when "
    "the dataset has one; at most 2000 items) of each arm's first seed, PCA to 2-D, coloured by "
    "label where labels are classes.",
    "embeddings_tsne": "Pooled embeddings of the evaluation split named in the title, t-SNE to "
    "2-D, coloured by label where labels are classes.",
}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th { overflow-wrap: anywhere; max-width: 14em; }
caption { caption-side: top; text-align: left; color: #555; font-size: 0.9em; padding: 0.2em 0; }
figcaption { color: #555; font-size: 0.9em; max-width: 900px; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.dim { color: #777; font-size: 0.9em; }
figure { margin: 0.5em 0 1em 0; }
figure img { max-width: 100%; }
ul figure img { max-width: 480px; }
"""

#: Images larger than this are linked, not embedded.
MAX_INLINE_BYTES = 2_000_000


def format_cell(value: Any) -> str:
    """``mean ± std`` for a ``(mean, std, n)`` triple, a short number, or the text."""
    if isinstance(value, tuple):
        mean, std, n = value
        if not math.isfinite(mean):
            return str(mean)
        return f"{mean:.4g} ± {std:.2g}" if n > 1 else f"{mean:.4g}"
    number = to_float(value)
    if number is not None and not isinstance(value, str):
        return f"{number:.4g}"
    return "" if value is None else str(value)


def _table(header: list[str], rows: list[list[Any]], caption: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_cell(c))}</td>" for c in row) + "</tr>"
        for row in rows
    )
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _tables(
    lead: list[str], rows: list[list[Any]], names: list[str], values: Any, caption: str
) -> list[str]:
    """Tables of ``lead`` columns then at most :data:`MAX_TABLE_COLUMNS` of ``names`` each.

    ``values(row_index, name)`` gives a cell; ``caption`` is written once above them and
    each table's own caption says which part of how many it is.
    """
    chunks = [names[i : i + MAX_TABLE_COLUMNS] for i in range(0, len(names), MAX_TABLE_COLUMNS)]
    out = [f'<p class="dim">{html.escape(caption)}</p>']
    for number, chunk in enumerate(chunks or [[]], 1):
        part = f"part {number} of {len(chunks)}" if len(chunks) > 1 else ""
        body = [[*row, *(values(i, n) for n in chunk)] for i, row in enumerate(rows)]
        out.append(_table([*lead, *chunk], body, part))
    return out


def setting_cell(values: list[Any]) -> str:
    """A chosen setting over seeds: the value, or each distinct value with its count."""
    shown = [format_cell(v) for v in values if to_float(v) is not None]
    if not shown:
        return ""
    counts = {v: shown.count(v) for v in dict.fromkeys(shown)}
    if len(counts) == 1:
        return shown[0]
    return ", ".join(f"{v} (x{c})" for v, c in counts.items())


def _artefact_file(run: RunRecord, entry: Any) -> Path | None:
    """The file of one ``results.json`` artefact entry, if it lies inside the run directory."""
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        return None
    root = run.path.resolve()
    path = (root / entry["path"]).resolve()
    return path if path.is_relative_to(root) else None


def _artefacts(runs: list[RunRecord], out_dir: Path | None) -> list[str]:
    """The "Artefacts" section: per run, a link to each artefact, images shown inline."""
    parts: list[str] = []
    base = (out_dir or Path(".")).resolve()
    for run in runs:
        entries = run.results.get("artefacts")
        if not isinstance(entries, list) or not entries:
            continue
        items: list[str] = []
        for entry in entries:
            path = _artefact_file(run, entry)
            if path is None:
                continue
            kind, caption = str(entry.get("kind", "file")), str(entry.get("caption", ""))
            who = html.escape(str(entry.get("evaluator", "")))
            href = html.escape(Path(os.path.relpath(path, base)).as_posix(), quote=True)
            text = f'<a href="{href}">{html.escape(path.name)}</a>'
            if not path.is_file():
                text = f'{html.escape(path.name)} <span class="dim">(missing)</span>'
            line = f'{text} <span class="dim">{who}, {html.escape(kind)}</span>'
            if caption:
                line += f": {html.escape(caption)}"
            inline = kind == "image" and path.is_file() and path.suffix.lower() == ".png"
            if inline and path.stat().st_size <= MAX_INLINE_BYTES:
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                alt = html.escape(caption or path.name, quote=True)
                line += f'<figure><img alt="{alt}" src="data:image/png;base64,{data}"></figure>'
            items.append(f"<li>{line}</li>")
        if items:
            parts.append(f"<h3>{html.escape(run.label)}</h3><ul>{''.join(items)}</ul>")
    return ["<h2>Artefacts</h2>", *parts] if parts else []


def _facts(runs: list[RunRecord]) -> list[str]:
    """The "Recorded facts" section: per run, evaluators' facts and data transforms.

    Facts are what evaluators recorded with ``ctx.record`` (threat models, protocols).
    """
    parts: list[str] = []
    for run in runs:
        blocks: list[str] = []
        transforms = run.results.get("transforms")
        if isinstance(transforms, list) and transforms:
            shown = json.dumps(transforms, indent=2, sort_keys=True, default=str)
            blocks.append(f"<h4>data transforms</h4><pre>{html.escape(shown)}</pre>")
        facts = run.results.get("facts")
        if isinstance(facts, dict):
            for evaluator, value in facts.items():
                shown = json.dumps(value, indent=2, sort_keys=True, default=str)
                blocks.append(
                    f"<h4>{html.escape(str(evaluator))}</h4><pre>{html.escape(shown)}</pre>"
                )
        if blocks:
            parts.append(
                f"<details><summary>{html.escape(run.label)}</summary>{''.join(blocks)}</details>"
            )
    return ["<h2>Recorded facts</h2>", *parts] if parts else []


def render_html(
    title: str,
    runs: list[RunRecord],
    names: list[str],
    rows: list[dict[str, Any]],
    images: dict[str, str],
    out_dir: Path | None = None,
    skipped: list[str] | None = None,
) -> str:
    """The report page.

    Args:
        title: The experiment's name.
        runs: The runs found.
        names: Metric names (columns of the results table).
        rows: Per-arm summaries from :func:`selfsup.report.runs.summarise`.
        images: File name -> base64 PNG, embedded as data URIs.
        out_dir: Where the page is written; artefact links are relative to it
            (the current directory when ``None``).
        skipped: Warnings about the lines and files that could not be read, listed
            in a "Skipped" section at the top.
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>selfsup report: {html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>selfsup report: {html.escape(title)}</h1>",
        f'<p class="dim">{len(runs)} run(s); mean ± std over seeds per arm.</p>',
    ]
    if skipped:
        items = "".join(f"<li><code>{html.escape(w)}</code></li>" for w in skipped)
        parts.append(f"<h2>Skipped</h2><p>{len(skipped)} line(s) or file(s) could not be read:</p>")
        parts.append(f"<ul>{items}</ul>")
    parts.append("<h2>Results</h2>")
    metrics = [n for n in names if not is_setting(n)]
    settings = [n for n in names if is_setting(n)]
    if metrics:
        caption = (
            "Evaluator results per arm, mean ± std over seeds; each evaluator selects its "
            "hyper-parameters on the validation split and scores on the test split."
        )
        lead = [[r["arm"], r["seeds"]] for r in rows]
        parts += _tables(["arm", "seeds"], lead, metrics, lambda i, n: rows[i].get(n, ""), caption)
    elif skipped:
        parts.append("<p>No readable results.json with metrics (see Skipped above).</p>")
    else:
        parts.append("<p>No results.json with metrics yet (unfinished runs?).</p>")
    if settings:
        by_arm: dict[str, list[RunRecord]] = {}
        for run in runs:
            by_arm.setdefault(run.arm, []).append(run)
        arms = list(by_arm)

        def chosen(i: int, name: str) -> str:
            return setting_cell(
                [(r.results.get("metrics") or {}).get(name) for r in by_arm[arms[i]]]
            )

        parts.append("<h3>Settings chosen on validation data</h3>")
        caption = "Hyper-parameters the evaluators selected per arm (over seeds: each value once)."
        parts += _tables(["arm"], [[a] for a in arms], settings, chosen, caption)
    for name, data in images.items():
        stem = name.removesuffix(".png")
        title = TITLES.get(stem, stem.replace("_", " "))
        caption = CAPTIONS.get(stem, "")
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(
            f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    parts.append("<h2>Runs</h2>")
    lead = [[r.label, r.results.get("train_time_s", "")] for r in runs]
    parts += _tables(
        ["run", "train_time_s"],
        lead,
        names,
        lambda i, n: (runs[i].results.get("metrics") or {}).get(n, ""),
        "Every run's results (test split scores, settings chosen on validation data).",
    )
    parts.extend(_artefacts(runs, out_dir))
    parts.extend(_facts(runs))
    paths = "".join(f"<li><code>{html.escape(str(r.path))}</code></li>" for r in runs)
    parts.append(f'<details><summary>run directories</summary><ul class="dim">{paths}</ul>')
    parts.append("</details></body></html>")
    return "\n".join(parts)
