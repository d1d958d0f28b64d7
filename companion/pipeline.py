"""The book pipeline: jupytext source → papermill (profile + overrides) → stamped notebook.

    python -m companion list
    python -m companion run [CHAPTER …] [--profile book] [-p KEY VALUE …] [--force] [--out DIR]
    python -m companion check [--profile book]
    python -m companion verify [--all] [--seed N]
    python -m companion build

An executed notebook's metadata carries a stamp (:mod:`companion.stamps`). A chapter whose
stamp is current is not re-run; ``check`` fails naming every chapter whose executed notebook
is missing or stale. Chapters execute under the book's pinned numerics
(:mod:`companion.numerics`), so that the same chapter gives the same bits on any x86-64 CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from . import book_html, numerics
from .chapters import BOOK, ROOT, chapters, declared, notebook, output_path, parameters, toc
from .stamps import META, stamp, stored

USED = "BACKWARD_USED"  # backward_lib.store: where opened stores list their keys

KERNEL = {"name": "python3", "display_name": "Python 3", "language": "python"}
EXECUTORS = ("sequential", "batched", "ray")  # backward_lib.experiment's executors

# The kernel's environment while chapters execute: no progress bars, no library log lines in
# the outputs (what a chapter prints is the book's text; warnings still reach stderr).
QUIET = {
    "TQDM_DISABLE": "1",  # tqdm >= 4.66 reads its defaults from TQDM_* variables
    "RAY_LOGGER_LEVEL": "warning",  # the driver's "Started a local Ray instance." and the like
    "RAY_LOG_TO_DRIVER": "0",  # workers' own output stays in Ray's log files
    "KINETO_LOG_LEVEL": "6",  # torch.profiler's USDT/ERROR lines (6: above every level)
}

__all__ = ["QUIET", "build", "book_config", "check", "command", "main", "repository", "run"]


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the kernels started inside, then restore them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _clean_stream(text: str) -> str:
    """Keep only what a terminal would show of carriage-return progress updates, and no
    debris lines (progress bars, library logs: :func:`companion.book_html.clean_stream`)."""
    shown = "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))
    return book_html.clean_stream(shown)


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


def claims_label(name: str) -> str:
    """The target of chapter ``name``'s "Claims" section, which the generated pages link to."""
    return f"claims-{name}"


def label_claims(nb, name: str) -> None:
    """Put a MyST target above the chapter's ``## Claims`` heading (once), so that a row of the
    claims page can link to the section that computes it."""
    target = f"({claims_label(name)})="
    for cell in nb.cells:
        if cell.cell_type == "markdown" and re.search(r"^## Claims\b", cell.source, re.M):
            if target not in cell.source:
                cell.source = re.sub(
                    r"^## Claims\b", f"{target}\n## Claims", cell.source, count=1, flags=re.M
                )
            return


REPOSITORY_ENV = "BOOK_REPOSITORY"
# URLs that were never the book's repository: a build configured with one fails
PLACEHOLDERS = frozenset(
    {
        "https://github.com/backward-lib/iteration-composition",
        "https://github.com/owner/repo",
        "https://github.com/org/repo",
        "https://github.com/user/repo",
        "https://github.com/executablebooks/jupyter-book",
    }
)
_GITHUB = re.compile(
    r"(?:https?://|ssh://|git://)?(?:[^@/]+@)?github\.com[:/]([\w.-]+)/([\w.-]+?)(?:\.git)?/?"
)


def github_url(url: str) -> str | None:
    """``https://github.com/OWNER/REPO`` for a GitHub remote (https, ssh or scp form, with or
    without ``.git``; credentials dropped), ``None`` for anything else."""
    m = _GITHUB.fullmatch(url.strip())
    return f"https://github.com/{m.group(1)}/{m.group(2)}" if m else None


def _origin() -> str | None:
    """The git remote ``origin`` of the book's checkout, if it has one."""
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "remote", "get-url", "origin"], capture_output=True, text=True
        )
    except OSError:  # no git
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def repository(
    config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    origin: str | None = "git",
) -> str | None:
    """The book's repository, the one place launch buttons and install cells take it from.

    In order: ``$BOOK_REPOSITORY`` (set but empty: no repository), ``repository.url`` in
    ``_config.yml`` (normally absent), the git remote ``origin`` when it is on github.com.
    ``None`` when there is none: the book is built without repository and launch buttons, and
    chapters' install cells say to install from a clone. A configured URL must be a GitHub
    repository (Colab opens notebooks from GitHub) and not a known placeholder.
    ``config``, ``environ`` and ``origin`` replace what is read from disk, the process and git.
    """
    if config is None:
        config = yaml.safe_load((ROOT / "_config.yml").read_text()) or {}
    environ = os.environ if environ is None else environ
    if REPOSITORY_ENV in environ:
        where, url = f"${REPOSITORY_ENV}", environ[REPOSITORY_ENV]
    elif (config.get("repository") or {}).get("url"):
        where, url = "_config.yml repository.url", str(config["repository"]["url"])
    else:
        remote = _origin() if origin == "git" else origin
        # a remote elsewhere (or none) is no error: the book is then built without buttons
        return github_url(remote) if remote else None
    if not url.strip():
        return None
    found = github_url(url)
    if found is None:
        raise ValueError(f"{where}: {url!r} is not a GitHub repository URL (https://github.com/OWNER/REPO)")
    if found in PLACEHOLDERS:
        raise ValueError(
            f"{where}: {found} is a placeholder, not this book's repository; set "
            f"${REPOSITORY_ENV} to the real one (or to nothing, to build without repository buttons)"
        )
    return found


SETUP_TAG = "backward-setup"


def setup_cell(url: str | None):
    """First code cell of every executed chapter: installs the library where it is missing
    (a notebook opened in Colab or Binder), a no-op in the book's own environment. Without a
    repository (:func:`repository`) it says to install from a clone instead."""
    import nbformat

    head = (
        "# Opened outside the book's environment (Colab, Binder)? Install the library first.\n"
        "import importlib.util\n"
        "import subprocess\n"
        "import sys\n\n"
        'if importlib.util.find_spec("backward_lib") is None:\n'
    )
    if url:
        body = (
            f'    pip = [sys.executable, "-m", "pip", "install", "--quiet", "backward_lib @ git+{url}"]\n'
            "    subprocess.run(pip, check=True)"
        )
    else:
        body = (
            "    raise ModuleNotFoundError(\n"
            '        "backward_lib is not installed: clone the book\'s repository and run "\n'
            '        "`pip install -e .` in it, then open this notebook there"\n'
            "    )"
        )
    return nbformat.v4.new_code_cell(head + body, metadata={"tags": ["remove-cell", SETUP_TAG]})


_INSTALLS_FROM = re.compile(r"backward_lib @ git\+(\S+?)\"")


def installs_from(nb) -> str | None:
    """The repository an executed chapter's install cell installs from (``None``: a clone)."""
    for cell in nb.cells:
        if SETUP_TAG in cell.metadata.get("tags", []):
            m = _INSTALLS_FROM.search(cell.source)
            return m.group(1) if m else None
    return None


def command(name: str, profile: str, overrides: dict[str, Any] | None = None) -> str:
    """The shell command that reruns chapter ``name`` with this profile and these overrides."""
    import shlex

    cmd = f"python -m companion run {name} --profile {profile}"
    for k, v in (overrides or {}).items():
        text = v if isinstance(v, str) else json.dumps(v)
        cmd += f" -p {k} {shlex.quote(text)}"
    return cmd


def _rerun_text(name: str, profile: str, overrides: dict[str, Any]) -> str:
    text = f"`{command(name, profile, overrides)}`"
    if profile != "paper" or overrides:
        text += f" (this run); `{command(name, 'paper')}` (the paper's settings)"
    return text


def _finish(
    nb, params: dict, seconds: float, key: str, out: Path, overrides: dict[str, Any], results: list[str]
) -> None:
    """Hide the injected parameters, tidy progress output, fill in the run card's wall time
    and rerun command, and write a recorded table the chapter offers as ``<name>.csv``."""
    from backward_lib import __version__

    from . import cost
    from .runcard import CSV_PENDING, PAPER_PENDING, RERUN_PENDING, TABLE_KEY, WALL_PENDING

    name = out.stem
    fill = {
        WALL_PENDING: f"{seconds:.1f} s for the whole chapter (the device row says where)",
        RERUN_PENDING: _rerun_text(name, params["profile"], overrides),
        CSV_PENDING: f"{{download}}`{name}.csv`",
        PAPER_PENDING: cost.paper_row(name),
    }
    tag_parameter_cells(nb)
    label_claims(nb, name)
    tables = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = _merge_streams(cell.outputs)
            for output in cell.outputs:
                if output.get("output_type") == "stream":
                    output["text"] = _clean_stream(output["text"])
            # a stream that held only debris (a progress bar) is no output at all
            cell.outputs = [o for o in cell.outputs if o.get("output_type") != "stream" or o["text"].strip()]
        for output in cell.get("outputs", []):
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
        "numerics": numerics.kernel_set(),
        "results": results,  # the results store's files the chapter read or wrote
    }


def run(
    names: list[str] | None,
    profile: str,
    overrides: dict[str, Any],
    force: bool,
    executor: str | None = None,
    out_dir: Path | None = None,
) -> int:
    """Execute chapters (all when ``names`` is empty); return how many were (re)run.

    ``executor`` (``sequential | batched | ray``) is the ``executor`` parameter of every
    chapter that declares one; a chapter named explicitly must declare it. ``out_dir`` writes
    the executed notebooks there instead of into the book (e.g. to fill another results store,
    ``$BACKWARD_RESULTS``, without touching what the book publishes).
    """
    known = chapters()
    bad = [n for n in names or [] if n not in known]
    if bad:
        raise ValueError(f"chapter: unknown chapter(s) {bad}; known: {sorted(known)}")
    if executor is not None and executor not in EXECUTORS:
        raise ValueError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    # every chapter's parameters are checked before any chapter runs
    todo = {}
    for name in names or sorted(known):
        extra = {}
        if executor is not None:
            if "executor" in declared(known[name]):
                extra = {"executor": executor}
            elif names:
                raise ValueError(
                    f"--executor: chapter {name} has no executor parameter (it trains no network)"
                )
        own = {**extra, **overrides}
        todo[name] = (parameters(name, profile, own), own)
    numerics.pin()  # inherited by every kernel papermill starts
    url = repository()  # checked before any chapter runs
    with _environment(QUIET):
        return _execute(todo, known, url, force, out_dir)


def _execute(todo: dict, known: dict, url: str | None, force: bool, out_dir: Path | None) -> int:
    import nbformat
    import papermill

    count = 0
    for name, (params, own) in todo.items():
        src, out = known[name], output_path(known[name])
        if out_dir is not None:
            out = Path(out_dir) / out.relative_to(BOOK)
        key = stamp(src, params)
        if not force and (stored(out) or {}).get("stamp") == key:
            print(f"{name}: current ({key}), not re-run")
            continue
        print(f"{name}: executing with {params} ({numerics.kernel_set()} numerics)", flush=True)
        nb = notebook(src)
        nb.cells.insert(1, setup_cell(url))
        nb.metadata["kernelspec"] = KERNEL
        with tempfile.TemporaryDirectory() as tmp:
            tmp_in, tmp_out = Path(tmp) / "in.ipynb", Path(tmp) / "out.ipynb"
            used = Path(tmp) / "used.txt"
            used.touch()
            nbformat.write(nb, tmp_in)
            t0 = time.perf_counter()
            os.environ[USED] = str(used)  # the kernel's stores list their keys there
            try:
                papermill.execute_notebook(
                    str(tmp_in),
                    str(tmp_out),
                    parameters=params,
                    kernel_name="python3",
                    cwd=str(ROOT),
                    progress_bar=False,
                    log_output=False,
                )
            finally:
                del os.environ[USED]
            seconds = time.perf_counter() - t0
            done = nbformat.read(tmp_out, as_version=4)
            results = sorted(set(used.read_text().split()))
        out.parent.mkdir(parents=True, exist_ok=True)
        _finish(done, params, seconds, key, out, own, results)
        nbformat.write(done, out)
        print(f"{name}: wrote {out} in {seconds:.1f} s", flush=True)
        count += 1
    return count


def check(profile: str = "book") -> list[str]:
    """Problems that make the published book stale: one line per chapter, empty when current."""
    problems = []
    listed = set(toc())
    for name, src in chapters().items():
        out = output_path(src)
        have = stored(out)
        if have is None:
            problems.append(f"{name}: {out.relative_to(ROOT)} is missing or was not run by the pipeline")
        elif have.get("stamp") != stamp(src, parameters(name, profile)):
            problems.append(f"{name}: stale (source, parameters, library or requirements changed)")
        if str(out.relative_to(ROOT).with_suffix("")) not in listed:
            problems.append(f"{name}: not listed in _toc.yml, so not published")
    return problems


# Buttons and launchers that need the repository: left out when the book has none.
_NEEDS_REPOSITORY = ("use_repository_button", "use_issues_button", "use_edit_page_button")


def book_config(url: str | None, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The configuration the book is rendered with: ``_config.yml`` with ``repository.url`` set
    to ``url``, or, without one, with no repository or launch buttons (Colab opens a notebook
    from its GitHub repository, so there is nothing to launch)."""
    import copy

    if config is None:
        config = yaml.safe_load((ROOT / "_config.yml").read_text()) or {}
    cfg = copy.deepcopy(dict(config))
    repo = dict(cfg.get("repository") or {})
    if url:
        repo["url"] = url
    else:
        repo.pop("url", None)
        cfg["html"] = {**(cfg.get("html") or {}), **dict.fromkeys(_NEEDS_REPOSITORY, False)}
        cfg.pop("launch_buttons", None)
    cfg["repository"] = repo
    return cfg


def _install_problems(url: str | None) -> list[str]:
    """Executed chapters whose install cell installs from somewhere else than ``url``."""
    import nbformat

    wrong: dict[str | None, list[str]] = {}
    for name, src in chapters().items():
        out = output_path(src)
        if out.is_file():
            have = installs_from(nbformat.read(out, as_version=4))
            if have != url:
                wrong.setdefault(have, []).append(name)
    return [
        f"{len(names)} executed chapter(s) install from {have or 'a clone (no URL)'}, while this "
        f"build's repository is {url or 'none'}: {', '.join(sorted(names))}"
        for have, names in wrong.items()
    ]


def build(strict: bool = True) -> None:
    """Write the generated pages (claims, reproduce), then render the book from ``book/``
    into ``_build/html`` (execution off), with the repository of :func:`repository`."""
    from . import pages

    url = repository()  # a placeholder fails here, before anything is written
    print(f"repository: {url}" if url else "repository: none configured; no repository or launch buttons")
    for line in _install_problems(url):
        # their downloaded and Colab copies install from there until the chapters run again
        tag = "::warning::" if os.environ.get("GITHUB_ACTIONS") == "true" else "warning: "  # an annotation
        print(f"{tag}{line} (re-run them: python -m companion run --force)", file=sys.stderr)
    for path in pages.write():
        print(f"wrote {path.relative_to(ROOT)}")
    generated = ROOT / "_build" / "config.yml"
    generated.parent.mkdir(exist_ok=True)
    generated.write_text(
        "# Written by `python -m companion build` from _config.yml; edit that file instead.\n"
        + yaml.safe_dump(book_config(url), sort_keys=False, allow_unicode=True)
    )
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--config", str(generated)]
    if strict:
        cmd += ["--warningiserror", "--keep-going"]
    subprocess.run(cmd, check=True, cwd=ROOT)


_EXPONENT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _value(text: str) -> Any:
    """A ``-p`` value as YAML reads it: "0.5" → 0.5, "[1, 2]" → list, "forward" → str."""

    def number(v: Any) -> Any:
        # YAML 1.1 reads 1e-5 (no dot) as a string; on a command line it means the number
        if isinstance(v, str) and _EXPONENT.fullmatch(v):
            return float(v)
        return [number(x) for x in v] if isinstance(v, list) else v

    return number(yaml.safe_load(text))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m companion", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the chapters")
    p_run = sub.add_parser("run", help="execute chapters into book/")
    p_run.add_argument("chapters", nargs="*")
    p_run.add_argument("--profile", default="book")
    p_run.add_argument("-p", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"))
    p_run.add_argument("--force", action="store_true", help="re-run even when current")
    p_run.add_argument("--executor", choices=EXECUTORS, help="how chapters that train run their chains")
    p_run.add_argument("--out", default=None, help="write the executed notebooks here, not into book/")
    p_check = sub.add_parser("check", help="fail if an executed chapter is missing or stale")
    p_check.add_argument("--profile", default="book")
    p_verify = sub.add_parser("verify", help="check the results store and recompute a sample of it")
    p_verify.add_argument("--all", action="store_true", help="recompute every stored step")
    p_verify.add_argument("--seed", type=int, default=0, help="seed of the sample")
    p_verify.add_argument("--root", default=None, help="the store (default: results/)")
    p_verify.add_argument(
        "--strict",
        action="store_true",
        help="later steps must match too (on the machine that wrote the store)",
    )
    p_robust = sub.add_parser(
        "robust", help="re-execute chapters on other kernels and record whether any verdict flips"
    )
    p_robust.add_argument("chapters", nargs="*", help="default: every chapter")
    p_robust.add_argument("--executor", choices=EXECUTORS, help="how chapters that train run their chains")
    p_robust.add_argument("--store", default="results-reference", help="their results store (resumable)")
    p_robust.add_argument("--out", default="_build/robust", help="where the re-executed chapters go")
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
            run(args.chapters, args.profile, overrides, args.force, args.executor, args.out)
        elif args.command == "check":
            problems = check(args.profile)
            for line in problems:
                print(line)
            if problems:
                print("run `python -m companion run` (or `make book`) to refresh them")
                return 1
            print(f"{len(chapters())} chapters current")
        elif args.command == "verify":
            from .verify import summary, verify

            report = verify(args.root, seed=args.seed, everything=args.all, strict=args.strict)
            print(summary(report))
            return 0 if report.ok else 1
        elif args.command == "robust":
            from .robustness import run as robust
            from .robustness import summary as robust_summary

            entries = robust(
                args.chapters or list(chapters()), args.executor, Path(args.store), Path(args.out)
            )
            print(robust_summary(entries))
            return 1 if any(e["flipped"] for e in entries.values()) else 0
        else:
            build(strict=not args.no_strict)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
