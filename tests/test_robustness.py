"""The round-off robustness record: claims compared one by one, stale entries not counted."""

from __future__ import annotations

import json

import nbformat
import pytest

from companion import pages, robustness
from companion.claims import METADATA_KEY


def _c(statement, verdict, measured):
    return {"source": "Fig. 2", "statement": statement, "verdict": verdict, "measured": measured}


def test_compare_finds_flips_changed_values_and_claims_made_once():
    published = [
        _c("a", "AGREES", 1.5),
        _c("b", "INCONCLUSIVE", 1.1),
        _c("c", "PASS", 0.0),
        _c("d", "AGREES", 2.0),
    ]
    rerun = [
        _c("a", "AGREES", 1.5000001),
        _c("b", "DISAGREES", 0.9),
        _c("c", "PASS", 0.0),
        _c("e", "AGREES", 2.0),
    ]
    r = robustness.compare(published, rerun)
    assert r["claims"] == 3 and r["changed"] == 2
    assert r["flipped"] == [{"claim": "[Fig. 2] b", "published": "INCONCLUSIVE", "rerun": "DISAGREES"}]
    assert r["missing"] == ["[Fig. 2] d", "[Fig. 2] e"]


def _notebook(path, claims, numerics, stamp):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("claims.check(results)")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"text/plain": "x"}, metadata={METADATA_KEY: claims})
    ]
    nb.cells = [cell]
    nb.metadata["backward_book"] = {"stamp": stamp, "numerics": numerics}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def test_update_records_the_published_stamp_and_refuses_a_pinned_rerun(tmp_path, monkeypatch):
    book, rerun = tmp_path / "book", tmp_path / "rerun"
    src = tmp_path / "notebooks" / "experiments" / "fig2_resnet18.py"
    monkeypatch.setattr(robustness.chapters, "BOOK", book)
    monkeypatch.setattr(robustness.chapters, "chapters", lambda: {"fig2_resnet18": src})
    monkeypatch.setattr(
        robustness.chapters, "output_path", lambda s: book / "experiments" / "fig2_resnet18.ipynb"
    )
    _notebook(book / "experiments" / "fig2_resnet18.ipynb", [_c("a", "AGREES", 1.5)], "pinned", "s1")
    _notebook(rerun / "experiments" / "fig2_resnet18.ipynb", [_c("a", "INCONCLUSIVE", 1.2)], "pinned", "s2")
    record = tmp_path / "robustness.json"
    with pytest.raises(ValueError, match="not executed under 'reference'"):
        robustness.update(["fig2_resnet18"], rerun, record)
    _notebook(
        rerun / "experiments" / "fig2_resnet18.ipynb", [_c("a", "INCONCLUSIVE", 1.2)], "reference", "s2"
    )
    entry = robustness.update(["fig2_resnet18"], rerun, record)["fig2_resnet18"]
    assert entry["stamp"] == "s1" and entry["changed"] == 1 and len(entry["flipped"]) == 1
    assert json.loads(record.read_text())["fig2_resnet18"] == entry


def test_reproduce_section_counts_current_entries_only(tmp_path):
    record = tmp_path / "robustness.json"
    entry = {"stamp": "s1", "kernel_set": "reference", "date": "2026-12-03", "claims": 6, "changed": 5,
             "flipped": [], "missing": []}  # fmt: skip
    record.write_text(json.dumps({"fig2_resnet18": entry, "a5_adamw": {**entry, "stamp": "old"}}))

    def chapter(name, stamp):
        return pages.Chapter(
            name, "experiments", f"experiments/{name}", f"Title {name}", {"stamp": stamp}, {}, [], False
        )

    text = "\n".join(
        pages.robustness_section([chapter("fig2_resnet18", "s1"), chapter("a5_adamw", "new")], record)
    )
    assert "**1 of 2 chapters checked, 0 with a flipped verdict.**" in text
    assert "| Title fig2_resnet18 | 6 | 5 | 0 | 2026-12-03 |" in text
    assert "Not checked at the published execution: Title a5_adamw." in text
    empty = "\n".join(pages.robustness_section([chapter("fig2_resnet18", "s1")], tmp_path / "none.json"))
    assert "No chapter has a current check." in empty


def test_an_unknown_chapter_stops_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="chapter: unknown chapter"):
        robustness.run(["no_such_chapter"], None, tmp_path / "store", tmp_path / "out")
    assert not (tmp_path / "store").exists() and not (tmp_path / "out").exists()
