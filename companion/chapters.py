"""The book's chapters: discovery, variants, default parameters, profiles and the toc.

Chapters are ``notebooks/<part>/<name>.py`` (jupytext percent sources); the executed notebook
goes to ``book/<part>/<name>.ipynb``. A *variant* ``notebooks/<part>/<name>.yaml`` reuses
another chapter's source with its own title, introduction and default parameters (the same
analysis of another figure: another model, data set or optimizer), so no notebook is copied.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import Any

import yaml

from . import spec as specs

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS, BOOK, PARAMS = ROOT / "notebooks", ROOT / "book", ROOT / "params"

__all__ = ["BOOK", "NOTEBOOKS", "PARAMS", "ROOT", "SPEC_TAG", "chapters", "declared", "defaults",
           "notebook", "output_path", "parameter_spec", "parameters", "toc"]  # fmt: skip

SPEC_TAG = "parameter-spec"


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
    # A figure's name is a label, unique across the book: fig-<source>-x becomes fig-<variant>-x.
    source_prefix, own_prefix = f"fig-{spec['source'].stem}-", f"fig-{src.stem}-"
    for cell in nb.cells:
        figure = cell.metadata.get("mystnb", {}).get("figure", {})
        if str(figure.get("name", "")).startswith(source_prefix):
            figure["name"] = own_prefix + figure["name"][len(source_prefix) :]
    return nb


@functools.lru_cache(maxsize=64)
def _read_cells(src: Path, _stamp: tuple) -> tuple[tuple[frozenset[str], str], ...]:
    return tuple((frozenset(c.metadata.get("tags", [])), c.source) for c in notebook(src).cells)


def _cells(src: Path) -> tuple[tuple[frozenset[str], str], ...]:
    """The chapter's cells as (tags, source); cached while its files are unchanged, because
    validating parameters reads them several times per chapter."""
    files = [src, _variant(src)["source"]] if src.suffix == ".yaml" else [src]
    return _read_cells(src, tuple((f.stat().st_mtime_ns, f.stat().st_size) for f in files))


def defaults(src: Path) -> dict[str, Any]:
    """The chapter's documented defaults: the literal assignments of its ``parameters`` cell."""
    cells = [source for tags, source in _cells(src) if "parameters" in tags]
    if len(cells) != 1:
        raise ValueError(f"{src.name}: needs exactly one cell tagged 'parameters', found {len(cells)}")
    out = {}
    for node in ast.parse(cells[0]).body:
        if isinstance(node, ast.Assign):
            # literals, or arithmetic on earlier defaults (e.g. ``tau = 0.035 / 2``)
            value = eval(
                compile(ast.Expression(node.value), src.name, "eval"), {"__builtins__": {}}, dict(out)
            )
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = value
                elif isinstance(t, ast.Tuple) and all(isinstance(e, ast.Name) for e in t.elts):
                    # ``h_min, h_max, h_points = 1e-5, 1e-1, 9`` declares three parameters
                    out.update(zip([e.id for e in t.elts], value, strict=True))
    return out


def declared(src: Path) -> set[str]:
    """Names assigned in the chapter's cell tagged ``parameters``."""
    return set(defaults(src))


def parameter_spec(src: Path) -> tuple[dict[str, specs.Spec], list[str]]:
    """The chapter's parameter specs and rules: the cell tagged ``parameter-spec``.

    That cell sits right after the ``parameters`` cell (the ranges are read next to the
    defaults) and holds ``spec = {name: "spec string", …}``, optionally ``rules = […]``; see
    :mod:`companion.spec`. With the shared names (``spec.SHARED``) it must cover exactly the
    parameters the ``parameters`` cell declares.
    """
    cells = _cells(src)
    at = [i for i, (tags, _) in enumerate(cells) if SPEC_TAG in tags]
    if len(at) != 1:
        raise ValueError(f"{src.name}: needs exactly one cell tagged {SPEC_TAG!r}, found {len(at)}")
    if at[0] == 0 or "parameters" not in cells[at[0] - 1][0]:
        raise ValueError(f"{src.name}: the {SPEC_TAG!r} cell must directly follow the 'parameters' cell")
    found: dict[str, Any] = {}
    for node in ast.parse(cells[at[0]][1]).body:
        targets = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
        if not isinstance(node, ast.Assign) or targets not in (["spec"], ["rules"]):
            raise ValueError(f"{src.name}: the {SPEC_TAG!r} cell may only assign 'spec' and 'rules'")
        try:
            found[targets[0]] = ast.literal_eval(node.value)
        except ValueError:
            raise ValueError(f"{src.name}: {targets[0]} must be a literal") from None
    table, rules = found.get("spec"), found.get("rules", [])
    if not isinstance(table, dict) or not isinstance(rules, list):
        raise ValueError(f"{src.name}: needs spec = {{name: 'spec string', …}} (and rules = [...])")
    names = declared(src)
    # the book's shared names (companion.spec.SHARED) unless the chapter restricts them
    table = {**{k: v for k, v in specs.SHARED.items() if k in names}, **table}
    missing, extra = sorted(names - set(table)), sorted(set(table) - names)
    if missing or extra:
        raise ValueError(
            f"{src.name}: the spec must cover exactly the parameters cell; "
            f"missing {missing}, undeclared {extra}"
        )
    parsed = {}
    for name, text in table.items():
        try:
            parsed[name] = specs.parse(text)
        except ValueError as err:
            raise ValueError(f"{src.name}: spec of {name}: {err}") from None
    for rule in rules:
        try:
            unknown = sorted(specs.parse_rule(rule)[1] - names)
        except ValueError as err:
            raise ValueError(f"{src.name}: {err}") from None
        if unknown:
            raise ValueError(f"{src.name}: rule {rule!r} names undeclared {unknown}")
    return parsed, rules


def parameters(name: str, profile: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters injected into chapter ``name``: the profile's section, then overrides.

    Every key must be declared in the chapter's ``parameters`` cell: a misspelt override
    would otherwise be ignored silently. Every value the chapter will run with (its
    defaults, a variant's values, the profile's, the overrides) must fit the chapter's
    parameter spec, so a bad value stops here, before any chapter executes.
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
    base = _variant(src)["source"] if src.suffix == ".yaml" else src
    layers = [
        (f"the default in {base.name}", defaults(src)),
        ("the profile (the pipeline sets it)", {"profile": profile}),
        (f"the variant {src.name}", own),
        (f"the profile params/{profile}.yaml", sections.get(name) or {}),
        ("the override -p", overrides or {}),
    ]
    params = {"profile": profile, **own, **(sections.get(name) or {}), **(overrides or {})}
    unknown = sorted(set(params) - declared(src))
    if unknown:
        raise ValueError(f"{name}: unknown parameter(s) {unknown}; see its parameters cell")
    table, rules = parameter_spec(src)
    final: dict[str, Any] = {}
    source: dict[str, str] = {}
    for where, values in layers:
        for key, value in values.items():
            try:
                final[key] = specs.validate(key, value, table[key])
            except ValueError as err:
                raise ValueError(f"{name}: {err} (from {where})") from None
            source[key] = where
    for rule in rules:
        if not specs.check_rule(rule, final):
            names = sorted(specs.parse_rule(rule)[1])
            got = "; ".join(f"{k} = {final[k]!r} from {source[k]}" for k in names)
            raise ValueError(f"{name}: parameters must satisfy {rule}, got {got}")
    # the chapter runs with the validated values (an int given for a float arrives as a float)
    return {key: final[key] for key in params}


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
