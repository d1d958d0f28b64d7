"""The run card that opens every chapter: what was run, at which scale, on what.

The wall time, the command that reruns the chapter and its cost at the paper's scale are
unknown while the chapter runs (it does not know its own name); the pipeline
(``companion.pipeline``) writes them into the rows marked :data:`WALL_PENDING`,
:data:`RERUN_PENDING` and :data:`PAPER_PENDING`. It also reads two things the chapter
leaves in output metadata: the card's rows (:data:`CARD_KEY`, for the claims and reproduce
pages) and a recorded table (:data:`TABLE_KEY`, written beside the chapter as a CSV that the
page links for download).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch

from backward_lib import __version__
from backward_lib.device import device_name

__all__ = [
    "CARD_KEY",
    "CSV_PENDING",
    "PAPER_PENDING",
    "RERUN_PENDING",
    "TABLE_KEY",
    "WALL_PENDING",
    "device_name",
    "markdown",
    "notice",
    "results",
    "show",
]

WALL_PENDING = "not measured (chapter run outside the pipeline)"
RERUN_PENDING = "`python -m companion run <chapter>` (the pipeline names the chapter)"
CSV_PENDING = "(written beside the chapter when the pipeline runs it)"
PAPER_PENDING = "see the Reproduce page (the pipeline fills this row)"
CARD_KEY = "companion.runcard"
TABLE_KEY = "companion.table"


def markdown(profile: str, reproduces: str, **rows: Any) -> str:
    """The card as a Markdown table (keys become row labels, underscores as spaces)."""
    lines = ["| run card | |", "|---|---|", f"| reproduces | {reproduces} |", f"| profile | `{profile}` |"]
    lines += [f"| {k.replace('_', ' ')} | {v} |" for k, v in rows.items()]
    lines += [
        f"| library | backward_lib {__version__}, torch {torch.__version__} |",
        f"| wall time | {WALL_PENDING} |",
        f"| rerun | {RERUN_PENDING} |",
        f"| at the paper's scale | {PAPER_PENDING} |",
    ]
    return "\n".join(lines)


def show(profile: str, reproduces: str, **rows: Any) -> None:
    """Display the run card in the notebook (its rows also go into the output's metadata)."""
    from IPython.display import Markdown, display

    card = {"reproduces": reproduces, "profile": profile, **{k: str(v) for k, v in rows.items()}}
    display(Markdown(markdown(profile, reproduces, **rows)), metadata={CARD_KEY: card})


def results(df: pd.DataFrame, what: str = "the recorded results") -> None:
    """Offer ``df`` for download: the pipeline writes it as ``<chapter>.csv`` beside the page.

    The CSV travels in the output's metadata until the pipeline writes the file and removes
    it; run outside the pipeline, the line says where the file would be.
    """
    from IPython.display import Markdown, display

    if not isinstance(df, pd.DataFrame) or df.empty:
        raise ValueError("df must be a non-empty DataFrame")
    cols = ", ".join(map(str, df.columns))
    text = f"**Download** {what} as CSV: {CSV_PENDING} ({len(df):,} rows; columns {cols})."
    display(Markdown(text), metadata={TABLE_KEY: df.to_csv(index=False)})


def notice(text: str, kind: str = "warning") -> None:
    """A visible admonition in the rendered chapter (e.g. data substituted for the paper's)."""
    from IPython.display import Markdown, display

    display(Markdown(f":::{{{kind}}}\n{text}\n:::"))
