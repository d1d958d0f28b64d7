"""What the rendered book shows: the repository it links to (one place, checked), code
without tool markers and outputs without build debris (companion.book_html)."""

from __future__ import annotations

import json

import pytest
import yaml

from companion import book_html, chapters, pipeline

REAL = "https://github.com/someone/iteration-book"
PLACEHOLDER = "https://github.com/backward-lib/iteration-composition"


def _config() -> dict:
    return yaml.safe_load((chapters.ROOT / "_config.yml").read_text())


def test_the_config_names_no_repository_and_renders_through_the_extension():
    cfg = _config()
    assert "url" not in (cfg.get("repository") or {})  # the build supplies it, or none
    assert "companion.book_html" in cfg["sphinx"]["extra_extensions"]
    assert cfg["sphinx"]["config"]["nb_output_stderr"] == "remove-warn"


@pytest.mark.parametrize(
    ("remote", "url"),
    [
        ("https://github.com/someone/iteration-book.git", REAL),
        ("https://github.com/someone/iteration-book", REAL),
        ("git@github.com:someone/iteration-book.git", REAL),
        ("ssh://git@github.com/someone/iteration-book", REAL),
        ("https://x-access-token:secret@github.com/someone/iteration-book.git", REAL),  # no token
        ("https://gitlab.com/someone/iteration-book.git", None),  # Colab opens GitHub only
        ("/srv/git/book.git", None),
        (None, None),
    ],
)
def test_repository_from_the_git_remote(remote, url):
    assert pipeline.repository({}, environ={}, origin=remote) == url


def test_repository_from_the_environment_first():
    env = {pipeline.REPOSITORY_ENV: REAL + ".git"}
    assert pipeline.repository({}, environ=env, origin="https://github.com/other/repo") == REAL
    # set but empty: explicitly no repository, whatever the remote
    assert pipeline.repository({}, environ={pipeline.REPOSITORY_ENV: ""}, origin=REAL) is None
    cfg = {"repository": {"url": REAL}}
    assert pipeline.repository(cfg, environ={}, origin="https://github.com/other/repo") == REAL


@pytest.mark.parametrize("where", ["environment", "config"])
def test_a_placeholder_or_a_non_github_url_fails(where):
    def resolve(url: str) -> str | None:
        if where == "environment":
            return pipeline.repository({}, environ={pipeline.REPOSITORY_ENV: url}, origin=None)
        return pipeline.repository({"repository": {"url": url}}, environ={}, origin=None)

    with pytest.raises(ValueError, match="placeholder"):
        resolve(PLACEHOLDER)
    with pytest.raises(ValueError, match="placeholder"):
        resolve(PLACEHOLDER + ".git/")
    with pytest.raises(ValueError, match="not a GitHub repository"):
        resolve("https://example.org/book")


def test_book_config_with_and_without_a_repository():
    base = _config()
    with_url = pipeline.book_config(REAL, base)
    assert with_url["repository"]["url"] == REAL
    assert with_url["launch_buttons"]["colab_url"]
    assert with_url["html"]["use_repository_button"] is True
    without = pipeline.book_config(None, base)
    assert "url" not in without["repository"] and "launch_buttons" not in without
    assert not any(without["html"][k] for k in ("use_repository_button", "use_issues_button"))
    assert without["html"]["use_download_button"] is True  # what needs no repository stays
    assert base == _config()  # the file's configuration is not edited


def _fake_build(monkeypatch, env: str) -> list[list[str]]:
    import subprocess

    from companion import pages

    calls: list[list[str]] = []
    monkeypatch.setenv(pipeline.REPOSITORY_ENV, env)
    monkeypatch.setattr(pages, "write", lambda: [])
    monkeypatch.setattr(subprocess, "run", lambda cmd, check, cwd: calls.append(cmd))
    return calls


def test_build_fails_on_a_placeholder_before_rendering(monkeypatch, capsys):
    calls = _fake_build(monkeypatch, PLACEHOLDER)
    assert pipeline.main(["build"]) == 2
    assert "placeholder" in capsys.readouterr().err and calls == []


@pytest.mark.parametrize("url", [REAL, ""])
def test_build_renders_with_the_generated_config(monkeypatch, url):
    calls = _fake_build(monkeypatch, url)
    monkeypatch.setattr(pipeline, "_install_problems", lambda url: [])
    assert pipeline.main(["build"]) == 0
    cmd = calls[-1]
    generated = yaml.safe_load(open(cmd[cmd.index("--config") + 1]).read())
    assert generated["repository"].get("url") == (url or None)
    assert ("launch_buttons" in generated) == bool(url)
    assert "--warningiserror" in cmd


def test_setup_cell_without_a_repository_says_to_use_a_clone(monkeypatch):
    import importlib.util

    cell = pipeline.setup_cell(None)
    assert pipeline.installs_from(_nb(cell)) is None
    assert "git+" not in cell.source
    exec(cell.source, {})  # installed here: nothing to do
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="clone"):
        exec(cell.source, {})
    assert pipeline.installs_from(_nb(pipeline.setup_cell(REAL))) == REAL


def _nb(*cells):
    import nbformat

    return nbformat.v4.new_notebook(cells=list(cells))


def test_install_problems_name_the_chapters_that_install_elsewhere(monkeypatch, tmp_path):
    import nbformat

    fine, stale = tmp_path / "fine.ipynb", tmp_path / "stale.ipynb"
    nbformat.write(_nb(pipeline.setup_cell(REAL)), fine)
    nbformat.write(_nb(pipeline.setup_cell(PLACEHOLDER)), stale)
    monkeypatch.setattr(pipeline, "chapters", lambda: {"fine": fine, "stale": stale})
    monkeypatch.setattr(pipeline, "output_path", lambda src: src)
    (line,) = pipeline._install_problems(REAL)
    assert "1 executed chapter(s)" in line and "stale" in line and "fine" not in line.split(": ")[-1]
    assert len(pipeline._install_problems(None)) == 2


def test_chapters_run_quietly_and_the_environment_is_restored(monkeypatch):
    import os

    import papermill

    seen = []

    def fake(src, dst, parameters, **kw):
        seen.append({k: os.environ.get(k) for k in pipeline.QUIET})
        raise RuntimeError("stop")

    monkeypatch.setattr(papermill, "execute_notebook", fake)
    monkeypatch.setattr(pipeline, "stored", lambda out: None)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setenv(pipeline.REPOSITORY_ENV, "")
    with pytest.raises(RuntimeError, match="stop"):
        pipeline.run(["constant_maps_and_quadratic"], "book", {}, force=True)
    assert seen == [pipeline.QUIET]
    assert "TQDM_DISABLE" not in os.environ


BAR = "seed 0: 100%|██████████| 54100/54100 [00:12<00:00, 2160.63step/s]\n"


@pytest.mark.parametrize(
    "line",
    [
        BAR,
        "backward:  40%|####      | 4/10 [00:01<00:02]\n",
        "USDT:2026-12-02 05:00:59 22947:22947 SyncActivityProfilerHandler.cpp:39] profiler_start\n",
        "ERROR:2026-12-02 05:01:00 22947:22947 DeviceProperties.cpp:56] gpuGetDeviceCount failed\n",
        "2026-12-02 05:00:59,123\tINFO worker.py:1841 -- Started a local Ray instance.\n",
        "(pid=4242) loading batch 3\n",
        "(Chain pid=4242, ip=10.0.0.2) step 5\n",
        "(raylet) [2026-12-02] spilled 3 objects\n",
        "2026-12-03 06:52:46,103\tWARNING authentication_token_setup.py:85 -- Token authentication is "
        "enabled for this Ray cluster.\n",
        "/x/.venv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning: IProgress not found. Please "
        "update jupyter and ipywidgets.\n",
        "  from .autonotebook import tqdm as notebook_tqdm\n",
    ],
)
def test_debris_lines(line):
    assert book_html.is_debris(line)
    assert book_html.clean_stream("kept\n" + line + "also kept") == "kept\nalso kept"


@pytest.mark.parametrize(
    "line",
    [
        "PASS  [Example 2.4] forward jumps at about half the steps  (|measured − 0.5| ≤ 0.082)",
        "100% of the steps | and a pipe",
        "(this run) python -m companion run fig3_reset",
        "ERROR: the chapter's own message",
        "2026-12-03 06:52:46,103\tWARNING worker.py:85 -- a worker died",
    ],
)
def test_what_a_chapter_prints_is_kept(line):
    assert not book_html.is_debris(line)


def test_markers_leave_the_rendered_source_only():
    src = (
        "# NBVAL_CHECK_OUTPUT\n"
        "x = [1,  2]  # fmt: skip\n"
        "  # fmt: off\n"
        "y = 'fmt: skip is a phrase'\n"
        "# fmt: on\n"
        "print(x)  # a comment stays"
    )
    assert (
        book_html.clean_source(src) == "x = [1,  2]\ny = 'fmt: skip is a phrase'\nprint(x)  # a comment stays"
    )


def test_clean_notebook_drops_emptied_streams_and_keeps_the_rest():
    nb = {
        "cells": [
            {"cell_type": "markdown", "source": "# NBVAL_CHECK_OUTPUT stays in prose"},
            {
                "cell_type": "code",
                "source": ["# NBVAL_CHECK_OUTPUT\n", "f()"],
                "outputs": [
                    {"output_type": "stream", "name": "stderr", "text": [BAR, BAR]},
                    {"output_type": "stream", "name": "stdout", "text": "PASS  [x] ok\n"},
                    {"output_type": "display_data", "data": {"text/plain": BAR}, "metadata": {}},
                ],
            },
        ]
    }
    out = book_html.clean_notebook(nb)
    assert out["cells"][0]["source"] == "# NBVAL_CHECK_OUTPUT stays in prose"
    code = out["cells"][1]
    assert code["source"] == "f()"
    assert [o["output_type"] for o in code["outputs"]] == ["stream", "display_data"]
    assert code["outputs"][0]["text"] == "PASS  [x] ok\n"


def _app(suffix: str):
    """As much of a Sphinx application as the extension's handler uses."""
    from types import SimpleNamespace

    env = SimpleNamespace(doc2path=lambda docname: chapters.ROOT / f"{docname}{suffix}")
    return SimpleNamespace(env=env)


def test_committed_chapters_render_clean_and_keep_their_markers():
    """The committed notebooks keep what nbval and ruff read; what Sphinx gets has none of it,
    and no stderr left (the build would fail on it: nb_output_stderr remove-warn)."""

    app = _app(".ipynb")

    marked = 0
    for src in chapters.chapters().values():
        path = pipeline.output_path(src)
        text = path.read_text()
        marked += "NBVAL_CHECK_OUTPUT" in text
        source = [text]
        book_html._source_read(app, str(path.relative_to(chapters.ROOT).with_suffix("")), source)
        assert source[0] != text or "NBVAL_CHECK_OUTPUT" not in text
        nb = json.loads(source[0])
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            assert "NBVAL_" not in cell["source"] and "fmt: skip" not in cell["source"], path
            for out in cell.get("outputs", []):
                assert out.get("name") != "stderr", (path, out)
                if out["output_type"] == "stream":
                    assert not any(map(book_html.is_debris, out["text"].splitlines())), path
    assert marked == len(chapters.chapters())  # every chapter's claim cell, for nbval


def test_markdown_pages_are_left_alone():
    app = _app(".md")

    source = ["# NBVAL_CHECK_OUTPUT in a code block of a page"]
    book_html._source_read(app, "book/intro", source)
    assert source == ["# NBVAL_CHECK_OUTPUT in a code block of a page"]


def test_outputs_in_columns_keep_their_lines():
    profiler = (
        "------------------  ------------  ------------\n"
        "              Name    Self CPU %      Self CPU\n"
        "------------------  ------------  ------------\n"
    )
    frame = "      gap  residual  flipped\n2   2.001     2.999    2.000\n4   1.999     3.001    2.000\n"
    verdicts = "PASS  [A.1] step 1: forward and backward equal  (measured ≤ 0)\nAGREES  [A.1] final  (≤ 2)\n"
    assert book_html.is_tabular(profiler) and book_html.is_tabular(frame)
    assert not book_html.is_tabular(verdicts) and not book_html.is_tabular("one   line   only\n")


def test_doctree_marks_tabular_outputs_only():
    from docutils import nodes

    doc = nodes.section()
    table = nodes.literal_block("", "a    b    c\n1    2    3\n", classes=["output", "stream"])
    prose = nodes.literal_block("", "PASS  [x] ok\n", classes=["output", "stream"])
    code = nodes.literal_block("", "x    = 1    # y\nz    = 2    # w\n", classes=["cell_input"])
    doc += [table, prose, code]
    book_html._doctree_read(None, doc)
    assert book_html.TABULAR in table["classes"]
    assert book_html.TABULAR not in prose["classes"] and book_html.TABULAR not in code["classes"]
