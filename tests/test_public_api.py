"""The public API is what plugins, the template and the docs use, and nothing else.

First-party plugins are the model third parties copy: a plugin (source or tests), the
example third-party plugin or a code sample in the docs that imports a non-public
``selfsup.*`` module or name fails here. The contract modules import nothing from the
engine, and ``import selfsup`` stays light.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The documented public modules (docs/public-api.md); ``selfsup`` itself included.
PUBLIC_MODULES = {
    "selfsup",
    "selfsup.specs",
    "selfsup.interfaces",
    "selfsup.hookspecs",
    "selfsup.runtime",
    "selfsup.training",
    "selfsup.losses",
    "selfsup.evaluation",
    "selfsup.components",
    "selfsup.safe_pickle",
    "selfsup.testing",
}

#: Contract modules: what a plugin is written against; they never import the engine.
CONTRACT_MODULES = ("hookspecs", "specs", "interfaces", "runtime", "components")

_DOC_IMPORT = re.compile(
    r"^\s*(?:from\s+(selfsup(?:\.\w+)*)\s+import\s+([^\n#]+)|import\s+(selfsup(?:\.\w+)*))", re.M
)


def _python_files() -> list[Path]:
    files: list[Path] = []
    for pattern in ("plugins/*/src/**/*.py", "plugins/*/tests/**/*.py", "examples/**/*.py"):
        files.extend(ROOT.glob(pattern))
    return sorted(files)


def _doc_files() -> list[Path]:
    files = [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("plugins/*/README.md")]
    files += list(ROOT.glob("examples/**/*.md"))
    return sorted(p for p in files if p.is_file())


def _imports(tree: ast.AST) -> list[tuple[int, str, list[str]]]:
    """(line, module, imported names) of every selfsup import in a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "selfsup" or node.module.startswith("selfsup."):
                found.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "selfsup" or alias.name.startswith("selfsup."):
                    found.append((node.lineno, alias.name, []))
    return found


def _problems(module: str, names: list[str]) -> list[str]:
    if module not in PUBLIC_MODULES:
        return [f"imports {module!r}, which is not a public module (docs/public-api.md)"]
    public = set(getattr(importlib.import_module(module), "__all__", ()))
    hidden = [n for n in names if n != "*" and public and n not in public]
    return [f"imports {n!r} from {module}, which is not in its __all__" for n in hidden]


def test_plugins_template_and_examples_import_only_the_public_api() -> None:
    files = _python_files()
    assert len(files) > 20, "the scan found too few files: did the layout change?"
    bad = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, module, names in _imports(tree):
            bad += [f"{path.relative_to(ROOT)}:{line}: {p}" for p in _problems(module, names)]
    assert not bad, "non-public selfsup imports:\n" + "\n".join(bad)


def test_docs_import_only_the_public_api() -> None:
    bad = []
    for path in _doc_files():
        text = path.read_text(encoding="utf-8")
        for match in _DOC_IMPORT.finditer(text):
            module = match.group(1) or match.group(3)
            names = [n.strip().split(" as ")[0] for n in (match.group(2) or "").split(",")]
            names = [n.strip("() ") for n in names if n.strip("() ")]
            line = text[: match.start()].count("\n") + 1
            bad += [f"{path.relative_to(ROOT)}:{line}: {p}" for p in _problems(module, names)]
    assert not bad, "docs import non-public selfsup names:\n" + "\n".join(bad)


def test_the_scan_catches_an_internal_import(tmp_path: Path) -> None:
    tree = ast.parse("from selfsup.engine.loop import train_epochs\nfrom selfsup import Foo\n")
    problems = [p for _, m, n in _imports(tree) for p in _problems(m, n)]
    assert len(problems) == 2
    assert "selfsup.engine.loop" in problems[0] and "'Foo'" in problems[1]


@pytest.mark.parametrize("name", CONTRACT_MODULES)
def test_contract_modules_import_nothing_from_the_engine(name: str) -> None:
    path = ROOT / "core" / "src" / "selfsup" / f"{name}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    internal = ("selfsup.engine", "selfsup.builtin", "selfsup.cli", "selfsup.config")
    bad = [(line, m) for line, m, _ in _imports(tree) if m.startswith(internal)]
    assert not bad, f"{name}.py imports engine internals: {bad}"


def test_every_public_name_resolves() -> None:
    import selfsup

    for module in sorted(PUBLIC_MODULES):
        mod = importlib.import_module(module)
        for name in getattr(mod, "__all__", ()):
            assert hasattr(mod, name) or getattr(selfsup, name, None) is not None, (
                f"{module}.__all__ lists {name!r}, which does not resolve"
            )


def test_import_selfsup_stays_light() -> None:
    code = (
        "import sys, selfsup, selfsup.specs, selfsup.hookspecs\n"
        "heavy = [m for m in ('torch', 'numpy', 'torch_geometric', 'timm') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import selfsup imported {out.stdout.strip()}"
