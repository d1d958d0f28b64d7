"""The book pipeline: jupytext source → papermill (profile + overrides) → stamped notebook.

    python -m backward_lib.book list
    python -m backward_lib.book run [CHAPTER …] [--profile book] [-p KEY VALUE …] [--force]
    python -m backward_lib.book check [--profile book]
    python -m backward_lib.book build

Chapters are ``notebooks/<part>/<name>.py``; the executed notebook goes to
``book/<part>/<name>.ipynb``. A *variant* ``notebooks/<part>/<name>.yaml`` reuses another
chapter's source with its own title, introduction and default parameters (the same analysis
of another figure: another model, data set or optimizer), so no notebook is copied.

An executed notebook's metadata carries a stamp: a hash of the source, the parameters, the
library's source (this pipeline file excluded: it does not change results)
and ``requirements.txt``. A chapter whose stamp is current is not re-run; ``check`` fails
naming every chapter whose executed notebook is missing or stale.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS, BOOK, PARAMS = ROOT / "notebooks", ROOT / "book", ROOT / "params"
META = "backward_book"
KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}

__all__ = ["build", "chapters", "check", "command", "main", "parameters", "repository", "run", "stamp", "toc"]


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


def _imports(code: str, package: str = "backward_lib") -> set[str]:
    """Library modules a piece of code imports: ``from backward_lib import x``, ``import
    backward_lib.x``, and a library module's own relative imports (``from .x import y``)."""
    found = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".", 1)[1] if "." in a.name else "__init__" for a in node.names
                      if a.name.split(".")[0] == package}  # fmt: skip
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 0 and mod.split(".")[0] != package:
                continue
            sub = mod.split(".", 1)[1] if node.level == 0 and "." in mod else (mod if node.level else "")
            found |= {sub} if sub else {"__init__", *(a.name for a in node.names)}
    return {m.split(".")[0] for m in found}


def _library_hash(code: str) -> str:
    """Hash of the library modules ``code`` uses, followed through their own imports.

    A chapter is stale when a module it runs changes, not when an unrelated one does. The
    pipeline itself (this file) is left out: it does not change results.
    """
    lib = ROOT / "backward_lib"
    todo, seen = _imports(code) | {"__init__"}, set()
    while todo:
        name = todo.pop()
        path = lib / f"{name}.py"
        if name in seen or name == "book" or not path.is_file():
            continue
        seen.add(name)
        todo |= _imports(path.read_text())
    h = hashlib.sha256()
    for name in sorted(seen):
        h.update(name.encode() + b"\0" + (lib / f"{name}.py").read_bytes())
    for script in sorted(set(re.findall(r"benchmarks/\w+\.py", code))):  # scripts a chapter runs
        h.update(script.encode() + b"\0" + (ROOT / script).read_bytes())
    return h.hexdigest()


def _code(text: str) -> str:
    """The Python code of a jupytext percent source (markdown cells are comments already)."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("%"))


def stamp(src: Path, params: dict[str, Any]) -> str:
    """Hash of the chapter source, its parameters, the library and the pinned requirements."""
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
    ):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def _stored_stamp(out: Path) -> dict[str, Any] | None:
    if not out.is_file():
        return None
    return json.loads(out.read_text()).get("metadata", {}).get(META)


def _clean_stream(text: str) -> str:
    """Keep only what a terminal would show of carriage-return progress updates."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def _merge_streams(outputs: list) -> list:
    """Join consecutive outputs of one stream (progress bars arrive in many small pieces)."""
    merged: list = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (
            prev is not None
            and out.get("output_type") == "stream" == prev.get("output_type")
            and out.get("name") == prev.get("name")
        ):
            prev["text"] += out["text"]
        else:
            merged.append(out)
    return merged


def tag_parameter_cells(nb) -> None:
    """Remove papermill's injected cell from the HTML and fold the defaults cell.

    The run card states the values a chapter actually ran with; the defaults stay one click
    away, and the notebook itself keeps both cells.
    """
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        want = {"injected-parameters": "remove-cell", "parameters": "hide-cell"}
        for have, add in want.items():
            if have in tags and add not in tags:
                tags.append(add)


def repository() -> str:
    """The book's repository (``_config.yml``: ``repository.url``): launch buttons, installs."""
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text()) or {}
    url = (cfg.get("repository") or {}).get("url")
    if not url:
        raise ValueError("_config.yml: repository.url is not set")
    return str(url).rstrip("/")


SETUP_TAG = "backward-setup"


def setup_cell(url: str):
    """First code cell of every executed chapter: installs the library where it is missing
    (a notebook opened in Colab or Binder), a no-op in the book's own environment."""
    import nbformat

    code = (
        "# Opened outside the book's environment (Colab, Binder)? Install the library first.\n"
        "import importlib.util\n"
        "import subprocess\n"
        "import sys\n\n"
        'if importlib.util.find_spec("backward_lib") is None:\n'
        f'    pip = [sys.executable, "-m", "pip", "install", "--quiet", "backward_lib @ git+{url}"]\n'
        "    subprocess.run(pip, check=True)"
    )
    return nbformat.v4.new_code_cell(code, metadata={"tags": ["remove-cell", SETUP_TAG]})


def command(name: str, profile: str, overrides: dict[str, Any] | None = None) -> str:
    """The shell command that reruns chapter ``name`` with this profile and these overrides."""
    import shlex

    cmd = f"python -m backward_lib.book run {name} --profile {profile}"
    for k, v in (overrides or {}).items():
        text = v if isinstance(v, str) else json.dumps(v)
        cmd += f" -p {k} {shlex.quote(text)}"
    return cmd


def _rerun_text(name: str, profile: str, overrides: dict[str, Any]) -> str:
    text = f"`{command(name, profile, overrides)}`"
    if profile != "paper" or overrides:
        text += f" (this run); `{command(name, 'paper')}` (the paper's settings)"
    return text


def _finish(nb, params: dict, seconds: float, key: str, out: Path, overrides: dict[str, Any]) -> None:
    """Hide the injected parameters, tidy progress output, fill in the run card's wall time
    and rerun command, and write a recorded table the chapter offers as ``<name>.csv``."""
    from . import __version__
    from .runcard import CSV_PENDING, RERUN_PENDING, TABLE_KEY, WALL_PENDING

    name = out.stem
    fill = {
        WALL_PENDING: f"{seconds:.1f} s for the whole chapter (the device row says where)",
        RERUN_PENDING: _rerun_text(name, params["profile"], overrides),
        CSV_PENDING: f"{{download}}`{name}.csv`",
    }
    tag_parameter_cells(nb)
    tables = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = _merge_streams(cell.outputs)
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                output["text"] = _clean_stream(output["text"])
            csv = output.get("metadata", {}).pop(TABLE_KEY, None)
            if csv is not None:
                tables += 1
                if tables > 1:
                    raise ValueError(f"{name}: runcard.results may be called once per chapter")
                out.with_suffix(".csv").write_text(csv)
            for mime in ("text/markdown", "text/plain"):
                if mime in output.get("data", {}):
                    for pending, text in fill.items():
                        output["data"][mime] = output["data"][mime].replace(pending, text)
    if not tables:
        out.with_suffix(".csv").unlink(missing_ok=True)  # a table the chapter no longer offers
    nb.metadata[META] = {
        "stamp": key,
        "profile": params["profile"],
        "parameters": params,
        "wall_time_s": round(seconds, 1),
        "library": __version__,
    }


def run(names: list[str] | None, profile: str, overrides: dict[str, Any], force: bool) -> int:
    """Execute chapters (all when ``names`` is empty); return how many were (re)run."""
    import nbformat
    import papermill

    known = chapters()
    bad = [n for n in names or [] if n not in known]
    if bad:
        raise ValueError(f"chapter: unknown chapter(s) {bad}; known: {sorted(known)}")
    count = 0
    for name in names or sorted(known):
        src, out = known[name], output_path(known[name])
        params = parameters(name, profile, overrides)
        key = stamp(src, params)
        if not force and (_stored_stamp(out) or {}).get("stamp") == key:
            print(f"{name}: current ({key}), not re-run")
            continue
        print(f"{name}: executing with {params}", flush=True)
        nb = notebook(src)
        nb.cells.insert(1, setup_cell(repository()))
        nb.metadata["kernelspec"] = KERNEL
        with tempfile.TemporaryDirectory() as tmp:
            tmp_in, tmp_out = Path(tmp) / "in.ipynb", Path(tmp) / "out.ipynb"
            nbformat.write(nb, tmp_in)
            t0 = time.perf_counter()
            papermill.execute_notebook(
                str(tmp_in),
                str(tmp_out),
                parameters=params,
                kernel_name="python3",
                cwd=str(ROOT),
                progress_bar=False,
                log_output=False,
            )
            seconds = time.perf_counter() - t0
            done = nbformat.read(tmp_out, as_version=4)
        out.parent.mkdir(parents=True, exist_ok=True)
        _finish(done, params, seconds, key, out, overrides)
        nbformat.write(done, out)
        print(f"{name}: wrote {out.relative_to(ROOT)} in {seconds:.1f} s", flush=True)
        count += 1
    return count


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


def _toc_files() -> set[str]:
    return set(toc())


def check(profile: str = "book") -> list[str]:
    """Problems that make the published book stale: one line per chapter, empty when current."""
    problems = []
    toc = _toc_files()
    for name, src in chapters().items():
        out = output_path(src)
        stored = _stored_stamp(out)
        if stored is None:
            problems.append(f"{name}: {out.relative_to(ROOT)} is missing or was not run by the pipeline")
        elif stored.get("stamp") != stamp(src, parameters(name, profile)):
            problems.append(f"{name}: stale (source, parameters, library or requirements changed)")
        if str(out.relative_to(ROOT).with_suffix("")) not in toc:
            problems.append(f"{name}: not listed in _toc.yml, so not published")
    return problems


def build(strict: bool = True) -> None:
    """Write the generated pages (claims, reproduce), then render the book from ``book/``
    into ``_build/html`` (execution off)."""
    from . import pages

    for path in pages.write():
        print(f"wrote {path.relative_to(ROOT)}")
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT)]
    if strict:
        cmd += ["--warningiserror", "--keep-going"]
    subprocess.run(cmd, check=True, cwd=ROOT)


def _value(text: str) -> Any:
    return yaml.safe_load(text)  # "0.5" → 0.5, "[1, 2]" → list, "forward" → str


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backward_lib.book", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the chapters")
    p_run = sub.add_parser("run", help="execute chapters into book/")
    p_run.add_argument("chapters", nargs="*")
    p_run.add_argument("--profile", default="book")
    p_run.add_argument("-p", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"))
    p_run.add_argument("--force", action="store_true", help="re-run even when current")
    p_check = sub.add_parser("check", help="fail if an executed chapter is missing or stale")
    p_check.add_argument("--profile", default="book")
    p_build = sub.add_parser("build", help="render the HTML book")
    p_build.add_argument("--no-strict", action="store_true", help="do not turn warnings into errors")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for name, src in chapters().items():
                print(f"{name:32s} {src.relative_to(ROOT)}")
        elif args.command == "run":
            overrides = {k: _value(v) for k, v in args.p}
            bad = [k for k in overrides if not re.fullmatch(r"[A-Za-z_]\w*", k)]
            if bad:
                raise ValueError(f"-p: parameter names must be identifiers, got {bad}")
            run(args.chapters, args.profile, overrides, args.force)
        elif args.command == "check":
            problems = check(args.profile)
            for line in problems:
                print(line)
            if problems:
                print("run `python -m backward_lib.book run` (or `make book`) to refresh them")
                return 1
            print(f"{len(chapters())} chapters current")
        else:
            build(strict=not args.no_strict)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
