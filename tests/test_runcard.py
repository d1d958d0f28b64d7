"""Run cards: pending rows the pipeline fills, metadata it reads, tables offered as CSV."""

from __future__ import annotations

import io

import IPython.display
import pandas as pd
import pytest

from companion import runcard


@pytest.fixture
def shown(monkeypatch):
    out = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: out.append((obj, kw)))
    return out


def test_card_rows_and_metadata(shown):
    runcard.show("book", "Fig. 3", seeds="0, 1", device="cpu")
    ((obj, kw),) = shown
    text = obj.data
    assert "| seeds | 0, 1 |" in text and runcard.WALL_PENDING in text and runcard.RERUN_PENDING in text
    assert kw["metadata"][runcard.CARD_KEY] == {"reproduces": "Fig. 3", "profile": "book", "seeds": "0, 1",
                                                "device": "cpu"}  # fmt: skip


def test_results_carry_the_table_as_csv(shown):
    df = pd.DataFrame({"order": ["forward", "backward"], "step": [1, 2], "value": [0.5, 0.25]})
    runcard.results(df)
    ((obj, kw),) = shown
    assert runcard.CSV_PENDING in obj.data and "2 rows" in obj.data
    back = pd.read_csv(io.StringIO(kw["metadata"][runcard.TABLE_KEY]))
    pd.testing.assert_frame_equal(back, df)
    with pytest.raises(ValueError, match="df"):
        runcard.results(df.iloc[:0])
