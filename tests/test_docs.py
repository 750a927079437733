"""The docs' runnable examples run as they are.

Blocks of ``docs/*.md`` marked with ``<!-- runnable -->`` on the line before their
fence are executed in order, in one namespace, in a fresh folder: an example that no
longer works fails here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"<!-- runnable -->\s*\n```python\n(.*?)```", re.S)


def _runnable(path: Path) -> list[str]:
    return _BLOCK.findall(path.read_text(encoding="utf-8"))


DOCS = [p for p in sorted((ROOT / "docs").glob("*.md")) if _runnable(p)]


def test_the_plugin_guide_has_runnable_examples() -> None:
    assert ROOT / "docs" / "writing-a-plugin.md" in DOCS
    assert len(_runnable(ROOT / "docs" / "writing-a-plugin.md")) >= 3


@pytest.mark.heavy
@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_runnable_blocks(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem.replace('-', '_')}"}
    for index, block in enumerate(_runnable(path)):
        code = compile(block, f"{path.name}[runnable {index}]", "exec")
        exec(code, namespace)  # the docs' own code, from this repository
    assert os.getcwd() == str(tmp_path)


def test_components_page_is_current() -> None:
    """docs/components.md is what ``selfsup list --markdown`` writes with the plugins here."""
    from selfsup.cli.catalog import components_markdown
    from selfsup.registry import FIRST_PARTY
    from selfsup.testing import load_plugins

    page = ROOT / "docs" / "components.md"
    pm = load_plugins(strict=False)
    listed = set(re.findall(r"^\| `([a-z]+)` \| `selfsup", page.read_text(encoding="utf-8"), re.M))
    missing = sorted(
        p
        for p in listed | (set(FIRST_PARTY) - {"core"})
        if p not in pm.infos or pm.infos[p].status != "active"
    )
    if missing and os.environ.get("CI", "").lower() not in ("1", "true"):
        pytest.skip(f"first-party plugin(s) not installed or not active here: {missing}")
    assert not missing, f"first-party plugin(s) not installed or not active in CI: {missing}"
    expected = components_markdown(pm)
    assert page.read_text(encoding="utf-8") == expected, (
        "docs/components.md is stale: regenerate it with "
        "'selfsup list --markdown --out docs/components.md' (every first-party plugin installed)"
    )
