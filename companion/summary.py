"""The reader's summary, generated from the executed chapters' claims: counts, the forest plot,
the first screen of the landing page, ``claims.json``/``claims.csv`` and "What the book finds".

Nothing here is typed by hand except the sentences of :file:`book/findings.yaml`; their
evidence (which findings, which verdicts, which values) is selected from the claims, and a
sentence that its own evidence contradicts stops the build.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from . import chapters

if TYPE_CHECKING:  # pages imports this module; the type only
    from .pages import Chapter

__all__ = [
    "FINDINGS_SPEC",
    "VERDICT_STYLE",
    "Counts",
    "Theme",
    "counts",
    "findings_page",
    "forest",
    "glance",
    "label",
    "rows",
    "themes",
    "to_csv",
    "to_json",
    "value",
]

FINDINGS_SPEC = chapters.BOOK / "findings.yaml"
PART_WORDS = {"theory": "theory", "experiments": "experiments", "approximations": "approximations",
              "neighbours": "neighbouring results", "performance": "performance"}  # fmt: skip

# Okabe–Ito colours (safe for the common colour-vision deficiencies), each with its own marker,
# so that a verdict never rests on colour alone. The badge names are sphinx-design's.
VERDICT_STYLE: dict[str, dict[str, str]] = {
    "agrees": {"color": "#009E73", "marker": "o", "badge": "bdg-success"},
    "inconclusive": {"color": "#7f7f7f", "marker": "D", "badge": "bdg-muted"},
    "disagrees": {"color": "#D55E00", "marker": "s", "badge": "bdg-danger"},
    "holds": {"color": "#009E73", "marker": "o", "badge": "bdg-success"},
    "fails": {"color": "#D55E00", "marker": "s", "badge": "bdg-danger"},
}


def verdict(c: dict) -> str:
    """A claim's verdict in words: agrees / inconclusive / disagrees (findings), holds / fails."""
    if c["kind"] == "finding":
        return {"AGREES": "agrees", "INCONCLUSIVE": "inconclusive"}.get(c["verdict"], "disagrees")
    return "holds" if c["passed"] else "fails"


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def value(c: dict) -> str:
    """What was measured: a finding over seeds as its mean and interval, ``2.09 [0.59, 3.58]``."""
    m, low, high = _num(c.get("measured")), _num(c.get("low")), _num(c.get("high"))
    if c.get("relation") in ("above", "below"):
        if math.isfinite(low) and math.isfinite(high):
            return f"{m:.3g} [{low:.3g}, {high:.3g}]"
        return f"{m:.3g} (one seed: no interval)"
    return f"{m:.4g}" if math.isfinite(m) else str(c.get("measured"))


def evidence(c: dict) -> bool:
    """Whether a finding counts: not a repeat of another chapter's computation, and not marked
    by its chapter as no evidence (networks that never trained)."""
    return c["kind"] == "finding" and not c.get("same_as") and c.get("counted", True)


@dataclass(frozen=True)
class Counts:
    claims: int
    checks: int
    hold: int
    findings: int  # counted findings
    agree: int
    inconclusive: int
    disagree: int
    repeats: int  # findings that repeat another chapter's computation
    idle: int  # findings their chapter marks as no evidence

    def sentence(self) -> str:
        """The counts in one sentence, as the landing and claims pages state them."""
        extra = []
        if self.repeats:
            extra.append(f"{self.repeats} more repeat another chapter's computation and are counted there")
        if self.idle:
            extra.append(f"{self.idle} more are not evidence: their chapters say why")
        return (
            f"**{self.findings} findings: {self.agree} agree with the paper, {self.inconclusive} are "
            f"inconclusive and {self.disagree} disagree**"
            + (f" ({'; '.join(extra)})" if extra else "")
            + f". {self.checks} checks, {self.hold} hold."
        )


def counts(pages: list[Chapter]) -> Counts:
    every = [c for ch in pages for c in ch.claims]
    checks = [c for c in every if c["kind"] == "check"]
    found = [c for c in every if evidence(c)]
    return Counts(
        claims=len(every),
        checks=len(checks),
        hold=sum(c["passed"] for c in checks),
        findings=len(found),
        agree=sum(c["verdict"] == "AGREES" for c in found),
        inconclusive=sum(c["verdict"] == "INCONCLUSIVE" for c in found),
        disagree=sum(c["verdict"] not in ("AGREES", "INCONCLUSIVE") for c in found),
        repeats=sum(c["kind"] == "finding" and bool(c.get("same_as")) for c in every),
        idle=sum(
            c["kind"] == "finding" and not c.get("same_as") and not c.get("counted", True) for c in every
        ),
    )


def rows(pages: list[Chapter]) -> list[dict[str, Any]]:
    """Every claim (and every target measured on the building machine) as one flat record."""
    out = []
    for ch in pages:
        for c, machine in [*((c, False) for c in ch.claims), *((c, True) for c in ch.machine)]:
            out.append(
                {
                    "chapter": ch.name,
                    "part": ch.part,
                    "page": f"{ch.doc}.html",
                    "source": c["source"],
                    "statement": c["statement"],
                    "kind": c["kind"],
                    "measured": _num(c.get("measured")),
                    "low": _num(c.get("low")),
                    "high": _num(c.get("high")),
                    "level": c.get("level"),
                    "threshold": _num(c.get("target")),
                    "criterion": c["criterion"],
                    "verdict": verdict(c),
                    "same_as": c.get("same_as"),
                    "counted": bool(c.get("counted", True)) and not c.get("same_as"),
                    "this_machine_only": machine,
                    "profile": ch.stamp.get("profile"),
                    "seeds": ch.card.get("seeds"),
                }
            )
    return out


def to_json(pages: list[Chapter]) -> str:
    """``claims.json``: the records of :func:`rows` (NaN as null) with the counts."""

    def clean(r: dict) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}

    body = {"counts": counts(pages).__dict__, "claims": [clean(r) for r in rows(pages)]}
    return json.dumps(body, indent=1, ensure_ascii=False) + "\n"


def to_csv(pages: list[Chapter]) -> str:
    """``claims.csv``: the records of :func:`rows`, one line each."""
    recs = rows(pages)
    buf = io.StringIO()
    if recs:
        w = csv.DictWriter(buf, fieldnames=list(recs[0]))
        w.writeheader()
        w.writerows(recs)
    return buf.getvalue()


_MEASURE_WORDS = {
    "test_accuracy jitter": "test-accuracy jitter",
    "train_loss jitter": "train-loss jitter",
    "increment": "parameter step ‖θₙ₊₁ − θₙ‖",
    "pred_change": "test predictions changed",
    "logit_change": "logit change",
}


def label(ch_source: str, statement: str) -> str:
    """A finding's short name for the forest plot: ``Fig. 3 · after the reset · logit change (θ̃_r)``."""
    s = re.sub(r"\s*\(\d+ seeds?\)$", "", statement)
    reading = re.search(r"\((reset to [^)]*|delayed at [^)]*)\)", s)
    s = re.sub(r",? forward/backward.*$", "", s)
    if ": " not in s:  # not a windowed ratio: its statement, short
        s = re.sub(r"\s*\(.*$", "", s)
        return f"{ch_source} · {s if len(s) <= 48 else s[:47] + '…'}"
    window, _, measure = s.partition(": ")
    measure = _MEASURE_WORDS.get(measure.strip(), measure.strip())
    tail = (
        f" ({reading.group(1).replace('reset to ', '')})" if reading and "reset" in reading.group(1) else ""
    )
    return f"{ch_source} · {window} · {measure}{tail}"


def _ratio_findings(pages: list[Chapter]) -> list[tuple[Chapter, dict]]:
    """Counted findings on a forward/backward ratio against 1, the forest plot's rows."""
    return [
        (ch, c)
        for ch in pages
        for c in ch.claims
        if evidence(c) and c.get("relation") in ("above", "below") and _num(c.get("target")) == 1.0
    ]


def forest(pages: list[Chapter], path: Path) -> int:
    """The forest plot: per chapter and measure, the forward/backward ratio's mean and two-sided
    95% interval over seeds on a log axis, the paper's claim (ratio above 1) as the reference
    line, verdict by colour and marker. Written as SVG to ``path``; returns the rows drawn.

    Interval ends at or below zero (a ratio's t-interval can reach there with few seeds) are
    clipped at the axis and marked with an arrow; a one-seed finding has a mean and no bar.
    Each row's label links to its chapter's claims (when the SVG is opened by itself).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import plots

    items = _ratio_findings(pages)
    if not items:
        raise ValueError("forest: no counted ratio findings in the executed chapters")
    plots.use_style()
    plt.rcParams["svg.hashsalt"] = "forest"  # stable ids in the SVG: the same claims give the same file
    n = len(items)
    fig, ax = plt.subplots(figsize=(plots.WIDTH, 0.9 + 0.21 * n), layout="constrained")
    # decades that hold every mean and every positive interval end
    ends = [v for _, c in items for v in (_num(c["measured"]), _num(c.get("low")), _num(c.get("high")))
            if math.isfinite(v) and v > 0]  # fmt: skip
    lo_axis = 10.0 ** min(-1, math.floor(math.log10(min(ends))))
    hi_axis = 10.0 ** max(1, math.ceil(math.log10(max(ends))))
    previous = None
    for i, (ch, c) in enumerate(items):
        y = n - 1 - i
        if previous is not None and ch.name != previous:
            ax.axhline(y + 0.5, color="#d0d0d0", lw=0.6, zorder=0)  # one band per chapter
        previous = ch.name
        style = VERDICT_STYLE[verdict(c)]
        m, low, high = _num(c["measured"]), _num(c.get("low")), _num(c.get("high"))
        if math.isfinite(low) and math.isfinite(high):
            a, b = max(low, lo_axis), min(high, hi_axis)
            ax.plot([a, b], [y, y], color=style["color"], lw=1.6, solid_capstyle="butt")
            if low < lo_axis:
                ax.plot(lo_axis, y, marker="<", color=style["color"], ms=5)
            if high > hi_axis:
                ax.plot(hi_axis, y, marker=">", color=style["color"], ms=5)
        filled = style["color"] if math.isfinite(low) else "white"
        ax.plot(min(max(m, lo_axis), hi_axis), y, marker=style["marker"], ms=5.5, color=style["color"],
                markerfacecolor=filled, zorder=3)  # fmt: skip
    ax.axvline(1.0, color="black", lw=0.9, ls="--", zorder=1)
    ax.set_xscale("log")
    ax.set_xlim(lo_axis * 0.85, hi_axis * 1.15)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_yticks(range(n))
    ax.set_yticklabels([label(c["source"], c["statement"]) for _, c in reversed(items)], fontsize=7.5)
    for tick, (ch, _) in zip(ax.get_yticklabels(), reversed(items), strict=True):
        tick.set_url(f"../{ch.doc}.html#claims")  # the SVG is served from _images/
    ax.set_xlabel("forward / backward ratio (log scale)")
    ax.grid(axis="y", visible=False)
    handles = [
        plt.Line2D(
            [], [], color=VERDICT_STYLE[v]["color"], marker=VERDICT_STYLE[v]["marker"], lw=1.6, label=v
        )
        for v in ("agrees", "inconclusive", "disagrees")
    ]
    handles.append(plt.Line2D([], [], color="black", ls="--", lw=0.9, label="1: the paper claims more"))
    fig.legend(handles=handles, loc="outside upper center", ncol=4, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    # no timestamp in an SVG: the same claims give the same file
    fig.savefig(path, **({"metadata": {"Date": None}} if path.suffix == ".svg" else {"dpi": 150}))
    plt.close(fig)
    return n


def forest_alt(pages: list[Chapter]) -> str:
    """The forest plot's alt text: what it shows, in numbers."""
    items = [c for _, c in _ratio_findings(pages)]
    tally = {v: sum(verdict(c) == v for c in items) for v in ("agrees", "inconclusive", "disagrees")}
    return (
        f"Forest plot of {len(items)} forward/backward ratios with 95% intervals on a log axis: "
        f"{tally['agrees']} lie above 1 (agree with the paper), {tally['inconclusive']} contain 1, "
        f"{tally['disagrees']} lie below 1."
    )


def forest_figure(pages: list[Chapter], image: str, name: str) -> list[str]:
    """The MyST figure directive for the forest plot at ``image`` (relative to the page)."""
    return [
        f"```{{figure}} {image}",
        f":name: {name}",
        f":alt: {forest_alt(pages)}",
        ":width: 100%",
        "",
        "Every counted stability finding of the book as a forward/backward ratio (mean over seeds",
        "and its two-sided 95% t-interval; log axis). The paper claims ratios above 1 (backward",
        "moves less). Colour and marker give the verdict; a hollow marker is a single seed (no",
        "interval); arrows mark intervals that run off the axis. Repeats of another chapter's",
        "computation and findings marked as no evidence are left out.",
        "```",
    ]


_MODELS = {"resnet18": "ResNet-18", "resnet50": "ResNet-50", "vgg19": "VGG-19"}


def _model_words(card_model: str) -> str:
    """``resnet18, width ×0.125 (176,402 parameters), init …`` → ``ResNet-18 at width 1/8``."""
    from fractions import Fraction

    text = card_model.split(" (")[0]
    m = re.match(r"(\w+), width ×([\d.]+)", text)
    if not m:
        return text
    width = Fraction(float(m.group(2))).limit_denominator(64)
    return f"{_MODELS.get(m.group(1), m.group(1))} at width {'full' if width == 1 else width}"


def _data_words(card_data: str) -> str:
    head = card_data.split(";")[0]
    m = re.search(r"substituted: (\S+) not available", head)
    if m:
        return f"Fashion-MNIST at 3×32×32, for {m.group(1).upper().replace('CIFAR', 'CIFAR-')}"
    return "Fashion-MNIST" if head.strip() == "fashion_mnist" else re.sub(r"\s*\([^)]*\)", "", head)


def _experiment_rows(pages: list[Chapter]) -> list[str]:
    out = []
    for ch in pages:
        card = ch.card
        if ch.part != "experiments" or "model" not in card:
            continue
        model = _model_words(card["model"])
        training = card.get("training", "")
        steps = re.search(r"(\d[\d,]*) steps", training)
        data = _data_words(card.get("data", ""))
        seeds = len([s for s in card.get("seeds", "").split(",") if s.strip()])
        out.append(
            f"| {{doc}}`{ch.title.split(':')[0]} <{ch.doc}>` | {model} | {data} "
            f"| {steps.group(1) if steps else '?'} | {seeds} |"
        )
    return out


def glance(pages: list[Chapter]) -> str:
    """The landing page's first screen: what is reproduced, at which scale, on which data, and
    the verdicts, then the forest plot (MyST, included by ``book/intro.md``)."""
    from .pages import GENERATED

    by_part: dict[str, int] = {}
    for ch in pages:
        by_part[ch.part] = by_part.get(ch.part, 0) + 1
    substituted = sorted(
        {
            m.group(1)
            for ch in pages
            if (m := re.search(r"substituted: (\S+) not available", ch.card.get("data", "")))
        }
    )
    subs = [ch for ch in pages if "substituted" in ch.card.get("data", "")]
    profiles = sorted({str(ch.stamp.get("profile", "?")) for ch in pages})
    k = counts(pages)
    lines = [
        f"% {GENERATED}",
        "",
        f"**What is reproduced.** {len(pages)} executed chapters: "
        + ", ".join(f"{n} in {PART_WORDS.get(part, part)}" for part, n in by_part.items())
        + f", all at the `{'`, `'.join(profiles)}` profile (see {{doc}}`reproduce`).",
        "",
        f"**Verdicts.** {k.sentence()} A finding is decided only when its 95% interval over seeds",
        "excludes the paper's threshold; every one is listed in {doc}`claims`, and the results that",
        "cut across chapters are in {doc}`findings`.",
        "",
        "**Data.** Fashion-MNIST is the real data set throughout."
        + (
            f" {' and '.join(s.upper().replace('CIFAR', 'CIFAR-') for s in substituted)} cannot be "
            "downloaded on the machine that builds the book, so "
            + ", ".join(f"{{doc}}`{ch.title.split(':')[0]} <{ch.doc}>`" for ch in subs)
            + " train the paper's networks on Fashion-MNIST resized to 3×32×32 instead, and say so"
            " at their top."
            if subs
            else ""
        ),
        "",
        "**Scale of the experiments** (the `paper` profile reruns each at the paper's settings):",
        "",
        "| chapter | model | data | steps | seeds |",
        "|---|---|---|---|---|",
        *_experiment_rows(pages),
        "",
        *forest_figure(pages, "figures/forest.svg", "fig-forest-landing"),
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class Theme:
    """One result that cuts across chapters: a sentence, the findings that are its evidence,
    and the verdicts that support it."""

    title: str
    text: str
    chapters: tuple[str, ...]
    measures: tuple[str, ...]  # regular expressions on the finding's statement
    supports: tuple[str, ...]  # the verdicts that support the sentence

    def evidence(self, pages: list[Chapter]) -> list[tuple[Chapter, dict]]:
        return [
            (ch, c)
            for ch in pages
            if ch.name in self.chapters
            for c in ch.claims
            if evidence(c) and any(re.search(m, c["statement"]) for m in self.measures)
        ]


def themes(path: Path = FINDINGS_SPEC) -> list[Theme]:
    """The sentences of "What the book finds" and their selectors, from ``book/findings.yaml``."""
    spec = yaml.safe_load(path.read_text()) or {}
    known = set(chapters.chapters())
    out = []
    for i, t in enumerate(spec.get("themes") or []):
        missing = {"title", "text", "chapters", "measures", "supports"} - set(t)
        if missing:
            raise ValueError(f"{path.name}: theme {i + 1} lacks {sorted(missing)}")
        unknown = sorted(set(t["chapters"]) - known)
        if unknown:
            raise ValueError(f"{path.name}: theme {t['title']!r} names unknown chapters {unknown}")
        bad = sorted(set(t["supports"]) - {"agrees", "inconclusive", "disagrees"})
        if bad:
            raise ValueError(f"{path.name}: theme {t['title']!r}: supports must be verdicts, got {bad}")
        out.append(Theme(t["title"], t["text"].strip(), tuple(t["chapters"]), tuple(t["measures"]),
                         tuple(t["supports"])))  # fmt: skip
    return out


def findings_page(pages: list[Chapter], spec: list[Theme] | None = None) -> str:
    """ "What the book finds": each cross-cutting result once, with the findings behind it.

    Raises when a sentence's selectors match nothing, or when fewer than half of its findings
    have a verdict that supports it: the sentence must then be rewritten, not the evidence.
    """
    from .pages import GENERATED, _cell

    spec = themes() if spec is None else spec
    by_name = {ch.name: ch for ch in pages}
    lines = [
        "# What the book finds",
        "",
        f"% {GENERATED}",
        "",
        "The results that cut across chapters, each stated once. Under every sentence: the findings",
        "that are its evidence, selected from the executed chapters' claims (not typed), how many",
        "support it, and where each is measured. The full list is in {doc}`claims`.",
        "",
    ]
    for t in spec:
        ev = t.evidence(pages)
        if not ev:
            raise ValueError(f"findings: theme {t.title!r} selects no counted finding")
        support = sum(verdict(c) in t.supports for _, c in ev)
        if 2 * support < len(ev):
            raise ValueError(
                f"findings: theme {t.title!r} is supported by {support} of its {len(ev)} findings; "
                "rewrite the sentence in book/findings.yaml"
            )
        where = list(dict.fromkeys(ch.name for ch, _ in ev))
        links = ", ".join(f"{{doc}}`{by_name[n].title.split(':')[0]} <{by_name[n].doc}>`" for n in where)
        lines += [
            f"## {t.title}",
            "",
            t.text,
            "",
            f"*Evidence:* {support} of {len(ev)} findings support this ({links}).",
            "",
            "| chapter | finding | measured (95% interval) | verdict |",
            "|---|---|---|---|",
        ]
        for ch, c in ev:
            badge = VERDICT_STYLE[verdict(c)]["badge"]
            lines.append(f"| {{ref}}`{_cell(c['source'])} <claims-{ch.name}>` | {_cell(c['statement'])} "
                         f"| {_cell(value(c))} | {{{badge}}}`{verdict(c)}` |")  # fmt: skip
        lines.append("")
    return "\n".join(lines) + "\n"
