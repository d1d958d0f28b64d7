"""The reader's summary: counts, the forest plot, claims.json/CSV, the landing page's first
screen and "What the book finds", all from claims; and the paper-scale cost."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest

from backward_lib import describe
from backward_lib.experiment import Experiment
from companion import cost, pages, summary


def _finding(source, statement, mean, low, high, verdict, **kw):
    return {"source": source, "statement": statement, "kind": "finding", "measured": mean, "low": low,
            "high": high, "target": 1.0, "relation": "above", "level": 0.95, "passed": verdict == "AGREES",
            "verdict": verdict, "criterion": "two-sided 95% interval over seeds > 1", **kw}  # fmt: skip


def _check(statement, passed=True):
    return {"source": "Thm", "statement": statement, "kind": "check", "measured": 0.0, "target": 0.0,
            "relation": "close", "passed": passed, "verdict": "PASS" if passed else "FAIL",
            "criterion": "|measured − 0| ≤ 0.1"}  # fmt: skip


def _chapter(name, part, claims, card=None):
    return pages.Chapter(name, part, f"{part}/{name}", f"Figure {name}: t", {"profile": "book"}, card or {},
                         claims, False)  # fmt: skip


def _book():
    after = "after the reset: {}, forward/backward > 1 (5 seeds)"
    card = {
        "model": "resnet18, width ×0.125 (1 parameters)",
        "data": "Fashion-MNIST resized to 3×32×32 (substituted: cifar10 not available here); 60000",
        "training": "sgd, 300 steps",
        "seeds": "0, 1, 2",
    }
    fig3 = _chapter("fig3_reset", "experiments", [
        _finding("Fig. 3", after.format("pred_change"), 15.0, 12.0, 18.0, "AGREES"),
        _finding("Fig. 3", after.format("increment"), 1.0, 0.9, 1.1, "INCONCLUSIVE"),
        _finding("Fig. 3", "second half: increment, forward/backward > 1", 0.3, 0.2, 0.4, "DISAGREES"),
        _check("engine invariant"),
    ], card=card)  # fmt: skip
    a6 = _chapter("a6_delayed", "experiments", [
        _finding("A.6", "after the switch: pred_change, forward/backward > 1 (5 seeds)", 15.0, 12.0, 18.0,
                 "AGREES", same_as="Fig. 3"),
        _finding("A.6", "second half: test_accuracy jitter, forward/backward > 1 (1 seed)", 2.0, math.nan,
                 math.nan, "INCONCLUSIVE", counted=False),
    ])  # fmt: skip
    return [fig3, a6]


def test_counts_count_repeats_and_non_evidence_apart():
    k = summary.counts(_book())
    assert (k.findings, k.agree, k.inconclusive, k.disagree, k.repeats, k.idle) == (3, 1, 1, 1, 1, 1)
    assert (k.checks, k.hold) == (1, 1)
    assert k.sentence().startswith(
        "**3 findings: 1 agree with the paper, 1 are inconclusive and 1 disagree**"
    )


def test_value_shows_the_interval_or_says_there_is_none():
    b = _book()
    assert summary.value(b[0].claims[0]) == "15 [12, 18]"
    assert summary.value(b[1].claims[1]) == "2 (one seed: no interval)"
    assert summary.value(b[0].claims[3]) == "0"


def test_json_and_csv_hold_every_claim_with_nan_as_null():
    b = _book()
    body = json.loads(summary.to_json(b))
    assert len(body["claims"]) == 6 and body["counts"]["findings"] == 3
    one_seed = next(r for r in body["claims"] if "1 seed" in r["statement"])
    assert one_seed["low"] is None and one_seed["counted"] is False
    assert next(r for r in body["claims"] if r["same_as"])["counted"] is False
    assert body["claims"][0]["page"] == "experiments/fig3_reset.html"
    rows = list(csv.DictReader(io.StringIO(summary.to_csv(b))))
    assert len(rows) == 6 and rows[0]["verdict"] == "agrees" and rows[2]["verdict"] == "disagrees"


def test_forest_plots_counted_ratio_findings_only(tmp_path):
    path = tmp_path / "forest.svg"
    assert summary.forest(_book(), path) == 3  # the repeat and the non-evidence are left out
    svg = path.read_text()
    assert "<svg" in svg and "../experiments/fig3_reset.html#claims" in svg  # labels link to the chapter
    summary.forest(_book(), tmp_path / "again.svg")
    assert (tmp_path / "again.svg").read_text() == svg  # no timestamp: same claims, same file
    assert "3 forward/backward ratios" in summary.forest_alt(_book())
    with pytest.raises(ValueError, match="no counted ratio findings"):
        summary.forest([_chapter("x", "theory", [_check("c")])], tmp_path / "none.svg")


def test_labels_are_short_and_human():
    assert summary.label(
        "Fig. 3", "after the reset: logit_change, forward/backward (reset to θ̃_r) > 1 (5 seeds)"
    ) == ("Fig. 3 · after the reset · logit change (θ̃_r)")
    long = summary.label(
        "A.2", "backward reaches 95% of forward's final test accuracy sooner (steps forward/b > 1)"
    )
    assert long.startswith("A.2 · backward reaches") and len(long) < 60


def test_glance_names_substituted_data_and_scale():
    text = summary.glance(_book())
    assert (
        "CIFAR-10 cannot be downloaded" in text
        and "{doc}`Figure fig3_reset <experiments/fig3_reset>`" in text
    )
    assert "| ResNet-18 at width 1/8 | Fashion-MNIST at 3×32×32, for CIFAR-10 | 300 | 3 |" in text
    assert "**3 findings" in text and "```{figure} figures/forest.svg" in text


def _theme(supports, measures=("pred_change",)):
    return summary.Theme("T", "A sentence.", ("fig3_reset", "a6_delayed"), measures, supports)


def test_data_words_drop_nested_asides():
    """The landing table's data column: a synthetic data set's aside, parentheses nested."""
    card = "100 points (x uniform on [−1, 1], y = f(x), no noise) per function; test loss on 1000"
    assert summary._data_words(card) == "100 points per function"
    assert summary._data_words("fashion_mnist") == "Fashion-MNIST"
    assert summary._data_words("cifar10 (substituted: cifar10 not available)").endswith("for CIFAR-10")


def test_findings_page_lists_evidence_and_refuses_a_contradicted_sentence():
    text = summary.findings_page(_book(), [_theme(("agrees",))])
    assert "*Evidence:* 1 of 1 findings support this" in text  # the repeat in A.6 is not evidence again
    assert "{ref}`Fig. 3 <claims-fig3_reset>`" in text and "{bdg-success}`agrees`" in text
    with pytest.raises(ValueError, match="supported by 0 of its 1"):
        summary.findings_page(_book(), [_theme(("disagrees",))])
    with pytest.raises(ValueError, match="selects no counted finding"):
        summary.findings_page(_book(), [_theme(("agrees",), ("no such measure",))])


def test_the_book_themes_parse_and_hold_for_the_executed_book():
    """Against the committed book: every sentence of book/findings.yaml is borne out."""
    text = summary.findings_page(pages.executed())
    assert text.count("*Evidence:*") == len(summary.themes())


def test_themes_reject_unknown_chapters(tmp_path):
    spec = tmp_path / "f.yaml"
    spec.write_text("themes:\n  - {title: T, text: x, chapters: [nope], measures: [a], supports: [agrees]}\n")
    with pytest.raises(ValueError, match="unknown chapters"):
        summary.themes(spec)
    spec.write_text(
        "themes:\n  - {title: T, text: x, chapters: [fig3_reset], measures: [a], supports: [yes]}\n"
    )
    with pytest.raises(ValueError, match="supports must be verdicts"):
        summary.themes(spec)


def test_flops_scale_with_width_batch_and_applications():
    small = Experiment(width=0.1, depth=1, steps=12, orders=("forward", "backward"), record_every=4,
                       forward_every=4, train_eval=10, test_eval=20)  # fmt: skip
    f = describe.flops(small)
    w = describe.workload(small)
    assert f["train"] > 2 * f["evaluate"] > 0  # a backward pass costs about two forward passes
    assert f["total"] == pytest.approx(
        f["train"] * small.batch_size * w["applications"] + f["evaluate"] * w["evaluated"]
    )
    wide = describe.flops(Experiment(**{**small.__dict__, "width": 0.4}))
    assert wide["train"] > 3 * f["train"]


def test_paper_cost_is_stated_as_an_extrapolation():
    c = cost.paper_cost("fig2_resnet18")
    assert c is not None and c.seeds == 5 and not c.measured
    assert c.gpu_hours == pytest.approx(c.flops / cost.ASSUMED_RATE / 3600)
    assert "not measured" in c.text() and "PFLOP" in c.text()
    assert cost.paper_cost("constant_maps_and_quadratic") is None
    row = cost.paper_row("fig2_resnet18")
    assert "--profile paper --executor ray" in row and "RAY_ADDRESS=auto" in row
    assert "on a CPU" in cost.paper_row("constant_maps_and_quadratic")


def test_the_pipeline_labels_each_chapter_claims_section_once():
    import nbformat

    from companion import pipeline

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# T\n\n## Claimsy"),
        nbformat.v4.new_markdown_cell("x\n## Claims\n"),
    ]
    pipeline.label_claims(nb, "fig3_reset")
    pipeline.label_claims(nb, "fig3_reset")  # idempotent: a re-executed chapter keeps one label
    assert nb.cells[0].source == "# T\n\n## Claimsy"
    assert nb.cells[1].source == "x\n(claims-fig3_reset)=\n## Claims\n"
    assert pipeline.claims_label("a2_curves") == "claims-a2_curves"


def test_every_executed_chapter_has_a_claims_section_to_link_to():
    """The claims page links every row to its chapter's ``## Claims`` (labelled by the pipeline)."""
    import nbformat

    from companion import chapters

    for name, src in chapters.chapters().items():
        nb = nbformat.read(chapters.output_path(src), as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert f"(claims-{name})=\n## Claims" in text, name
