"""Layering that import-linter cannot see: chapters are notebooks, not modules, so nothing may
import one (import-linter checks the packages; see pyproject.toml)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_nothing_imports_a_chapter():
    code = [
        p
        for d in ("backward_lib", "companion", "tests", "benchmarks", "notebooks")
        for p in (ROOT / d).rglob("*.py")
    ]
    chapters = {p.stem for p in (ROOT / "notebooks").glob("*/*.py")}
    assert len(code) > 40 and len(chapters) > 10
    for path in code:
        bad = {n for n in _imported(path) if n.split(".")[0] == "notebooks" or n.split(".")[-1] in chapters}
        assert not bad, f"{path.relative_to(ROOT)} imports chapter(s) {sorted(bad)}"


def test_the_science_library_needs_only_its_four_dependencies():
    """backward_lib imports torch, numpy, scipy, pandas (and the standard library) at module
    level; anything else (tqdm for progress bars, torchvision for data and models, ray) only
    inside the function that needs it."""
    import sys

    allowed = {"torch", "numpy", "scipy", "pandas", "backward_lib"} | set(sys.stdlib_module_names)
    for path in (ROOT / "backward_lib").rglob("*.py"):
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
        names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in top if isinstance(n, ast.ImportFrom) and n.module and not n.level}
        extra = {n for n in names if n.split(".")[0] not in allowed}
        assert not extra, f"{path.relative_to(ROOT)} imports {sorted(extra)} at module level"
