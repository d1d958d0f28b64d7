"""The pipeline: parameters, stamps, variants, output tidying."""

from __future__ import annotations

import pytest

from backward_lib import book


def test_chapters_and_variants():
    chapters = book.chapters()
    assert "constant_maps_and_quadratic" in chapters
    variant = chapters["a3_vgg19"]
    assert variant.suffix == ".yaml"
    nb = book.notebook(variant)
    assert nb.cells[0].source.startswith("# Appendix A.3")
    # a variant's own defaults come before the profile's section
    params = book.parameters("a3_vgg19", "paper")
    assert params["model"] == "vgg19" and params["profile"] == "paper"


def test_parameters_reject_unknown_names():
    with pytest.raises(ValueError, match="unknown parameter"):
        book.parameters("constant_maps_and_quadratic", "book", {"hh": 1})
    with pytest.raises(ValueError, match="profile"):
        book.parameters("constant_maps_and_quadratic", "nope")


def test_stamp_follows_source_parameters_and_used_modules():
    src = book.chapters()["constant_maps_and_quadratic"]
    p = book.parameters("constant_maps_and_quadratic", "book")
    s = book.stamp(src, p)
    assert s == book.stamp(src, dict(p))
    assert s != book.stamp(src, {**p, "seed": 99})
    # which library modules a chapter's stamp follows
    used = book._imports("import backward_lib as bl\nfrom backward_lib import claims, orders\n")
    assert used == {"__init__", "claims", "orders"}
    assert book._imports("from .engine import StepMap\nfrom . import tree\nimport torch\n") == {
        "engine",
        "__init__",
        "tree",
    }
    # a chapter using only orders does not follow experiment.py; one importing it does
    code_small, code_big = "from backward_lib import orders\n", "from backward_lib import experiment\n"
    assert book._library_hash(code_small) != book._library_hash(code_big)


def test_output_tidying():
    assert book._clean_stream("a\r50%\r100%\nnext") == "100%\nnext"
    outs = [
        {"output_type": "stream", "name": "stderr", "text": "\r1%"},
        {"output_type": "stream", "name": "stderr", "text": "\r100%\n"},
        {"output_type": "stream", "name": "stdout", "text": "x"},
    ]
    merged = book._merge_streams(outs)
    assert len(merged) == 2 and merged[0]["text"] == "\r1%\r100%\n"


def test_check_reports_missing_and_stale_chapters(monkeypatch):
    monkeypatch.setattr(book, "_stored_stamp", lambda out: None)
    problems = book.check("book")
    assert len([p for p in problems if "missing" in p]) == len(book.chapters())
    monkeypatch.setattr(book, "_stored_stamp", lambda out: {"stamp": "0" * 16})
    assert len([p for p in book.check("book") if "stale" in p]) == len(book.chapters())
