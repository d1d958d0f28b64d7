"""One seaborn style for the whole book, and the figures chapters share.

Figures are sized for the book's column (about 7 inches wide) and drawn at twice the screen
resolution. Colours come from one colour-blind-safe palette (Okabe and Ito), and orders keep
one colour, line style and drawing rank across the book, so that a backward line is never
hidden under a forward one. A diverged run is marked with a cross where it diverged, never
drawn as NaN. Axis labels are words (:data:`METRIC_LABELS`), never a record's column name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
import seaborn as sns

__all__ = ["METRIC_LABELS", "OKABE_ITO", "ORDER_COLORS", "WIDTH", "curves", "law", "law_panels",
           "legend_below", "metric_label", "order_style", "use_style"]  # fmt: skip

WIDTH = 7.0  # inches: the book's text column

# Okabe & Ito (2008), "Color universal design": distinct under the common colour blindnesses.
OKABE_ITO = {
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "bluish green": "#009E73",
    "orange": "#E69F00",
    "reddish purple": "#CC79A7",
    "sky blue": "#56B4E9",
    "yellow": "#F0E442",
    "black": "#000000",
}
ORDER_COLORS = {
    "forward": OKABE_ITO["blue"],
    "backward": OKABE_ITO["vermillion"],
    "approx. backward": OKABE_ITO["bluish green"],
    "reset": OKABE_ITO["orange"],
    "delayed": OKABE_ITO["reddish purple"],
    "window": OKABE_ITO["sky blue"],
}
# Colours for the second, third, … variant of an order and for names the book does not know.
_EXTRA = [OKABE_ITO[c] for c in ("orange", "reddish purple", "sky blue", "bluish green", "yellow")]
_EXTRA += ["#666666", "#999933", "#882255"]  # beyond Okabe–Ito: grey, olive, wine
# The forward iterate is the noisiest line: drawn first, thinnest and translucent, so that
# the smoother lines drawn over it stay visible and it still shows through them.
_STYLES = {
    "forward": dict(ls="-", lw=0.9, alpha=0.75, zorder=2),
    "backward": dict(ls="-", lw=1.5, alpha=1.0, zorder=3),
    "approx. backward": dict(ls="--", lw=1.3, alpha=1.0, zorder=4),
}
_VARIANT = dict(ls=(0, (4, 2)), lw=1.0, alpha=1.0, zorder=4)

METRIC_LABELS = {
    "train_loss": "training loss",
    "test_loss": "test loss",
    "test_accuracy": "test accuracy",
    "train_loss_bnfix": "training loss (BatchNorm statistics recomputed)",
    "test_loss_bnfix": "test loss (BatchNorm statistics recomputed)",
    "test_accuracy_bnfix": "test accuracy (BatchNorm statistics recomputed)",
    "to_backward": r"distance to the backward iterate $\tilde\theta_n$",
    "increment": r"$\|\theta_{n+1} - \theta_n\|$",
    "x": "$x_n$",
}
_LAGGED = {
    "increment": r"$\|\theta_{{n}} - \theta_{{n-{k}}}\|$",
    "pred_change": "test predictions changed\nover {k} steps (fraction)",
}


def metric_label(metric: str) -> str:
    """A record's metric name in words, for an axis: ``"test_accuracy"`` → ``"test accuracy"``.

    Lagged measures (``increment_lag50``) name their lag; unknown names lose their underscores.
    """
    if metric in METRIC_LABELS:
        return METRIC_LABELS[metric]
    m = re.fullmatch(r"(\w+?)_lag(\d+)", metric)
    if m and m[1] in _LAGGED:
        return _LAGGED[m[1]].format(k=m[2])
    return metric.replace("_", " ")


def _base(name: str) -> str:
    """An order's family: ``"backward (reset to θ_r)"`` → ``"backward"``, ``"reset:100"`` → ``"reset"``."""
    return str(name).split("(")[0].split(":")[0].strip()


def order_style(names: Sequence[str]) -> dict[str, dict]:
    """Line keywords (colour, line style, width, alpha, zorder) for each order name.

    An order's colour and style come from its family (:data:`ORDER_COLORS`): the first name
    of a family (``"backward (reset to θ_r)"``) draws like the family itself. A second variant
    of one family (the other reading of a reset) and unknown names get the next unused palette
    colour, thinner and dashed, drawn above the first, so that where two readings coincide
    both stay visible.
    """
    extra = iter(_EXTRA * 2)
    out: dict[str, dict] = {}
    used: set[str] = set()
    for n in names:
        family = n if n in ORDER_COLORS else _base(n)
        color = ORDER_COLORS.get(family)
        if color and color not in used:
            style = _STYLES.get(family, _VARIANT)
        else:
            color, style = next(c for c in extra if c not in used), _VARIANT
        used.add(color)
        out[n] = {"color": color, **style}
    return out


def _palette(names: Sequence[str]) -> dict[str, str]:
    """Each name's colour (see :func:`order_style`)."""
    return {n: s["color"] for n, s in order_style(names).items()}


def _retina() -> None:
    """Inline figures at twice the resolution, shown at their nominal size (sharp on HiDPI
    screens). Only inside an IPython kernel (papermill runs one); a no-op elsewhere."""
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina")


def use_style() -> None:
    """The book's plotting style (call once at the top of a chapter), and its tables': cells
    shown whole (a claim's statement cut before its criterion reads as another claim)."""
    pd.set_option("display.max_colwidth", None)
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9)
    plt.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 220,
            "figure.constrained_layout.use": True,
            "legend.frameon": False,
            "axes.titlesize": "medium",
            "axes.prop_cycle": plt.cycler(color=list(OKABE_ITO.values())[:7]),
        }
    )
    _retina()


def legend_below(fig: plt.Figure, *, ncol: int | None = None, **kw) -> None:
    """One legend for the whole figure, centred below the panels, from every panel's labels.

    Below rather than beside: a long label beside the panels squeezes them, and one inside a
    panel covers its curves. Labels repeated across panels appear once.
    """
    entries: dict[str, object] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if not label.startswith("_"):
                entries.setdefault(label, handle)
    if entries:
        n = ncol or min(len(entries), 4)
        fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncol=n, **kw)


def curves(
    df: pd.DataFrame,
    metric: str,
    *,
    row: str | None = "seed",
    hue: str = "order",
    logy: bool = False,
    height: float = 1.9,
    title: str | None = None,
    ylabel: str | None = None,
) -> plt.Figure:
    """Learning curves of one metric from a tidy record frame, one panel per ``row`` value.

    Each panel plots ``value`` against ``step`` for every ``hue`` value; diverged records
    are left out of the line and marked with a cross at the top of the panel. The metric's
    words (:func:`metric_label`, or ``ylabel``) label the panels' common axis; each panel
    names its ``row`` value.
    """
    data = df[df["metric"] == metric]
    if data.empty:
        raise ValueError(f"metric: no records of {metric!r}; have {sorted(df['metric'].unique())}")
    rows = sorted(data[row].unique()) if row else [None]
    hues = list(dict.fromkeys(data[hue]))
    styles = order_style(hues)
    size = (WIDTH, max(height * len(rows), 2.6))  # one panel alone still gets a readable height
    fig, axes = plt.subplots(len(rows), 1, figsize=size, sharex=True, squeeze=False)
    for ax, r in zip(axes[:, 0], rows, strict=True):
        part = data if r is None else data[data[row] == r]
        for h in hues:
            d = part[part[hue] == h].sort_values("step")
            ok = d[~d["diverged"]]
            ax.plot(ok["step"], ok["value"], label=str(h), **styles[h])
            bad = d[d["diverged"]]
            if not bad.empty:
                ax.plot(
                    bad["step"].iloc[0],
                    1.0,
                    "x",
                    color=styles[h]["color"],
                    ms=8,
                    mew=2,
                    transform=ax.get_xaxis_transform(),
                    clip_on=False,
                    label=f"{h} diverged",
                    zorder=5,
                )
        if logy:
            ax.set_yscale("log")
            # a short panel spans less than a decade: label 1 and 3 per decade, not every minor tick
            ax.yaxis.set_minor_locator(mticker.LogLocator(subs=(3.0,)))
        if r is not None:
            ax.set_ylabel(f"{row} {r}", fontsize="small")
    words = ylabel or metric_label(metric)
    if row:
        fig.supylabel(words, fontsize="medium")
    else:
        axes[0, 0].set_ylabel(words)
    axes[-1, 0].set_xlabel("step n")
    legend_below(fig)
    if title:
        fig.suptitle(title)
    return fig


def law(
    samples: dict[str, np.ndarray],
    *,
    pdf: tuple[np.ndarray, np.ndarray] | None = None,
    pdf_label: str = "theory",
    bins: int = 40,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Density histograms of several samples on one axis, with an optional theoretical pdf.

    Outlined as well as filled, so that overlapping histograms stay apart.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(WIDTH / 2, 2.6))
    colors = _palette(list(samples))
    lo = min(float(np.min(s)) for s in samples.values())
    hi = max(float(np.max(s)) for s in samples.values())
    edges = np.linspace(lo, hi, bins + 1)
    for name, s in samples.items():
        ax.hist(s, bins=edges, density=True, histtype="stepfilled", alpha=0.3, color=colors[name])
        ax.hist(s, bins=edges, density=True, histtype="step", lw=1.1, color=colors[name], label=name)
    if pdf is not None:
        ax.plot(*pdf, color="black", lw=1.2, label=pdf_label)
    ax.set_ylabel("density")
    ax.legend()
    return ax


# Sample k of a law figure: its colour and line style (the first is the backward endpoints).
_LAW_STYLES = [
    (ORDER_COLORS["backward"], "-"),
    (ORDER_COLORS["forward"], "--"),
    (OKABE_ITO["black"], ":"),
    (OKABE_ITO["bluish green"], "-."),
    (OKABE_ITO["reddish purple"], (0, (5, 1, 1, 1, 1, 1))),
]


def _ecdf(sample: np.ndarray, xs: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.sort(sample), xs, side="right") / len(sample)


def law_panels(
    samples: Mapping[str, np.ndarray],
    path: np.ndarray,
    xlabel: str,
    mark: tuple[float, str] | None = None,
) -> plt.Figure:
    """Several samples against a long forward path: a Q–Q plot, histograms and the KS view.

    Top left, the quantiles of each sample against those of ``path`` (on the diagonal: the
    same law). Top right, density histograms of the first sample (the backward endpoints)
    and of the path. Bottom, the difference of distribution functions
    :math:`F_{\\text{sample}} - F_{\\text{path}}`: the two-sample Kolmogorov–Smirnov statistic
    is its largest absolute value, and the grey band is the test's critical distance at the
    1% level for the first sample's size, so a curve leaving it is a rejection. ``mark``,
    a value and its name, draws a vertical line on the lower two panels.
    """
    if len(samples) > len(_LAW_STYLES):
        raise ValueError(f"samples: at most {len(_LAW_STYLES)}, got {len(samples)}")
    fig = plt.figure(figsize=(WIDTH, 5.2))
    grid = fig.add_gridspec(2, 2, height_ratios=[1.1, 1])
    qq, hist, gap = (fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]),
                     fig.add_subplot(grid[1, :]))  # fmt: skip
    levels = np.linspace(0.005, 0.995, 199)
    ref, xs = np.quantile(path, levels), np.linspace(path.min(), path.max(), 1000)
    F_path = _ecdf(path, xs)
    for (name, s), (color, ls) in zip(samples.items(), _LAW_STYLES, strict=False):
        qq.plot(ref, np.quantile(s, levels), color=color, ls=ls, lw=1.3, label=name)
        gap.plot(xs, _ecdf(s, xs) - F_path, color=color, ls=ls, lw=1.1, label=name)
    qq.plot(ref, ref, color="k", lw=0.6)
    qq.set(xlabel="quantiles of the forward path", ylabel="sample quantiles", title="Q–Q plot")
    first = next(iter(samples.values()))
    law({"backward": first, "forward": path}, ax=hist, bins=50)
    hist.set(xlabel=xlabel, title="backward endpoints and forward path")
    n, m = len(first), len(path)
    band = 1.628 * np.sqrt((n + m) / (n * m))  # two-sample KS critical distance at the 1% level
    gap.axhspan(-band, band, color="0.9", lw=0, label="KS: not rejected at 1%")
    gap.axhline(0, color="k", lw=0.6)
    gap.set(xlabel=xlabel, ylabel="$F_{sample} - F_{path}$")
    # below the panels: inside the bottom one it would hide the KS band
    fig.legend(*gap.get_legend_handles_labels(), loc="outside lower center", ncol=2,
               fontsize="small")  # fmt: skip
    if mark is not None:
        for ax in (hist, gap):
            ax.axvline(mark[0], color="k", lw=0.8, ls="--")
        # the name left of the line, where the bars are lower
        hist.text(mark[0], 0.97, f"{mark[1]} ", transform=hist.get_xaxis_transform(),
                  ha="right", va="top", fontsize="small")  # fmt: skip
    return fig
