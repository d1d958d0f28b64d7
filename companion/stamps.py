"""Stamps: a chapter's executed notebook is current while this hash of what made it holds.

The hash covers the chapter source (and a variant's), its parameters, the library modules it
imports (followed through their own imports, in the science library and in this package) and
the pinned requirements. The pipeline's own execution and page modules are left out: they do
not change results.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from . import numerics
from .chapters import ROOT, _variant

__all__ = ["META", "stamp", "stored"]

META = "backward_book"


PACKAGES = ("backward_lib", "companion")
# Pipeline mechanics: how a chapter is found, run, stamped and published, not what it computes.
MECHANICS = {"companion", "companion.__main__", "companion.chapters", "companion.pages",
             "companion.pipeline", "companion.stamps"}  # fmt: skip


def _file(module: str) -> Path | None:
    """The source file of a dotted module of this repository's packages, or None."""
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(code: str, module: str = "") -> set[str]:
    """Modules of :data:`PACKAGES` that ``code`` imports, as dotted names.

    ``module`` is the dotted name of the code's own module, to resolve relative imports
    (``from .x import y`` in ``backward_lib.engine`` is ``backward_lib.x``). ``from p import
    name`` counts ``p.name`` when that is a module and ``p`` itself either way.
    """
    package = (
        module.rsplit(".", 1)[0]
        if module and _file(module) and _file(module).name != "__init__.py"
        else module
    )
    found: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] not in PACKAGES:
                continue
            parts = name.split(".")
            # every package on the way is imported too (its __init__ runs)
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1) if _file(".".join(parts[:i]))}
    return found


def _library_hash(code: str) -> str:
    """Hash of the library modules ``code`` uses, followed through their own imports.

    A chapter is stale when a module it runs changes, not when an unrelated one does. The
    pipeline's mechanics (:data:`MECHANICS`) are left out: they do not change results.
    """
    todo, seen = _imports(code) | {"backward_lib"}, set()
    while todo:
        name = todo.pop()
        if name in seen or name in MECHANICS or _file(name) is None:
            continue
        seen.add(name)
        todo |= _imports(_file(name).read_text(), name)
    h = hashlib.sha256()
    for name in sorted(seen):
        h.update(name.encode() + b"\0" + _file(name).read_bytes())
    for script in sorted(set(re.findall(r"benchmarks/\w+\.py", code))):  # scripts a chapter runs
        h.update(script.encode() + b"\0" + (ROOT / script).read_bytes())
    return h.hexdigest()


def _code(text: str) -> str:
    """The Python code of a jupytext percent source (markdown cells are comments already)."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("%"))


def stamp(src: Path, params: dict[str, Any]) -> str:
    """Hash of the chapter source, its parameters, the library, the pinned requirements and
    the pinned numerics (another kernel set gives other bits)."""
    h = hashlib.sha256()
    sources = [src.read_bytes()]
    if src.suffix == ".yaml":
        sources.append(_variant(src)["source"].read_bytes())
    code = sources[-1].decode()
    for part in (
        *sources,
        json.dumps(params, sort_keys=True, default=str).encode(),
        _library_hash(_code(code)).encode(),
        (ROOT / "requirements.txt").read_bytes(),
        json.dumps(numerics.KERNEL_SETS[numerics.kernel_set()], sort_keys=True).encode(),
    ):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def stored(out: Path) -> dict[str, Any] | None:
    """The stamp an executed notebook carries, or None when it is missing or was not stamped."""
    if not out.is_file():
        return None
    return json.loads(out.read_text()).get("metadata", {}).get(META)
