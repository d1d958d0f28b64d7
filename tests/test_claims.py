"""Claim verdicts and the check cell."""

from __future__ import annotations

import json
import math

import pytest

from companion import claims


@pytest.mark.parametrize(
    ("claim", "passed"),
    [
        (claims.close("s", "x", 1.05, 1.0, 0.1), True),
        (claims.close("s", "x", 0.95, 1.0, 0.1), True),
        (claims.close("s", "x", 1.2, 1.0, 0.1), False),
        (claims.close("s", "x", 0.8, 1.0, 0.1), False),
        (claims.close("s", "x", 1.0, 1.0, 0.0), True),
        (claims.at_most("s", "x", 0.9, 1.0), True),
        (claims.at_most("s", "x", 1.0, 1.0), True),
        (claims.at_most("s", "x", 1.1, 1.0), False),
        (claims.at_most("s", "x", 1.1, 1.0, tol=0.2), True),
        (claims.at_least("s", "x", 1.1, 1.0), True),
        (claims.at_least("s", "x", 0.9, 1.0), False),
        (claims.at_least("s", "x", 0.9, 1.0, tol=0.2), True),
        (claims.at_least("s", "x", -5.0, 1.0, tol=0.2), False),
        (claims.close("s", "x", math.nan, 1.0, 1e9), False),
        (claims.at_most("s", "x", math.nan, 1.0, 1e9), False),
        (claims.at_least("s", "x", math.inf, 1.0), False),
        (claims.at_most("s", "x", -math.inf, 1.0), False),
    ],
)
def test_verdicts(claim, passed):
    assert claim.passed is passed


def test_negative_tolerance_rejected():
    with pytest.raises(ValueError, match="tol"):
        claims.close("s", "x", 1.0, 1.0, -0.1)


def test_check_passes_and_prints(capsys):
    cs = [claims.close("Example 3.1", "variance", 0.5, 0.5, 0.01), claims.at_most("Thm 2.2", "slope", -1, 0)]
    claims.check(cs)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("PASS  [Example 3.1] variance")
    assert out[1].startswith("PASS  [Thm 2.2] slope")
    assert out[-1] == "2 of 2 checks hold."


def test_check_raises_on_failure(capsys):
    cs = [
        claims.close("A", "good", 1.0, 1.0, 0.1),
        claims.at_least("B", "bad", 0.25, 1.0),
    ]
    with pytest.raises(claims.ClaimFailed, match="1 of 2 checks failed") as err:
        claims.check(cs)
    assert "bad" in str(err.value) and "0.25" in str(err.value)
    assert isinstance(err.value, AssertionError)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("PASS  [A] good")
    assert out[1].startswith("FAIL  [B] bad")
    assert not any("checks hold" in line for line in out)


def test_check_lines_do_not_show_measured_values(capsys):
    """Verdict lines are machine-independent: the measured value is not printed."""
    claims.check([claims.close("A", "stmt", 0.123456789, 0.12, 0.01)])
    assert "0.123456789" not in capsys.readouterr().out


def test_check_needs_claims():
    with pytest.raises(ValueError):
        claims.check([])


def test_table():
    t = claims.table([claims.close("A", "a", 1.0, 1.0, 0.1), claims.at_most("B", "b", 2.0, 1.0)])
    assert list(t.columns) == ["statement", "measured", "criterion", "verdict"]
    assert t.index.name == "paper" and t.index.tolist() == ["A", "B"]
    assert t["verdict"].tolist() == ["PASS", "FAIL"]
    assert t["measured"].tolist() == [1.0, 2.0]


def test_findings_report_disagreement_without_raising(capsys):
    cs = [
        claims.close("A", "check", 1.0, 1.0, 0.1),
        claims.finding("Fig. 3", "backward is smoother", 0.8, 1.0, "at_least"),
        claims.finding("Fig. 2", "backward loss lower", 0.5, 1.0, "at_most"),
    ]
    claims.check(cs)  # a disagreeing finding is a result, not an error
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("DISAGREES  [Fig. 3]") and out[2].startswith("AGREES  [Fig. 2]")
    assert out[-1] == "1 of 1 checks hold. Findings: 1 of 2 agree with the paper."
    assert claims.table(cs)["verdict"].tolist() == ["PASS", "DISAGREES", "AGREES"]
    # but a failing check next to findings still raises
    with pytest.raises(claims.ClaimFailed):
        claims.check([*cs, claims.at_most("B", "bound", 2.0, 1.0)])
    with pytest.raises(ValueError, match="relation"):
        claims.finding("A", "x", 1.0, 1.0, "bigger")


def test_check_leaves_structured_claims_in_a_notebook(monkeypatch):
    """In a kernel the summary is a display whose metadata carries every claim (the claims
    page reads it); nbval compares the summary text, not the metadata."""
    import IPython
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append((obj, kw)))
    cs = [claims.close("Ex 1", "a", 1.0, 1.0, 0.1), claims.finding("Fig 2", "b", 3.0, 1.0, "at_most")]
    claims.check(cs)
    ((obj, kw),) = shown
    assert obj == {"text/plain": "1 of 1 checks hold. Findings: 0 of 1 agree with the paper."}
    recs = kw["metadata"][claims.METADATA_KEY]
    assert [r["verdict"] for r in recs] == ["PASS", "DISAGREES"]
    assert recs[1]["measured"] == 3.0 and recs[1]["criterion"] == "measured ≤ 1"
    json.dumps(recs)  # JSON-ready


def test_records_keep_non_finite_measurements_readable():
    (rec,) = claims.records([claims.at_most("A", "s", float("nan"), 1.0)])
    assert rec["measured"] == "nan" and rec["passed"] is False


def test_interval_findings_decide_only_what_the_interval_decides(capsys):
    above = claims.interval("Fig. 2", "ratio > 1", 1.5, 1.1, 1.9, 1.0)
    below = claims.interval("Fig. 2", "ratio > 1", 0.7, 0.5, 0.9, 1.0)
    straddles = claims.interval("Fig. 2", "ratio > 1", 1.4, 0.9, 1.9, 1.0)
    one_seed = claims.interval("Fig. 2", "ratio > 1", 3.0, float("nan"), float("nan"), 1.0)
    assert [c.verdict for c in (above, below, straddles, one_seed)] == [
        "AGREES", "DISAGREES", "INCONCLUSIVE", "INCONCLUSIVE"]  # fmt: skip
    assert [c.passed for c in (above, below, straddles)] == [True, False, False]
    # "below" reads the other way round
    assert claims.interval("A", "s", 0.7, 0.5, 0.9, 1.0, side="below").verdict == "AGREES"
    # an interval that touches the threshold does not exclude it
    assert claims.interval("A", "s", 1.5, 1.0, 2.0, 1.0).verdict == "INCONCLUSIVE"
    claims.check([above, below, straddles])  # findings never raise
    out = capsys.readouterr().out.splitlines()
    assert out[2] == "INCONCLUSIVE  [Fig. 2] ratio > 1  (two-sided 95% interval over seeds > 1)"
    assert out[-1] == "0 of 0 checks hold. Findings: 1 of 3 agree with the paper, 1 inconclusive."
    (rec,) = claims.records([one_seed])
    assert rec["low"] == "nan" and rec["verdict"] == "INCONCLUSIVE"
    json.dumps(rec)
    with pytest.raises(ValueError, match="side"):
        claims.interval("A", "s", 1.0, 0.5, 1.5, 1.0, side="up")
    with pytest.raises(ValueError, match="low"):
        claims.interval("A", "s", 1.0, 1.5, 0.5, 1.0)


def test_ratio_findings_from_stability_rows():
    import pandas as pd

    rows = pd.DataFrame([
        {"window": "second half", "measure": "increment", "mean": 2.0, "low": 1.5, "high": 2.5, "seeds": 3},
        {"window": "second half", "measure": "pred_change", "mean": 1.0, "low": 0.2, "high": 1.8, "seeds": 3},
    ])  # fmt: skip
    found = claims.ratio_findings(rows, "Fig. 2")
    assert [c.verdict for c in found] == ["AGREES", "INCONCLUSIVE"]
    assert found[0].statement == "second half: increment, forward/backward > 1 (3 seeds)"


def test_machine_targets_leave_no_verdict_line(monkeypatch, capsys):
    import IPython
    import IPython.display

    targets = [claims.finding("Performance", "speed-up ≥ 1.5", 1.2, 1.5, "at_least")]
    assert claims.machine(targets)["verdict"].tolist() == ["DISAGREES"]  # outside a kernel: the table
    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append((obj, kw)))
    assert claims.machine(targets) is None
    ((obj, kw),) = shown
    assert list(obj["verdict"]) == ["DISAGREES"] and kw["metadata"][claims.MACHINE_KEY][0]["measured"] == 1.2
    assert capsys.readouterr().out == ""  # nothing for nbval to compare
    with pytest.raises(ValueError, match="at least one"):
        claims.machine([])


def test_repeated_and_uncounted_findings_say_so(capsys):
    a = claims.interval("A.6", "after: x", 2.0, 1.5, 2.5, 1.0, same_as="Fig. 3")
    b = claims.interval("A.4", "y", 2.0, 1.5, 2.5, 1.0, counted=False)
    claims.check([a, b])
    out = capsys.readouterr().out
    assert "the same computation as Fig. 3's" in out and "not counted as evidence" in out
    assert a.verdict == b.verdict == "AGREES"  # the verdict itself is unchanged
    assert claims.records([b])[0]["counted"] is False
