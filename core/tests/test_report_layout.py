"""The report reads well: every plot present with a caption, tables that fit, settings apart."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from selfsup.report import build_report
from selfsup.report.html import MAX_TABLE_COLUMNS, TITLES
from selfsup.report.plots import _curves, _panels
from selfsup.report.runs import discover_runs

ARMS = ["vicreg", "barlow-twins", "random-init"]  # the config's order, not alphabetical
METRICS = [f"metric_{i}" for i in range(9)]
#: The page's content width (CSS max-width) in pixels, and a generous width per character.
PAGE_PX, CHAR_PX, CELL_PAD_PX, HEADER_MAX_PX = 1100, 8.0, 24, 14 * 16


def _write_run(root: Path, arm: str, seed: int) -> None:
    run = root / arm / f"seed-{seed}"
    run.mkdir(parents=True)
    scale = {"vicreg": 662.0, "barlow-twins": 4.75}.get(arm)
    lines = []
    if scale is not None:
        for step in range(1, 13):
            loss = scale * (1.0 - 0.03 * step) * (1 + 0.02 * seed)
            lines.append(json.dumps({"step": step, "loss": loss, "lr": 0.01 * step / 12}))
        for epoch in (1, 2, 3):
            lines.append(
                json.dumps(
                    {"epoch": epoch, "step": 4 * epoch, "loss": scale / epoch,
                     "epoch_time_s": 1.5, "items_per_s": 900.0 + seed}
                )
            )  # fmt: skip
    (run / "metrics.jsonl").write_text("\n".join(lines))
    rng = np.random.default_rng(seed)
    metrics = {name: float(rng.uniform(0.5, 0.9)) for name in METRICS}
    metrics.update(knn_k=float(20 + 10 * (seed % 2)), linear_weight_decay=1e-4)
    (run / "results.json").write_text(
        json.dumps({"arm": arm, "seed": seed, "metrics": metrics, "status": "ok",
                    "train_time_s": 12.0 + seed})
    )  # fmt: skip
    labels = np.arange(60) % 3
    feats = rng.normal(size=(60, 8)).astype("float32") + labels[:, None]
    np.savez(run / "embeddings.npz", features=feats, labels=labels, split=np.array("test"))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("layout") / "runs" / "wide"
    for arm in ARMS:
        for seed in (0, 1, 2):
            _write_run(root, arm, seed)
    (root / "results.json").write_text(
        json.dumps({"name": "wide", "arms": [{"arm": a} for a in ARMS]})
    )
    return root, build_report(root).read_text()


class _Tables(HTMLParser):
    """Each table's rows of cell texts, and each figure's image and caption."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.figures: list[dict[str, str]] = []
        self._cell: list[str] | None = None
        self._caption: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "figure":
            self.figures.append({"img": "", "caption": ""})
        elif tag == "img" and self.figures:
            self.figures[-1]["img"] = dict(attrs).get("alt", "")
        elif tag == "figcaption":
            self._caption = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.tables:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "figcaption" and self._caption is not None:
            self.figures[-1]["caption"] = "".join(self._caption)
            self._caption = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._caption is not None:
            self._caption.append(data)


def _parsed(html: str) -> _Tables:
    parser = _Tables()
    parser.feed(html)
    return parser


def test_every_plot_is_present_with_a_caption_naming_the_split(report) -> None:
    root, html = report
    figures = {f["img"]: f["caption"] for f in _parsed(html).figures if f["img"]}
    expected = {
        "curves_steps": "train split",
        "curves_epochs": "train split",
        "diagnostics_steps": "learning rate",
        "diagnostics_epochs": "throughput",
        "embeddings_pca": "evaluation split",
    }
    for stem, words in expected.items():
        name = TITLES[stem]
        assert name in figures, f"missing plot {name!r}; got {sorted(figures)}"
        assert words in figures[name], (name, figures[name])
        assert (root / f"{stem}.png").read_bytes().startswith(b"\x89PNG")


def test_no_table_is_wider_than_the_page(report) -> None:
    _, html = report
    tables = _parsed(html).tables
    assert len(tables) >= 4  # results split in parts, settings, runs
    for table in tables:
        header, *rows = table
        assert len(header) <= MAX_TABLE_COLUMNS + 2, header
        width = 0.0
        for col, name in enumerate(header):
            body = max((len(r[col]) for r in rows if col < len(r)), default=0) * CHAR_PX
            width += max(body, min(len(name) * CHAR_PX, HEADER_MAX_PX)) + CELL_PAD_PX
        assert width <= PAGE_PX, (header, width)


def test_arms_in_config_order_and_settings_apart(report) -> None:
    root, html = report
    results = _parsed(html).tables[0]
    assert [row[0] for row in results[1:]] == ARMS
    assert [r.arm for r in discover_runs(root)][::3] == ARMS
    settings = next(t for t in _parsed(html).tables if "knn_k" in t[0])
    assert settings[0][0] == "arm"
    row = dict(zip(settings[0], settings[1], strict=True))
    assert row["knn_k"] == "20 (x2), 30 (x1)" and row["linear_weight_decay"] == "0.0001"
    assert not re.search(r"knn_k[^<]*</th>.*± ", html[: html.index("Settings chosen")], re.S)


def test_losses_of_different_scales_get_a_log_axis(report) -> None:
    root, _ = report
    curves = _curves(discover_runs(root), "step")
    panels = {title: log for title, _, log in _panels(curves, ["loss", "lr"])}
    assert panels == {"loss (log scale: the arms' scales differ)": True, "lr": False}
