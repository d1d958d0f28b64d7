"""The book's chapters: discovery, variants, default parameters, profiles and the toc.

Chapters are ``notebooks/<part>/<name>.py`` (jupytext percent sources); the executed notebook
goes to ``book/<part>/<name>.ipynb``. A *variant* ``notebooks/<part>/<name>.yaml`` reuses
another chapter's source with its own title, introduction and default parameters (the same
analysis of another figure: another model, data set or optimizer), so no notebook is copied.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS, BOOK, PARAMS = ROOT / "notebooks", ROOT / "book", ROOT / "params"

__all__ = ["BOOK", "NOTEBOOKS", "PARAMS", "ROOT", "chapters", "declared", "defaults", "notebook",
           "output_path", "parameters", "toc"]  # fmt: skip


def chapters() -> dict[str, Path]:
    """Chapter name → source: ``notebooks/<part>/<name>.py`` or a variant ``<name>.yaml``."""
    found: dict[str, Path] = {}
    for src in sorted([*NOTEBOOKS.glob("*/*.py"), *NOTEBOOKS.glob("*/*.yaml")]):
        if src.stem in found:
            raise ValueError(f"two chapters are named {src.stem!r}: {found[src.stem]} and {src}")
        found[src.stem] = src
    return found


def output_path(src: Path) -> Path:
    return BOOK / src.parent.name / f"{src.stem}.ipynb"


def _variant(src: Path) -> dict[str, Any]:
    spec = yaml.safe_load(src.read_text()) or {}
    missing = {"source", "title", "intro"} - set(spec)
    if missing:
        raise ValueError(f"{src.name}: a variant needs keys {sorted(missing)}")
    base = src.parent / spec["source"]
    if not base.is_file() or base.suffix != ".py":
        raise ValueError(f"{src.name}: source {spec['source']!r} is not a chapter source beside it")
    return {**spec, "source": base, "parameters": spec.get("parameters") or {}}


def notebook(src: Path):
    """The chapter as a notebook; a variant's title and introduction replace the first cell."""
    import jupytext
    import nbformat

    if src.suffix == ".py":
        return jupytext.read(src)
    spec = _variant(src)
    nb = jupytext.read(spec["source"])
    nb.cells[0] = nbformat.v4.new_markdown_cell(f"# {spec['title']}\n\n{spec['intro'].strip()}")
    return nb


def defaults(src: Path) -> dict[str, Any]:
    """The chapter's documented defaults: the literal assignments of its ``parameters`` cell."""
    cells = [c for c in notebook(src).cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{src.name}: needs exactly one cell tagged 'parameters', found {len(cells)}")
    out = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign):
            # literals, or arithmetic on earlier defaults (e.g. ``tau = 0.035 / 2``)
            value = eval(
                compile(ast.Expression(node.value), src.name, "eval"), {"__builtins__": {}}, dict(out)
            )
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = value
    return out


def declared(src: Path) -> set[str]:
    """Names assigned in the chapter's cell tagged ``parameters``."""
    return set(defaults(src))


def parameters(name: str, profile: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters injected into chapter ``name``: the profile's section, then overrides.

    Every key must be declared in the chapter's ``parameters`` cell: a misspelt override
    would otherwise be ignored silently.
    """
    path = PARAMS / f"{profile}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PARAMS.glob("*.yaml"))
        raise ValueError(f"profile: no params/{profile}.yaml; known profiles: {known}")
    sections = yaml.safe_load(path.read_text()) or {}
    unknown = set(sections) - set(chapters())
    if unknown:
        raise ValueError(f"params/{profile}.yaml names unknown chapters: {sorted(unknown)}")
    src = chapters()[name]
    own = _variant(src)["parameters"] if src.suffix == ".yaml" else {}
    params = {"profile": profile, **own, **(sections.get(name) or {}), **(overrides or {})}
    unknown = sorted(set(params) - declared(src))
    if unknown:
        raise ValueError(f"{name}: unknown parameter(s) {unknown}; see its parameters cell")
    return params


def toc() -> list[str]:
    """The pages of ``_toc.yml`` in reading order (root first), as paths without suffix."""

    def walk(node) -> list[str]:
        if isinstance(node, dict):
            own = [node["file"]] if "file" in node else []
            return own + [f for k, v in node.items() if k != "file" for f in walk(v)]
        if isinstance(node, list):
            return [f for v in node for f in walk(v)]
        return []

    spec = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [str(Path(f).with_suffix("")) for f in [spec["root"], *walk(spec)]]
