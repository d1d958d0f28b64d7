"""Claim cells: computed verdicts with stated tolerances that raise when a claim fails.

A chapter builds :class:`Claim` objects from its measurements, shows them with :func:`table`
(measured values: machine-dependent digits) and ends with :func:`check`, whose printed lines
are machine-independent (verdict, claim, tolerance) so that nbval can compare them, and which
raises :class:`ClaimFailed` if any claim does not hold.

Two kinds of claim. A *check* is something the book asserts (a closed form matched, an
invariant of the engine, a theorem's bound): it must hold, and a failure raises. A *finding*
compares a measurement with the paper's claim at the book's scale: its verdict is computed the
same way and printed, but a disagreement is a result to report, not an error, so it does not
raise. A finding measured over seeds (:func:`interval`) decides only what its interval
decides: AGREES when the whole interval lies on the paper's side of the threshold, DISAGREES
when it lies on the other side, INCONCLUSIVE otherwise (one seed gives no interval).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

__all__ = [
    "MACHINE_KEY",
    "METADATA_KEY",
    "Claim",
    "ClaimFailed",
    "at_least",
    "at_most",
    "check",
    "interval",
    "machine",
    "ratio_findings",
    "close",
    "finding",
    "records",
    "table",
]

# Output metadata under which ``check`` leaves its claims for the pipeline's claims page
# (metadata is not compared by nbval and not rendered; the verdict lines above it are both).
METADATA_KEY = "companion.claims"
# Targets measured on the machine that executed the chapter (timings): on the claims page, in
# a section of their own, never in the lines nbval compares.
MACHINE_KEY = "companion.machine_claims"


class ClaimFailed(AssertionError):
    """A claim of the paper was not reproduced within its tolerance."""


@dataclass(frozen=True)
class Claim:
    """One checked statement: ``measured`` against ``target`` under ``relation``."""

    source: str  # where the paper says it, e.g. "Example 3.1"
    statement: str  # what is claimed, in words
    measured: float
    target: float
    relation: str  # "close": |measured − target| ≤ tol; "at_most"/"at_least": against target;
    # "above"/"below": the interval [low, high] of ``measured`` against ``target``
    tol: float
    kind: str = "check"  # "check": must hold; "finding": agreement with the paper, reported
    low: float | None = None  # the interval's ends, for "above"/"below"
    high: float | None = None
    level: float | None = None
    same_as: str | None = None  # the same computation as a finding of this source: counted once
    counted: bool = True  # False: reported, but not evidence (e.g. networks that never trained)

    @property
    def verdict(self) -> str:
        """PASS/FAIL for a check; AGREES/DISAGREES (or INCONCLUSIVE, intervals) for a finding."""
        if self.relation in ("above", "below"):
            low, high, t = self.low, self.high, self.target
            if not (math.isfinite(low) and math.isfinite(high)):
                side = "INCONCLUSIVE"
            elif (low > t) if self.relation == "above" else (high < t):
                side = "AGREES"
            elif (high < t) if self.relation == "above" else (low > t):
                side = "DISAGREES"
            else:
                side = "INCONCLUSIVE"
            return side if self.kind == "finding" else {"AGREES": "PASS"}.get(side, "FAIL")
        if self.kind == "finding":
            return "AGREES" if self.passed else "DISAGREES"
        return "PASS" if self.passed else "FAIL"

    @property
    def passed(self) -> bool:
        if self.relation in ("above", "below"):
            return self.verdict in ("AGREES", "PASS")
        m, t = self.measured, self.target
        if not math.isfinite(m):
            return False
        if self.relation == "close":
            return abs(m - t) <= self.tol
        if self.relation == "at_most":
            return m <= t + self.tol
        return m >= t - self.tol

    @property
    def criterion(self) -> str:
        if self.relation in ("above", "below"):
            side = ">" if self.relation == "above" else "<"
            return f"two-sided {self.level:.0%} interval over seeds {side} {self.target:.4g}"
        if self.relation == "close":
            return f"|measured − {self.target:.4g}| ≤ {self.tol:.2g}"
        sign = "≤" if self.relation == "at_most" else "≥"
        slack = f" (slack {self.tol:.2g})" if self.tol else ""
        return f"measured {sign} {self.target:.4g}{slack}"


def _claim(source, statement, measured, target, relation, tol, kind="check") -> Claim:
    if tol < 0:
        raise ValueError(f"tol must be ≥ 0, got {tol}")
    if relation not in ("close", "at_most", "at_least"):
        raise ValueError(f"relation must be 'close', 'at_most' or 'at_least', got {relation!r}")
    return Claim(source, statement, float(measured), float(target), relation, float(tol), kind)


def close(source: str, statement: str, measured: float, target: float, tol: float) -> Claim:
    """Claim that ``measured`` equals ``target`` within ``tol`` (absolute)."""
    return _claim(source, statement, measured, target, "close", tol)


def at_most(source: str, statement: str, measured: float, bound: float, tol: float = 0.0) -> Claim:
    """Claim that ``measured ≤ bound + tol``."""
    return _claim(source, statement, measured, bound, "at_most", tol)


def at_least(source: str, statement: str, measured: float, bound: float, tol: float = 0.0) -> Claim:
    """Claim that ``measured ≥ bound − tol``."""
    return _claim(source, statement, measured, bound, "at_least", tol)


def finding(
    source: str, statement: str, measured: float, target: float, relation: str, tol: float = 0.0
) -> Claim:
    """The paper's claim as a measured comparison: AGREES or DISAGREES, never an error."""
    return _claim(source, statement, measured, target, relation, tol, kind="finding")


def interval(
    source: str,
    statement: str,
    mean: float,
    low: float,
    high: float,
    threshold: float,
    side: str = "above",
    level: float = 0.95,
    same_as: str | None = None,
    counted: bool = True,
) -> Claim:
    """The paper's claim "the quantity is ``side`` ``threshold``" as a finding measured over
    seeds: ``mean`` with its two-sided ``level`` interval [``low``, ``high``]. AGREES when the
    interval excludes the threshold on the paper's side, DISAGREES when it excludes it on the
    other side, INCONCLUSIVE when it contains the threshold or does not exist (NaN ends).
    ``same_as`` names the source of a finding that is the same computation (shown, counted once);
    ``counted=False`` reports a finding that is not evidence (its chapter says why)."""
    if side not in ("above", "below"):
        raise ValueError(f"side must be 'above' or 'below', got {side!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    low, high = float(low), float(high)
    if math.isfinite(low) and math.isfinite(high) and low > high:
        raise ValueError(f"low must be ≤ high, got [{low}, {high}]")
    return Claim(
        source,
        statement,
        float(mean),
        float(threshold),
        side,
        0.0,
        "finding",
        low,
        high,
        level,
        same_as,
        counted,
    )


def ratio_findings(
    rows,
    source: str,
    a: str = "forward",
    b: str = "backward",
    *,
    same_as: str | None = None,
    counted: bool = True,
) -> list[Claim]:
    """One finding per row of ``backward_lib.analysis.stability.ratios``: does ``a`` move more than
    ``b`` (ratio above 1), decided by the ratio's interval over seeds. ``same_as``: these are
    the same computation as that source's findings (counted once on the claims page)."""
    out = []
    for r in rows.itertuples():
        statement = f"{r.window}: {r.measure}, {a}/{b} > 1 ({r.seeds} seed{'s' * (r.seeds != 1)})"
        out.append(
            interval(source, statement, r.mean, r.low, r.high, 1.0, "above", same_as=same_as, counted=counted)
        )
    return out


def _verdict(c: Claim) -> str:
    return c.verdict


def table(claims: list[Claim]) -> pd.DataFrame:
    """The claims with their measured values, for display before the verdicts, one row per
    claim indexed by its place in the paper."""
    rows = [{**asdict(c), "criterion": c.criterion, "verdict": _verdict(c)} for c in claims]
    cols = ["source", "statement", "measured", "criterion", "verdict"]
    # indexed by where the paper says it: a row number would mean nothing to a reader
    return pd.DataFrame(rows)[cols].set_index("source").rename_axis("paper")


def records(claims: list[Claim]) -> list[dict]:
    """The claims as plain records (JSON-ready): everything the claims page shows."""
    out = []
    for c in claims:  # non-finite numbers as text: JSON has no NaN
        row = {
            k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in asdict(c).items()
        }
        out.append({**row, "criterion": c.criterion,
                    "verdict": _verdict(c), "passed": c.passed})  # fmt: skip
    return out


def _emit(summary: str, claims: list[Claim]) -> None:
    """Print the summary; in a notebook, carry the structured claims in its output metadata."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the book's requirements
        get_ipython = None
    if get_ipython is None or get_ipython() is None:
        print(summary)
        return
    from IPython.display import display

    display({"text/plain": summary}, raw=True, metadata={METADATA_KEY: records(claims)})


def check(claims: list[Claim]) -> None:
    """Print one machine-independent verdict line per claim; raise if a check failed."""
    if not claims:
        raise ValueError("check needs at least one claim")
    for c in claims:
        again = f"; the same computation as {c.same_as}'s" if c.same_as else ""
        again += "; not counted as evidence" if not c.counted else ""
        print(f"{_verdict(c)}  [{c.source}] {c.statement}  ({c.criterion}{again})")
    checks = [c for c in claims if c.kind == "check"]
    findings = [c for c in claims if c.kind == "finding"]
    failed = [c for c in checks if not c.passed]
    if failed:
        lines = "; ".join(f"{c.statement}: measured {c.measured:.6g}" for c in failed)
        raise ClaimFailed(f"{len(failed)} of {len(checks)} checks failed: {lines}")
    summary = f"{len(checks)} of {len(checks)} checks hold."
    if findings:
        agree = sum(c.verdict == "AGREES" for c in findings)
        open_ = sum(c.verdict == "INCONCLUSIVE" for c in findings)
        summary += f" Findings: {agree} of {len(findings)} agree with the paper"
        summary += f", {open_} inconclusive." if open_ else "."
    _emit(summary, claims)


def machine(claims: list[Claim]) -> pd.DataFrame:
    """Targets that depend on the machine (speed): shown as a table whose output carries them
    to the claims page, marked as measured on the machine that built the book. Never raises
    and prints no verdict line, so CI on another machine has nothing to compare."""
    if not claims:
        raise ValueError("machine needs at least one claim")
    shown = table(claims)
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the book's requirements
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        from IPython.display import display

        display(shown, metadata={MACHINE_KEY: records(claims)})
        return None
    return shown
