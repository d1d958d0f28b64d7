"""What the rendered book shows of an executed chapter: its code without test markers, its
outputs without build debris.

A Sphinx extension (``_config.yml``: ``sphinx: extra_extensions``). On ``source-read`` it
edits the notebook text Sphinx hands to myst-nb, never the file: nbval still reads
``# NBVAL_CHECK_OUTPUT`` from the committed notebook, ruff still honours ``# fmt: skip`` in
the source, and the download button serves the notebook as committed.

* code cells lose their tool markers: whole-line ``# NBVAL_…`` and ``# fmt: skip|off|on``
  comments, and a trailing ``  # fmt: skip``;
* stream outputs lose debris lines: tqdm progress bars, Ray's driver log and forwarded worker
  lines, and the torch profiler's (Kineto's) log lines. A stream left empty is dropped;
* on ``doctree-read``, a text output laid out in columns gets the class ``tabular``, so that
  it keeps its lines (and scrolls) where other outputs wrap (``_static/book.css``).

The pipeline cleans fresh outputs with the same :func:`clean_stream` (``_clean_stream``) and
keeps most debris from being printed at all (``TQDM_DISABLE``, Ray's and Kineto's log levels);
this extension is for notebooks executed before that.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["TABULAR", "clean_notebook", "clean_source", "clean_stream", "is_debris", "is_tabular", "setup"]

# a marker that is the whole line: nbval's cell markers, ruff/black's formatter switches
_MARKER_LINE = re.compile(r"^\s*#\s*(NBVAL_[A-Z_]+|fmt:\s*(skip|off|on))\s*$")
# ruff/black's per-line marker at the end of a statement
_TRAILING_SKIP = re.compile(r"\s*#\s*fmt:\s*skip\s*$")

_DEBRIS = [
    # tqdm: "seed 0: 100%|██████████| 54100/54100 [00:12<00:00, …]" (unicode or ascii bar)
    re.compile(r"\d+%\|[█▏▎▍▌▋▊▉# 0-9]*\|"),
    # Kineto (torch.profiler): "USDT:2026-12-02 05:00:59 22947:22947 File.cpp:39] profiler_start"
    re.compile(r"^(VERBOSE|INFO|WARNING|STAGE|ERROR|USDT):\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \d+:\d+ \S+:\d+\] "),
    # Ray's driver logger (ray_constants.LOGGER_FORMAT), its INFO and DEBUG lines
    re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+(INFO|DEBUG) \S+:\d+ -- "),
    # lines Ray forwards from its workers and raylet: "(pid=123) …", "(Worker pid=1, ip=…) …"
    re.compile(r"^\((raylet|[\w.]+ pid=\d+[^)]*|pid=\d+[^)]*)\) "),
    re.compile(r"\[repeated \d+x across cluster\]"),
    # Ray's start-up notice about its default token authentication (a WARNING only by level)
    re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+WARNING authentication_token_setup\.py:\d+ -- "),
    # tqdm.auto's notice that ipywidgets is absent (the bars are disabled anyway), and its source line
    re.compile(r"TqdmWarning: IProgress not found"),
    re.compile(r"^\s*from \.autonotebook import tqdm as notebook_tqdm\s*$"),
]


def is_debris(line: str) -> bool:
    """Whether an output line is build debris rather than something the chapter printed."""
    return any(p.search(line) for p in _DEBRIS)


def clean_stream(text: str) -> str:
    """A stream's text without debris lines (the rest untouched, line ends kept)."""
    return "".join(line for line in text.splitlines(keepends=True) if not is_debris(line))


def clean_source(source: str) -> str:
    """A code cell's source as the reader sees it: no nbval or formatter markers."""
    lines = [_TRAILING_SKIP.sub("", line) for line in source.split("\n") if not _MARKER_LINE.match(line)]
    return "\n".join(lines)


def _text(value: str | list[str]) -> str:
    return "".join(value) if isinstance(value, list) else value


def clean_notebook(nb: dict[str, Any]) -> dict[str, Any]:
    """The notebook (nbformat 4 JSON, edited in place and returned) as the book renders it."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        cell["source"] = clean_source(_text(cell.get("source", "")))
        outputs = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                out["text"] = clean_stream(_text(out.get("text", "")))
                if not out["text"].strip():
                    continue
            outputs.append(out)
        cell["outputs"] = outputs
    return nb


# a column rule ("-----  -----") or columns aligned by runs of spaces on several lines
_RULE = re.compile(r"^\s*[-=]{3,}(\s+[-=]{3,})+\s*$", re.M)
_ALIGNED = re.compile(r"\S {3,}\S.* {3,}\S")
TABULAR = "tabular"  # the class of an output that keeps its line layout (book.css)


def is_tabular(text: str) -> bool:
    """Whether a text output is laid out in columns (a table printed as text): it keeps its
    lines and scrolls; other outputs wrap like the code above them."""
    return bool(_RULE.search(text)) or sum(bool(_ALIGNED.search(x)) for x in text.splitlines()) >= 2


def _doctree_read(app: Any, doctree: Any) -> None:
    from docutils import nodes

    for block in doctree.findall(nodes.literal_block):
        if "output" in block["classes"] and is_tabular(block.astext()):
            block["classes"].append(TABULAR)


def _source_read(app: Any, docname: str, source: list[str]) -> None:
    if not str(app.env.doc2path(docname)).endswith(".ipynb"):
        return
    nb = clean_notebook(json.loads(source[0]))
    source[0] = json.dumps(nb, ensure_ascii=False)


def setup(app: Any) -> dict[str, Any]:
    import hashlib
    from pathlib import Path

    app.connect("source-read", _source_read)
    app.connect("doctree-read", _doctree_read)
    # Sphinx re-reads every page when an extension's env_version changes: this file's hash, so
    # that an incremental build never keeps pages cleaned by an older version of it
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": int(digest[:12], 16)}
