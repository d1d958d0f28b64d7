"""Which code made a result: the modules a module imports, followed through their imports,
and a digest of what they compute.

The results store keys every experiment by this digest (with its configuration), and the
book's stamps use the same import walk: a result is stale when a module that computed it
changes, not when an unrelated one does. The digest reads each module's syntax tree without
its docstrings, so rewording documentation or reformatting code keeps stored results current;
any change to what the code does (a statement, a constant, a default) makes them stale.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

__all__ = ["ROOT", "closure", "digest", "imports", "source_file"]

ROOT = Path(__file__).resolve().parent.parent  # the repository: its packages are top-level folders


def source_file(module: str, root: Path = ROOT) -> Path | None:
    """The source file of a dotted module under ``root``, or None."""
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imports(
    code: str, module: str = "", packages: tuple[str, ...] = ("backward_lib",), root: Path = ROOT
) -> set[str]:
    """Modules of ``packages`` that ``code`` imports anywhere (module level or inside a
    function), as dotted names, with every package on the way (its ``__init__`` runs).

    ``module`` is the dotted name of the code's own module, to resolve relative imports
    (``from .x import y`` in ``backward_lib.engine`` is ``backward_lib.x``); ``from p import
    name`` counts ``p.name`` when that is a module and ``p`` itself either way.
    """
    own = source_file(module, root) if module else None
    package = module.rsplit(".", 1)[0] if own is not None and own.name != "__init__.py" else module
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
            if name.split(".")[0] not in packages:
                continue
            parts = name.split(".")
            found |= {
                ".".join(parts[:i])
                for i in range(1, len(parts) + 1)
                if source_file(".".join(parts[:i]), root)
            }
    return found


def closure(
    roots: set[str],
    packages: tuple[str, ...] = ("backward_lib",),
    *,
    exclude: frozenset[str] = frozenset(),
    root: Path = ROOT,
) -> set[str]:
    """``roots`` and every module of ``packages`` they import, transitively, less ``exclude``."""
    todo, seen = set(roots), set()
    while todo:
        name = todo.pop()
        path = source_file(name, root)
        if name in seen or name in exclude or path is None:
            continue
        seen.add(name)
        todo |= imports(path.read_text(), name, packages, root)
    return seen


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


@cache
def digest(module: str) -> str:
    """A short hash of what ``module`` and the library modules it imports compute: their
    syntax trees without docstrings (comments and layout are not in a syntax tree).

    Cached per process, so it describes the code as it was when first asked for (a results
    store asks at import time, before a long run could see the files change).
    """
    h = hashlib.sha256()
    for name in sorted(closure({module})):
        tree = _strip_docstrings(ast.parse(source_file(name).read_text()))
        h.update(name.encode() + b"\0" + ast.dump(tree).encode() + b"\0")
    return h.hexdigest()[:16]
